import { assertStorageReady } from './data-source.resolver.js';
import type { DataSource } from 'typeorm';
import { ProcoreOAuthStateEntity } from './procore-oauth-state.entity.js';
import {
  ProcoreOAuthStateStore,
  type ConsumedState,
  type ProcoreOAuthStateRecord,
} from './procore-oauth-state.store.js';

/** The default `ProcoreOAuthStateStore`: `procore_oauth_states` through TypeORM. */
export class TypeOrmProcoreOAuthStateStore extends ProcoreOAuthStateStore {
  constructor(private readonly resolveDataSource: () => DataSource) {
    super();
  }

  private get dataSource(): DataSource {
    return this.resolveDataSource();
  }

  /** Fails fast at bootstrap when the DataSource is missing or the migration was not run. */
  async onModuleInit(): Promise<void> {
    await assertStorageReady(this.dataSource, ProcoreOAuthStateEntity);
  }

  private get repository() {
    return this.dataSource.getRepository(ProcoreOAuthStateEntity);
  }

  async save(record: ProcoreOAuthStateRecord): Promise<void> {
    await this.repository.insert(record);
    // Abandoned flows would otherwise pile up; the expires_at index keeps this cheap.
    await this.repository
      .createQueryBuilder()
      .delete()
      .where('expires_at < :cutoff', { cutoff: new Date(Date.now() - 3_600_000) })
      .execute();
  }

  async consume(stateHash: string, ownerId: string | undefined): Promise<ConsumedState> {
    const query = this.repository
      .createQueryBuilder()
      .delete()
      .where('state_hash = :stateHash', { stateHash })
      .returning('*');
    if (ownerId !== undefined) query.andWhere('owner_id = :ownerId', { ownerId });
    const result = await query.execute();
    const row = (result.raw as Record<string, unknown>[])[0];
    if (row) {
      return {
        kind: 'consumed',
        record: {
          stateHash: row.state_hash as string,
          ownerId: row.owner_id as string,
          codeVerifier: (row.code_verifier as string | null) ?? null,
          returnTo: (row.return_to as string | null) ?? null,
          expiresAt: new Date(row.expires_at as string | Date),
        },
      };
    }
    const exists = ownerId !== undefined && (await this.repository.existsBy({ stateHash }));
    return exists ? { kind: 'owner_mismatch' } : { kind: 'unknown' };
  }
}
