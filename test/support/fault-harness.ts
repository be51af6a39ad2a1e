import { afterAll, afterEach, beforeAll, beforeEach } from '@jest/globals';
import pg from 'pg';
import type { ProcoreAuthModuleOptions } from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { openRefreshToken } from '../../lib/crypto/connection-secrets.js';
import {
  RecordingLogger,
  connectOwner,
  createProcoreTestApp,
  expireStoredToken,
  fakeProcoreOptions,
  migrate,
  type ProcoreTestApp,
} from './procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';
import { ProcoreTokenStore } from '../../lib/storage/procore-token.store.js';
import { PROCORE_TOKEN_CIPHER } from '../../lib/procore-auth.constants.js';
import type { TokenCipher } from '../../lib/crypto/token-cipher.js';

/**
 * What fault suites share: a migrated database of their own with an admin connection (to kill
 * sessions, hold locks, change settings), a fresh fake Procore and log recorder per test, an empty
 * token table per test (a scheduler tick only sees the test's own connections), and the apps a
 * test started, closed after it.
 */
export interface FaultHarness {
  readonly database: TestDatabase;
  readonly admin: pg.Client;
  readonly fake: FakeProcoreServer;
  readonly logger: RecordingLogger;
  /** A fresh owner id, `<label>-<n>`. */
  nextOwner(label: string): string;
  /** An app on the suite's database (or `databaseUrl`), cache off unless overridden, closed after the test. */
  start(
    overrides?: Partial<ProcoreAuthModuleOptions>,
    databaseUrl?: string,
  ): Promise<ProcoreTestApp>;
  /** Stops closing `app` after the test (the test closes it itself). */
  forget(app: ProcoreTestApp): void;
  /** A connected owner whose stored access token has expired; the fake's counters are reset. */
  staleOwner(app: ProcoreTestApp, label: string): Promise<string>;
  /** The owner's stored refresh token, decrypted as the app does. */
  storedRefreshToken(app: ProcoreTestApp, ownerId: string): Promise<string>;
  /** Backends of the suite's database (other than the admin's) sitting in an open transaction. */
  idleInTransaction(): Promise<number[]>;
  /** Backends of the suite's database waiting for a lock. */
  waitingOnLock(): Promise<number[]>;
  terminate(pids: number[]): Promise<void>;
}

/** Registers the hooks and returns the harness; call it at the top of a `describe`. */
export function useFaultHarness(label: string): FaultHarness {
  let database!: TestDatabase;
  let admin!: pg.Client;
  let fake!: FakeProcoreServer;
  let logger!: RecordingLogger;
  const apps: ProcoreTestApp[] = [];
  let owners = 0;

  beforeAll(async () => {
    database = await createTestDatabase(label);
    await migrate(database.url);
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
  });

  beforeEach(async () => {
    await admin.query('TRUNCATE procore_oauth_tokens, procore_oauth_states');
    fake = await FakeProcoreServer.start();
    logger = new RecordingLogger();
  });

  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close().catch(() => undefined);
    await fake.close();
  });

  afterAll(async () => {
    await admin.end();
    await database.drop();
  });

  const pids = async (condition: string): Promise<number[]> => {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND ${condition}`,
    );
    return rows.map((row) => row.pid);
  };

  const harness: FaultHarness = {
    get database() {
      return database;
    },
    get admin() {
      return admin;
    },
    get fake() {
      return fake;
    },
    get logger() {
      return logger;
    },
    nextOwner: (prefix) => `${prefix}-${++owners}`,
    start: async (overrides = {}, databaseUrl = database.url) => {
      const app = await createProcoreTestApp({
        databaseUrl,
        options: fakeProcoreOptions(fake, { cache: { maxEntries: 0 }, ...overrides }),
        logger,
      });
      apps.push(app);
      return app;
    },
    forget: (app) => {
      const index = apps.indexOf(app);
      if (index >= 0) apps.splice(index, 1);
    },
    staleOwner: async (app, prefix) => {
      const ownerId = harness.nextOwner(prefix);
      await connectOwner(app.service, ownerId);
      await expireStoredToken(app.dataSource, fake, ownerId);
      fake.resetCounters();
      return ownerId;
    },
    storedRefreshToken: async (app, ownerId) => {
      const record = await app.app.get(ProcoreTokenStore).find(ownerId);
      return openRefreshToken(app.app.get<TokenCipher>(PROCORE_TOKEN_CIPHER), record!) as string;
    },
    idleInTransaction: () => pids(`state = 'idle in transaction'`),
    waitingOnLock: () => pids(`wait_event_type = 'Lock'`),
    terminate: async (targets) => {
      for (const pid of targets) await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    },
  };
  return harness;
}

/** Polls a condition (no fixed sleep): resolves once it holds, fails after `timeoutMs`. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
