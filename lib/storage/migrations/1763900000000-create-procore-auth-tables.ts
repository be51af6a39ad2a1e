import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

const timestamp = (name: string, nullable = true) => ({
  name,
  type: 'timestamptz',
  isNullable: nullable,
});

/**
 * Creates `procore_oauth_tokens` and `procore_oauth_states`. Written with TypeORM's schema API so
 * it honours the DataSource's `schema`. `synchronize` is never needed.
 */
export class CreateProcoreAuthTables1763900000000 implements MigrationInterface {
  name = 'CreateProcoreAuthTables1763900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'procore_oauth_tokens',
        columns: [
          {
            name: 'id',
            type: 'uuid',
            isPrimary: true,
            isGenerated: true,
            generationStrategy: 'uuid',
          },
          { name: 'owner_id', type: 'varchar', length: '255' },
          { name: 'environment', type: 'varchar', length: '32' },
          { name: 'status', type: 'varchar', length: '32', default: "'active'" },
          { name: 'access_token', type: 'text', isNullable: true },
          { name: 'refresh_token', type: 'text', isNullable: true },
          { name: 'key_id', type: 'varchar', length: '64', isNullable: true },
          timestamp('expires_at'),
          { name: 'token_lifetime_seconds', type: 'integer', isNullable: true },
          { name: 'version', type: 'integer', default: 1 },
          timestamp('connected_at', false),
          timestamp('last_refreshed_at'),
          timestamp('last_used_at'),
          { name: 'failure_count', type: 'integer', default: 0 },
          { name: 'last_error_code', type: 'varchar', length: '64', isNullable: true },
          timestamp('last_error_at'),
          timestamp('revoked_at'),
          timestamp('refresh_claimed_until'),
          { name: 'created_at', type: 'timestamptz', default: 'now()' },
          { name: 'updated_at', type: 'timestamptz', default: 'now()' },
        ],
        checks: [
          {
            name: 'CHK_procore_oauth_tokens_status',
            expression: `"status" IN ('active', 'reauthorization_required', 'revoked')`,
          },
        ],
      }),
    );
    await queryRunner.createIndex(
      'procore_oauth_tokens',
      new TableIndex({
        name: 'UQ_procore_oauth_tokens_owner_id',
        columnNames: ['owner_id'],
        isUnique: true,
      }),
    );
    await queryRunner.createIndex(
      'procore_oauth_tokens',
      new TableIndex({ name: 'IDX_procore_oauth_tokens_expires_at', columnNames: ['expires_at'] }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'procore_oauth_states',
        columns: [
          { name: 'state_hash', type: 'varchar', length: '64', isPrimary: true },
          { name: 'owner_id', type: 'varchar', length: '255' },
          { name: 'code_verifier', type: 'text', isNullable: true },
          { name: 'return_to', type: 'text', isNullable: true },
          timestamp('expires_at', false),
          { name: 'created_at', type: 'timestamptz', default: 'now()' },
        ],
      }),
    );
    await queryRunner.createIndex(
      'procore_oauth_states',
      new TableIndex({ name: 'IDX_procore_oauth_states_expires_at', columnNames: ['expires_at'] }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('procore_oauth_states');
    await queryRunner.dropTable('procore_oauth_tokens');
  }
}
