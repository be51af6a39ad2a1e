/**
 * scale-claim: the scheduler's claim query on a large `procore_oauth_tokens`, before and after
 * migration 1764300000000 (the `idle` flag and the partial index `IDX_procore_oauth_tokens_refresh_due`),
 * in one run on one database.
 *
 * Rows (`BENCH_SCALE_ROWS`, 1,000,000 by default): 90 % idle (token expired some time in the last
 * year, last used 8 – 365 days ago), 10 % active (used in the last day, expiring within the next
 * 90 minutes, so about a sixth of them are due at the default look-ahead), plus 1 % revoked and
 * 1 % reauthorization required; encrypted-token-sized values. Steps: migrations up to 1764200000000,
 * seed, `VACUUM ANALYZE`, time the claim as it was (`BENCH_SCALE_BEFORE_CALLS`, 5: seconds each); run migration 1764300000000 (timed),
 * `VACUUM ANALYZE`, time the claim as it is (50 calls). Each call runs in a transaction that is
 * rolled back, so every call sees the same rows (as each tick does: claimed rows are refreshed and
 * leave the due range); batch 100, the default look-ahead. Rows examined: the claim's scan of the
 * table (rows returned plus rows removed by its filter), from `EXPLAIN (ANALYZE, FORMAT JSON)`.
 */
import pg from 'pg';
import { DataSource } from 'typeorm';
import { procoreAuthEntities, procoreAuthMigrations } from 'nestjs-procore-auth';
import { createBenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { fmt, median, ms, percentile, printBlock, recordFigures } from './support/stats.js';

const ROWS = Number(process.env['BENCH_SCALE_ROWS'] ?? 1_000_000);
const CALLS = 50;
/** The claim as it was takes seconds per call on a large table: fewer calls. */
const CALLS_BEFORE = Number(process.env['BENCH_SCALE_BEFORE_CALLS'] ?? 5);
const BATCH = 100;
const TABLE = '"procore_oauth_tokens"';

/** The claim before migration 1764300000000 (its text at commit 4e51619), for the comparison. */
const CLAIM_BEFORE = `UPDATE ${TABLE} SET refresh_claimed_until = now() + make_interval(secs => $4)
  WHERE id IN (
    SELECT id FROM ${TABLE}
     WHERE status = 'active'
       AND refresh_token IS NOT NULL
       AND expires_at < now() + make_interval(secs => COALESCE($1::float8, 900))
       AND expires_at < now() + make_interval(secs =>
             COALESCE($1::float8, LEAST(900, COALESCE(token_lifetime_seconds, 5400) / 2.0)))
       AND GREATEST(last_used_at, connected_at) >= $2
       AND (refresh_claimed_until IS NULL OR refresh_claimed_until < now())
     ORDER BY expires_at
     LIMIT $3
     FOR UPDATE SKIP LOCKED)
  RETURNING owner_id`;

/** The claim as the package runs it now (internal: loaded by path next to dist/index.js). */
async function claimNow(): Promise<string> {
  const url = new URL(
    './storage/typeorm-procore-token.store.js',
    import.meta.resolve('nestjs-procore-auth'),
  );
  const module = (await import(url.href)) as { claimDueStatement: (table: string) => string };
  return module.claimDueStatement(TABLE);
}

interface Measured {
  calls: number;
  medianMs: number;
  p99Ms: number;
  examined: number;
  claimed: number;
  index: string;
}

/** Rows the plan's scans of the table looked at, outside the primary-key joins of the UPDATEs. */
function examinedOf(plan: Record<string, unknown>): { rows: number; index: string } {
  let rows = 0;
  const indexes = new Set<string>();
  const walk = (node: Record<string, unknown>) => {
    const scan = String(node['Node Type'] ?? '').includes('Scan');
    const index = node['Index Name'] as string | undefined;
    if (scan && node['Relation Name'] === 'procore_oauth_tokens' && !index?.startsWith('PK_')) {
      const loops = Number(node['Actual Loops'] ?? 1);
      rows +=
        (Number(node['Actual Rows'] ?? 0) + Number(node['Rows Removed by Filter'] ?? 0)) * loops;
      indexes.add(index ?? `${String(node['Node Type'])}`);
    }
    for (const child of (node['Plans'] as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  walk(plan);
  return { rows, index: [...indexes].join(', ') };
}

async function measure(pool: pg.Pool, sql: string, calls: number): Promise<Measured> {
  const params = [null, new Date(Date.now() - 7 * 86_400_000), BATCH, 60];
  const client = await pool.connect();
  try {
    const times: number[] = [];
    let claimed = 0;
    for (let i = 0; i < calls; i++) {
      await client.query('BEGIN');
      const t0 = performance.now();
      const result = await client.query(sql, params);
      times.push(performance.now() - t0);
      const first = result.rows[0] as { claimed?: string[] } | undefined;
      claimed = first?.claimed ? first.claimed.length : (result.rowCount ?? 0);
      await client.query('ROLLBACK');
    }
    await client.query('BEGIN');
    const explained = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params);
    await client.query('ROLLBACK');
    const plan = (explained.rows[0]['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0].Plan;
    const { rows, index } = examinedOf(plan);
    return {
      calls,
      medianMs: median(times),
      p99Ms: percentile(times, 99),
      examined: rows,
      claimed,
      index,
    };
  } finally {
    client.release();
  }
}

async function main(): Promise<void> {
  const database = await createBenchDatabase('scale_claim');
  const dataSource = new DataSource({
    type: 'postgres',
    url: database.url,
    entities: procoreAuthEntities,
    migrations: procoreAuthMigrations,
    // Outside a transaction, as OPERATIONS.md advises for a large table: CONCURRENTLY, batches.
    migrationsTransactionMode: 'none',
  });
  await withCleanup(
    async () => {
      await dataSource.initialize();
      await dataSource.undoLastMigration(); // the schema as it was before 1764300000000
      const seedStart = performance.now();
      const idle = Math.round(ROWS * 0.9);
      const active = ROWS - idle;
      const gone = Math.round(ROWS * 0.01);
      // Encrypted values are about 450 (access) and 130 (refresh) characters.
      await database.pool.query(
        `INSERT INTO ${TABLE}
           (owner_id, environment, status, access_token, refresh_token, key_id, expires_at,
            token_lifetime_seconds, connected_at, last_used_at)
         SELECT 'idle-' || i, 'production', 'active', repeat('a', 450), repeat('r', 130), 'k1',
                now() - random() * interval '365 days', 5400,
                now() - interval '400 days', now() - interval '8 days' - random() * interval '357 days'
           FROM generate_series(1, $1) AS i
         UNION ALL
         SELECT 'active-' || i, 'production', 'active', repeat('a', 450), repeat('r', 130), 'k1',
                now() + random() * interval '90 minutes', 5400,
                now() - interval '30 days', now() - random() * interval '1 day'
           FROM generate_series(1, $2) AS i
         UNION ALL
         SELECT 'gone-' || i, 'production',
                CASE WHEN i % 2 = 0 THEN 'revoked' ELSE 'reauthorization_required' END,
                NULL, NULL, NULL, now() - random() * interval '365 days', 5400,
                now() - interval '400 days', now() - random() * interval '365 days'
           FROM generate_series(1, $3) AS i`,
        [idle, active, 2 * gone],
      );
      await database.pool.query('VACUUM ANALYZE procore_oauth_tokens');
      const seedMs = performance.now() - seedStart;

      const before = await measure(database.pool, CLAIM_BEFORE, CALLS_BEFORE);
      const migrationStart = performance.now();
      await dataSource.runMigrations();
      const migrationMs = performance.now() - migrationStart;
      await database.pool.query('VACUUM ANALYZE procore_oauth_tokens');
      const after = await measure(database.pool, await claimNow(), CALLS);
      const [{ size }] = (
        await database.pool.query(
          `SELECT pg_size_pretty(pg_total_relation_size('procore_oauth_tokens')) AS size`,
        )
      ).rows as { size: string }[];

      const line = (m: Measured): string =>
        `median ${ms(m.medianMs)}, p99 ${ms(m.p99Ms)} over ${m.calls} calls; ${fmt(m.examined, 0)} rows examined for ${m.claimed} claimed (${m.index})`;
      printBlock(
        `scale-claim  (${fmt(ROWS, 0)} + ${fmt(2 * gone, 0)} rows: ${fmt(idle, 0)} idle, ${fmt(active, 0)} active, ${fmt(2 * gone, 0)} revoked or reauthorization required; table ${size}; batch ${BATCH}, default look-ahead)`,
        [
          ['seed + VACUUM ANALYZE', ms(seedMs)],
          ['claim before 1764300000000', line(before)],
          [
            'migration 1764300000000',
            `${ms(migrationMs)} (outside a transaction: idle marked in batches of 1,000 pages, index built CONCURRENTLY)`,
          ],
          ['claim now', line(after)],
          ['before / now (median)', `${fmt(before.medianMs / after.medianMs, 0)}×`],
          [
            'targets',
            `now < 10 ms: ${after.p99Ms < 10 ? 'met' : 'NOT met'} (p99); rows examined ≤ 2 × ${BATCH}: ${after.examined <= 2 * BATCH ? 'met' : 'NOT met'}`,
          ],
        ],
      );
      recordFigures('scale-claim', {
        rows: ROWS,
        beforeMedianMs: before.medianMs,
        beforeP99Ms: before.p99Ms,
        beforeExamined: before.examined,
        migrationMs,
        nowMedianMs: after.medianMs,
        nowP99Ms: after.p99Ms,
        nowExamined: after.examined,
        nowClaimed: after.claimed,
      });
    },
    async () => {
      if (dataSource.isInitialized) await dataSource.destroy();
      await database.drop();
    },
  );
}

runBenchmark(main);
