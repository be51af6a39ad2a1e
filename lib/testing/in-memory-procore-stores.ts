import { Inject, Injectable, Optional } from '@nestjs/common';
import { ProcoreLockTimeoutError } from '../errors/procore-lock-timeout.error.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';
import {
  ProcoreOAuthStateStore,
  type ConsumedState,
  type ProcoreOAuthStateRecord,
} from '../storage/procore-oauth-state.store.js';
import { redactTokenRecord } from '../storage/redact.js';
import {
  ProcoreTokenStore,
  type ClaimOptions,
  type LockedTokenWriter,
  type ProcoreTokenInsert,
  type ProcoreTokenPatch,
  type ProcoreTokenRecord,
  type ProcoreTokenUpsert,
} from '../storage/procore-token.store.js';

/** A copy whose Date fields are copies too (records and patches hold no deeper objects). */
function copy<T extends object>(value: T): T {
  const result: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    result[key] = field instanceof Date ? new Date(field.getTime()) : field;
  }
  return result as T;
}
/** A copy to hand out, printing `[redacted]` for its tokens like the TypeORM store's records. */
const handOut = (record: ProcoreTokenRecord): ProcoreTokenRecord => redactTokenRecord(copy(record));

/**
 * One FIFO lock per owner, with a bounded wait. A waiter that gives up keeps its place in the
 * queue and passes the lock on as soon as it gets it, so the queue never stalls.
 */
class OwnerLocks {
  private readonly tails = new Map<string, Promise<void>>();

  acquire(ownerId: string, timeoutMs: number): Promise<() => void> {
    const previous = this.tails.get(ownerId) ?? Promise.resolve();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => held);
    this.tails.set(ownerId, tail);
    void tail.then(() => {
      if (this.tails.get(ownerId) === tail) this.tails.delete(ownerId);
    });
    return new Promise((resolve, reject) => {
      let gaveUp = false;
      const timer = setTimeout(
        () => {
          gaveUp = true;
          reject(new ProcoreLockTimeoutError(ownerId, timeoutMs));
        },
        Math.max(1, timeoutMs),
      );
      void previous.then(() => {
        clearTimeout(timer);
        if (gaveUp) release();
        else resolve(release);
      });
    });
  }
}

/**
 * A `ProcoreTokenStore` in this process's memory: for unit tests of an app (no database), and a
 * reference implementation of the store contract (it passes `runProcoreTokenStoreContract()`).
 * Not for production: nothing survives a restart and instances do not share it.
 *
 * ```ts
 * ProcoreAuthModule.forRoot({ ...options, storage: { tokens: InMemoryProcoreTokenStore, states: InMemoryProcoreOAuthStateStore } })
 * ```
 * @publicApi
 */
@Injectable()
export class InMemoryProcoreTokenStore extends ProcoreTokenStore {
  private readonly records = new Map<string, ProcoreTokenRecord>();
  private readonly claims = new Map<string, number>();
  private readonly locks = new OwnerLocks();

  find(ownerId: string): Promise<ProcoreTokenRecord | null> {
    const record = this.records.get(ownerId);
    return Promise.resolve(record ? handOut(record) : null);
  }

  async upsert(
    ownerId: string,
    values: ProcoreTokenInsert,
    lockTimeoutMs: number,
  ): Promise<ProcoreTokenUpsert> {
    const release = await this.locks.acquire(ownerId, lockTimeoutMs);
    try {
      const replaced = this.records.get(ownerId) ?? null;
      const record: ProcoreTokenRecord = {
        ownerId,
        lastRefreshedAt: null,
        lastUsedAt: null,
        ...replaced,
        ...copy(values),
        status: 'active',
        version: replaced ? replaced.version + 1 : 1,
        connectedAt: new Date(),
        failureCount: 0,
        lastErrorCode: null,
        lastErrorAt: null,
        revokedAt: null,
      };
      this.records.set(ownerId, record);
      this.claims.delete(ownerId);
      return { record: handOut(record), replaced: replaced && handOut(replaced) };
    } finally {
      release();
    }
  }

  updateIfVersion(
    ownerId: string,
    expectedVersion: number,
    patch: ProcoreTokenPatch,
  ): Promise<boolean> {
    const record = this.records.get(ownerId);
    if (!record || record.version !== expectedVersion) return Promise.resolve(false);
    this.records.set(ownerId, { ...record, ...copy(patch), ownerId });
    return Promise.resolve(true);
  }

  async withLock<T>(
    ownerId: string,
    lockTimeoutMs: number,
    work: (record: ProcoreTokenRecord | null, writer: LockedTokenWriter) => Promise<T>,
  ): Promise<T> {
    const release = await this.locks.acquire(ownerId, lockTimeoutMs);
    try {
      const patches: ProcoreTokenPatch[] = [];
      const writer: LockedTokenWriter = {
        update: (patch) => {
          patches.push(copy(patch));
          return Promise.resolve();
        },
      };
      const current = this.records.get(ownerId);
      const result = await work(current ? handOut(current) : null, writer);
      // Applied only now, all together: a throwing `work` leaves the record untouched.
      const latest = this.records.get(ownerId);
      if (latest) this.records.set(ownerId, Object.assign({ ...latest }, ...patches, { ownerId }));
      return result;
    } finally {
      release();
    }
  }

  touch(ownerIds: readonly string[], at: Date): Promise<void> {
    for (const ownerId of ownerIds) {
      const record = this.records.get(ownerId);
      if (record && (!record.lastUsedAt || record.lastUsedAt < at)) {
        this.records.set(ownerId, { ...record, lastUsedAt: new Date(at) });
      }
    }
    return Promise.resolve();
  }

  claimDue(options: ClaimOptions): Promise<string[]> {
    const now = Date.now();
    const due = [...this.records.values()]
      .filter((record) => {
        if (record.status !== 'active' || !record.refreshToken || !record.expiresAt) return false;
        const lookAhead =
          options.lookAheadSeconds ?? Math.min(900, (record.tokenLifetimeSeconds ?? 5400) / 2);
        const lastActive = Math.max(
          record.connectedAt.getTime(),
          record.lastUsedAt?.getTime() ?? -Infinity,
        );
        return (
          record.expiresAt.getTime() < now + lookAhead * 1000 &&
          lastActive >= options.activeSince.getTime() &&
          (this.claims.get(record.ownerId) ?? 0) <= now
        );
      })
      .sort((a, b) => (a.expiresAt?.getTime() ?? 0) - (b.expiresAt?.getTime() ?? 0))
      .slice(0, options.limit)
      .map((record) => record.ownerId);
    for (const ownerId of due) this.claims.set(ownerId, now + options.leaseSeconds * 1000);
    return Promise.resolve(due);
  }

  findWithOtherKey(
    currentKeyId: string,
    afterOwnerId: string | undefined,
    limit: number,
  ): Promise<string[]> {
    const after = afterOwnerId ?? '';
    return Promise.resolve(
      [...this.records.values()]
        .filter((r) => r.keyId !== null && r.keyId !== currentKeyId && r.ownerId > after)
        .map((r) => r.ownerId)
        .sort()
        .slice(0, limit),
    );
  }
}

/**
 * A `ProcoreOAuthStateStore` in this process's memory (tests; it passes
 * `runProcoreOAuthStateStoreContract()`). Keeps `maxPendingStatesPerOwner` states per owner: the
 * module's option when Nest instantiates it, else the constructor's argument (default 10).
 * @publicApi
 */
@Injectable()
export class InMemoryProcoreOAuthStateStore extends ProcoreOAuthStateStore {
  private readonly states = new Map<string, ProcoreOAuthStateRecord & { savedAt: number }>();
  private saves = 0;
  private readonly maxPendingPerOwner: number;

  constructor(
    @Optional()
    @Inject(PROCORE_AUTH_OPTIONS)
    options?: { maxPendingStatesPerOwner?: number } | number,
  ) {
    super();
    this.maxPendingPerOwner =
      (typeof options === 'number' ? options : options?.maxPendingStatesPerOwner) ?? 10;
  }

  save(record: ProcoreOAuthStateRecord): Promise<void> {
    this.states.set(record.stateHash, { ...copy(record), savedAt: ++this.saves });
    const owned = [...this.states.values()]
      .filter((state) => state.ownerId === record.ownerId)
      .sort((a, b) => b.savedAt - a.savedAt);
    for (const old of owned.slice(this.maxPendingPerOwner)) this.states.delete(old.stateHash);
    const cutoff = Date.now() - 3_600_000;
    for (const state of this.states.values()) {
      if (state.expiresAt.getTime() < cutoff) this.states.delete(state.stateHash);
    }
    return Promise.resolve();
  }

  consume(stateHash: string, ownerId: string | undefined): Promise<ConsumedState> {
    const state = this.states.get(stateHash);
    if (!state) return Promise.resolve({ kind: 'unknown' });
    if (ownerId !== undefined && state.ownerId !== ownerId) {
      return Promise.resolve({ kind: 'owner_mismatch' });
    }
    this.states.delete(stateHash);
    const { savedAt: _savedAt, ...record } = state;
    return Promise.resolve({ kind: 'consumed', record });
  }
}
