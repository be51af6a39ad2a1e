import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * A pending authorization (`procore_oauth_states`). Only the SHA-256 of `state` is stored, so a
 * database dump cannot be used to complete someone's flow; a row is deleted when it is used.
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
}
