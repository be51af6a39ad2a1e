import { inspect } from 'node:util';
import type { LoggerService } from '@nestjs/common';

/**
 * The suite-wide secret check (issue 8, "Hostile input and secrets"): every log line, event
 * payload, HTTP response and library error a test file produces is recorded here, every secret
 * the fake Procore server issued or the tests used is registered here, and after the file
 * `secret-scan.setup.ts` fails it when any registered secret, or anything that looks like a JWT,
 * appears in what was recorded.
 *
 * A suite author gets it for free: `FakeProcoreServer`, `fakeProcoreAuthOptions()`,
 * `generateKey()` and `ProcoreAuthModule.forRoot()` register their secrets, and the setup file
 * records every Nest logger, event stream, `http.ServerResponse` and `ProcoreTokenService` error
 * of the process. Register a secret of your own with {@link registerSecret}; record output the
 * hooks cannot see (a child process's stdout, say) with {@link recordOutput}; opt a file out (say
 * why) with {@link skipSecretScan}.
 *
 * One module instance per test file (Jest gives each file its own module registry), so the
 * state below is per file.
 */

/** Where a piece of output was seen, and what it was. */
export interface SecretScanEntry {
  /** E.g. `log warn`, `event procore.token.refreshed`, `HTTP GET /me 200 body`. */
  where: string;
  /** The test that was running (undefined in hooks). */
  test: string | undefined;
  text: string;
}

/** A registered secret found in the output, described without printing it. */
export interface SecretFinding {
  where: string;
  test: string | undefined;
  /** What the secret is, e.g. `refresh-token (FakeProcoreServer)`. */
  kind: string;
  /** The first characters and the length, never the whole secret. */
  preview: string;
}

/** Shorter values are too likely to occur by chance ("secret-1" stays in, "abc" does not). */
export const MIN_SECRET_LENGTH = 8;
/** Base64url JSON headers start with `eyJ` (`{"`); 20 characters rule out short fragments. */
const JWT_PATTERN = /eyJ[A-Za-z0-9_-]{17,}(?:\.[A-Za-z0-9_-]*){0,2}/g;
/** Index width for the scan: every registered secret is at least this long. */
const PREFIX = MIN_SECRET_LENGTH;
const MAX_REPORTED_FINDINGS = 20;

const secrets = new Map<string, string>();
const entries: SecretScanEntry[] = [];
let skipReason: string | undefined;
let currentTest: () => string | undefined = () => undefined;

/** Registers `value` (ignored when shorter than {@link MIN_SECRET_LENGTH}) as a secret of `kind`. */
export function registerSecret(value: string | null | undefined, kind: string): void {
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) return;
  if (!secrets.has(value)) secrets.set(value, kind);
}

/**
 * Registers an encryption key (`base64` or `keyId:base64`): the whole value, its key material
 * and that material in base64url and hex, the forms a careless message would print.
 */
export function registerEncryptionKey(value: string | null | undefined, kind: string): void {
  if (typeof value !== 'string') return;
  registerSecret(value, kind);
  const material = value.slice(value.lastIndexOf(':') + 1);
  registerSecret(material, kind);
  const bytes = Buffer.from(material, 'base64');
  if (bytes.length >= MIN_SECRET_LENGTH) {
    registerSecret(bytes.toString('base64url'), kind);
    registerSecret(bytes.toString('hex'), kind);
  }
}

/** Records a piece of output. Non-strings are recorded as `util.inspect` prints them. */
export function recordOutput(where: string, ...values: unknown[]): void {
  entries.push({ where, test: currentTest(), text: values.map(printable).join(' ') });
}

/** The secret check does not fail this test file; `reason` says why (it is printed). */
export function skipSecretScan(reason: string): void {
  skipReason = reason;
}

/** A Nest logger that records every line, at every level, and prints nothing. */
export const secretScanLogger: LoggerService = loggerRecordingTo(undefined);

/**
 * A Nest logger that records every line and passes it on to `target` (when given), so the
 * secret check sees the logs of apps that log somewhere else too.
 */
export function loggerRecordingTo(target: LoggerService | undefined): LoggerService {
  const level =
    (name: 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal') =>
    (message: unknown, ...rest: unknown[]): void => {
      recordOutput(`log ${name}`, message, ...rest);
      target?.[name]?.(message, ...rest);
    };
  return {
    log: level('log'),
    error: level('error'),
    warn: level('warn'),
    debug: level('debug'),
    verbose: level('verbose'),
    fatal: level('fatal'),
    setLogLevels: (levels) => target?.setLogLevels?.(levels),
  };
}

/** What the setup file needs: the recorded output, the registry, the opt-out. */
export function secretScanState(): {
  entries: readonly SecretScanEntry[];
  secrets: ReadonlyMap<string, string>;
  skipReason: string | undefined;
} {
  return { entries, secrets, skipReason };
}

/** Lets the setup file name the running test in each entry. */
export function setCurrentTestName(read: () => string | undefined): void {
  currentTest = read;
}

/**
 * Every occurrence of a registered secret, or of a JWT-looking string, in `scanned`. Linear in
 * the size of the output: secrets are indexed by their first {@link PREFIX} characters.
 */
export function scanForSecrets(
  scanned: readonly SecretScanEntry[],
  registered: ReadonlyMap<string, string>,
): SecretFinding[] {
  const byPrefix = new Map<string, string[]>();
  for (const secret of registered.keys()) {
    if (secret.length < PREFIX) continue;
    const key = secret.slice(0, PREFIX);
    const list = byPrefix.get(key);
    if (list) list.push(secret);
    else byPrefix.set(key, [secret]);
  }
  const findings: SecretFinding[] = [];
  const seen = new Set<string>();
  const report = (entry: SecretScanEntry, secret: string, kind: string): void => {
    const id = `${entry.where}\u0000${entry.test ?? ''}\u0000${secret}`;
    if (seen.has(id)) return;
    seen.add(id);
    findings.push({ where: entry.where, test: entry.test, kind, preview: maskSecret(secret) });
  };
  for (const entry of scanned) {
    const { text } = entry;
    for (let i = 0; i + PREFIX <= text.length; i++) {
      const candidates = byPrefix.get(text.slice(i, i + PREFIX));
      if (!candidates) continue;
      for (const secret of candidates) {
        if (text.startsWith(secret, i)) report(entry, secret, registered.get(secret) ?? 'secret');
      }
    }
    for (const match of text.matchAll(JWT_PATTERN)) {
      report(entry, match[0], registered.get(match[0]) ?? 'JWT-looking string');
    }
  }
  return findings;
}

/** The failure message: where each secret appeared and what it is, never the secret itself. */
export function describeFindings(findings: readonly SecretFinding[]): string {
  const lines = findings
    .slice(0, MAX_REPORTED_FINDINGS)
    .map(
      (finding) =>
        `  - ${finding.kind} ${finding.preview} in ${finding.where}` +
        (finding.test ? ` (during or after test "${finding.test}")` : ' (before the first test)'),
    );
  const more =
    findings.length > MAX_REPORTED_FINDINGS
      ? [`  ... and ${findings.length - MAX_REPORTED_FINDINGS} more`]
      : [];
  return [
    `Secret check: ${findings.length} secret(s) appeared in logs, events, HTTP responses or errors of this test file:`,
    ...lines,
    ...more,
    'Fix the code that printed them (see test/support/secret-scan.ts; skipSecretScan(reason) opts a file out).',
  ].join('\n');
}

/** `abcd…(43 chars)`: enough to recognise a secret, not enough to use it. */
export function maskSecret(secret: string): string {
  return `"${secret.slice(0, 4)}…" (${secret.length} chars)`;
}

function printable(value: unknown): string {
  if (typeof value === 'string') return value;
  return inspect(value, {
    depth: 10,
    maxArrayLength: 1_000,
    maxStringLength: Infinity,
    breakLength: Infinity,
  });
}
