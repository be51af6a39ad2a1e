/**
 * One app instance in its own process: a real Nest application (Express) with TypeORM on the
 * benchmark's database and ProcoreAuthModule pointed at the parent's fake Procore server. The
 * parent drives it over IPC (see protocol.ts). Separate processes mean separate event loops,
 * pools and caches, as separate deployments have.
 */
import 'reflect-metadata';
import {
  Controller,
  createParamDecorator,
  Get,
  Injectable,
  Module,
  type INestApplication,
  type PipeTransform,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import {
  ProcoreAuthModule,
  ProcoreReauthorizationRequiredError,
  ProcoreToken,
  ProcoreTokenService,
  TokenRefreshScheduler,
  procoreAuthEntities,
} from 'nestjs-procore-auth';
import type {
  CallsResult,
  NaiveStormArgs,
  WorkerCommand,
  WorkerCommands,
  WorkerConfig,
  WorkerReply,
  WorkerRequest,
} from './protocol.js';

/** The same tiny body from both routes, so the only difference is the decorator. */
const BODY = { ok: true };

/**
 * A control for route-overhead: a custom parameter decorator with an async pipe, the same shape
 * as `@ProcoreToken()` (createParamDecorator + an injectable pipe), doing no work. It separates
 * what Nest's parameter/pipe machinery costs from what the library costs.
 */
@Injectable()
class ControlPipe implements PipeTransform<unknown, Promise<string>> {
  async transform(): Promise<string> {
    return 'control';
  }
}
const ControlParam = () => createParamDecorator(() => null)(undefined, ControlPipe);

@Controller()
class BenchController {
  @Get('control')
  control(@ControlParam() value: string) {
    void value;
    return BODY;
  }

  /** Resolves a valid Procore token for the `x-user-id` owner; does not return it. */
  @Get('with')
  with(@ProcoreToken() token: string) {
    void token;
    return BODY;
  }

  @Get('without')
  without() {
    return BODY;
  }
}

let config: WorkerConfig | undefined;
let app: INestApplication | undefined;
let naivePool: pg.Pool | undefined;

function service(): ProcoreTokenService {
  if (!app) throw new Error('worker not initialised');
  return app.get(ProcoreTokenService);
}

async function init(cfg: WorkerConfig): Promise<WorkerCommands['init']['result']> {
  config = cfg;
  @Module({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: cfg.databaseUrl,
        entities: procoreAuthEntities,
        poolSize: cfg.poolSize,
      }),
      ProcoreAuthModule.forRoot({
        clientId: cfg.procore.clientId,
        clientSecret: cfg.procore.clientSecret,
        redirectUri: 'http://127.0.0.1:3000/procore/oauth/callback',
        authBaseUrl: cfg.procore.url,
        apiBaseUrl: cfg.procore.url,
        encryptionKey: cfg.encryptionKey,
        ownerResolver: (request) =>
          (request as { headers: Record<string, string | undefined> }).headers['x-user-id'],
        ...cfg.options,
      }),
    ],
    controllers: cfg.http ? [BenchController] : [],
  })
  class BenchAppModule {}

  // Node loads its fetch implementation on first use (tens of ms); a running app has done so long ago.
  await (await fetch('data:text/plain,warm-up')).text();
  app = await NestFactory.create(BenchAppModule, { logger: ['error', 'fatal'] });
  if (!cfg.http) {
    await app.init();
    return { port: null, pid: process.pid };
  }
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { port, pid: process.pid };
}

function errorName(error: unknown): string {
  if (error instanceof ProcoreReauthorizationRequiredError)
    return `${error.name}(${error.causeCode})`;
  return error instanceof Error ? error.name : String(error);
}

async function waitUntil(epochMs: number): Promise<void> {
  const wait = epochMs - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

/**
 * Runs `work` once per item with at most `concurrency` in flight (Infinity: all at once) and
 * collects latencies, distinct tokens and errors.
 */
async function calls<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<string | null>,
): Promise<CallsResult> {
  const latenciesMs: number[] = [];
  const tokens = new Set<string>();
  const errors: Record<string, number> = {};
  const startedAt = Date.now();
  let next = 0;
  const one = async (item: T) => {
    const t0 = performance.now();
    try {
      const token = await work(item);
      if (token) tokens.add(token);
    } catch (error) {
      const name = errorName(error);
      errors[name] = (errors[name] ?? 0) + 1;
    } finally {
      latenciesMs.push(performance.now() - t0);
    }
  };
  if (!Number.isFinite(concurrency) || concurrency >= items.length) {
    await Promise.all(items.map(one));
  } else {
    const lane = async () => {
      while (next < items.length) await one(items[next++]);
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
  }
  return { latenciesMs, tokens: [...tokens], errors, startedAt, endedAt: Date.now() };
}

/**
 * The naive baseline: what a hand-written integration does on every call that finds the stored
 * token expired: read the stored refresh token, call the token endpoint itself, write the answer
 * back. No lock, no single-flight. (It does check the stored expiry first, as any such code
 * would, so callers that read after another caller's write use that caller's token.)
 */
async function naiveStorm(args: NaiveStormArgs): Promise<CallsResult> {
  const cfg = config as WorkerConfig;
  naivePool ??= new pg.Pool({ connectionString: cfg.databaseUrl, max: args.poolSize });
  const pool = naivePool;
  // Open the pool's connections first, as a running app's pool would have them open.
  await Promise.all(Array.from({ length: args.poolSize }, () => pool.query('SELECT 1')));
  const outcomes: Record<string, number> = {};
  const callerTokens: (string | null)[] = [];
  const end = (outcome: string, token: string | null) => {
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    callerTokens.push(token);
    return token;
  };
  const caller = async (): Promise<string | null> => {
    const { rows } = await pool.query<{
      access_token: string;
      refresh_token: string;
      expires_at: Date;
    }>(`SELECT access_token, refresh_token, expires_at FROM ${args.table} WHERE owner_id = $1`, [
      args.owner,
    ]);
    const row = rows[0];
    if (row.expires_at.getTime() - Date.now() > 120_000) {
      return end('used the stored token (another caller had refreshed)', row.access_token);
    }
    const sentAt = Date.now();
    const response = await fetch(`${cfg.procore.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: row.refresh_token,
        client_id: cfg.procore.clientId,
        client_secret: cfg.procore.clientSecret,
        redirect_uri: 'http://127.0.0.1:3000/procore/oauth/callback',
      }),
    });
    const body = (await response.json()) as {
      access_token?: string;
      refresh_token?: string;
      expires_in?: number;
      error?: string;
    };
    if (!response.ok || !body.access_token) {
      end(`token endpoint answered ${body.error ?? `HTTP ${response.status}`}`, null);
      throw Object.assign(new Error('refresh failed'), { name: body.error ?? 'refresh_failed' });
    }
    await pool.query(
      `UPDATE ${args.table} SET access_token = $2, refresh_token = $3, expires_at = $4 WHERE owner_id = $1`,
      [
        args.owner,
        body.access_token,
        body.refresh_token ?? row.refresh_token,
        new Date(sentAt + (body.expires_in ?? 0) * 1000),
      ],
    );
    return end('refreshed it itself', body.access_token);
  };
  await waitUntil(args.startAt);
  const result = await calls(
    Array.from({ length: args.count }, (_, i) => i),
    Infinity,
    caller,
  );
  return { ...result, outcomes, callerTokens };
}

const handlers: { [C in WorkerCommand]: (args: WorkerCommands[C]['args']) => Promise<unknown> } = {
  init,
  importTokens: async ({ entries, concurrency }) => {
    const t0 = performance.now();
    const result = await calls(entries, concurrency, async ([owner, response]) => {
      await service().importTokens(owner, response);
      return null;
    });
    if (Object.keys(result.errors).length > 0) {
      throw new Error(`importTokens failed: ${JSON.stringify(result.errors)}`);
    }
    return { count: entries.length, ms: performance.now() - t0 };
  },
  evict: async ({ owner }) => {
    service().evict(owner);
    return null;
  },
  storm: async ({ owner, count, startAt }) => {
    const tokens = service();
    await waitUntil(startAt);
    return calls(
      Array.from({ length: count }, () => owner),
      Infinity,
      (o) => tokens.getAccessToken(o),
    );
  },
  naiveStorm,
  runTick: async ({ startAt }) => {
    const scheduler = (app as INestApplication).get(TokenRefreshScheduler);
    await waitUntil(startAt);
    const startedAt = Date.now();
    const summary = await scheduler.runTick();
    return { summary, startedAt, endedAt: Date.now() };
  },
  getAccessTokens: async ({ owners, concurrency }) =>
    calls(owners, concurrency, (owner) => service().getAccessToken(owner)),
  refresh: async ({ owners, concurrency }) =>
    calls(owners, concurrency, (owner) => service().refresh(owner)),
  cpuUsage: async () => {
    const { user, system } = process.cpuUsage();
    return { userUs: user, systemUs: system };
  },
  close: async () => {
    await app?.close();
    await naivePool?.end();
    app = undefined;
    return null;
  },
};

process.on('message', (message: WorkerRequest) => {
  const handler = handlers[message.command] as (args: unknown) => Promise<unknown>;
  void handler(message.args)
    .then(
      (result): WorkerReply => ({ id: message.id, ok: true, result }),
      (error: unknown): WorkerReply => ({
        id: message.id,
        ok: false,
        error: `${config?.label ?? 'worker'}: ${message.command}: ${(error as Error)?.stack ?? String(error)}`,
      }),
    )
    .then((reply) =>
      process.send?.(reply, undefined, {}, () => {
        if (message.command === 'close') process.exit(0);
      }),
    );
});

// The parent is gone: nothing left to do.
process.on('disconnect', () => process.exit(0));
