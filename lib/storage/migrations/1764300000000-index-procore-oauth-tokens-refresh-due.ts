import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';
import { quoteTablePath } from '../quote-table-path.js';

/**
 * Makes the scheduler's claim cost follow the due rows, not the table (issue: one million
 * connections). Adds `procore_oauth_tokens.idle` (a constant default: no table rewrite) and
 * replaces the index on every row's `expires_at` with a partial one over the rows the scheduler
 * keeps fresh (`status = 'active' AND NOT idle AND refresh_token IS NOT NULL`); indexes the rows
 * that need reauthorization, so counting them costs what there is to count.
 *
 * Connections unused for 7 days are marked idle here (see below); the scheduler marks the rest as
 * it meets them.
 *
 * Indexes are built and dropped `CONCURRENTLY` (no lock that blocks writes) when the migration runs
 * outside a transaction: `migrationsTransactionMode: 'none'` on the DataSource. Inside a
 * transaction (TypeORM's default, `'all'`) PostgreSQL does not allow that, and the index is built
 * the ordinary way, which blocks writes to the table while it builds (seconds per million rows).
 */
export class IndexProcoreOAuthTokensRefreshDue1764300000000 implements MigrationInterface {
  name = 'IndexProcoreOAuthTokensRefreshDue1764300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // Outside a transaction a run that stopped half-way is run again: every step can be repeated.
    if (!(await queryRunner.hasColumn('procore_oauth_tokens', 'idle'))) {
      await queryRunner.addColumn(
        'procore_oauth_tokens',
        new TableColumn({ name: 'idle', type: 'boolean', default: false }),
      );
    }
    const table = inSchema(queryRunner, 'procore_oauth_tokens');
    const inTransaction = queryRunner.isTransactionActive;
    // Connections unused for the scheduler's default activity window (7 days) are idle from the
    // start, so the first ticks after the upgrade do not have to find them among the due ones
    // (with a longer `scheduler.activeWithinDays`, a connection used between 7 days ago and that
    // bound waits for its next use to be kept fresh again; a request refreshes it meanwhile).
    // Outside a transaction in batches of 1,000 pages in physical order (TID range scans), so no
    // statement holds many row locks for long and the whole pass reads the table once.
    const idle = `status = 'active' AND NOT idle
        AND GREATEST(last_used_at, connected_at) < now() - interval '7 days'`;
    if (inTransaction) {
      await queryRunner.query(`UPDATE ${table} SET idle = true WHERE ${idle}`);
    } else {
      const [{ pages }] = (await queryRunner.query(
        `SELECT (pg_relation_size($1::regclass) / current_setting('block_size')::int)::int AS pages`,
        [table],
      )) as { pages: number }[];
      // Rows rewritten here may move to later pages; they are idle already and not matched again.
      for (let page = 0; page < pages; page += 1_000) {
        await queryRunner.query(
          `UPDATE ${table} SET idle = true
            WHERE ctid >= format('(%s,0)', $1::int)::tid AND ctid < format('(%s,0)', $2::int)::tid
              AND ${idle}`,
          [page, page + 1_000],
        );
      }
    }
    const concurrently = inTransaction ? '' : ' CONCURRENTLY';
    // A CONCURRENTLY build that was interrupted leaves an invalid index of that name: drop it.
    for (const index of [
      'IDX_procore_oauth_tokens_refresh_due',
      'IDX_procore_oauth_tokens_reauthorization',
    ]) {
      const invalid = (await queryRunner.query(
        `SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid`,
        [inSchema(queryRunner, index)],
      )) as unknown[];
      if (invalid.length > 0) {
        await queryRunner.query(`DROP INDEX${concurrently} ${inSchema(queryRunner, index)}`);
      }
    }
    await queryRunner.query(
      `CREATE INDEX${concurrently} IF NOT EXISTS "IDX_procore_oauth_tokens_refresh_due"
         ON ${table} (expires_at)
       WHERE status = 'active' AND NOT idle AND refresh_token IS NOT NULL`,
    );
    // The count a health check or a dashboard asks for, proportional to the rows it counts.
    await queryRunner.query(
      `CREATE INDEX${concurrently} IF NOT EXISTS "IDX_procore_oauth_tokens_reauthorization"
         ON ${table} (owner_id) WHERE status = 'reauthorization_required'`,
    );
    await queryRunner.query(
      `DROP INDEX${concurrently} IF EXISTS ${inSchema(queryRunner, 'IDX_procore_oauth_tokens_expires_at')}`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    const table = inSchema(queryRunner, 'procore_oauth_tokens');
    const concurrently = queryRunner.isTransactionActive ? '' : ' CONCURRENTLY';
    await queryRunner.query(
      `CREATE INDEX${concurrently} IF NOT EXISTS "IDX_procore_oauth_tokens_expires_at" ON ${table} (expires_at)`,
    );
    await queryRunner.query(
      `DROP INDEX${concurrently} IF EXISTS ${inSchema(queryRunner, 'IDX_procore_oauth_tokens_refresh_due')}`,
    );
    await queryRunner.query(
      `DROP INDEX${concurrently} IF EXISTS ${inSchema(queryRunner, 'IDX_procore_oauth_tokens_reauthorization')}`,
    );
    await queryRunner.dropColumn('procore_oauth_tokens', 'idle');
  }
}

/** `name` in the DataSource's schema, if it has one (an index lives in its table's schema), quoted. */
function inSchema(queryRunner: QueryRunner, name: string): string {
  const schema = (queryRunner.connection.options as { schema?: string }).schema;
  return quoteTablePath(schema ? `${schema}.${name}` : name);
}
