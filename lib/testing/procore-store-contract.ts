import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ProcoreLockTimeoutError } from '../errors/procore-lock-timeout.error.js';
import type { ProcoreOAuthStateStore } from '../storage/procore-oauth-state.store.js';
import type {
  ProcoreTokenInsert,
  ProcoreTokenRecord,
  ProcoreTokenStore,
} from '../storage/procore-token.store.js';

/**
 * The test functions the contract suites register their tests with, called as
 * `describe(name, body)` and `it(name, async () => ...)`. Assertions use `node:assert`, so no
 * runner's `expect` is needed.
 */
export interface ProcoreContractTestFunctions {
  describe: (name: string, body: () => void) => unknown;
  it: (name: string, test: () => Promise<void>) => unknown;
}

/** Options of `runProcoreTokenStoreContract()`. */
export interface ProcoreTokenStoreContractOptions extends Partial<ProcoreContractTestFunctions> {
  /** Name of the `describe` block. Default `'ProcoreTokenStore contract'`. */
  name?: string;
  /**
   * A store on the storage under test. Called at least once per test, and once more where a test
   * plays a second app instance: every call must reach the same storage (return the same
   * instance, or a new one on the same database). Tests use fresh random owner ids, so the
   * storage need not be emptied between tests; a storage used only by the suite is best (the
   * scheduler's `claimDue` sees every owner).
   */
  createStore: () => ProcoreTokenStore | Promise<ProcoreTokenStore>;
  /** Called with each store `createStore` returned, after the test (close connections here). */
  releaseStore?: (store: ProcoreTokenStore) => void | Promise<void>;
  /** The lock wait used where a test expects `ProcoreLockTimeoutError`, in ms. Default `300`. */
  lockTimeoutMs?: number;
}

/** Options of `runProcoreOAuthStateStoreContract()`. */
export interface ProcoreOAuthStateStoreContractOptions extends Partial<ProcoreContractTestFunctions> {
  /** Name of the `describe` block. Default `'ProcoreOAuthStateStore contract'`. */
  name?: string;
  /** A store on the storage under test (same rules as for the token store's `createStore`). */
  createStore: () => ProcoreOAuthStateStore | Promise<ProcoreOAuthStateStore>;
  releaseStore?: (store: ProcoreOAuthStateStore) => void | Promise<void>;
  /** The `maxPendingStatesPerOwner` the store was built with. Default `10`. */
  maxPendingStatesPerOwner?: number;
}

/** The runner's `describe`/`it`: the given ones, else the globals (Jest's). */
function testFunctions(
  options: Partial<ProcoreContractTestFunctions>,
): ProcoreContractTestFunctions {
  const globals = globalThis as unknown as Partial<ProcoreContractTestFunctions>;
  const describe = options.describe ?? globals.describe;
  const it = options.it ?? globals.it;
  if (typeof describe !== 'function' || typeof it !== 'function') {
    throw new TypeError(
      "The Procore store contract needs describe() and it(): call it from a test file whose runner provides them as globals (Jest does), or pass your runner's: runProcoreTokenStoreContract({ describe, it, createStore }).",
    );
  }
  return { describe, it };
}

const sorted = (ids: string[]) => [...ids].sort();
const id = (prefix = 'o') => `${prefix}${randomBytes(8).toString('hex')}`;
const HOUR = 3_600_000;

/** What the callback flow stores: opaque ciphertext, as the module hands it to stores. */
function insert(overrides: Partial<ProcoreTokenInsert> = {}): ProcoreTokenInsert {
  return {
    environment: 'production',
    accessToken: `v1:k1:${randomBytes(12).toString('base64url')}`,
    refreshToken: `v1:k1:${randomBytes(12).toString('base64url')}`,
    keyId: 'k1',
    expiresAt: new Date(Date.now() + 1.5 * HOUR),
    tokenLifetimeSeconds: 5400,
    ...overrides,
  };
}

/** Resolves when `promise` settles, fails the test if it does not within `ms` (a hung store). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new assert.AssertionError({ message: `${what}: still waiting after ${ms} ms` })),
      ms,
    );
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** A strictly increasing instant far in the future, so `claimDue` tests see only their owners. */
let lastMarker = 0;
function activityMarker(): Date {
  lastMarker = Math.max(lastMarker + 1000, Date.UTC(2200, 0, 1) + Date.now());
  return new Date(lastMarker);
}

/**
 * Registers the tests every `ProcoreTokenStore` must pass — owner isolation, exclusive locks read
 * after they are granted, all-or-nothing writes visible once `withLock` resolves, bounded lock
 * waits, version-guarded writes, one refresh among concurrent lockers, non-overlapping claims —
 * in a `describe` block. Call it at the top level of a test file:
 *
 * ```ts
 * import { runProcoreTokenStoreContract } from 'nestjs-procore-auth/testing';
 * runProcoreTokenStoreContract({ createStore: () => new RedisProcoreTokenStore(redis) });
 * ```
 *
 * It uses the runner's global `describe`/`it` (Jest's) unless you pass your runner's:
 * `runProcoreTokenStoreContract({ describe, it, createStore })`.
 * @publicApi
 */
export function runProcoreTokenStoreContract(options: ProcoreTokenStoreContractOptions): void {
  const { describe, it } = testFunctions(options);
  const lockTimeoutMs = options.lockTimeoutMs ?? 300;
  // Long enough for any sane store, short enough to fail instead of hanging the runner.
  const hang = Math.max(5_000, lockTimeoutMs * 10);

  /** Runs a test with stores from `createStore`, releasing every one of them afterwards. */
  const test = (name: string, body: (store: () => Promise<ProcoreTokenStore>) => Promise<void>) =>
    it(name, async () => {
      const created: ProcoreTokenStore[] = [];
      const store = async () => {
        const next = await options.createStore();
        created.push(next);
        return next;
      };
      try {
        await body(store);
      } finally {
        for (const each of new Set(created)) await options.releaseStore?.(each);
      }
    });

  describe(options.name ?? 'ProcoreTokenStore contract', () => {
    describe('records and owner isolation', () => {
      test('find answers null for an owner that never connected', async (store) => {
        assert.equal(await (await store()).find(id()), null);
      });

      test('upsert creates an active connection, version 1, and returns it as stored', async (store) => {
        const s = await store();
        const owner = id();
        const values = insert();
        const before = Date.now();
        const { record, replaced } = await s.upsert(owner, values, lockTimeoutMs);
        assert.equal(replaced, null);
        for (const found of [record, await s.find(owner)]) {
          assert.ok(found);
          assert.equal(found.ownerId, owner);
          assert.equal(found.status, 'active');
          assert.equal(found.version, 1);
          assert.equal(found.failureCount, 0);
          assert.equal(found.accessToken, values.accessToken);
          assert.equal(found.refreshToken, values.refreshToken);
          assert.equal(found.keyId, values.keyId);
          assert.equal(found.environment, values.environment);
          assert.equal(found.tokenLifetimeSeconds, values.tokenLifetimeSeconds);
          assert.equal(found.expiresAt?.getTime(), values.expiresAt?.getTime());
          assert.ok(found.connectedAt.getTime() >= before - 60_000, 'connectedAt is about now');
          assert.equal(found.revokedAt, null);
          assert.equal(found.lastErrorCode, null);
        }
      });

      test('upsert of a connected owner replaces its tokens, bumps the version, clears failures and returns what it replaced', async (store) => {
        const s = await store();
        const owner = id();
        const first = await s.upsert(owner, insert(), lockTimeoutMs);
        await s.withLock(owner, lockTimeoutMs, async (_record, writer) => {
          await writer.update({
            status: 'reauthorization_required',
            failureCount: 3,
            lastErrorCode: 'invalid_grant',
            lastErrorAt: new Date(),
            version: first.record.version + 1,
          });
        });
        const values = insert({ keyId: 'k2' });
        const { record, replaced } = await s.upsert(owner, values, lockTimeoutMs);
        assert.equal(replaced?.version, first.record.version + 1);
        assert.equal(replaced?.status, 'reauthorization_required');
        assert.equal(replaced?.refreshToken, first.record.refreshToken);
        assert.equal(record.version, first.record.version + 2);
        assert.equal(record.status, 'active');
        assert.equal(record.failureCount, 0);
        assert.equal(record.lastErrorCode, null);
        assert.equal(record.refreshToken, values.refreshToken);
        assert.deepEqual(await s.find(owner), record);
      });

      test('hands out copies: changing a returned record changes nothing stored', async (store) => {
        const s = await store();
        const owner = id();
        const { record } = await s.upsert(owner, insert(), lockTimeoutMs);
        const stored = await s.find(owner);
        for (const handedOut of [record, stored]) {
          assert.ok(handedOut);
          handedOut.accessToken = 'v1:k1:mutated';
          handedOut.version = 99;
          handedOut.expiresAt?.setTime(0);
        }
        await s.withLock(owner, lockTimeoutMs, async (locked) => {
          assert.ok(locked);
          locked.status = 'revoked';
        });
        const again = await s.find(owner);
        assert.notEqual(again?.accessToken, 'v1:k1:mutated');
        assert.equal(again?.version, 1);
        assert.notEqual(again?.expiresAt?.getTime(), 0);
        assert.equal(again?.status, 'active');
      });

      test('owners never see each other: ids are compared exactly, writes touch one owner', async (store) => {
        const s = await store();
        const owner = id('Ab');
        const lookalikes = [owner.toLowerCase(), owner.toUpperCase(), ` ${owner}`, `${owner} `];
        const mine = await s.upsert(owner, insert(), lockTimeoutMs);
        for (const other of lookalikes) assert.equal(await s.find(other), null, `find("${other}")`);
        const neighbour = id();
        const theirs = await s.upsert(neighbour, insert(), lockTimeoutMs);
        await s.withLock(owner, lockTimeoutMs, (_record, writer) =>
          writer.update({ accessToken: 'v1:k1:changed', version: mine.record.version + 1 }),
        );
        assert.ok(await s.updateIfVersion(owner, mine.record.version + 1, { failureCount: 2 }));
        await s.touch([owner], new Date());
        assert.deepEqual(await s.find(neighbour), theirs.record);
        assert.equal((await s.find(owner))?.accessToken, 'v1:k1:changed');
      });
    });

    describe('withLock: exclusive, read after the lock, all or nothing', () => {
      test('gives work null for an owner without a connection, and writes nothing then', async (store) => {
        const s = await store();
        const owner = id();
        const result = await s.withLock(owner, lockTimeoutMs, async (record, writer) => {
          assert.equal(record, null);
          await writer.update({ failureCount: 1 });
          return 'done';
        });
        assert.equal(result, 'done');
        assert.equal(await s.find(owner), null);
      });

      test("applies the writer's writes when work resolves, visible to every instance at once", async (store) => {
        const s = await store();
        const other = await store();
        const owner = id();
        const { record } = await s.upsert(owner, insert(), lockTimeoutMs);
        const rotated = insert();
        await s.withLock(owner, lockTimeoutMs, async (locked, writer) => {
          assert.deepEqual(locked, record);
          await writer.update({ accessToken: rotated.accessToken, expiresAt: rotated.expiresAt });
          await writer.update({ refreshToken: rotated.refreshToken, version: record.version + 1 });
        });
        const seen = await other.find(owner);
        assert.equal(seen?.accessToken, rotated.accessToken);
        assert.equal(seen?.refreshToken, rotated.refreshToken);
        assert.equal(seen?.expiresAt?.getTime(), rotated.expiresAt?.getTime());
        assert.equal(seen?.version, record.version + 1);
      });

      test('applies none of the writes when work throws, and rethrows its error', async (store) => {
        const s = await store();
        const owner = id();
        const { record } = await s.upsert(owner, insert(), lockTimeoutMs);
        const failure = new Error('work failed after writing');
        await assert.rejects(
          s.withLock(owner, lockTimeoutMs, async (_locked, writer) => {
            await writer.update({ accessToken: 'v1:k1:lost', version: record.version + 1 });
            throw failure;
          }),
          (error) => error === failure,
        );
        assert.deepEqual(await s.find(owner), record);
      });

      test('runs one work per owner at a time, across instances, each reading what the previous one wrote', async (store) => {
        const stores = [await store(), await store()];
        const owner = id();
        await stores[0].upsert(owner, insert(), lockTimeoutMs);
        let inside = 0;
        let overlapped = false;
        const versionsSeen: number[] = [];
        await within(
          Promise.all(
            Array.from({ length: 10 }, (_, i) =>
              stores[i % 2].withLock(owner, hang, async (record, writer) => {
                overlapped ||= ++inside > 1;
                assert.ok(record);
                versionsSeen.push(record.version);
                await new Promise((resolve) => setImmediate(resolve));
                await writer.update({ version: record.version + 1 });
                inside--;
              }),
            ),
          ),
          hang,
          '10 lockers of one owner',
        );
        assert.equal(overlapped, false, 'two works of one owner ran at the same time');
        assert.deepEqual(
          versionsSeen,
          [...versionsSeen].sort((a, b) => a - b),
        );
        assert.equal(
          new Set(versionsSeen).size,
          10,
          'a locker read a record older than the previous write',
        );
        assert.equal((await stores[0].find(owner))?.version, 11);
      });

      test('concurrent lockers refresh exactly once: the others see the rotated tokens', async (store) => {
        const stores = [await store(), await store()];
        const owner = id();
        const { record } = await stores[0].upsert(
          owner,
          insert({ expiresAt: new Date(Date.now() - 60_000) }),
          lockTimeoutMs,
        );
        let refreshes = 0;
        // The refresh protocol's step 3: lock, re-read, refresh only if still stale.
        const refreshIfStale = (s: ProcoreTokenStore) =>
          s.withLock(owner, hang, async (locked, writer) => {
            assert.ok(locked);
            if ((locked.expiresAt?.getTime() ?? 0) > Date.now()) return locked.accessToken;
            refreshes++;
            await new Promise((resolve) => setTimeout(resolve, 5)); // the call to Procore
            const rotated = insert();
            await writer.update({ ...rotated, version: locked.version + 1 });
            return rotated.accessToken;
          });
        const tokens = await within(
          Promise.all(Array.from({ length: 20 }, (_, i) => refreshIfStale(stores[i % 2]))),
          hang,
          '20 concurrent refreshers',
        );
        assert.equal(refreshes, 1);
        assert.equal(new Set(tokens).size, 1, 'every caller gets the one rotated token');
        const stored = await stores[1].find(owner);
        assert.equal(stored?.accessToken, tokens[0]);
        assert.equal(stored?.version, record.version + 1);
      });

      test('locks of different owners do not wait for each other', async (store) => {
        const s = await store();
        const [a, b] = [id(), id()];
        await s.upsert(a, insert(), lockTimeoutMs);
        await s.upsert(b, insert(), lockTimeoutMs);
        const release = gate();
        const holding = gate();
        const heldA = s.withLock(a, hang, async () => {
          holding.open();
          await release.opened;
        });
        await holding.opened;
        try {
          const seen = await within(
            s.withLock(b, hang, async (record) => record?.ownerId),
            hang,
            'the lock of another owner',
          );
          assert.equal(seen, b);
        } finally {
          release.open();
          await heldA;
        }
      });

      test('gives up waiting after lockTimeoutMs with ProcoreLockTimeoutError (withLock and upsert), then the lock still works', async (store) => {
        const [s, other] = [await store(), await store()];
        const owner = id();
        const { record } = await s.upsert(owner, insert(), lockTimeoutMs);
        const release = gate();
        const holding = gate();
        const held = s.withLock(owner, hang, async (_locked, writer) => {
          holding.open();
          await release.opened;
          await writer.update({ version: record.version + 1 });
        });
        await holding.opened;
        try {
          await within(
            assert.rejects(
              other.withLock(owner, lockTimeoutMs, () => Promise.resolve()),
              ProcoreLockTimeoutError,
            ),
            hang,
            'withLock with lockTimeoutMs',
          );
          await within(
            assert.rejects(other.upsert(owner, insert(), lockTimeoutMs), ProcoreLockTimeoutError),
            hang,
            'upsert with lockTimeoutMs',
          );
        } finally {
          release.open();
          await held;
        }
        const after = await within(
          other.withLock(owner, hang, async (locked) => locked?.version),
          hang,
          'the lock after a timed-out waiter',
        );
        assert.equal(after, record.version + 1);
        assert.equal(
          (await other.find(owner))?.version,
          record.version + 1,
          'the timed-out upsert wrote nothing',
        );
      });

      test("upsert waits for the owner's lock: it never interleaves with a refresh", async (store) => {
        const [s, other] = [await store(), await store()];
        const owner = id();
        const { record } = await s.upsert(owner, insert(), lockTimeoutMs);
        const release = gate();
        const holding = gate();
        const rotated = insert();
        const refresh = s.withLock(owner, hang, async (_locked, writer) => {
          holding.open();
          await release.opened;
          await writer.update({ ...rotated, version: record.version + 1 });
        });
        await holding.opened;
        const reconnect = other.upsert(owner, insert(), hang);
        release.open();
        await refresh;
        const { replaced, record: stored } = await within(reconnect, hang, 'upsert after the lock');
        assert.equal(
          replaced?.refreshToken,
          rotated.refreshToken,
          'upsert read the record before the refresh committed',
        );
        assert.equal(stored.version, record.version + 2);
      });
    });

    describe('updateIfVersion: compare and set', () => {
      test('writes when the version matches, and nothing when it does not', async (store) => {
        const s = await store();
        const owner = id();
        const { record } = await s.upsert(owner, insert(), lockTimeoutMs);
        assert.equal(
          await s.updateIfVersion(owner, record.version + 1, { accessToken: 'v1:k1:stale' }),
          false,
        );
        assert.deepEqual(await s.find(owner), record);
        assert.equal(
          await s.updateIfVersion(owner, record.version, {
            accessToken: 'v1:k1:new',
            version: record.version + 1,
          }),
          true,
        );
        const stored = await s.find(owner);
        assert.equal(stored?.accessToken, 'v1:k1:new');
        assert.equal(stored?.version, record.version + 1);
        assert.equal(await s.updateIfVersion(id(), 1, { failureCount: 1 }), false, 'unknown owner');
      });

      test('of writers expecting the same version, exactly one wins', async (store) => {
        const stores = [await store(), await store()];
        const owner = id();
        const { record } = await stores[0].upsert(owner, insert(), lockTimeoutMs);
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            stores[i % 2].updateIfVersion(owner, record.version, {
              accessToken: `v1:k1:writer-${i}`,
              version: record.version + 1,
            }),
          ),
        );
        assert.equal(results.filter(Boolean).length, 1);
        const winner = results.indexOf(true);
        assert.equal((await stores[1].find(owner))?.accessToken, `v1:k1:writer-${winner}`);
      });
    });

    describe('touch', () => {
      test('records the last use, never moves it back, ignores unknown owners', async (store) => {
        const s = await store();
        const owner = id();
        await s.upsert(owner, insert(), lockTimeoutMs);
        await s.touch([], new Date());
        const later = new Date(Date.now() + 60_000);
        await s.touch([owner, id()], later);
        assert.equal((await s.find(owner))?.lastUsedAt?.getTime(), later.getTime());
        await s.touch([owner], new Date(Date.now() - HOUR));
        assert.equal((await s.find(owner))?.lastUsedAt?.getTime(), later.getTime());
      });
    });

    describe("claimDue: the scheduler's share of the work", () => {
      /** A connection expiring in `expiresInMs`, active at `marker`. */
      async function connection(
        s: ProcoreTokenStore,
        marker: Date,
        expiresInMs: number,
        overrides: Partial<ProcoreTokenInsert> = {},
      ): Promise<ProcoreTokenRecord> {
        const owner = id();
        const { record } = await s.upsert(
          owner,
          insert({ expiresAt: new Date(Date.now() + expiresInMs), ...overrides }),
          lockTimeoutMs,
        );
        await s.touch([owner], marker);
        return record;
      }
      const claim = (
        s: ProcoreTokenStore,
        marker: Date,
        limit = 100,
        lookAhead: { seconds: number | undefined } = { seconds: 300 },
      ) =>
        s.claimDue({
          lookAheadSeconds: lookAhead.seconds,
          activeSince: marker,
          limit,
          leaseSeconds: 600,
        });

      test('claims active connections with a refresh token that expire within the look-ahead, used since activeSince', async (store) => {
        const s = await store();
        const marker = activityMarker();
        const later = await connection(s, marker, 120_000);
        const sooner = await connection(s, marker, 30_000);
        await connection(s, marker, 2 * HOUR); // not due
        await connection(s, marker, 30_000, { refreshToken: null }); // nothing to refresh with
        const reauthorize = await connection(s, marker, 30_000);
        await s.withLock(reauthorize.ownerId, lockTimeoutMs, (_r, writer) =>
          writer.update({ status: 'reauthorization_required' }),
        );
        await s.upsert(id(), insert({ expiresAt: new Date(Date.now() + 30_000) }), lockTimeoutMs); // idle
        assert.deepEqual(sorted(await claim(s, marker)), sorted([sooner.ownerId, later.ownerId]));
      });

      test('without a fixed look-ahead, a connection is due when less than min(15 minutes, half its lifetime) remains', async (store) => {
        const s = await store();
        const marker = activityMarker();
        const shortDue = await connection(s, marker, 200_000, { tokenLifetimeSeconds: 600 });
        await connection(s, marker, 400_000, { tokenLifetimeSeconds: 600 });
        const longDue = await connection(s, marker, 800_000, { tokenLifetimeSeconds: 5400 });
        await connection(s, marker, 1_000_000, { tokenLifetimeSeconds: 5400 });
        // An unknown lifetime counts as Procore's 5400 s.
        const unknownDue = await connection(s, marker, 800_000, { tokenLifetimeSeconds: null });
        await connection(s, marker, 1_000_000, { tokenLifetimeSeconds: null });
        assert.deepEqual(
          sorted(await claim(s, marker, 100, { seconds: undefined })),
          sorted([shortDue.ownerId, longDue.ownerId, unknownDue.ownerId]),
        );
      });

      test('takes at most limit, the soonest-expiring first, and never hands a claimed connection out again within the lease', async (store) => {
        const [s, other] = [await store(), await store()];
        const marker = activityMarker();
        const due = [];
        for (let i = 0; i < 3; i++) due.push(await connection(s, marker, 10_000 * (i + 1)));
        assert.deepEqual(
          sorted(await claim(s, marker, 2)),
          sorted([due[0].ownerId, due[1].ownerId]),
        );
        assert.deepEqual(await claim(other, marker, 2), [due[2].ownerId]);
        assert.deepEqual(await claim(s, marker, 2), []);
      });

      test('concurrent claims from several instances never overlap', async (store) => {
        const stores = [await store(), await store()];
        const marker = activityMarker();
        const due = new Set<string>();
        for (let i = 0; i < 12; i++) due.add((await connection(stores[0], marker, 30_000)).ownerId);
        const claims = await Promise.all(
          Array.from({ length: 6 }, (_, i) => claim(stores[i % 2], marker, 3)),
        );
        const claimed = claims.flat();
        assert.equal(new Set(claimed).size, claimed.length, 'an owner was claimed twice');
        for (const owner of claimed) assert.ok(due.has(owner));
        assert.equal(claimed.length, 12);
      });
    });

    describe("findWithOtherKey: the re-encryption job's pages", () => {
      test('lists owners written with another key, by owner id, one page after another', async (store) => {
        const s = await store();
        const prefix = id('k');
        const owners = ['a', 'b', 'c', 'd', 'e'].map((suffix) => `${prefix}${suffix}`);
        const keys = ['old', 'current', 'old', 'older', 'old'];
        for (const [i, owner] of [...owners.entries()].reverse()) {
          await s.upsert(owner, insert({ keyId: `${prefix}${keys[i]}` }), lockTimeoutMs);
        }
        const expected = owners.filter((_, i) => keys[i] !== 'current');
        const pages: string[][] = [];
        let after = prefix;
        for (;;) {
          const page = (await s.findWithOtherKey(`${prefix}current`, after, 2)).filter((owner) =>
            owner.startsWith(prefix),
          );
          if (page.length === 0) break;
          assert.ok(page.length <= 2);
          pages.push(page);
          after = page[page.length - 1];
        }
        assert.deepEqual(pages.flat(), expected);
        assert.deepEqual(pages[0], expected.slice(0, 2));
      });
    });
  });
}

/**
 * Registers the tests every `ProcoreOAuthStateStore` must pass — a state is consumed once however
 * many callbacks race, only by its owner, and at most `maxPendingStatesPerOwner` are kept per
 * owner. Same conventions as `runProcoreTokenStoreContract()`.
 * @publicApi
 */
export function runProcoreOAuthStateStoreContract(
  options: ProcoreOAuthStateStoreContractOptions,
): void {
  const { describe, it } = testFunctions(options);
  const max = options.maxPendingStatesPerOwner ?? 10;
  const test = (
    name: string,
    body: (store: () => Promise<ProcoreOAuthStateStore>) => Promise<void>,
  ) =>
    it(name, async () => {
      const created: ProcoreOAuthStateStore[] = [];
      const store = async () => {
        const next = await options.createStore();
        created.push(next);
        return next;
      };
      try {
        await body(store);
      } finally {
        for (const each of new Set(created)) await options.releaseStore?.(each);
      }
    });
  const state = (ownerId: string) => ({
    stateHash: randomBytes(32).toString('base64url'),
    ownerId,
    codeVerifier: `v1:k1:${randomBytes(12).toString('base64url')}`,
    returnTo: '/projects?tab=1',
    expiresAt: new Date(Date.now() + 600_000),
  });

  describe(options.name ?? 'ProcoreOAuthStateStore contract', () => {
    test('gives a saved state back once, as it was saved', async (store) => {
      const s = await store();
      const saved = state(id());
      await s.save(saved);
      assert.deepEqual(await s.consume(saved.stateHash, saved.ownerId), {
        kind: 'consumed',
        record: saved,
      });
      assert.deepEqual(await s.consume(saved.stateHash, saved.ownerId), { kind: 'unknown' });
    });

    test('answers unknown for a state never saved', async (store) => {
      assert.deepEqual(await (await store()).consume(state(id()).stateHash, undefined), {
        kind: 'unknown',
      });
    });

    test('of concurrent consumers of one state, across instances, exactly one gets it', async (store) => {
      const stores = [await store(), await store()];
      const saved = state(id());
      await stores[0].save(saved);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => stores[i % 2].consume(saved.stateHash, saved.ownerId)),
      );
      assert.equal(results.filter((result) => result.kind === 'consumed').length, 1);
      assert.equal(results.filter((result) => result.kind === 'unknown').length, 9);
    });

    test('refuses another owner without consuming the state; without an owner, anyone consumes it', async (store) => {
      const s = await store();
      const saved = state(id());
      await s.save(saved);
      assert.deepEqual(await s.consume(saved.stateHash, id()), { kind: 'owner_mismatch' });
      assert.deepEqual(await s.consume(saved.stateHash, undefined), {
        kind: 'consumed',
        record: saved,
      });
    });

    test(`keeps the newest ${max} pending states per owner, and other owners' states`, async (store) => {
      const s = await store();
      const owner = id();
      const neighbour = state(id());
      await s.save(neighbour);
      const saved = [];
      for (let i = 0; i <= max; i++) {
        saved.push(state(owner));
        await s.save(saved[i]);
      }
      assert.deepEqual(await s.consume(saved[0].stateHash, owner), { kind: 'unknown' });
      for (const kept of saved.slice(1)) {
        assert.equal((await s.consume(kept.stateHash, owner)).kind, 'consumed');
      }
      assert.equal((await s.consume(neighbour.stateHash, neighbour.ownerId)).kind, 'consumed');
    });

    test(`keeps at most ${max} when one owner saves concurrently`, async (store) => {
      const stores = [await store(), await store()];
      const owner = id();
      const saved = Array.from({ length: max + 5 }, () => state(owner));
      await Promise.all(saved.map((each, i) => stores[i % 2].save(each)));
      let kept = 0;
      for (const each of saved) {
        if ((await stores[0].consume(each.stateHash, owner)).kind === 'consumed') kept++;
      }
      assert.equal(kept, max);
    });
  });
}
