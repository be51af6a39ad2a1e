import { TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

const INDEX = 'IDX_procore_oauth_states_owner_id_created_at';

/**
 * Indexes `procore_oauth_states (owner_id, created_at)`: each new authorization deletes the
 * owner's pending states beyond `maxPendingStatesPerOwner`, newest first, through this index.
 * Written with TypeORM's schema API so it honours the DataSource's `schema`.
 */
export class IndexProcoreOAuthStatesOwner1764000000000 implements MigrationInterface {
  name = 'IndexProcoreOAuthStatesOwner1764000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex(
      'procore_oauth_states',
      new TableIndex({ name: INDEX, columnNames: ['owner_id', 'created_at'] }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex('procore_oauth_states', INDEX);
  }
}
