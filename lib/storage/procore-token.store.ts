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

/** What `upsert` did: the stored connection, and the row it replaced (`null` for a new owner). */
export interface ProcoreTokenUpsert {
  record: ProcoreTokenRecord;
  replaced: ProcoreTokenRecord | null;
}

/** Writes inside the transaction that holds a connection's row lock. */
export interface LockedTokenWriter {
  update(patch: ProcoreTokenPatch): Promise<void>;
}

/** A connection the scheduler claimed for refresh. */
export interface ClaimOptions {
  /**
   * Connections whose access token expires within this many seconds; `undefined` means
   * min(15 minutes, half the token's lifetime), per connection.
   */
  lookAheadSeconds: number | undefined;
  /** ... and used or connected after this instant. */
  activeSince: Date;
  limit: number;
  /** How long a claim keeps other instances off the claimed connections. */
  leaseSeconds: number;
}

/**
 * Persistence of Procore connections. The TypeORM implementation is the default; bind your own
 * with `{ provide: ProcoreTokenStore, useClass: MyStore }` in a module that the ProcoreAuthModule
 * can see. Implementations only move ciphertext: encryption happens before the store is called.
 *
 * The refresh protocol relies on `withLock`: it must run `work` in a transaction holding an
 * exclusive lock on the owner's row, read the row after the lock is taken, and commit the writes
 * made through the writer only when `work` resolves.
 */
export abstract class ProcoreTokenStore {
  /** The owner's connection, or null. One indexed read. */
  abstract find(ownerId: string): Promise<ProcoreTokenRecord | null>;

  /**
   * Creates the owner's connection or replaces its tokens (status `active`, failures cleared,
   * version bumped), atomically. Returns the stored connection and, when one existed, the row as
   * it was just before (so the replaced grant can be revoked at Procore). Waits at most
   * `lockTimeoutMs` for a refresh of the same owner (then throws `ProcoreLockTimeoutError`).
   */
  abstract upsert(
    ownerId: string,
    values: ProcoreTokenInsert,
    lockTimeoutMs: number,
  ): Promise<ProcoreTokenUpsert>;

  /**
   * Writes `patch` only if the owner's row still has `expectedVersion`, in one atomic statement
   * outside any other transaction; resolves `true` when it wrote. Used to save rotated tokens
   * again after the transaction that held the row lock failed (the old refresh token is consumed
   * at Procore, so no one else can have refreshed: the version guard proves it).
   */
  abstract updateIfVersion(
    ownerId: string,
    expectedVersion: number,
    patch: ProcoreTokenPatch,
  ): Promise<boolean>;

  /**
   * Runs `work` with the owner's row locked (`null` when there is no row), waiting at most
   * `lockTimeoutMs` for the lock (then throws `ProcoreLockTimeoutError`).
   */
  abstract withLock<T>(
    ownerId: string,
    lockTimeoutMs: number,
    work: (record: ProcoreTokenRecord | null, writer: LockedTokenWriter) => Promise<T>,
  ): Promise<T>;

  /** Records use of connections (off the hot path, batched). */
  abstract touch(ownerIds: readonly string[], at: Date): Promise<void>;

  /**
   * Claims up to `limit` active connections due for refresh and not claimed by another instance:
   * selects them with `FOR UPDATE SKIP LOCKED` and sets a short lease, in one statement, so
   * instances share the work without overlap. Returns the claimed owner ids (scheduler).
   */
  abstract claimDue(options: ClaimOptions): Promise<string[]>;

  /**
   * Owner ids whose tokens were written with another key than `currentKeyId`, ordered by owner id
   * and starting after `afterOwnerId` (keyset pagination for the re-encryption job).
   */
  abstract findWithOtherKey(
    currentKeyId: string,
    afterOwnerId: string | undefined,
    limit: number,
  ): Promise<string[]>;
}
