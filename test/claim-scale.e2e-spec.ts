import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { procoreAuthEntities, procoreAuthMigrations } from 'nestjs-procore-auth';
import {
  claimDueStatement,
  TypeOrmProcoreTokenStore,
} from '../lib/storage/typeorm-procore-token.store.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

const BATCH = 100;
const ACTIVE = 2_000;
const IDLE = 18_000;

/**
 * The scheduler's claim on a table where most connections went idle long ago (refresh tokens never
 * expire, so such rows stay `active` forever): its cost must follow the due rows, not the table.
 * (bench/scale-claim measures the same at 1,000,000 rows.)
 */
describe('scheduler claim at scale (real PostgreSQL)', () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  let store: TypeOrmProcoreTokenStore;

  /** Rows the claim's index scan looked at (returned or removed by its filter), and the index. */
  async function examined(): Promise<{ rows: number; index: string | undefined }> {
    const runner = dataSource.createQueryRunner();
    await runner.startTransaction();
    try {
      const [{ 'QUERY PLAN': plan }] = await runner.query(
        `EXPLAIN (ANALYZE, FORMAT JSON) ${claimDueStatement('"procore_oauth_tokens"')}`,
        [null, new Date(Date.now() - 7 * 86_400_000), BATCH, 60],
      );
      const scans: { rows: number; index: string | undefined }[] = [];
      const walk = (node: Record<string, unknown>) => {
        if (
          node['Relation Name'] === 'procore_oauth_tokens' &&
          String(node['Node Type']).includes('Scan')
        ) {
          const loops = Number(node['Actual Loops'] ?? 1);
          scans.push({
            rows:
              (Number(node['Actual Rows'] ?? 0) + Number(node['Rows Removed by Filter'] ?? 0)) *
              loops,
            index: node['Index Name'] as string | undefined,
          });
        }
        for (const child of (node['Plans'] as Record<string, unknown>[] | undefined) ?? []) {
          walk(child);
        }
      };
      walk((plan as { Plan: Record<string, unknown> }[])[0].Plan);
      // The CTE `due` scans by expiry; the two UPDATEs join back by primary key.
      const due = scans.find((scan) => scan.index !== 'PK_procore_oauth_tokens') ?? scans[0];
      return due ?? { rows: 0, index: undefined };
    } finally {
      await runner.rollbackTransaction();
      await runner.release();
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase('claim_scale');
    dataSource = new DataSource({
      type: 'postgres',
      url: database.url,
      entities: procoreAuthEntities,
      migrations: procoreAuthMigrations,
    });
    await dataSource.initialize();
    // The tables as an install had them before the migration under test...
    await dataSource.runMigrations();
    await dataSource.undoLastMigration();
    // ...with 18,000 idle connections (token expired some time in the last year, last used more
    // than 7 days ago), 2,000 active ones (used in the last day, expiring in 20 – 90 minutes), and
    // some revoked and reauthorization-required ones.
    await dataSource.query(
      `INSERT INTO procore_oauth_tokens
         (owner_id, environment, status, access_token, refresh_token, key_id, expires_at,
          token_lifetime_seconds, connected_at, last_used_at)
       SELECT 'idle-' || i, 'production', 'active', 'x', 'x', 'k',
              now() - (i % 365 + 1) * interval '1 day', 5400,
              now() - interval '400 days', now() - (i % 358 + 8) * interval '1 day'
         FROM generate_series(1, $1) AS i
       UNION ALL
       SELECT 'active-' || i, 'production', 'active', 'x', 'x', 'k',
              now() + (20 + i % 70) * interval '1 minute', 5400,
              now() - interval '30 days', now() - interval '1 hour'
         FROM generate_series(1, $2) AS i
       UNION ALL
       SELECT 'gone-' || i, 'production',
              CASE WHEN i % 2 = 0 THEN 'revoked' ELSE 'reauthorization_required' END,
              NULL, NULL, NULL, now() - interval '3 days', 5400,
              now() - interval '30 days', now() - interval '2 days'
         FROM generate_series(1, 500) AS i`,
      [IDLE, ACTIVE],
    );
    await dataSource.runMigrations();
    await dataSource.query('ANALYZE procore_oauth_tokens');
    store = new TypeOrmProcoreTokenStore(() => dataSource);
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  const claim = () =>
    store.claimDue({
      lookAheadSeconds: undefined,
      activeSince: new Date(Date.now() - 7 * 86_400_000),
      limit: BATCH,
      leaseSeconds: 60,
    });

  it('the migration marks connections unused for 7 days idle and indexes only the others', async () => {
    const counts = await dataSource.query(
      `SELECT split_part(owner_id, '-', 1) AS kind, idle, count(*)::int AS n
         FROM procore_oauth_tokens GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    expect(counts).toEqual([
      { kind: 'active', idle: false, n: ACTIVE },
      { kind: 'gone', idle: false, n: 500 },
      { kind: 'idle', idle: true, n: IDLE },
    ]);
    const indexes = (
      await dataSource.query(
        `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'procore_oauth_tokens'`,
      )
    ).map((row: { indexname: string; indexdef: string }) => `${row.indexname}: ${row.indexdef}`);
    expect(indexes).toContainEqual(
      expect.stringMatching(
        /^IDX_procore_oauth_tokens_refresh_due: .*\(expires_at\) WHERE .*status.*'active'.*NOT idle.*refresh_token IS NOT NULL/,
      ),
    );
    expect(indexes.join('\n')).not.toContain('IDX_procore_oauth_tokens_expires_at');
  });

  it('counts the connections needing reauthorization from their own index', async () => {
    const [{ 'QUERY PLAN': plan }] = await dataSource.query(
      `EXPLAIN (ANALYZE, FORMAT JSON)
       SELECT count(*) FROM procore_oauth_tokens WHERE status = 'reauthorization_required'`,
    );
    const text = JSON.stringify(plan);
    expect(text).toContain('IDX_procore_oauth_tokens_reauthorization');
    expect(text).not.toContain('Seq Scan');
  });

  it('examines no idle row: nothing due → nothing read; 150 due → 100 claimed, at most 2× the batch examined', async () => {
    await expect(claim()).resolves.toEqual([]);
    const idleScan = await examined();
    expect(idleScan.index).toBe('IDX_procore_oauth_tokens_refresh_due');
    expect(idleScan.rows).toBe(0);

    await dataSource.query(
      `UPDATE procore_oauth_tokens SET expires_at = now() + interval '5 minutes'
        WHERE owner_id IN (SELECT 'active-' || i FROM generate_series(1, 150) AS i)`,
    );
    const dueScan = await examined();
    expect(dueScan.rows).toBeLessThanOrEqual(2 * BATCH);
    const first = await claim();
    const second = await claim();
    expect(first).toHaveLength(BATCH);
    expect(second).toHaveLength(50);
    expect(new Set([...first, ...second]).size).toBe(150);
    expect([...first, ...second].every((owner) => owner.startsWith('active-'))).toBe(true);
  });

  it('retires a connection that went idle since the last tick once, then never examines it again', async () => {
    // The claimed ones were refreshed (as the scheduler does): they leave the due range.
    await dataSource.query(
      `UPDATE procore_oauth_tokens
          SET expires_at = now() + interval '90 minutes', refresh_claimed_until = NULL
        WHERE refresh_claimed_until IS NOT NULL`,
    );
    await dataSource.query(
      `UPDATE procore_oauth_tokens
          SET last_used_at = now() - interval '8 days', expires_at = now() - interval '1 day',
              refresh_claimed_until = NULL
        WHERE owner_id IN ('active-1000', 'active-1001')`,
    );
    await expect(claim()).resolves.toEqual([]);
    const rows = await dataSource.query(
      `SELECT owner_id, idle FROM procore_oauth_tokens WHERE owner_id IN ('active-1000', 'active-1001') ORDER BY 1`,
    );
    expect(rows).toEqual([
      { owner_id: 'active-1000', idle: true },
      { owner_id: 'active-1001', idle: true },
    ]);
    expect((await examined()).rows).toBe(0);

    // A use brings it back: the scheduler keeps it fresh again.
    await store.touch(['active-1000'], new Date());
    await expect(claim()).resolves.toEqual(['active-1000']);
  });

  it("outside a transaction (migrationsTransactionMode 'none') it builds the index CONCURRENTLY, valid, also after a run that stopped half-way", async () => {
    const plain = new DataSource({
      type: 'postgres',
      url: database.url,
      entities: procoreAuthEntities,
      migrations: procoreAuthMigrations,
      migrationsTransactionMode: 'none',
    });
    await plain.initialize();
    try {
      await plain.undoLastMigration();
      await dataSource.query(`UPDATE procore_oauth_tokens SET refresh_claimed_until = NULL`);
      // As a run that stopped half-way leaves it: the column added, an index build interrupted
      // (an invalid index of that name).
      await plain.query(
        `ALTER TABLE procore_oauth_tokens ADD COLUMN idle boolean NOT NULL DEFAULT false`,
      );
      await plain.query(
        `CREATE INDEX "IDX_procore_oauth_tokens_refresh_due" ON procore_oauth_tokens (expires_at)`,
      );
      await plain.query(
        `UPDATE pg_index SET indisvalid = false
          WHERE indexrelid = '"IDX_procore_oauth_tokens_refresh_due"'::regclass`,
      );
      await plain.runMigrations();
      const [index] = await plain.query(
        `SELECT indisvalid FROM pg_index WHERE indexrelid = '"IDX_procore_oauth_tokens_refresh_due"'::regclass`,
      );
      expect(index).toEqual({ indisvalid: true });
      const [{ n }] = await plain.query(
        `SELECT count(*)::int AS n FROM procore_oauth_tokens WHERE idle`,
      );
      expect(n).toBeGreaterThanOrEqual(IDLE);
    } finally {
      await plain.destroy();
    }
  });

  it('the migration goes back down and up again', async () => {
    await dataSource.undoLastMigration();
    const columns = await dataSource.query(
      `SELECT column_name FROM information_schema.columns
        WHERE table_name = 'procore_oauth_tokens' AND column_name = 'idle'`,
    );
    expect(columns).toEqual([]);
    await dataSource.runMigrations();
    const [{ n }] = await dataSource.query(
      `SELECT count(*)::int AS n FROM procore_oauth_tokens WHERE idle`,
    );
    expect(n).toBeGreaterThanOrEqual(IDLE);
  });
});
