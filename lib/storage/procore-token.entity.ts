import { inspect, type InspectOptions } from 'node:util';
import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';
import { inspectRedacted, redactedCopy } from './redact.js';

/** Columns that never appear when an entity is logged, inspected or serialised. */
const SECRET_COLUMNS = ['accessToken', 'refreshToken'] as const;

/** Lifecycle of a stored connection. */
export type ProcoreConnectionStatus = 'active' | 'reauthorization_required' | 'revoked';

/**
 * One Procore connection per owner (`procore_oauth_tokens`). Tokens are stored encrypted
 * (AES-256-GCM envelopes naming their key); rows are never deleted by the library, so a
 * connection keeps its history through reauthorization and revocation. Logged, inspected or
 * serialised (`JSON.stringify`), an entity shows `'[redacted]'` instead of its token values.
 */
@Entity({ name: 'procore_oauth_tokens' })
// What the scheduler claims from: active rows it keeps fresh, by expiry (idle rows stay out).
@Index('IDX_procore_oauth_tokens_refresh_due', ['expiresAt'], {
  where: `status = 'active' AND NOT idle AND refresh_token IS NOT NULL`,
})
// Counting the connections that need reauthorization (health, metrics) reads only those.
@Index('IDX_procore_oauth_tokens_reauthorization', ['ownerId'], {
  where: `status = 'reauthorization_required'`,
})
/** @publicApi */
export class ProcoreTokenEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Index('UQ_procore_oauth_tokens_owner_id', { unique: true })
  @Column({ name: 'owner_id', type: 'varchar', length: 255 })
  ownerId!: string;

  /** Procore environment the tokens belong to; they are never sent to another environment's hosts. */
  @Column({ type: 'varchar', length: 32 })
  environment!: string;

  @Column({ type: 'varchar', length: 32, default: 'active' })
  status!: ProcoreConnectionStatus;

  /** Encrypted access token; null once revoked. */
  @Column({ name: 'access_token', type: 'text', nullable: true })
  accessToken!: string | null;

  /** Encrypted refresh token; null once revoked or for connections imported without one. */
  @Column({ name: 'refresh_token', type: 'text', nullable: true })
  refreshToken!: string | null;

  /** Id of the key both token values were encrypted with (for key rotation). */
  @Column({ name: 'key_id', type: 'varchar', length: 64, nullable: true })
  keyId!: string | null;

  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt!: Date | null;

  /** `expires_in` of the current access token, for "refresh when half the lifetime is left". */
  @Column({ name: 'token_lifetime_seconds', type: 'integer', nullable: true })
  tokenLifetimeSeconds!: number | null;

  /** Bumped on every write of new tokens: one value per token generation. */
  @Column({ type: 'integer', default: 1 })
  version!: number;

  @Column({ name: 'connected_at', type: 'timestamptz' })
  connectedAt!: Date;

  @Column({ name: 'last_refreshed_at', type: 'timestamptz', nullable: true })
  lastRefreshedAt!: Date | null;

  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true })
  lastUsedAt!: Date | null;

  @Column({ name: 'failure_count', type: 'integer', default: 0 })
  failureCount!: number;

  @Column({ name: 'last_error_code', type: 'varchar', length: 64, nullable: true })
  lastErrorCode!: string | null;

  @Column({ name: 'last_error_at', type: 'timestamptz', nullable: true })
  lastErrorAt!: Date | null;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;

  /**
   * Unused for longer than the scheduler's activity window (`scheduler.activeWithinDays`): the
   * scheduler stopped keeping it fresh and it left the claim index. A request still refreshes it
   * when needed; its next recorded use clears the flag.
   */
  @Column({ type: 'boolean', default: false })
  idle!: boolean;

  /** Lease of the scheduler instance that claimed this connection for refresh. */
  @Column({ name: 'refresh_claimed_until', type: 'timestamptz', nullable: true })
  refreshClaimedUntil!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;

  /** The columns, with the token values replaced by `'[redacted]'`. */
  toJSON(): Record<string, unknown> {
    return redactedCopy(this, SECRET_COLUMNS);
  }

  [inspect.custom](depth: number | null, options: InspectOptions): string {
    return inspectRedacted(this, SECRET_COLUMNS, depth, options, ProcoreTokenEntity.name);
  }
}
