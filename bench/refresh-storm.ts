/**
 * refresh-storm: 1,000 concurrent callers need a token for one owner whose stored access token has
 * expired, spread over 4 app instances (4 processes, each its own Nest app, TypeORM pool and
 * cache) against one database; the fake Procore answers token calls after 50 ms. The library must
 * call the token endpoint exactly once. In the same run, a naive baseline: the same 1,000 callers
 * on the same 4 processes, each reading the stored refresh token, calling the token endpoint
 * itself and writing the answer back (no lock, no single-flight). Two warm-up storms on other
 * owners come first, so the figures are those of warm instances.
 */
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { createBenchDatabase, type BenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { generateEncryptionKey, workerConfig } from './support/procore.js';
import type { CallsResult } from './support/protocol.js';
import { fmt, ms, percentile, printBlock, recordFigures } from './support/stats.js';
import { closeAll, startWorkers, type AppWorker } from './support/worker-client.js';

const INSTANCES = 4;
const CALLERS = 1000;
const TOKEN_LATENCY_MS = 50;
const POOL_SIZE = 10;
const OWNER = 'storm-owner';
const NAIVE_TABLE = 'naive_procore_tokens';
const WARMUP_STORMS = 2;

interface Storm {
  refreshCalls: number;
  rejected: number;
  successful: number;
  results: CallsResult[];
  latencies: number[];
  wallMs: number;
  errors: Record<string, number>;
}

async function storm(
  fake: FakeProcoreServer,
  fire: (startAt: number) => Promise<CallsResult[]>,
): Promise<Storm> {
  fake.resetCounters();
  fake.tokenLatencyMs = TOKEN_LATENCY_MS;
  const startAt = Date.now() + 300;
  const results = await fire(startAt);
  const errors: Record<string, number> = {};
  for (const result of results) {
    for (const [name, count] of Object.entries(result.errors)) {
      errors[name] = (errors[name] ?? 0) + count;
    }
  }
  return {
    refreshCalls: fake.counters.refreshToken,
    rejected: fake.counters.rejectedRefreshTokens,
    successful: fake.counters.successfulRefreshes,
    results,
    latencies: results.flatMap((r) => r.latenciesMs),
    wallMs: Math.max(...results.map((r) => r.endedAt)) - startAt,
    errors,
  };
}

/** Stores a fresh grant for the naive integration (plaintext table), already expired. */
async function seedNaive(database: BenchDatabase, fake: FakeProcoreServer): Promise<void> {
  const tokens = fake.issueTokens();
  await database.pool.query(
    `CREATE TABLE ${NAIVE_TABLE} (owner_id text PRIMARY KEY, access_token text NOT NULL,
       refresh_token text NOT NULL, expires_at timestamptz NOT NULL)`,
  );
  await database.pool.query(
    `INSERT INTO ${NAIVE_TABLE} VALUES ($1, $2, $3, now() - interval '1 minute')`,
    [OWNER, tokens.access_token, tokens.refresh_token],
  );
}

async function main(): Promise<void> {
  const database = await createBenchDatabase('refresh_storm');
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

      /** A connected owner whose stored token has expired, in no instance's cache. */
      const expiredOwner = async (owner: string) => {
        await workers[0].call('importTokens', {
          entries: [[owner, fake.issueTokens()]],
          concurrency: 1,
        });
        await workers[0].call('evict', { owner });
        fake.advanceClock(fake.accessTokenTtlSeconds + 60);
        await database.pool.query(
          `UPDATE procore_oauth_tokens SET expires_at = now() - interval '1 minute' WHERE owner_id = $1`,
          [owner],
        );
      };
      const perInstance = CALLERS / INSTANCES;

      // Warm-up storms on other owners: a long-running instance has its JIT, pool connections and
      // HTTP client warm; the first storm of a fresh process is ~50 ms slower.
      for (let i = 1; i <= WARMUP_STORMS; i++) {
        const owner = `warm-up-${i}`;
        await expiredOwner(owner);
        await storm(fake, (startAt) =>
          Promise.all(workers.map((w) => w.call('storm', { owner, count: perInstance, startAt }))),
        );
      }

      await expiredOwner(OWNER);
      const [{ version: versionBefore }] = (
        await database.pool.query<{ version: number }>(
          'SELECT version FROM procore_oauth_tokens WHERE owner_id = $1',
          [OWNER],
        )
      ).rows;

      const library = await storm(fake, (startAt) =>
        Promise.all(
          workers.map((w) => w.call('storm', { owner: OWNER, count: perInstance, startAt })),
        ),
      );
      const libraryTokens = new Set(library.results.flatMap((r) => r.tokens));
      const libraryValid = [...libraryTokens].every((t) => fake.isAccessTokenValid(t));
      const libraryCallersOk = library.latencies.length - sum(Object.values(library.errors));
      const [{ version: versionAfter }] = (
        await database.pool.query<{ version: number }>(
          'SELECT version FROM procore_oauth_tokens WHERE owner_id = $1',
          [OWNER],
        )
      ).rows;

      // The naive baseline, same processes, same pool size per instance, same fake latency.
      await seedNaive(database, fake);
      const naive = await storm(fake, (startAt) =>
        Promise.all(
          workers.map((w) =>
            w.call('naiveStorm', {
              table: NAIVE_TABLE,
              owner: OWNER,
              count: perInstance,
              startAt,
              poolSize: POOL_SIZE,
            }),
          ),
        ),
      );
      const naiveCallerTokens = naive.results.flatMap((r) => r.callerTokens ?? []);
      const naiveWorking = naiveCallerTokens.filter(
        (t) => t !== null && fake.isAccessTokenValid(t),
      ).length;
      const naiveOutcomes: Record<string, number> = {};
      for (const result of naive.results) {
        for (const [outcome, count] of Object.entries(result.outcomes ?? {})) {
          naiveOutcomes[outcome] = (naiveOutcomes[outcome] ?? 0) + count;
        }
      }
      const [naiveRow] = (
        await database.pool.query<{ refresh_token: string }>(
          `SELECT refresh_token FROM ${NAIVE_TABLE} WHERE owner_id = $1`,
          [OWNER],
        )
      ).rows;
      const naiveStoredAlive = fake.isRefreshTokenActive(naiveRow.refresh_token);

      const lat = (s: Storm) =>
        `p50 ${ms(percentile(s.latencies, 50))}, p99 ${ms(percentile(s.latencies, 99))}, max ${ms(Math.max(...s.latencies))}; all done in ${ms(s.wallMs)}`;
      printBlock(
        `refresh-storm  (${INSTANCES} instances in separate processes, pool ${POOL_SIZE} each, ${fmt(CALLERS, 0)} concurrent callers, fake token latency ${TOKEN_LATENCY_MS} ms, after ${WARMUP_STORMS} warm-up storms)`,
        [
          [
            'library: refresh calls at the fake',
            `${library.refreshCalls}  (target exactly 1: ${library.refreshCalls === 1 ? 'met' : 'NOT met'})`,
          ],
          ['library: rejected refresh tokens', String(library.rejected)],
          [
            'library: callers with a token',
            `${libraryCallersOk} / ${CALLERS}  (distinct tokens ${libraryTokens.size}, valid at Procore: ${libraryValid}; errors ${JSON.stringify(library.errors)})`,
          ],
          ['library: row version', `${versionBefore} → ${versionAfter}`],
          ['library: latency', lat(library)],
          ['naive: refresh calls at the fake', String(naive.refreshCalls)],
          ['naive: invalid_grant (rejected tokens)', String(naive.rejected)],
          ['naive: callers with a working token', `${naiveWorking} / ${CALLERS}`],
          [
            'naive: outcomes',
            Object.entries(naiveOutcomes)
              .map(([k, v]) => `${v} ${k}`)
              .join('; '),
          ],
          ['naive: stored refresh token still live', String(naiveStoredAlive)],
          ['naive: latency', lat(naive)],
          [
            'refresh calls naive / library',
            `${fmt(naive.refreshCalls / Math.max(1, library.refreshCalls))}×`,
          ],
        ],
      );
      recordFigures('refresh-storm', {
        libraryRefreshCalls: library.refreshCalls,
        libraryRejected: library.rejected,
        libraryCallersOk,
        libraryDistinctTokens: libraryTokens.size,
        libraryTokensValid: libraryValid,
        libraryP50Ms: percentile(library.latencies, 50),
        libraryP99Ms: percentile(library.latencies, 99),
        libraryMaxMs: Math.max(...library.latencies),
        libraryWallMs: library.wallMs,
        naiveRefreshCalls: naive.refreshCalls,
        naiveRejected: naive.rejected,
        naiveSuccessfulRefreshes: naive.successful,
        naiveCallersWithWorkingToken: naiveWorking,
        naiveStoredRefreshTokenAlive: naiveStoredAlive,
        naiveP50Ms: percentile(naive.latencies, 50),
        naiveP99Ms: percentile(naive.latencies, 99),
        naiveWallMs: naive.wallMs,
      });
    },
    async () => {
      await closeAll(workers);
      await fake.close();
      await database.drop();
    },
  );
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

runBenchmark(main);
