/**
 * One app instance in its own process: a real Nest application (Express) with TypeORM on the
 * benchmark's database and ProcoreAuthModule pointed at the parent's fake Procore server. The
 * parent drives it over IPC (see protocol.ts). Separate processes mean separate event loops,
 * pools and caches, as separate deployments have.
 */
import 'reflect-metadata';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { setMaxListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import pg from 'pg';
import {
  ProcoreApi,
  ProcoreApiError,
  ProcoreAuthEvents,
  ProcoreAuthEventType,
  ProcoreAuthModule,
  ProcoreClient,
  ProcoreRateLimitedError,
  ProcoreReauthorizationRequiredError,
  ProcoreScopedClient,
  ProcoreToken,
  ProcoreTokenService,
  TokenRefreshScheduler,
  procoreAuthEntities,
} from 'nestjs-procore-auth';
import type {
  ApiCallsResult,
  CallsResult,
  GovernorLoadArgs,
  GovernorLoadResult,
  NaiveStormArgs,
  WorkerCommand,
  WorkerCommands,
  WorkerConfig,
  WorkerReply,
  WorkerRequest,
} from './protocol.js';
import { RouteOverheadController } from './route-controller.js';

/** api-client-overhead's two routes (route-overhead's three are in RouteOverheadController). */
@Controller()
class ApiBenchController {
  /** api-client-overhead: Procore's `/me` through the package's client, as the sample does. */
  @Get('api/client')
  apiClient(@ProcoreApi() procore: ProcoreScopedClient) {
    return procore.get('/rest/v1.0/me');
  }

  /**
   * api-client-overhead: the same call by hand, with the token in hand (`@ProcoreToken()`) and
   * Node's global `fetch`; a non-2xx answer is an error (a 500), as the client's would be.
   */
  @Get('api/fetch')
  async apiFetch(@ProcoreToken() token: string) {
    const response = await fetch(`${(config as WorkerConfig).procore.url}/rest/v1.0/me`, {
      headers: { accept: 'application/json', authorization: `Bearer ${token}` },
    });
    if (!response.ok) throw new Error(`Procore answered ${response.status}`);
    return (await response.json()) as unknown;
  }
}

let config: WorkerConfig | undefined;
let app: INestApplication | undefined;
let naivePool: pg.Pool | undefined;
/** Statements sent by this process's `pg` clients (counted in HTTP workers only; -1 elsewhere). */
let statements = -1;

/** Counts every statement the driver sends (TypeORM's pool included), as cache-and-queries does. */
function countStatements(): void {
  if (statements >= 0) return;
  statements = 0;
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    statements++;
    return original.apply(this, args);
  } as typeof pg.Client.prototype.query;
}

function service(): ProcoreTokenService {
  if (!app) throw new Error('worker not initialised');
  return app.get(ProcoreTokenService);
}

async function init(cfg: WorkerConfig): Promise<WorkerCommands['init']['result']> {
  config = cfg;
  if (cfg.http) countStatements();
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
    controllers: cfg.http ? [RouteOverheadController, ApiBenchController] : [],
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
  if (error instanceof ProcoreApiError) return `${error.name}(${error.status})`;
  if (error instanceof ProcoreRateLimitedError) {
    // How far ahead the wait it refused was: tells a long wait from a window it misread.
    return `${error.name}(retryAt in ${Math.round((error.retryAt.getTime() - Date.now()) / 1000)} s)`;
  }
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

/** `count` concurrent calls of `client.forOwner(owner).get(path)`, all fired at `startAt`. */
async function apiStorm({
  owner,
  count,
  startAt,
  path,
}: WorkerCommands['apiStorm']['args']): Promise<ApiCallsResult> {
  const client = (app as INestApplication).get(ProcoreClient);
  await waitUntil(startAt);
  let served = 0;
  const result = await calls(
    Array.from({ length: count }, () => owner),
    Infinity,
    async (o) => {
      const me = await client.forOwner(o).get<{ id?: unknown }>(path);
      if (typeof me?.id === 'number') served++;
      return null;
    },
  );
  return { ...result, served };
}

/**
 * api-rate-governor: `callers` concurrent callers for one owner and company, each looping
 * GET /rest/v1.0/projects?per_page=1 until the duration ends (then whatever still waits for the
 * budget, or is in flight, is aborted). `library`: through `ProcoreClient.forOwner()` and its
 * rate-limit governor. `naive`: what a hand-written integration does: the token in hand
 * (`getAccessToken`), global `fetch`, and a 429 retried at once, `naiveRetries` times, before the
 * call counts as failed.
 */
async function governorLoad(args: GovernorLoadArgs): Promise<GovernorLoadResult> {
  const nest = app as INestApplication;
  const apiUrl = (config as WorkerConfig).procore.url;
  const controller = new AbortController();
  const { signal } = controller;
  // Every caller's call (and its wait for the budget) listens to this one signal.
  setMaxListeners(4 * args.callers, signal);
  const failures: Record<string, number> = {};
  const latenciesMs: number[] = [];
  let served = 0;
  let stoppedAtEnd = 0;
  let naive429s = 0;
  let rateLimitedEvents = 0;
  const subscription = nest
    .get(ProcoreAuthEvents)
    .on(ProcoreAuthEventType.RateLimited)
    .subscribe(() => rateLimitedEvents++);

  const client = nest.get(ProcoreClient).forOwner(args.owner, { companyId: args.companyId });
  // The tags tell the fake's log which instance and caller sent a call; the fake ignores them.
  const libraryCall = (caller: number) =>
    client.get<unknown>('/rest/v1.0/projects', {
      query: { per_page: 1, bench_instance: args.instance, bench_caller: caller },
      signal,
    });

  const tokens = service();
  const naiveUrl = `${apiUrl}/rest/v1.0/projects?per_page=1&bench_instance=${args.instance}`;
  const naiveCall = async (caller: number): Promise<unknown> => {
    const token = await tokens.getAccessToken(args.owner);
    for (let attempt = 0; ; attempt++) {
      // No abort signal: a naive call is never held, so it ends within one answer of the end.
      const response = await fetch(`${naiveUrl}&bench_caller=${caller}`, {
        headers: {
          accept: 'application/json',
          authorization: `Bearer ${token}`,
          'procore-company-id': args.companyId,
        },
      });
      const body = await response.text();
      if (response.status === 429) {
        naive429s++;
        if (attempt < args.naiveRetries) continue;
        throw Object.assign(new Error('still 429'), {
          name: `gave up after ${attempt + 1} × 429`,
        });
      }
      if (!response.ok) {
        throw Object.assign(new Error(body), { name: `HTTP ${response.status}` });
      }
      return JSON.parse(body) as unknown;
    }
  };
  const call = args.mode === 'library' ? libraryCall : naiveCall;

  const endAt = args.startAt + args.durationMs;
  await waitUntil(args.startAt);
  const stop = setTimeout(() => controller.abort(), Math.max(0, endAt - Date.now()));
  const startedAt = Date.now();
  const caller = async (index: number) => {
    while (Date.now() < endAt && !signal.aborted) {
      const t0 = performance.now();
      try {
        const page = await call(index);
        if (!Array.isArray(page) || page.length !== 1) throw new Error('not a page of 1');
        served++;
        latenciesMs.push(performance.now() - t0);
      } catch (error) {
        if (signal.aborted) {
          stoppedAtEnd++;
          break;
        }
        const name = errorName(error);
        failures[name] = (failures[name] ?? 0) + 1;
        // A failure without I/O must not turn the loop into a microtask spin that starves timers.
        await yieldToLoop();
      }
    }
  };
  await Promise.all(Array.from({ length: args.callers }, (_, index) => caller(index)));
  const endedAt = Date.now();
  clearTimeout(stop);
  subscription.unsubscribe();
  return {
    served,
    failures,
    stoppedAtEnd,
    rateLimitedEvents,
    naive429s,
    latenciesMs,
    startedAt,
    endedAt,
  };
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
  apiStorm,
  governorLoad,
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
    return { userUs: user, systemUs: system, statements };
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
