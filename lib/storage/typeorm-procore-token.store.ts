import { assertStorageReady } from './data-source.resolver.js';
import type { DataSource, EntityManager } from 'typeorm';
import { ProcoreLockTimeoutError } from '../errors/procore-lock-timeout.error.js';
import { redactDriverError } from './storage-errors.js';
import { ProcoreTokenEntity } from './procore-token.entity.js';
import { redactTokenRecord } from './redact.js';
import {
  ProcoreTokenStore,
  type ClaimOptions,
  type LockedTokenWriter,
  type ProcoreTokenInsert,
  type ProcoreTokenPatch,
  type ProcoreTokenRecord,
  type ProcoreTokenUpsert,
} from './procore-token.store.js';

/** PostgreSQL's `lock_not_available`, raised when `lock_timeout` elapses. */
const LOCK_NOT_AVAILABLE = '55P03';

function toRecord(entity: ProcoreTokenEntity): ProcoreTokenRecord {
  return redactTokenRecord({
    ownerId: entity.ownerId,
    environment: entity.environment,
    status: entity.status,
    accessToken: entity.accessToken,
    refreshToken: entity.refreshToken,
    keyId: entity.keyId,
    expiresAt: entity.expiresAt,
    tokenLifetimeSeconds: entity.tokenLifetimeSeconds,
    version: entity.version,
    connectedAt: entity.connectedAt,
    lastRefreshedAt: entity.lastRefreshedAt,
    lastUsedAt: entity.lastUsedAt,
    failureCount: entity.failureCount,
    lastErrorCode: entity.lastErrorCode,
    lastErrorAt: entity.lastErrorAt,
    revokedAt: entity.revokedAt,
  });
}

/** The default `ProcoreTokenStore`: TypeORM on PostgreSQL, on the DataSource the module was given. */
export class TypeOrmProcoreTokenStore extends ProcoreTokenStore {
  constructor(private readonly resolveDataSource: () => DataSource) {
    super();
  }

  private get dataSource(): DataSource {
    return this.resolveDataSource();
  }

  /** Fails fast at bootstrap when the DataSource is missing or the migration was not run. */
  async onModuleInit(): Promise<void> {
    await assertStorageReady(this.dataSource, ProcoreTokenEntity);
  }

  private get repository() {
    return this.dataSource.getRepository(ProcoreTokenEntity);
  }

  async find(ownerId: string): Promise<ProcoreTokenRecord | null> {
    const entity = await this.repository.findOneBy({ ownerId });
    return entity ? toRecord(entity) : null;
  }

  async upsert(
    ownerId: string,
    values: ProcoreTokenInsert,
    lockTimeoutMs: number,
  ): Promise<ProcoreTokenUpsert> {
    return this.lockTimeoutAs(ownerId, lockTimeoutMs, () =>
      this.upsertLocked(ownerId, values, lockTimeoutMs),
    );
  }

  private upsertLocked(
    ownerId: string,
    values: ProcoreTokenInsert,
    lockTimeoutMs: number,
  ): Promise<ProcoreTokenUpsert> {
    // The row as it was (locked, so a concurrent refresh cannot rotate it between this read and the
    // write), then one INSERT ... ON CONFLICT; the version keeps counting across reconnects (one
    // value per token generation).
    return this.dataSource.transaction(async (manager) => {
      await manager.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
      const previous = await manager
        .createQueryBuilder(ProcoreTokenEntity, 't')
        .setLock('pessimistic_write')
        .where('t.owner_id = :ownerId', { ownerId })
        .getOne();
      await manager.query(
        `INSERT INTO ${this.table} AS t
         (owner_id, environment, status, access_token, refresh_token, key_id, expires_at,
          token_lifetime_seconds, version, connected_at, failure_count)
       VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, 1, now(), 0)
       ON CONFLICT (owner_id) DO UPDATE SET
         environment = EXCLUDED.environment, status = 'active',
         access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token,
         key_id = EXCLUDED.key_id, expires_at = EXCLUDED.expires_at,
         token_lifetime_seconds = EXCLUDED.token_lifetime_seconds, version = t.version + 1,
         connected_at = now(), failure_count = 0, last_error_code = NULL, last_error_at = NULL,
         revoked_at = NULL, refresh_claimed_until = NULL, updated_at = now()`,
        [
          ownerId,
          values.environment,
          values.accessToken,
          values.refreshToken,
          values.keyId,
          values.expiresAt,
          values.tokenLifetimeSeconds,
        ],
      );
      const stored = await manager.findOneByOrFail(ProcoreTokenEntity, { ownerId });
      return { record: toRecord(stored), replaced: previous ? toRecord(previous) : null };
    });
  }

  async updateIfVersion(
    ownerId: string,
    expectedVersion: number,
    patch: ProcoreTokenPatch,
  ): Promise<boolean> {
    const result = await this.repository.update({ ownerId, version: expectedVersion }, patch);
    return result.affected === 1;
  }

  async withLock<T>(
    ownerId: string,
    lockTimeoutMs: number,
    work: (record: ProcoreTokenRecord | null, writer: LockedTokenWriter) => Promise<T>,
  ): Promise<T> {
    return this.lockTimeoutAs(ownerId, lockTimeoutMs, () =>
      this.dataSource.transaction(async (manager) => {
        // Bound the wait for another caller's refresh instead of queueing forever.
        await manager.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
        const entity = await manager
          .createQueryBuilder(ProcoreTokenEntity, 't')
          .setLock('pessimistic_write')
          .where('t.owner_id = :ownerId', { ownerId })
          .getOne();
        return work(entity ? toRecord(entity) : null, this.writer(manager, ownerId));
      }),
    );
  }

  /** PostgreSQL's `lock_timeout` firing becomes the package's `ProcoreLockTimeoutError`. */
  private async lockTimeoutAs<T>(
    ownerId: string,
    lockTimeoutMs: number,
    work: () => Promise<T>,
  ): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) {
        throw new ProcoreLockTimeoutError(ownerId, lockTimeoutMs, {
          cause: redactDriverError(error),
        });
      }
      throw error;
    }
  }

  async touch(ownerIds: readonly string[], at: Date): Promise<void> {
    if (ownerIds.length === 0) return;
    await this.dataSource.query(
      `UPDATE ${this.table} SET last_used_at = $2
        WHERE owner_id = ANY($1) AND (last_used_at IS NULL OR last_used_at < $2)`,
      [ownerIds, at],
    );
  }

  async claimDue(options: ClaimOptions): Promise<string[]> {
    const table = this.table;
    const result: unknown = await this.dataSource.query(
      // $1 is the fixed look-ahead in seconds, or NULL for min(15 min, half the token's lifetime)
      // per row; the first expires_at bound is the index range, the second the exact rule.
      `UPDATE ${table} SET refresh_claimed_until = now() + make_interval(secs => $4)
        WHERE id IN (
          SELECT id FROM ${table}
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
        RETURNING owner_id`,
      [options.lookAheadSeconds ?? null, options.activeSince, options.limit, options.leaseSeconds],
    );
    // The postgres driver answers an UPDATE ... RETURNING with [rows, affectedCount].
    const rows = (Array.isArray(result) && Array.isArray(result[0]) ? result[0] : result) as {
      owner_id: string;
    }[];
    return rows.map((row) => row.owner_id);
  }

  async findWithOtherKey(
    currentKeyId: string,
    afterOwnerId: string | undefined,
    limit: number,
  ): Promise<string[]> {
    const rows = await this.repository
      .createQueryBuilder('t')
      .select('t.owner_id', 'ownerId')
      .where('t.key_id IS NOT NULL AND t.key_id <> :currentKeyId', { currentKeyId })
      .andWhere('t.owner_id > :after', { after: afterOwnerId ?? '' })
      .orderBy('t.owner_id')
      .limit(limit)
      .getRawMany<{ ownerId: string }>();
    return rows.map((row) => row.ownerId);
  }

  private writer(manager: EntityManager, ownerId: string): LockedTokenWriter {
    return {
      update: async (patch: ProcoreTokenPatch) => {
        await manager.update(ProcoreTokenEntity, { ownerId }, patch);
      },
    };
  }

  /** The table name, schema-qualified when the DataSource has a schema, quoted for raw SQL. */
  private get table(): string {
    return this.repository.metadata.tablePath
      .split('.')
      .map((part) => `"${part.replace(/"/g, '""')}"`)
      .join('.');
  }
}
