import type { ProcoreConnectionStatus } from './procore-token.entity.js';

/** A stored connection as the store hands it out. Token fields hold ciphertext, never plaintext. */
export interface ProcoreTokenRecord {
  ownerId: string;
  environment: string;
  status: ProcoreConnectionStatus;
  accessToken: string | null;
  refreshToken: string | null;
  keyId: string | null;
  expiresAt: Date | null;
  tokenLifetimeSeconds: number | null;
  version: number;
  connectedAt: Date;
  lastRefreshedAt: Date | null;
  lastUsedAt: Date | null;
  failureCount: number;
  lastErrorCode: string | null;
  lastErrorAt: Date | null;
  revokedAt: Date | null;
}

/** Fields a write may change (the owner never changes). */
export type ProcoreTokenPatch = Partial<Omit<ProcoreTokenRecord, 'ownerId'>>;

/** A new or replaced connection (authorization callback, `importTokens`). */
export type ProcoreTokenInsert = Pick<
  ProcoreTokenRecord,
  'environment' | 'accessToken' | 'refreshToken' | 'keyId' | 'expiresAt' | 'tokenLifetimeSeconds'
>;

/** What `upsert` did: the stored connection, and the record it replaced (`null` for a new owner). */
export interface ProcoreTokenUpsert {
  record: ProcoreTokenRecord;
  replaced: ProcoreTokenRecord | null;
}

/** Writes made while holding an owner's lock; applied together when the locked work resolves. */
export interface LockedTokenWriter {
  update(patch: ProcoreTokenPatch): Promise<void>;
}

/** Which connections the scheduler claims for refresh. */
export interface ClaimOptions {
  /**
   * Connections whose access token expires within this many seconds; `undefined` means
   * min(15 minutes, half the token's lifetime), per connection (`tokenLifetimeSeconds`, 5400 when
   * unknown).
   */
  lookAheadSeconds: number | undefined;
  /** ... and last used (`lastUsedAt`) or connected (`connectedAt`) at or after this instant. */
  activeSince: Date;
  /** At most this many connections per claim. */
  limit: number;
  /** How long a claim keeps other instances off the claimed connections. */
  leaseSeconds: number;
}

/**
 * Persistence of Procore connections: one record per owner. The TypeORM implementation
 * (`TypeOrmProcoreTokenStore`, PostgreSQL) is the default; plug in your own with the module's
 * `storage: { tokens: MyStore }` setting, and prove it with `runProcoreTokenStoreContract()` from
 * `nestjs-procore-auth/testing`.
 *
 * Stores only move ciphertext: tokens are encrypted (bound to their owner) before a store sees
 * them, and records are handed back as they were written. What an implementation must guarantee,
 * across every instance of the app that shares it (the refresh protocol's exactly-once promise
 * rests on these, not on any particular database):
 *
 * - **Owner isolation.** Every read and write concerns exactly one owner id, compared exactly
 *   (case and whitespace matter). Nothing written for one owner is visible in another's record.
 * - **Copies out.** Records handed out are the caller's: changing one changes nothing stored.
 * - **Mutual exclusion per owner** (`withLock`, `upsert`). At most one `work` per owner runs at a
 *   time, across instances; a holder that dies (process crash, lost connection) releases the lock
 *   without anyone's help. Locks of different owners never wait for each other. Waiting is bounded
 *   by `lockTimeoutMs`, then `ProcoreLockTimeoutError`.
 * - **Read after lock.** The record given to `work` is read after the lock was granted, so it
 *   reflects every write of the previous holder (that is how a caller that waited sees that
 *   someone else refreshed, and does not spend the refresh token a second time).
 * - **All or nothing, durable before return.** Writes made through the writer are applied
 *   together, and only if `work` resolves; when `work` throws, none is applied and the error is
 *   rethrown. When `withLock` resolves, a `find` from any instance returns the written values:
 *   rotation is never lost, because the new tokens are stored before anyone is handed them.
 * - **Version-guarded writes** (`updateIfVersion`). Compare and set in one atomic step: of several
 *   writers expecting the same version, at most one succeeds.
 * - **Versions only move forward.** The `version` field is set by the caller's patches (one value
 *   per token generation); `upsert` bumps it itself, keeping the count across reconnects.
 * - **Claims do not overlap** (`claimDue`). Two instances claiming at once, or one claiming again
 *   within the lease, never get the same owner.
 * @publicApi
 */
export abstract class ProcoreTokenStore {
  /**
   * The owner's connection as last written, or null. On the hot path after a cache miss: keep it
   * one cheap lookup by owner id.
   */
  abstract find(ownerId: string): Promise<ProcoreTokenRecord | null>;

  /**
   * Creates the owner's connection or replaces its tokens, atomically and under the owner's lock
   * (so it never interleaves with a `withLock` of the same owner): `values` written, status
   * `active`, `connectedAt` now, `failureCount` 0, `lastErrorCode`/`lastErrorAt`/`revokedAt`
   * cleared, `version` 1 for a new owner or the previous version + 1. Returns the stored
   * connection and the record as it was just before (`null` for a new owner), so the replaced
   * grant can be revoked at Procore. Waits at most `lockTimeoutMs` for the lock, then throws
   * `ProcoreLockTimeoutError`.
   */
  abstract upsert(
    ownerId: string,
    values: ProcoreTokenInsert,
    lockTimeoutMs: number,
  ): Promise<ProcoreTokenUpsert>;

  /**
   * Compare and set: writes `patch` only if the owner's record still has `expectedVersion`, as one
   * atomic step; resolves `true` when it wrote, `false`
   * (writing nothing) otherwise. Used to save rotated tokens again after the locked write failed:
   * the old refresh token is consumed at Procore, so no one else can have refreshed, and the
   * version proves it.
   */
  abstract updateIfVersion(
    ownerId: string,
    expectedVersion: number,
    patch: ProcoreTokenPatch,
  ): Promise<boolean>;

  /**
   * Runs `work` holding the owner's exclusive lock, with the record read after the lock was
   * granted (`null` when the owner has none), and resolves to what `work` resolves to. Writes made
   * through `writer` are applied together only if `work` resolves, and are visible to every
   * `find` once `withLock` resolves; if `work` throws, nothing is applied and the error is
   * rethrown. Waits at most `lockTimeoutMs` for the lock, then throws `ProcoreLockTimeoutError`.
   * The refresh protocol holds the lock across one call to Procore.
   */
  abstract withLock<T>(
    ownerId: string,
    lockTimeoutMs: number,
    work: (record: ProcoreTokenRecord | null, writer: LockedTokenWriter) => Promise<T>,
  ): Promise<T>;

  /**
   * Records that the owners' connections were used at `at` (off the hot path, batched): sets
   * `lastUsedAt` where it is unset or older, never moves it back; unknown owners are ignored.
   */
  abstract touch(ownerIds: readonly string[], at: Date): Promise<void>;

  /**
   * For the scheduler: claims up to `limit` connections due for refresh — status `active`, a
   * refresh token, expiring within the look-ahead, used or connected since `activeSince` — the
   * soonest-expiring first when more are due, and returns their owner ids (in any order). A claimed owner is not returned again, to any
   * instance, for `leaseSeconds`: instances share the work without overlap. Skip what another
   * claim holds rather than wait for it.
   */
  abstract claimDue(options: ClaimOptions): Promise<string[]>;

  /**
   * Owner ids whose tokens were written with another key than `currentKeyId` (records without a
   * key id are skipped), in ascending owner id order, after `afterOwnerId` when given, at most
   * `limit` (keyset pagination for the re-encryption job).
   */
  abstract findWithOtherKey(
    currentKeyId: string,
    afterOwnerId: string | undefined,
    limit: number,
  ): Promise<string[]>;

  /**
   * Resolves when the store can answer; the health indicator calls it. The default looks up an
   * owner id the package never uses: override it when your store cannot take such an id (owner
   * ids in a uuid or numeric column) or has a cheaper check. (No real owner can hold the id:
   * owner ids cannot contain control characters.)
   */
  async ping(): Promise<void> {
    await this.find('\u0001health-check');
  }
}
