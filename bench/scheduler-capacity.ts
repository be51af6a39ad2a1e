/**
 * scheduler-capacity: how many active connections the scheduler keeps fresh, per instance and in
 * all, at the defaults (concurrency 4, batch 100, 5400 s tokens refreshed when 15 minutes are
 * left), with Procore's token endpoint answering after 50 ms and after 300 ms, on 1 and 3
 * instances (separate processes, one database).
 *
 * Each round measures the refresh rate R (refreshes/s) on a set of due connections sized to take
 * about 20 s, with the same checks as scheduler-throughput (0 double refreshes, 0 rejected, 0
 * stale). At the defaults each active connection is refreshed once every 4,500 s (a 5,400 s token
 * refreshed with 900 s left), so the connections kept fresh in steady state are R × 4,500; and a
 * burst of connections coming due at once is absorbed before any token expires as long as it is
 * under R × (900 s − one 60 s tick). Target: 100,000 active connections on 3 instances at 300 ms.
 */
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { createBenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { generateEncryptionKey } from './support/procore.js';
import { schedulerRound, type RoundSpec } from './support/scheduler-round.js';
import { fmt, ms, printBlock, recordFigures } from './support/stats.js';

/** Seconds between two refreshes of one connection at the defaults (5,400 s tokens, 900 s look-ahead). */
const REFRESH_PERIOD_S = 5_400 - 900;
/** The slack a due connection has: the look-ahead minus one tick. */
const SLACK_S = 900 - 60;
const TARGET = 100_000;
const CONCURRENCY = 4;

/** Sized for about 15 – 20 s per round at about 75 % of the ideal rate (scheduler-throughput). */
const ROUNDS: RoundSpec[] = [
  { instances: 1, concurrency: CONCURRENCY, latencyMs: 50, owners: 1_200 },
  { instances: 3, concurrency: CONCURRENCY, latencyMs: 50, owners: 3_600 },
  { instances: 1, concurrency: CONCURRENCY, latencyMs: 300, owners: 250 },
  { instances: 3, concurrency: CONCURRENCY, latencyMs: 300, owners: 750 },
];

async function main(): Promise<void> {
  const database = await createBenchDatabase('scheduler_capacity');
  const fake = await FakeProcoreServer.start();
  const encryptionKey = generateEncryptionKey();
  await withCleanup(
    async () => {
      const lines: [string, string][] = [];
      const figures: Record<string, number> = {};
      for (const spec of ROUNDS) {
        const r = await schedulerRound(database, fake, encryptionKey, spec);
        const keptFresh = r.perSecond * REFRESH_PERIOD_S;
        const key = `i${r.instances}l${r.latencyMs}`;
        const checks =
          r.doubleRefreshes === 0 && r.rejected === 0 && r.stale === 0
            ? 'checks ok (0 double, 0 rejected, 0 stale)'
            : `CHECKS FAILED: ${r.doubleRefreshes} double, ${r.rejected} rejected, ${r.stale} stale`;
        lines.push([
          `${r.instances} instance${r.instances > 1 ? 's' : ''}, ${r.latencyMs} ms`,
          `${fmt(r.refreshed, 0)} refreshed in ${ms(r.totalMs)} = ${fmt(r.perSecond)} /s (ideal ${fmt(r.idealPerSecond)}); keeps ${fmt(keptFresh, 0)} active connections fresh (${fmt(keptFresh / r.instances, 0)} per instance); absorbs a burst of ${fmt(r.perSecond * SLACK_S, 0)} due at once; ${checks}`,
        ]);
        Object.assign(figures, {
          [`${key}PerSecond`]: r.perSecond,
          [`${key}KeptFresh`]: keptFresh,
          [`${key}DoubleRefreshes`]: r.doubleRefreshes,
          [`${key}Rejected`]: r.rejected,
          [`${key}Stale`]: r.stale,
        });
        if (r.instances === 3 && r.latencyMs === 300) {
          lines.push([
            'target: 100,000 on 3 instances at 300 ms',
            `${fmt(keptFresh, 0)} ÷ ${fmt(TARGET, 0)} = ${fmt(keptFresh / TARGET)}: ${keptFresh >= TARGET ? 'met' : 'NOT met'}`,
          ]);
        }
      }
      printBlock(
        `scheduler-capacity  (defaults: concurrency ${CONCURRENCY}, batch 100, 5,400 s tokens refreshed with 900 s left = every ${fmt(REFRESH_PERIOD_S, 0)} s; fake token latency 50 and 300 ms)`,
        lines,
      );
      recordFigures('scheduler-capacity', figures);
    },
    async () => {
      await fake.close();
      await database.drop();
    },
  );
}

runBenchmark(main);
