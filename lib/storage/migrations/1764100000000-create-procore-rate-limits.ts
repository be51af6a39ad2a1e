import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Creates `procore_rate_limits`: Procore's rate-limit budget per token holder, shared by the app's
 * instances. A small table (one row per active holder), written with TypeORM's schema API so it
 * honours the DataSource's `schema`.
 */
export class CreateProcoreRateLimits1764100000000 implements MigrationInterface {
  name = 'CreateProcoreRateLimits1764100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'procore_rate_limits',
        columns: [
          { name: 'holder_key', type: 'varchar', length: '400', isPrimary: true },
          { name: 'window_reset', type: 'timestamptz' },
          { name: 'remaining', type: 'integer' },
          { name: 'updated_at', type: 'timestamptz', default: 'now()' },
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('procore_rate_limits', true);
  }
}
