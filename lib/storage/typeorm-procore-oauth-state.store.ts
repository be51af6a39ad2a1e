import { assertStorageReady } from './data-source.resolver.js';
import type { DataSource } from 'typeorm';
import { ProcoreOAuthStateEntity } from './procore-oauth-state.entity.js';
import {
  ProcoreOAuthStateStore,
  type ConsumedState,
  type ProcoreOAuthStateRecord,
} from './procore-oauth-state.store.js';
import { quoteTablePath } from './quote-table-path.js';

/** Expired states deleted per save, at most. */
const PURGE_BATCH = 500;

/**
 * Key space of the transaction-level advisory lock that serialises one owner's new authorizations
 * (two-int form, so it cannot collide with an app's single-bigint advisory locks).
 */
const OWNER_LOCK_CLASS = 0x50434f41; // "PCOA"

/** The default `ProcoreOAuthStateStore`: `procore_oauth_states` through TypeORM. */
export class TypeOrmProcoreOAuthStateStore extends ProcoreOAuthStateStore {
  /**
   * @param maxPendingPerOwner pending states kept per owner (`maxPendingStatesPerOwner`, default
   *   10): saving one more deletes the owner's oldest.
   */
  constructor(
    private readonly resolveDataSource: () => DataSource,
    private readonly maxPendingPerOwner = 10,
  ) {
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
    await this.dataSource.transaction(async (manager) => {
      // Without the lock, two concurrent authorizations of one owner would each keep N - 1 others
      // from their own snapshot and leave N + 1 rows.
      await manager.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
        OWNER_LOCK_CLASS,
        record.ownerId,
      ]);
      await manager
        .createQueryBuilder()
        .insert()
        .into(ProcoreOAuthStateEntity)
        // The time the lock was granted, not the transaction start: "newest" is the order of saves.
        .values({ ...record, createdAt: () => 'clock_timestamp()' })
        .execute();
      // The new state always survives; the owner's oldest beyond the cap go.
      await manager.query(
        `DELETE FROM ${this.table} WHERE state_hash IN (
           SELECT state_hash FROM ${this.table} WHERE owner_id = $1 AND state_hash <> $2
           ORDER BY created_at DESC, state_hash DESC OFFSET $3)`,
        [record.ownerId, record.stateHash, this.maxPendingPerOwner - 1],
      );
    });
    // Abandoned flows would otherwise pile up. At most PURGE_BATCH per save (each save adds one),
    // through the expires_at index: a backlog is worked off without one long, row-locking delete.
    // SKIP LOCKED: concurrent saves delete disjoint rows, so an authorization never waits for
    // another's clean-up (nor deadlocks with it, as two overlapping deletes can).
    await this.dataSource.query(
      `DELETE FROM ${this.table} WHERE state_hash IN (
         SELECT state_hash FROM ${this.table} WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
            FOR UPDATE SKIP LOCKED)`,
      [new Date(Date.now() - 3_600_000), PURGE_BATCH],
    );
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

  /** The table name, schema-qualified when the DataSource has a schema, quoted for raw SQL. */
  private get table(): string {
    return quoteTablePath(this.repository.metadata.tablePath);
  }
}
