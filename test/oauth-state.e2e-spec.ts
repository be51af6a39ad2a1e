import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import {
  ProcoreOAuthStateError,
  procoreAuthEntities,
  procoreAuthMigrations,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import { createHash } from 'node:crypto';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { DataSource } from 'typeorm';
import {
  createProcoreTestApp,
  fakeProcoreOptions,
  migrate,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

describe('pending authorization states (real PostgreSQL)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let instance: ProcoreTestApp;
  let owner = 0;
  const nextOwner = () => `state-owner-${++owner}`;

  beforeAll(async () => {
    database = await createTestDatabase('oauth_state');
    await migrate(database.url);
  });
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    instance = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
    });
  });
  afterEach(async () => {
    await instance?.close();
    await fake.close();
  });
  afterAll(() => database.drop());

  async function restart(overrides: Partial<ProcoreAuthModuleOptions>): Promise<void> {
    await instance.close();
    instance = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake, overrides),
    });
  }

  async function pending(ownerId: string): Promise<number> {
    const [{ count }] = await instance.dataSource.query(
      'SELECT count(*)::int AS count FROM procore_oauth_states WHERE owner_id = $1',
      [ownerId],
    );
    return count as number;
  }

  /** Completes a flow started with `state` (the fake approves it). */
  async function complete(url: string, state: string, ownerId: string) {
    const approved = await fetch(url, { redirect: 'manual' });
    const code = new URL(approved.headers.get('location') as string).searchParams.get('code');
    return instance.service.handleCallback({ code, state, ownerId });
  }

  it('works off a backlog of abandoned states 500 per authorization, never in one long delete', async () => {
    const abandoned = async () =>
      (
        await instance.dataSource.query(
          `SELECT count(*)::int AS n FROM procore_oauth_states WHERE owner_id LIKE 'abandoned-%'`,
        )
      )[0].n as number;
    await instance.dataSource.query(
      `INSERT INTO procore_oauth_states (state_hash, owner_id, expires_at, created_at)
       SELECT md5('abandoned' || i) || md5(i::text), 'abandoned-' || i,
              now() - interval '2 hours', now() - interval '3 hours'
         FROM generate_series(1, 1200) AS i`,
    );
    const ownerId = nextOwner();
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      await instance.service.getAuthorizationUrl(ownerId);
      counts.push(await abandoned());
    }
    expect(counts).toEqual([700, 200, 0]);
    expect(await pending(ownerId)).toBe(3);
  });

  it('keeps at most 10 pending states per owner (1,000 authorize calls), the newest ones', async () => {
    const ownerId = nextOwner();
    const bystander = nextOwner();
    await instance.service.getAuthorizationUrl(bystander);
    const flows = [];
    for (let i = 0; i < 1000; i++) flows.push(await instance.service.getAuthorizationUrl(ownerId));

    expect(await pending(ownerId)).toBe(10);
    expect(await pending(bystander)).toBe(1);
    const oldest = flows[989];
    await expect(
      instance.service.handleCallback({ code: 'x', state: oldest.state, ownerId }),
    ).rejects.toMatchObject({ problem: 'unknown_state' });
    const newest = flows[999];
    await expect(complete(newest.url, newest.state, ownerId)).resolves.toMatchObject({
      connection: { ownerId, status: 'active' },
    });
    const stillPending = flows[990];
    await expect(complete(stillPending.url, stillPending.state, ownerId)).resolves.toMatchObject({
      connection: { ownerId, status: 'active' },
    });
  });

  it('keeps the cap under 60 concurrent authorize calls of one owner', async () => {
    const ownerId = nextOwner();
    const flows = await Promise.all(
      Array.from({ length: 60 }, () => instance.service.getAuthorizationUrl(ownerId)),
    );
    expect(await pending(ownerId)).toBe(10);
    const survivors = (
      (await instance.dataSource.query(
        'SELECT state_hash FROM procore_oauth_states WHERE owner_id = $1',
        [ownerId],
      )) as { state_hash: string }[]
    ).map((row) => row.state_hash);
    const issued = flows.map((flow) => createHash('sha256').update(flow.state).digest('hex'));
    expect(issued).toEqual(expect.arrayContaining(survivors));
  });

  it('honours maxPendingStatesPerOwner', async () => {
    await restart({ maxPendingStatesPerOwner: 2 });
    const ownerId = nextOwner();
    const first = await instance.service.getAuthorizationUrl(ownerId);
    await instance.service.getAuthorizationUrl(ownerId);
    const third = await instance.service.getAuthorizationUrl(ownerId);
    expect(await pending(ownerId)).toBe(2);
    const error = await instance.service
      .handleCallback({ code: 'x', state: first.state, ownerId })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProcoreOAuthStateError);
    await expect(complete(third.url, third.state, ownerId)).resolves.toMatchObject({
      connection: { ownerId, status: 'active' },
    });
  });

  it('refuses a maxPendingStatesPerOwner below 1 at bootstrap', async () => {
    await expect(restart({ maxPendingStatesPerOwner: 0 })).rejects.toThrow(
      /maxPendingStatesPerOwner is invalid/,
    );
    instance = undefined as unknown as ProcoreTestApp;
  });
});

describe('the migrations (real PostgreSQL)', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('oauth_state_migration');
  });
  afterAll(() => database.drop());

  it("index procore_oauth_states (owner_id, created_at) in the DataSource's schema, and undo cleanly", async () => {
    const setup = new DataSource({ type: 'postgres', url: database.url });
    await setup.initialize();
    await setup.query('CREATE SCHEMA procore_auth');
    await setup.destroy();
    const dataSource = new DataSource({
      type: 'postgres',
      url: database.url,
      schema: 'procore_auth',
      entities: procoreAuthEntities,
      migrations: procoreAuthMigrations,
    });
    await dataSource.initialize();
    const indexes = async () =>
      (
        (await dataSource.query(
          `SELECT indexname, indexdef FROM pg_indexes
           WHERE schemaname = 'procore_auth' AND tablename = 'procore_oauth_states'`,
        )) as { indexname: string; indexdef: string }[]
      ).map((row) => row.indexname);
    try {
      await dataSource.runMigrations();
      expect(await indexes()).toContain('IDX_procore_oauth_states_owner_id_created_at');
      const [{ definition }] = await dataSource.query(
        `SELECT indexdef AS definition FROM pg_indexes
         WHERE indexname = 'IDX_procore_oauth_states_owner_id_created_at'`,
      );
      expect(definition).toMatch(/procore_auth\.procore_oauth_states.*\(owner_id, created_at\)/);

      // The newer migrations (procore_oauth_tokens.idle, procore_rate_limits.shares, then
      // procore_rate_limits) go first, then this index.
      const column = async (table: string, name: string) =>
        (
          (await dataSource.query(
            `SELECT count(*)::int AS n FROM information_schema.columns
              WHERE table_schema = 'procore_auth' AND table_name = $1 AND column_name = $2`,
            [table, name],
          )) as { n: number }[]
        )[0].n;
      const shares = () => column('procore_rate_limits', 'shares');
      expect(await column('procore_oauth_tokens', 'idle')).toBe(1);
      await dataSource.undoLastMigration();
      expect(await column('procore_oauth_tokens', 'idle')).toBe(0);
      const rateLimits = async () =>
        (
          (await dataSource.query(
            `SELECT to_regclass('procore_auth.procore_rate_limits') AS t`,
          )) as {
            t: string | null;
          }[]
        )[0].t;
      expect(await shares()).toBe(1);
      await dataSource.undoLastMigration();
      expect(await shares()).toBe(0);
      expect(await rateLimits()).not.toBeNull();
      await dataSource.undoLastMigration();
      expect(await rateLimits()).toBeNull();
      expect(await indexes()).toContain('IDX_procore_oauth_states_owner_id_created_at');
      await dataSource.undoLastMigration();
      expect(await indexes()).not.toContain('IDX_procore_oauth_states_owner_id_created_at');
      expect(await indexes()).toContain('IDX_procore_oauth_states_expires_at');

      await dataSource.runMigrations();
      expect(await indexes()).toContain('IDX_procore_oauth_states_owner_id_created_at');
    } finally {
      await dataSource.destroy();
    }
  });
});
