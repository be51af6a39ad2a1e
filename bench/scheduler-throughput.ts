/**
 * scheduler-throughput: 10,000 connections due for refresh, 3 app instances (separate processes)
 * each running `TokenRefreshScheduler.runTick()` at the same moment, fake Procore answering token
 * calls after 50 ms, batch size 100. Measures the time to refresh all of them against the ideal
 * instances × concurrency / latency, and checks that no connection was refreshed twice or left
 * stale and that every rotated refresh token was kept. Runs with concurrency 4 (the default)
 * and 16.
 */
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { createBenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { generateEncryptionKey } from './support/procore.js';
import { BATCH_SIZE, schedulerRound, type RoundSpec } from './support/scheduler-round.js';
import { fmt, ms, printBlock, recordFigures } from './support/stats.js';

const OWNERS = Number(process.env['BENCH_SCHEDULER_OWNERS'] ?? 10_000);
const INSTANCES = 3;
const TOKEN_LATENCY_MS = 50;
/** The measured rounds; the last one, without Procore latency, shows this machine's CPU ceiling. */
const ROUNDS: RoundSpec[] = [
  { instances: INSTANCES, concurrency: 4, latencyMs: TOKEN_LATENCY_MS, owners: OWNERS },
  { instances: INSTANCES, concurrency: 16, latencyMs: TOKEN_LATENCY_MS, owners: OWNERS },
  { instances: INSTANCES, concurrency: 16, latencyMs: 0, owners: Math.min(OWNERS, 3_000) },
];

async function main(): Promise<void> {
  const database = await createBenchDatabase('scheduler');
  const fake = await FakeProcoreServer.start();
  const encryptionKey = generateEncryptionKey();
  await withCleanup(
    async () => {
      const figures: Record<string, number> = {};
      for (const spec of ROUNDS) {
        const r = await schedulerRound(database, fake, encryptionKey, spec);
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
