/** A pending authorization, keyed by the SHA-256 of its `state`. */
export interface ProcoreOAuthStateRecord {
  stateHash: string;
  ownerId: string;
  /** Encrypted PKCE verifier, or null. */
  codeVerifier: string | null;
  returnTo: string | null;
  expiresAt: Date;
}

/** Outcome of consuming a state: it is gone afterwards, whatever the outcome. */
export type ConsumedState =
  | { kind: 'consumed'; record: ProcoreOAuthStateRecord }
  | { kind: 'unknown' }
  | { kind: 'owner_mismatch' };

/** Persistence of pending authorizations. The TypeORM implementation is the default. */
export abstract class ProcoreOAuthStateStore {
  /**
   * Saves a new pending authorization (and may purge expired ones). Keeps at most
   * `maxPendingStatesPerOwner` pending states per owner, the newest: older ones are deleted in
   * the same operation, also when the same owner authorizes concurrently.
   */
  abstract save(record: ProcoreOAuthStateRecord): Promise<void>;

  /**
   * Atomically takes the state out of the store: two callbacks with the same state can never both
   * succeed. With `ownerId`, a state that belongs to someone else is left untouched and reported
   * as `owner_mismatch`.
   */
  abstract consume(stateHash: string, ownerId: string | undefined): Promise<ConsumedState>;
}
