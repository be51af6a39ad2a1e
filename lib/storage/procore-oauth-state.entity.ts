import { inspect, type InspectOptions } from 'node:util';
import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';
import { inspectRedacted, redactedCopy } from './redact.js';

/** Columns that never appear when an entity is logged, inspected or serialised. */
const SECRET_COLUMNS = ['codeVerifier'] as const;

/**
 * A pending authorization (`procore_oauth_states`). Only the SHA-256 of `state` is stored, so a
 * database dump cannot be used to complete someone's flow; a row is deleted when it is used.
 * Logged, inspected or serialised, an entity shows `'[redacted]'` instead of its code verifier.
 */
@Entity({ name: 'procore_oauth_states' })
@Index('IDX_procore_oauth_states_owner_id_created_at', ['ownerId', 'createdAt'])
export class ProcoreOAuthStateEntity {
  @PrimaryColumn({ name: 'state_hash', type: 'varchar', length: 64 })
  stateHash!: string;

  @Column({ name: 'owner_id', type: 'varchar', length: 255 })
  ownerId!: string;

  /** Encrypted PKCE code verifier, when PKCE is on. */
  @Column({ name: 'code_verifier', type: 'text', nullable: true })
  codeVerifier!: string | null;

  /** Same-origin path to redirect to after the callback. */
  @Column({ name: 'return_to', type: 'text', nullable: true })
  returnTo!: string | null;

  @Index('IDX_procore_oauth_states_expires_at')
  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  /** The columns, with the code verifier replaced by `'[redacted]'`. */
  toJSON(): Record<string, unknown> {
    return redactedCopy(this, SECRET_COLUMNS);
  }

  [inspect.custom](depth: number | null, options: InspectOptions): string {
    return inspectRedacted(this, SECRET_COLUMNS, depth, options, ProcoreOAuthStateEntity.name);
  }
}
