/**
 * Jest `setupFilesAfterEnv`: wires the suite-wide secret check (see secret-scan.ts) into every
 * test file, then fails the file, after all its tests and hooks, when a secret was printed.
 *
 * What it records, for the whole file:
 * - every Nest log line, at every level (Nest's logger is pointed at a recorder; an app's own
 *   logger still gets each line), and every `console.*` call;
 * - every `ProcoreAuthEvents` event;
 * - the status line, headers and body of every `http.ServerResponse` the process writes, except
 *   the fake Procore server's own (they carry tokens by design);
 * - `util.inspect()` (message, stack, `cause` chain, own properties) of every error thrown by a
 *   `ProcoreTokenService`, `ProcoreKeyRotationService` or `TokenRefreshScheduler` method, by
 *   `Test...compile()` and by `app.init()` / `app.listen()`: what a test, an exception filter or
 *   a user would see.
 * What it looks for: every secret registered by the fake server, `fakeProcoreAuthOptions()`,
 * `generateKey()`, `ProcoreAuthModule.forRoot()` / `forRootAsync({ useFactory })` options, and
 * anything that looks like a JWT.
 */
import { ServerResponse } from 'node:http';
import { afterAll, expect } from '@jest/globals';
import { Logger, type LoggerService } from '@nestjs/common';
import { NestApplication } from '@nestjs/core';
import { TestingModuleBuilder } from '@nestjs/testing';
import {
  ProcoreAuthEvents,
  ProcoreAuthModule,
  ProcoreKeyRotationService,
  ProcoreTokenService,
  TokenRefreshScheduler,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  describeFindings,
  loggerRecordingTo,
  recordOutput,
  registerEncryptionKey,
  registerSecret,
  scanForSecrets,
  secretScanLogger,
  secretScanState,
  setCurrentTestName,
} from './secret-scan.js';

setCurrentTestName(() => expect.getState().currentTestName);

// --- Secrets --------------------------------------------------------------------------------------

const stopListening = FakeProcoreServer.onSecret((secret, kind) => {
  if (kind === 'encryption-key')
    registerEncryptionKey(secret, 'encryption key (fakeProcoreAuthOptions)');
  else registerSecret(secret, `${kind} (FakeProcoreServer)`);
});

function registerOptionSecrets(options: Partial<ProcoreAuthModuleOptions> | undefined): void {
  if (!options) return;
  registerSecret(options.clientSecret, 'client secret (module options)');
  for (const [name, account] of Object.entries(options.serviceAccounts ?? {})) {
    registerSecret(
      account?.clientSecret,
      `client secret of service account "${name}" (module options)`,
    );
  }
  registerEncryptionKey(options.encryptionKey, 'encryption key (module options)');
  for (const key of options.previousEncryptionKeys ?? []) {
    registerEncryptionKey(key, 'previous encryption key (module options)');
  }
}

const forRoot = ProcoreAuthModule.forRoot.bind(ProcoreAuthModule);
ProcoreAuthModule.forRoot = (options) => {
  registerOptionSecrets(options);
  return forRoot(options);
};
const forRootAsync = ProcoreAuthModule.forRootAsync.bind(ProcoreAuthModule);
ProcoreAuthModule.forRootAsync = (options) => {
  const { useFactory } = options;
  if (!useFactory) return forRootAsync(options);
  return forRootAsync({
    ...options,
    useFactory: async (...args: unknown[]) => {
      const resolved = await useFactory(...args);
      registerOptionSecrets(resolved);
      return resolved;
    },
  });
};

// --- Logs -----------------------------------------------------------------------------------------

// Whatever logger an app is given (`logger: false` included), Nest's logger records every line,
// at every level, and passes it on to that logger.
const overrideLogger = Logger.overrideLogger.bind(Logger);
Logger.overrideLogger = (logger: LoggerService | Parameters<typeof Logger.overrideLogger>[0]) => {
  if (Array.isArray(logger)) return overrideLogger(logger);
  const target =
    typeof logger === 'object' && logger !== null ? (logger as LoggerService) : undefined;
  return overrideLogger(
    target === undefined || target === secretScanLogger
      ? secretScanLogger
      : loggerRecordingTo(target),
  );
};
Logger.overrideLogger(false);

for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
  const original = console[method].bind(console);
  console[method] = (...args: unknown[]) => {
    recordOutput(`console.${method}`, ...args);
    original(...args);
  };
}

// --- Events ---------------------------------------------------------------------------------------

const emit = ProcoreAuthEvents.prototype.emit;
ProcoreAuthEvents.prototype.emit = function (this: ProcoreAuthEvents, event) {
  recordOutput(`event ${event.type}`, event);
  emit.call(this, event);
};

// --- Errors ---------------------------------------------------------------------------------------

/** Wraps `names` (default: every method) of `prototype` to record what they throw or reject with. */
function recordErrorsOf(prototype: object, label: string, names?: readonly string[]): void {
  for (const name of names ?? Object.getOwnPropertyNames(prototype)) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
    if (name === 'constructor' || typeof descriptor?.value !== 'function') continue;
    const original = descriptor.value as (...args: unknown[]) => unknown;
    const where = `error from ${label}.${name}()`;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      try {
        const result = original.apply(this, args);
        if (typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function') return result;
        return (result as PromiseLike<unknown>).then(undefined, (error: unknown) => {
          recordOutput(where, error);
          throw error;
        });
      } catch (error) {
        recordOutput(where, error);
        throw error;
      }
    };
    Object.defineProperty(prototype, name, { ...descriptor, value: wrapped });
  }
}

recordErrorsOf(ProcoreTokenService.prototype, 'ProcoreTokenService');
recordErrorsOf(ProcoreKeyRotationService.prototype, 'ProcoreKeyRotationService');
recordErrorsOf(TokenRefreshScheduler.prototype, 'TokenRefreshScheduler');
recordErrorsOf(TestingModuleBuilder.prototype, 'TestingModuleBuilder', ['compile']);
recordErrorsOf(NestApplication.prototype, 'NestApplication', ['init', 'listen']);

// --- HTTP responses -------------------------------------------------------------------------------

type Chunk = string | Uint8Array;
const bodies = new WeakMap<ServerResponse, string[]>();
const originals = {
  writeHead: ServerResponse.prototype.writeHead,
  write: ServerResponse.prototype.write,
  end: ServerResponse.prototype.end,
};

function describeResponse(response: ServerResponse): string {
  const { method = '?', url = '?' } = response.req ?? {};
  // The query is left out: a callback URL carries a code, and this label is printed.
  return `HTTP response to ${method} ${url.split('?')[0]} (${response.statusCode})`;
}

function collect(response: ServerResponse, chunk: unknown, encoding: unknown): void {
  if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
  const text =
    typeof chunk === 'string'
      ? Buffer.from(
          chunk,
          typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8',
        ).toString('utf8')
      : Buffer.from(chunk as Uint8Array).toString('utf8');
  const collected = bodies.get(response);
  if (collected) collected.push(text);
  else bodies.set(response, [text]);
}

const patched: Pick<ServerResponse, 'writeHead' | 'write' | 'end'> = {
  writeHead(this: ServerResponse, ...args: unknown[]) {
    const result = (originals.writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    if (!FakeProcoreServer.isFakeResponse(this)) {
      recordOutput(
        `${describeResponse(this)} headers`,
        this.statusMessage,
        this.getHeaders(),
        ...args.slice(1),
      );
    }
    return result;
  },
  write(this: ServerResponse, chunk: Chunk, ...rest: unknown[]) {
    if (!FakeProcoreServer.isFakeResponse(this)) collect(this, chunk, rest[0]);
    return (originals.write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  },
  end(this: ServerResponse, ...args: unknown[]) {
    if (!FakeProcoreServer.isFakeResponse(this)) {
      collect(this, args[0], args[1]);
      recordOutput(`${describeResponse(this)} body`, (bodies.get(this) ?? []).join(''));
      bodies.delete(this);
    }
    return (originals.end as (...a: unknown[]) => ServerResponse).apply(this, args);
  },
} as Pick<ServerResponse, 'writeHead' | 'write' | 'end'>;

// `node:http` is shared by every test file of a worker: patch for this file, restore after it.
Object.assign(ServerResponse.prototype, patched);

// --- The check ------------------------------------------------------------------------------------

// Registered first, so it runs after the afterAll hooks of the file's describe blocks (where apps
// close); a file's own top-level afterAll hooks run after it, and their output is not checked.
afterAll(() => {
  Object.assign(ServerResponse.prototype, originals);
  stopListening();
  const { entries, secrets, skipReason } = secretScanState();
  if (skipReason !== undefined) {
    console.warn(`Secret check skipped for this file: ${skipReason}`);
    return;
  }
  const findings = scanForSecrets(entries, secrets);
  if (findings.length > 0) throw new Error(describeFindings(findings));
});
