import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Adds `procore_rate_limits.shares`: how each instance's callers share a holder's window (see
 * `decideShare`). A column with a constant default: PostgreSQL adds it without rewriting the
 * table, and the table is small (one row per holder with a known window).
 */
export class AddProcoreRateLimitShares1764200000000 implements MigrationInterface {
  name = 'AddProcoreRateLimitShares1764200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumn(
      'procore_rate_limits',
      new TableColumn({ name: 'shares', type: 'jsonb', default: "'{}'::jsonb" }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumn('procore_rate_limits', 'shares');
  }
}
