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
import { quoteTablePath } from './quote-table-path.js';

/** PostgreSQL's `lock_not_available`, raised when `lock_timeout` elapses. */
const LOCK_NOT_AVAILABLE = '55P03';
/** How long one `claimDue` call may go on retiring idle rows before it returns what it has. */
const CLAIM_RETIRE_BUDGET_MS = 2_000;
/** Owners per statement when recording last use. */
const TOUCH_CHUNK = 1_000;

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
         revoked_at = NULL, refresh_claimed_until = NULL, idle = false, updated_at = now()`,
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
    // In chunks: one statement never holds many row locks for long, whatever the backlog.
    for (let i = 0; i < ownerIds.length; i += TOUCH_CHUNK) {
      await this.touchChunk(ownerIds.slice(i, i + TOUCH_CHUNK), at);
    }
  }

  private async touchChunk(ownerIds: readonly string[], at: Date): Promise<void> {
    await this.dataSource.query(
      // A use brings an idle connection back under the scheduler's care.
      `UPDATE ${this.table} SET last_used_at = $2, idle = false
        WHERE owner_id = ANY($1) AND (last_used_at IS NULL OR last_used_at < $2)`,
      [ownerIds, at],
    );
  }

  /**
   * Claims due connections. Its cost follows the rows that are due, not the table: the partial
   * index `IDX_procore_oauth_tokens_refresh_due` holds only active, non-idle rows, so the idle
   * connections that accumulate forever (refresh tokens never expire; their expiries lie in the
   * past) are examined once — when this query finds them unused for the activity window it marks
   * them `idle`, which takes them out of the index — and never again until their next use.
   */
  async claimDue(options: ClaimOptions): Promise<string[]> {
    const owners: string[] = [];
    // Each statement examines at most `limit` rows. Rows that turn out idle leave the index, so
    // another statement finds the due rows behind them (idle rows expired long ago: they come
    // first). Bounded in time; the next tick goes on where this one stopped.
    const until = Date.now() + CLAIM_RETIRE_BUDGET_MS;
    while (owners.length < options.limit && Date.now() < until) {
      const { claimed, retired } = await this.claimRound(options, options.limit - owners.length);
      owners.push(...claimed);
      if (retired === 0) break;
    }
    return owners;
  }

  private async claimRound(
    options: ClaimOptions,
    limit: number,
  ): Promise<{ claimed: string[]; retired: number }> {
    const rows = (await this.dataSource.query(claimDueStatement(this.table), [
      options.lookAheadSeconds ?? null,
      options.activeSince,
      limit,
      options.leaseSeconds,
    ])) as { retired: number; claimed: string[] }[];
    return { claimed: rows[0]?.claimed ?? [], retired: rows[0]?.retired ?? 0 };
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
    return quoteTablePath(this.repository.metadata.tablePath);
  }
}

/**
 * One round of the scheduler's claim (exported for the scale benchmark and its plan test).
 * Parameters: $1 the fixed look-ahead in seconds, or NULL for min(15 min, half the token's
 * lifetime) per row (the first `expires_at` bound is the index range, the second the exact rule);
 * $2 the activity bound; $3 the batch size; $4 the lease in seconds. Rows found unused since $2
 * are marked idle (they leave the partial index); the others are claimed.
 */
export function claimDueStatement(table: string): string {
  return `WITH due AS (
         SELECT id, GREATEST(last_used_at, connected_at) >= $2 AS active
           FROM ${table}
          WHERE status = 'active' AND NOT idle AND refresh_token IS NOT NULL
            AND expires_at < now() + make_interval(secs => COALESCE($1::float8, 900))
            AND expires_at < now() + make_interval(secs =>
                  COALESCE($1::float8, LEAST(900, COALESCE(token_lifetime_seconds, 5400) / 2.0)))
            AND (refresh_claimed_until IS NULL OR refresh_claimed_until < now())
          ORDER BY expires_at
          LIMIT $3
          FOR UPDATE SKIP LOCKED),
       retired AS (
         UPDATE ${table} AS t SET idle = true
           FROM due WHERE t.id = due.id AND NOT due.active
         RETURNING t.id),
       claimed AS (
         UPDATE ${table} AS t SET refresh_claimed_until = now() + make_interval(secs => $4)
           FROM due WHERE t.id = due.id AND due.active
         RETURNING t.owner_id)
       SELECT (SELECT count(*) FROM retired)::int AS retired,
              ARRAY(SELECT owner_id FROM claimed) AS claimed`;
}
