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

/**
 * Persistence of pending authorizations (the one-time `state` of the authorization-code flow).
 * The TypeORM implementation is the default; plug in your own with the module's
 * `storage: { states: MyStore }` setting and prove it with `runProcoreOAuthStateStoreContract()`
 * from `nestjs-procore-auth/testing`. Guarantees, across every instance sharing the store:
 *
 * - **One-time.** A saved state is consumed at most once, however many callbacks race for it.
 * - **Owner-bound.** Consuming with another owner's id consumes nothing and says `owner_mismatch`.
 * - **Bounded per owner.** At most `maxPendingStatesPerOwner` pending states per owner (the module
 *   option, default 10; inject `PROCORE_AUTH_OPTIONS` to read it), the newest kept.
 * - **Returned as saved.** Expiry is checked by the caller: a store may purge states long past
 *   `expiresAt`, but must not refuse to return an unexpired one.
 * @publicApi
 */
export abstract class ProcoreOAuthStateStore {
  /**
   * Saves a new pending authorization (and may purge expired ones). Keeps at most
   * `maxPendingStatesPerOwner` pending states per owner, the newest: older ones are deleted in
   * the same atomic step, also when the same owner authorizes concurrently.
   */
  abstract save(record: ProcoreOAuthStateRecord): Promise<void>;

  /**
   * Atomically takes the state out of the store: two callbacks with the same state can never both
   * get `consumed`. With `ownerId`, a state that belongs to someone else is left untouched and
   * reported as `owner_mismatch`; without it, the state is consumed whoever it belongs to. An
   * unknown or already consumed state is `unknown`.
   */
  abstract consume(stateHash: string, ownerId: string | undefined): Promise<ConsumedState>;
}
