/**
 * One scheduler round shared by scheduler-throughput and scheduler-capacity: `owners` connections
 * due for refresh, `instances` app instances (separate processes) each running
 * `TokenRefreshScheduler.runTick()` at the same moment against the fake Procore server answering
 * token calls after `latencyMs`; then checks that nothing was refreshed twice or left stale and
 * that every rotated refresh token was kept.
 */
import type { FakeProcoreServer, FakeProcoreTokenResponse } from 'nestjs-procore-auth/testing';
import type { ProcoreRefreshTickSummary } from 'nestjs-procore-auth';
import type { BenchDatabase } from './database.js';
import { withCleanup } from './main.js';
import { workerConfig } from './procore.js';
import { closeAll, startWorkers, type AppWorker } from './worker-client.js';

export const BATCH_SIZE = 100;
/** The default look-ahead for 5400 s tokens: min(15 min, half the lifetime). */
const LOOK_AHEAD = '15 minutes';

export interface RoundSpec {
  instances: number;
  concurrency: number;
  latencyMs: number;
  owners: number;
}
export interface Round extends RoundSpec {
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

export async function schedulerRound(
  database: BenchDatabase,
  fake: FakeProcoreServer,
  encryptionKey: string,
  spec: RoundSpec,
): Promise<Round> {
  const { instances, concurrency, latencyMs, owners } = spec;
  let workers: AppWorker[] = [];
  return withCleanup(
    async () => {
      workers = await startWorkers(instances, (i) =>
        workerConfig({
          label: `scheduler-${instances}x${concurrency}-${i}`,
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
      const prefix = `i${instances}c${concurrency}l${latencyMs}-`;
      fake.tokenLatencyMs = 0;
      const entries: [string, FakeProcoreTokenResponse][] = Array.from(
        { length: owners },
        (_, i) => [`${prefix}${i}`, fake.issueTokens(100_000 + i)],
      );
      const seedStart = Date.now();
      await Promise.all(
        workers.map((w, i) =>
          w.call('importTokens', {
            entries: entries.filter((_, j) => j % instances === i),
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
      const read = await workers[1 % instances].call('getAccessTokens', {
        owners: sample,
        concurrency: 32,
      });
      const valid = read.tokens.filter((t) => fake.isAccessTokenValid(t)).length;
      const rotationSample = sample.filter((_, i) => i % 5 === 0);
      const rejectedBefore = fake.counters.rejectedRefreshTokens;
      const forced = await workers[2 % instances].call('refresh', {
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
        idealPerSecond: latencyMs > 0 ? (instances * concurrency * 1000) / latencyMs : Infinity,
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
