/**
 * api-401-storm: 1,000 concurrent API calls (`client.forOwner(owner).get('/rest/v1.0/me')`) for
 * ONE owner, spread over 4 app instances (4 processes, each its own Nest app, TypeORM pool, cache,
 * HTTP pool and rate-limit governor), on an access token the fake no longer accepts: the fake's
 * clock has moved past the token's lifetime, so its API answers 401, while our database (and every
 * instance's cache) still holds the token as fresh. Each call must recover once (a coalesced,
 * forced refresh, then one retry): the fake must see exactly 1 refresh call, and every call must be
 * served. Every instance has served the owner before (its cache, connections and rate budget are
 * warm), as in a running deployment, and two warm-up storms on other owners come first. A control
 * storm follows: the same 1,000 calls with the (new) token the fake accepts, to tell the 401
 * recovery's time from the time 4 instances and one fake need for 1,000 calls on this machine.
 */
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { createBenchDatabase, type BenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { generateEncryptionKey, workerConfig } from './support/procore.js';
import type { ApiCallsResult } from './support/protocol.js';
import { fmt, ms, percentile, printBlock, recordFigures } from './support/stats.js';
import { closeAll, startWorkers, type AppWorker } from './support/worker-client.js';

const INSTANCES = 4;
const CALLS = 1000;
const TOKEN_LATENCY_MS = 50;
const POOL_SIZE = 10;
const OWNER = 'api-storm-owner';
const PATH = '/rest/v1.0/me';
const WARMUP_STORMS = 2;

interface Storm {
  refreshCalls: number;
  rejected: number;
  successfulRefreshes: number;
  apiCalls: number;
  api401s: number;
  api429s: number;
  served: number;
  errors: Record<string, number>;
  latencies: number[];
  wallMs: number;
}

async function storedVersion(database: BenchDatabase, owner: string) {
  const { rows } = await database.pool.query<{ version: number; fresh_for_s: number }>(
    `SELECT version, extract(epoch FROM expires_at - now())::int AS fresh_for_s
       FROM procore_oauth_tokens WHERE owner_id = $1`,
    [owner],
  );
  return rows[0];
}

async function main(): Promise<void> {
  const database = await createBenchDatabase('api_401_storm');
  const fake = await FakeProcoreServer.start();
  const encryptionKey = generateEncryptionKey();
  let workers: AppWorker[] = [];
  await withCleanup(
    async () => {
      workers = await startWorkers(INSTANCES, (i) =>
        workerConfig({
          label: `instance-${i}`,
          databaseUrl: database.url,
          fake,
          encryptionKey,
          poolSize: POOL_SIZE,
        }),
      );
      const perInstance = CALLS / INSTANCES;

      /**
       * A connected owner every instance has served (token cached, rate budget learned), whose
       * access token the fake then stops accepting: its clock moves past the token's lifetime.
       * Our database still has the token fresh for about 90 minutes.
       */
      const invalidatedOwner = async (owner: string) => {
        await workers[0].call('importTokens', {
          entries: [[owner, fake.issueTokens()]],
          concurrency: 1,
        });
        const warm = await Promise.all(
          workers.map((w) => w.call('apiStorm', { owner, count: 1, startAt: 0, path: PATH })),
        );
        if (warm.some((r) => r.served !== 1)) {
          throw new Error(`warm-up call failed: ${JSON.stringify(warm.map((r) => r.errors))}`);
        }
        fake.advanceClock(fake.accessTokenTtlSeconds + 60);
      };

      const storm = async (owner: string): Promise<Storm> => {
        fake.resetCounters();
        fake.tokenLatencyMs = TOKEN_LATENCY_MS;
        const startAt = Date.now() + 300;
        const results: ApiCallsResult[] = await Promise.all(
          workers.map((w) =>
            w.call('apiStorm', { owner, count: perInstance, startAt, path: PATH }),
          ),
        );
        const errors: Record<string, number> = {};
        for (const result of results) {
          for (const [name, count] of Object.entries(result.errors)) {
            errors[name] = (errors[name] ?? 0) + count;
          }
        }
        return {
          refreshCalls: fake.counters.refreshToken,
          rejected: fake.counters.rejectedRefreshTokens,
          successfulRefreshes: fake.counters.successfulRefreshes,
          apiCalls: fake.counters.api,
          api401s: fake.counters.apiUnauthorized,
          api429s: fake.counters.apiRateLimited,
          served: results.reduce((n, r) => n + r.served, 0),
          errors,
          latencies: results.flatMap((r) => r.latenciesMs),
          wallMs: Math.max(...results.map((r) => r.endedAt)) - startAt,
        };
      };

      for (let i = 1; i <= WARMUP_STORMS; i++) {
        const owner = `warm-up-${i}`;
        await invalidatedOwner(owner);
        await storm(owner);
      }

      await invalidatedOwner(OWNER);
      const before = await storedVersion(database, OWNER);
      const result = await storm(OWNER);
      const after = await storedVersion(database, OWNER);
      // The token the instances now hold is the one Procore accepts.
      const check = await Promise.all(
        workers.map((w) => w.call('apiStorm', { owner: OWNER, count: 1, startAt: 0, path: PATH })),
      );
      const afterwardOk = check.every((r) => r.served === 1);
      const control = await storm(OWNER);

      const latency = (s: Storm) =>
        `p50 ${ms(percentile(s.latencies, 50))}, p99 ${ms(percentile(s.latencies, 99))}, max ${ms(Math.max(...s.latencies))}; all ${fmt(CALLS, 0)} done in ${ms(s.wallMs)}`;
      const refreshMet = result.refreshCalls === 1 && result.successfulRefreshes === 1;
      const servedMet = result.served === CALLS;
      printBlock(
        `api-401-storm  (${INSTANCES} instances in separate processes, pool ${POOL_SIZE} each, ${fmt(CALLS, 0)} concurrent GET ${PATH} for one owner whose token the fake rejects (401) while our database holds it fresh, fake token latency ${TOKEN_LATENCY_MS} ms, after ${WARMUP_STORMS} warm-up storms)`,
        [
          [
            'refresh calls at the fake',
            `${result.refreshCalls}  (successful ${result.successfulRefreshes}, rejected ${result.rejected}; target exactly 1: ${refreshMet ? 'met' : 'NOT met'})`,
          ],
          [
            'calls served',
            `${result.served} / ${CALLS}  (errors ${JSON.stringify(result.errors)}; target all: ${servedMet ? 'met' : 'NOT met'})`,
          ],
          [
            'API calls at the fake',
            `${result.apiCalls} = ${result.api401s} answered 401 + ${result.apiCalls - result.api401s - result.api429s} retried and served${result.api429s ? ` + ${result.api429s} answered 429` : ''}`,
          ],
          [
            'stored row',
            `version ${before.version} → ${after.version}; expires_at ${fmt(before.fresh_for_s / 60)} min ahead before the storm (so never refreshed ahead), ${fmt(after.fresh_for_s / 60)} min after`,
          ],
          ['a call per instance afterwards', afterwardOk ? 'served' : 'FAILED'],
          ['latency', latency(result)],
          [
            'control: same storm, valid token',
            `${latency(control)}  (served ${control.served}, 401s ${control.api401s}, refresh calls ${control.refreshCalls})`,
          ],
          [
            'time the 401 recovery added',
            `${ms(result.wallMs - control.wallMs)} to the whole storm, ${ms(percentile(result.latencies, 50) - percentile(control.latencies, 50))} to the median call`,
          ],
        ],
      );
      recordFigures('api-401-storm', {
        refreshCalls: result.refreshCalls,
        successfulRefreshes: result.successfulRefreshes,
        rejectedRefreshTokens: result.rejected,
        served: result.served,
        failed: CALLS - result.served,
        apiCalls: result.apiCalls,
        api401s: result.api401s,
        api429s: result.api429s,
        versionBumps: after.version - before.version,
        afterwardOk,
        p50Ms: percentile(result.latencies, 50),
        p99Ms: percentile(result.latencies, 99),
        maxMs: Math.max(...result.latencies),
        wallMs: result.wallMs,
        controlP50Ms: percentile(control.latencies, 50),
        controlWallMs: control.wallMs,
        controlServed: control.served,
        recoveryAddedMs: result.wallMs - control.wallMs,
      });
      if (!afterwardOk) throw new Error('a call after the storm failed');
    },
    async () => {
      await closeAll(workers);
      await fake.close();
      await database.drop();
    },
  );
}

runBenchmark(main);
