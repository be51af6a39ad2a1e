/**
 * scheduler-throughput: 10,000 connections due for refresh, 3 app instances (separate processes)
 * each running `TokenRefreshScheduler.runTick()` at the same moment, fake Procore answering token
 * calls after 50 ms, batch size 100. Measures the time to refresh all of them against the ideal
 * instances × concurrency / latency, and checks that no connection was refreshed twice or left
 * stale and that every rotated refresh token was kept. Runs with concurrency 4 (the default)
 * and 16.
 */
import { FakeProcoreServer, type FakeProcoreTokenResponse } from 'nestjs-procore-auth/testing';
import type { ProcoreRefreshTickSummary } from 'nestjs-procore-auth';
import { createBenchDatabase, type BenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { generateEncryptionKey, workerConfig } from './support/procore.js';
import { fmt, ms, printBlock, recordFigures } from './support/stats.js';
import { closeAll, startWorkers, type AppWorker } from './support/worker-client.js';

const OWNERS = Number(process.env['BENCH_SCHEDULER_OWNERS'] ?? 10_000);
const INSTANCES = 3;
const TOKEN_LATENCY_MS = 50;
const BATCH_SIZE = 100;
/** The measured rounds; the last one, without Procore latency, shows this machine's CPU ceiling. */
const ROUNDS: RoundSpec[] = [
  { concurrency: 4, latencyMs: TOKEN_LATENCY_MS, owners: OWNERS },
  { concurrency: 16, latencyMs: TOKEN_LATENCY_MS, owners: OWNERS },
  { concurrency: 16, latencyMs: 0, owners: Math.min(OWNERS, 3_000) },
];

interface RoundSpec {
  concurrency: number;
  latencyMs: number;
  owners: number;
}
/** The default look-ahead for 5400 s tokens: min(15 min, half the lifetime). */
const LOOK_AHEAD = '15 minutes';

interface Round extends RoundSpec {
  seedMs: number;
  totalMs: number;
  refreshed: number;
  perSecond: number;
  idealPerSecond: number;
  refreshCalls: number;
  doubleRefreshes: number;
  rejected: number;
  stale: number;
  claimedPerInstance: number[];
  summaries: ProcoreRefreshTickSummary[];
  verifiedTokens: string;
  verifiedRotation: string;
}

async function round(
  database: BenchDatabase,
  fake: FakeProcoreServer,
  encryptionKey: string,
  spec: RoundSpec,
): Promise<Round> {
  const { concurrency, latencyMs, owners } = spec;
  let workers: AppWorker[] = [];
  return withCleanup(
    async () => {
      workers = await startWorkers(INSTANCES, (i) =>
        workerConfig({
          label: `scheduler-${concurrency}-${i}`,
          databaseUrl: database.url,
          fake,
          encryptionKey,
          // The scheduler holds one connection per refresh in flight, plus the claim query.
          poolSize: concurrency + 4,
          options: {
            cache: { maxEntries: 0 },
            scheduler: { enabled: false, concurrency, batchSize: BATCH_SIZE },
          },
        }),
      );

      // Seed through the public API (importTokens: encrypted, valid rows), spread over the instances.
      const prefix = `c${concurrency}l${latencyMs}-`;
      fake.tokenLatencyMs = 0;
      const entries: [string, FakeProcoreTokenResponse][] = Array.from(
        { length: owners },
        (_, i) => [`${prefix}${i}`, fake.issueTokens(100_000 + i)],
      );
      const seedStart = Date.now();
      await Promise.all(
        workers.map((w, i) =>
          w.call('importTokens', {
            entries: entries.filter((_, j) => j % INSTANCES === i),
            concurrency: 16,
          }),
        ),
      );
      const seedMs = Date.now() - seedStart;
      await database.pool.query(
        `UPDATE procore_oauth_tokens SET expires_at = now() + interval '5 minutes' WHERE owner_id LIKE $1`,
        [`${prefix}%`],
      );

      fake.resetCounters();
      fake.tokenLatencyMs = latencyMs;
      const startAt = Date.now() + 300;
      const ticks = await Promise.all(workers.map((w) => w.call('runTick', { startAt })));
      const totalMs = Math.max(...ticks.map((t) => t.endedAt)) - startAt;
      const counters = { ...fake.counters };

      const [row] = (
        await database.pool.query<{ refreshed: string; stale: string }>(
          `SELECT count(*) FILTER (WHERE version > 1) AS refreshed,
                  count(*) FILTER (WHERE status <> 'active' OR expires_at < now() + interval '${LOOK_AHEAD}') AS stale
             FROM procore_oauth_tokens WHERE owner_id LIKE $1`,
          [`${prefix}%`],
        )
      ).rows;
      const refreshed = Number(row.refreshed);

      // Every stored access token works, and every stored refresh token is the live one:
      // a forced refresh of a sample succeeds with no invalid_grant.
      fake.tokenLatencyMs = 0;
      const sample = entries.filter((_, i) => i % 10 === 0).map(([owner]) => owner);
      const read = await workers[1].call('getAccessTokens', { owners: sample, concurrency: 32 });
      const valid = read.tokens.filter((t) => fake.isAccessTokenValid(t)).length;
      const rotationSample = sample.filter((_, i) => i % 5 === 0);
      const rejectedBefore = fake.counters.rejectedRefreshTokens;
      const forced = await workers[2].call('refresh', {
        owners: rotationSample,
        concurrency: 32,
      });
      const forcedErrors = Object.values(forced.errors).reduce((a, b) => a + b, 0);
      const forcedRejected = fake.counters.rejectedRefreshTokens - rejectedBefore;

      return {
        ...spec,
        seedMs,
        totalMs,
        refreshed,
        perSecond: refreshed / (totalMs / 1000),
        idealPerSecond: latencyMs > 0 ? (INSTANCES * concurrency * 1000) / latencyMs : Infinity,
        refreshCalls: counters.refreshToken,
        doubleRefreshes: counters.refreshToken - refreshed,
        rejected: counters.rejectedRefreshTokens,
        stale: Number(row.stale),
        claimedPerInstance: ticks.map((t) => t.summary.claimed),
        summaries: ticks.map((t) => t.summary),
        verifiedTokens: `${valid} / ${sample.length} stored access tokens valid${Object.keys(read.errors).length ? ` (errors ${JSON.stringify(read.errors)})` : ''}`,
        verifiedRotation: `${rotationSample.length - forcedErrors} / ${rotationSample.length} forced refreshes succeeded, ${forcedRejected} invalid_grant`,
      };
    },
    () => closeAll(workers),
  );
}

async function main(): Promise<void> {
  const database = await createBenchDatabase('scheduler');
  const fake = await FakeProcoreServer.start();
  const encryptionKey = generateEncryptionKey();
  await withCleanup(
    async () => {
      const figures: Record<string, number> = {};
      for (const spec of ROUNDS) {
        const r = await round(database, fake, encryptionKey, spec);
        const totals = r.summaries.reduce(
          (acc, s) => ({
            refreshed: acc.refreshed + s.refreshed,
            skipped: acc.skipped + s.skipped,
            failed: acc.failed + s.failed,
            reauth: acc.reauth + s.reauthorizationRequired,
          }),
          { refreshed: 0, skipped: 0, failed: 0, reauth: 0 },
        );
        const lanes = INSTANCES * r.concurrency;
        // Wall time one refresh occupies a lane (claim and batch tails included).
        const perRefreshMs = (lanes * 1000) / r.perSecond;
        const rate =
          r.latencyMs > 0
            ? `${fmt(r.perSecond)} / ${fmt(r.idealPerSecond)} = ${fmt((100 * r.perSecond) / r.idealPerSecond)} % of ${INSTANCES} × ${r.concurrency} / ${r.latencyMs} ms`
            : `${fmt(r.perSecond)}  (no Procore latency: this machine's ceiling for the whole set-up)`;
        printBlock(
          `scheduler-throughput  (concurrency ${r.concurrency}, ${INSTANCES} instances in separate processes, batch ${BATCH_SIZE}, ${fmt(r.owners, 0)} due connections, fake token latency ${r.latencyMs} ms)`,
          [
            [
              'time to refresh all',
              `${ms(r.totalMs)}  (seeding took ${ms(r.seedMs)}, not counted)`,
            ],
            ['refreshes/s achieved', rate],
            [
              'lane time per refresh',
              `${ms(perRefreshMs)}  (${lanes} lanes; ${r.latencyMs} ms of it is Procore latency)`,
            ],
            [
              'connections refreshed',
              `${fmt(r.refreshed, 0)} / ${fmt(r.owners, 0)}  (ticks: refreshed ${totals.refreshed}, skipped ${totals.skipped}, failed ${totals.failed}, reauthorization ${totals.reauth})`,
            ],
            ['claimed per instance', r.claimedPerInstance.join(' / ')],
            [
              'double refreshes',
              `${r.doubleRefreshes}  (refresh calls ${r.refreshCalls} − distinct owners refreshed ${r.refreshed}; target 0)`,
            ],
            ['rejected refresh tokens', `${r.rejected}  (target 0)`],
            ['connections left stale', `${r.stale}  (target 0)`],
            ['check: sample read back', r.verifiedTokens],
            ['check: rotation kept', r.verifiedRotation],
          ],
        );
        const key = `c${r.concurrency}${r.latencyMs > 0 ? '' : 'NoLatency'}`;
        Object.assign(figures, {
          [`${key}TotalMs`]: r.totalMs,
          [`${key}PerSecond`]: r.perSecond,
          [`${key}LaneMsPerRefresh`]: perRefreshMs,
          [`${key}Refreshed`]: r.refreshed,
          [`${key}DoubleRefreshes`]: r.doubleRefreshes,
          [`${key}Rejected`]: r.rejected,
          [`${key}Stale`]: r.stale,
          [`${key}SeedMs`]: r.seedMs,
        });
        if (r.latencyMs > 0) {
          figures[`${key}PercentOfIdeal`] = (100 * r.perSecond) / r.idealPerSecond;
        }
      }
      recordFigures('scheduler-throughput', figures);
    },
    async () => {
      await fake.close();
      await database.drop();
    },
  );
}

runBenchmark(main);
