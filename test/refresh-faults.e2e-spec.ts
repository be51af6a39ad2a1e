import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import pg from 'pg';
import { DataSource } from 'typeorm';
import {
  ProcoreAuthEventType,
  ProcoreAuthModule,
  ProcoreLockTimeoutError,
  ProcoreTokenService,
  procoreAuthEntities,
  ProcoreReauthorizationRequiredError,
  ProcoreStorageError,
  ProcoreTokenPersistError,
  ProcoreTokenRefreshError,
  TokenRefreshScheduler,
} from 'nestjs-procore-auth';
import { until, useFaultHarness } from './support/fault-harness.js';
import {
  connectOwner,
  expireStoredToken,
  fakeProcoreOptions,
  rawRow,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { TcpProxy } from './support/tcp-proxy.js';

/**
 * The faults a deployment meets, on real PostgreSQL: sessions killed mid-refresh, transaction and
 * statement timeouts, lock timeouts, the database going away and coming back, and shutdowns in
 * the middle of a refresh. For each: the typed error, the row's final state, the event, the log
 * line, and what the fake saw (no refresh token sent twice unless the protocol says so).
 */
describe('refresh under database and process faults (real PostgreSQL, fake Procore)', () => {
  const h = useFaultHarness('faults');
  const {
    nextOwner,
    start,
    staleOwner,
    storedRefreshToken,
    idleInTransaction,
    waitingOnLock,
    terminate,
  } = h;

  function eventsOf(app: ProcoreTestApp, ownerId: string) {
    return app.events.filter((event) => event.ownerId === ownerId);
  }

  describe('PostgreSQL faults after Procore rotated the token', () => {
    it('stores the rotated token in a fresh statement when the backend holding the lock is terminated', async () => {
      const app = await start();
      const ownerId = await staleOwner(app, 'terminated');
      const before = await rawRow(app.dataSource, ownerId);
      const hold = h.fake.hold({ grantType: 'refresh_token' });

      const pending = app.service.getAccessToken(ownerId);
      await hold.arrived;
      const locked = await idleInTransaction();
      expect(locked).toHaveLength(1);
      await terminate(locked);
      hold.release();
      const token = await pending;

      expect(h.fake.isAccessTokenValid(token)).toBe(true);
      expect(h.fake.isRefreshTokenActive(await storedRefreshToken(app, ownerId))).toBe(true);
      expect(h.fake.counters).toMatchObject({ refreshToken: 1, rejectedRefreshTokens: 0 });
      const after = await rawRow(app.dataSource, ownerId);
      expect(after).toMatchObject({ status: 'active', last_error_code: null });
      expect(after.version).toBe((before.version as number) + 1);
      expect(eventsOf(app, ownerId).map((event) => event.type)).toContain(
        ProcoreAuthEventType.TokenRefreshed,
      );
      expect(h.logger.lines.join('\n')).toMatch(
        /Stored the rotated Procore token of owner "terminated-\d+" on a second try/,
      );
    });

    it('stores the rotated token when idle_in_transaction_session_timeout ends the transaction during the call', async () => {
      await h.admin.query(
        `ALTER DATABASE ${h.admin.escapeIdentifier(h.database.name)} SET idle_in_transaction_session_timeout = '150ms'`,
      );
      try {
        const app = await start();
        const ownerId = await staleOwner(app, 'idle-timeout');
        const hold = h.fake.hold({ grantType: 'refresh_token' });

        const pending = app.service.getAccessToken(ownerId);
        await hold.arrived;
        // The server ends the session by itself: wait until it has.
        await until(
          async () => (await idleInTransaction()).length === 0,
          'idle_in_transaction_session_timeout',
        );
        hold.release();
        const token = await pending;

        expect(h.fake.isAccessTokenValid(token)).toBe(true);
        expect(h.fake.isRefreshTokenActive(await storedRefreshToken(app, ownerId))).toBe(true);
        expect(h.fake.counters).toMatchObject({ refreshToken: 1, rejectedRefreshTokens: 0 });
      } finally {
        await h.admin.query(
          `ALTER DATABASE ${h.admin.escapeIdentifier(h.database.name)} RESET idle_in_transaction_session_timeout`,
        );
      }
    });

    it('when the rotated token cannot be stored at all: typed error, event, error log, row marked, next invalid_grant is refresh_response_lost', async () => {
      const app = await start();
      const ownerId = await staleOwner(app, 'unstorable');
      const before = await rawRow(app.dataSource, ownerId);
      // Every write of new tokens fails (as a statement timeout or a full disk would); other writes pass.
      await h.admin.query(`
        CREATE OR REPLACE FUNCTION fail_token_writes() RETURNS trigger AS $$
        BEGIN
          IF NEW.version <> OLD.version THEN RAISE EXCEPTION 'simulated storage failure' USING ERRCODE = '57014'; END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql;
        CREATE TRIGGER fail_token_writes BEFORE UPDATE ON procore_oauth_tokens
          FOR EACH ROW EXECUTE FUNCTION fail_token_writes();`);
      let error: unknown;
      try {
        error = await app.service.getAccessToken(ownerId).catch((caught: unknown) => caught);
      } finally {
        await h.admin.query(
          'DROP TRIGGER fail_token_writes ON procore_oauth_tokens; DROP FUNCTION fail_token_writes();',
        );
      }

      expect(error).toBeInstanceOf(ProcoreTokenPersistError);
      expect(error).toBeInstanceOf(ProcoreStorageError);
      expect((error as ProcoreTokenPersistError).code).toBe('refresh_persist_failed');
      expect(h.fake.counters).toMatchObject({ refreshToken: 1, successfulRefreshes: 1 });
      const marked = await rawRow(app.dataSource, ownerId);
      expect(marked).toMatchObject({
        status: 'active',
        last_error_code: 'refresh_persist_failed',
        version: before.version,
        refresh_token: before.refresh_token,
      });
      expect(eventsOf(app, ownerId)).toContainEqual(
        expect.objectContaining({
          type: ProcoreAuthEventType.RefreshFailed,
          errorCode: 'refresh_persist_failed',
        }),
      );
      expect(h.logger.lines.filter((line) => line.startsWith('error'))).toContainEqual(
        expect.stringMatching(
          /rotated the refresh token of owner "unstorable-\d+" but it could not be stored \(57014\)/,
        ),
      );

      // The stored refresh token was consumed by the lost rotation: Procore refuses it, and the
      // cause recorded says the response was lost, not that the user revoked the app.
      const next = await app.service.getAccessToken(ownerId).catch((caught: unknown) => caught);
      expect(next).toBeInstanceOf(ProcoreReauthorizationRequiredError);
      expect(await rawRow(app.dataSource, ownerId)).toMatchObject({
        status: 'reauthorization_required',
        last_error_code: 'refresh_response_lost',
      });
      expect(h.fake.counters.rejectedRefreshTokens).toBe(1);
    });
  });

  describe('PostgreSQL faults before anything was sent to Procore', () => {
    it('a backend terminated while waiting for the row lock: ProcoreStorageError, no call to Procore, row untouched', async () => {
      const app = await start();
      const ownerId = await staleOwner(app, 'terminated-waiting');
      const before = await rawRow(app.dataSource, ownerId);
      const blocker = new pg.Client({ connectionString: h.database.url });
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM procore_oauth_tokens WHERE owner_id = $1 FOR UPDATE', [
        ownerId,
      ]);

      const pending = app.service.getAccessToken(ownerId).catch((caught: unknown) => caught);
      let waiting: number[] = [];
      await until(
        async () => (waiting = await waitingOnLock()).length > 0,
        'the refresh on the lock',
      );
      await terminate(waiting);
      const error = await pending;
      await blocker.query('ROLLBACK');
      await blocker.end();

      expect(error).toBeInstanceOf(ProcoreStorageError);
      expect((error as Error).message).toContain('57P01');
      expect(h.fake.counters.refreshToken).toBe(0);
      expect(await rawRow(app.dataSource, ownerId)).toEqual(before);
      expect(eventsOf(app, ownerId)).toContainEqual(
        expect.objectContaining({
          type: ProcoreAuthEventType.RefreshFailed,
          errorCode: 'storage_error',
        }),
      );
      // The next call refreshes normally.
      expect(h.fake.isAccessTokenValid(await app.service.getAccessToken(ownerId))).toBe(true);
      expect(h.fake.counters).toMatchObject({ refreshToken: 1, rejectedRefreshTokens: 0 });
    });

    it('lock timeout: ProcoreLockTimeoutError and a refresh-failed event, nothing sent', async () => {
      const app = await start({
        lockTimeoutMs: 1_500,
        http: { timeoutMs: 500, retryBaseDelayMs: 5 },
      });
      const ownerId = await staleOwner(app, 'lock-timeout');
      const blocker = new pg.Client({ connectionString: h.database.url });
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM procore_oauth_tokens WHERE owner_id = $1 FOR UPDATE', [
        ownerId,
      ]);
      const error = await app.service.getAccessToken(ownerId).catch((caught: unknown) => caught);
      await blocker.query('ROLLBACK');
      await blocker.end();

      expect(error).toBeInstanceOf(ProcoreLockTimeoutError);
      expect(h.fake.counters.refreshToken).toBe(0);
      expect(eventsOf(app, ownerId)).toContainEqual(
        expect.objectContaining({
          type: ProcoreAuthEventType.RefreshFailed,
          errorCode: 'lock_timeout',
        }),
      );
    });
  });

  it('statement_timeout firing on the write after the rotation: typed error and the row marked, never a Procore verdict', async () => {
    await h.admin.query(`
      CREATE OR REPLACE FUNCTION slow_token_writes() RETURNS trigger AS $$
      BEGIN
        IF NEW.version <> OLD.version THEN PERFORM pg_sleep(2); END IF;
        RETURN NEW;
      END $$ LANGUAGE plpgsql;
      CREATE TRIGGER slow_token_writes BEFORE UPDATE ON procore_oauth_tokens
        FOR EACH ROW EXECUTE FUNCTION slow_token_writes();`);
    const setting = `ALTER DATABASE ${h.admin.escapeIdentifier(h.database.name)}`;
    await h.admin.query(`${setting} SET statement_timeout = '200ms'`);
    try {
      const app = await start();
      const ownerId = await staleOwner(app, 'statement-timeout');
      const error = await app.service.getAccessToken(ownerId).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ProcoreTokenPersistError);
      expect((error as Error).message).toContain('57014');
      expect(await rawRow(app.dataSource, ownerId)).toMatchObject({
        status: 'active',
        last_error_code: 'refresh_persist_failed',
      });
      expect(h.fake.counters).toMatchObject({ refreshToken: 1, rejectedRefreshTokens: 0 });
    } finally {
      await h.admin.query(`${setting} RESET statement_timeout`);
      await h.admin.query(
        'DROP TRIGGER slow_token_writes ON procore_oauth_tokens; DROP FUNCTION slow_token_writes();',
      );
    }
  });

  it('holds no row lock while waiting out a Retry-After between attempts', async () => {
    const app = await start({ http: { retryBaseDelayMs: 5, maxRetryAfterMs: 5_000 } });
    const ownerId = await staleOwner(app, 'retry-after');
    h.fake.injectFault(
      { kind: 'rate-limit', retryAfterSeconds: 1 },
      { grantType: 'refresh_token' },
    );

    const pending = app.service.getAccessToken(ownerId);
    // Wait until the first attempt's failure is committed...
    await until(
      async () => Number((await rawRow(app.dataSource, ownerId)).failure_count) > 0,
      'the first attempt recorded',
    );
    // ...then the row can be locked by anyone at once: the pause holds no lock or transaction.
    const probe = new pg.Client({ connectionString: h.database.url });
    await probe.connect();
    await probe.query('BEGIN');
    const locked = await probe.query(
      'SELECT owner_id FROM procore_oauth_tokens WHERE owner_id = $1 FOR UPDATE NOWAIT',
      [ownerId],
    );
    await probe.query('ROLLBACK');
    await probe.end();
    expect(locked.rowCount).toBe(1);
    expect(await idleInTransaction()).toEqual([]);

    expect(h.fake.isAccessTokenValid(await pending)).toBe(true);
    expect(h.fake.counters).toMatchObject({ refreshToken: 2, rejectedRefreshTokens: 0 });
  });

  describe('the database goes away and comes back', () => {
    let proxy: TcpProxy;
    beforeEach(async () => {
      proxy = await TcpProxy.start(h.database.url);
    });
    afterEach(async () => {
      await proxy.close();
    });

    it('serves cached tokens, answers typed errors, logs the scheduler failure once, and recovers without a restart', async () => {
      const app = await start({ cache: { maxEntries: 100 } }, proxy.url(h.database.url));
      const cachedOwner = nextOwner('cached');
      await connectOwner(app.service, cachedOwner);
      const cachedToken = await app.service.getAccessToken(cachedOwner);
      const uncachedOwner = nextOwner('uncached');
      await connectOwner(app.service, uncachedOwner);
      app.service.evict(uncachedOwner);
      const scheduler = app.app.get(TokenRefreshScheduler);

      proxy.cut();
      expect(await app.service.getAccessToken(cachedOwner)).toBe(cachedToken);
      const error = await app.service
        .getAccessToken(uncachedOwner)
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ProcoreStorageError);
      await scheduler.runTick();
      await scheduler.runTick();
      await scheduler.runTick();
      const tickErrors = h.logger.lines.filter((line) => /refresh tick stopped/.test(line));
      expect(tickErrors.filter((line) => line.startsWith('error'))).toHaveLength(1);
      expect(tickErrors.filter((line) => line.startsWith('debug'))).toHaveLength(2);

      proxy.restore();
      expect(h.fake.isAccessTokenValid(await app.service.getAccessToken(uncachedOwner))).toBe(true);
      await scheduler.runTick();
      expect(h.logger.lines.join('\n')).toContain('the database answers again; ticks resumed');
      expect(h.fake.counters.rejectedRefreshTokens).toBe(0);
    });
  });

  it('pool exhausted: cached tokens are served, a cache miss fails with pool_timeout, then recovers', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: h.database.url,
          entities: procoreAuthEntities,
          poolSize: 2,
          extra: { connectionTimeoutMillis: 300 },
        }),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(h.fake, { cache: { maxEntries: 100 } })),
      ],
    }).compile();
    const nest = moduleRef.createNestApplication({ logger: false });
    await nest.init();
    try {
      const service = nest.get(ProcoreTokenService);
      const cachedOwner = nextOwner('pool-cached');
      await connectOwner(service, cachedOwner);
      const cachedToken = await service.getAccessToken(cachedOwner);
      const otherOwner = nextOwner('pool-miss');
      await connectOwner(service, otherOwner);
      service.evict(otherOwner);
      const dataSource = nest.get(DataSource);
      const held = [dataSource.createQueryRunner(), dataSource.createQueryRunner()];
      for (const runner of held) await runner.connect();

      expect(await service.getAccessToken(cachedOwner)).toBe(cachedToken);
      const error = await service.getAccessToken(otherOwner).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ProcoreStorageError);
      expect((error as Error).message).toContain('pool_timeout');

      for (const runner of held) await runner.release();
      expect(h.fake.isAccessTokenValid(await service.getAccessToken(otherOwner))).toBe(true);
    } finally {
      await nest.close();
    }
  });

  it('database down at start-up: the app boots once it answers (TypeORM retries), no restart needed', async () => {
    const proxy = await TcpProxy.start(h.database.url);
    try {
      proxy.cut();
      const booting = createProcoreTestAppWithRetries(proxy.url(h.database.url));
      await proxy.refused(2);
      proxy.restore();
      const nest = await booting;
      try {
        const service = nest.get(ProcoreTokenService);
        const ownerId = nextOwner('late-database');
        await connectOwner(service, ownerId);
        expect(h.fake.isAccessTokenValid(await service.getAccessToken(ownerId))).toBe(true);
      } finally {
        await nest.close();
      }
    } finally {
      await proxy.close();
    }
  });

  async function createProcoreTestAppWithRetries(url: string): Promise<INestApplication> {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url,
          entities: procoreAuthEntities,
          retryAttempts: 50,
          retryDelay: 50,
        }),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(h.fake)),
      ],
    }).compile();
    const nest = moduleRef.createNestApplication({ logger: false });
    await nest.init();
    return nest;
  }

  it('the scheduler logs each owner it failed (id and code, no secret) and emits refresh_failed for it', async () => {
    const app = await start({ http: { retries: 0, retryBaseDelayMs: 5 } });
    const failing = await staleOwner(app, 'scheduler-failing');
    const healthy = nextOwner('scheduler-healthy');
    await connectOwner(app.service, healthy);
    await expireStoredToken(app.dataSource, h.fake, healthy);
    const secret = await storedRefreshToken(app, failing);
    h.fake.injectFault({ kind: 'status', status: 502 }, { grantType: 'refresh_token' });

    const summary = await app.app.get(TokenRefreshScheduler).runTick();

    expect(summary).toMatchObject({ claimed: 2, refreshed: 1, failed: 1 });
    const failedOwner = app.events.find(
      (event) => event.type === ProcoreAuthEventType.RefreshFailed,
    );
    expect(failedOwner).toMatchObject({ errorCode: 'http_502', trigger: 'scheduler' });
    const line = h.logger.lines.find((entry) =>
      entry.includes('Procore token refresh failed for owner'),
    );
    expect(line).toBe(
      `warn Procore token refresh failed for owner "${failedOwner!.ownerId}" (http_502, 1 attempt(s), trigger scheduler). ProcoreAuth`,
    );
    expect(h.logger.lines.join('\n')).not.toContain(secret);
  });

  describe('shutdown in the middle of a refresh', () => {
    it('a request-path refresh started before app.close() is committed before the DataSource closes', async () => {
      const app = await start();
      h.forget(app);
      const ownerId = await staleOwner(app, 'shutdown-request');
      const hold = h.fake.hold({ grantType: 'refresh_token' });
      const pending = app.service.getAccessToken(ownerId);
      await hold.arrived;

      let closed = false;
      const closing = app.close().then(() => {
        closed = true;
      });
      // The close waits for the refresh: a round trip to the database later it has not finished.
      await h.admin.query('SELECT 1');
      expect(closed).toBe(false);
      hold.release();
      const token = await pending;
      await closing;

      expect(h.fake.isAccessTokenValid(token)).toBe(true);
      const { rows } = await h.admin.query<{ version: number; last_error_code: string | null }>(
        'SELECT version, last_error_code FROM procore_oauth_tokens WHERE owner_id = $1',
        [ownerId],
      );
      expect(rows[0]).toMatchObject({ version: 2, last_error_code: null });
      expect(h.fake.counters).toMatchObject({ refreshToken: 1, rejectedRefreshTokens: 0 });
      expect(app.events).toContainEqual(
        expect.objectContaining({ type: ProcoreAuthEventType.TokenRefreshed, ownerId }),
      );
      // The next instance finds the rotated token and uses it without refreshing.
      const next = await start();
      expect(await next.service.getAccessToken(ownerId)).toBe(token);
      expect(h.fake.counters.refreshToken).toBe(1);
    });

    it('a scheduler refresh in flight at app.close() is committed too', async () => {
      const app = await start({ scheduler: { enabled: false } });
      h.forget(app);
      const ownerId = await staleOwner(app, 'shutdown-scheduler');
      const hold = h.fake.hold({ grantType: 'refresh_token' });
      const tick = app.app.get(TokenRefreshScheduler).runTick();
      await hold.arrived;
      const closing = app.close();
      hold.release();
      const summary = await tick;
      await closing;

      expect(summary).toMatchObject({ claimed: 1, refreshed: 1, failed: 0 });
      const next = await start();
      const token = await next.service.getAccessToken(ownerId);
      expect(h.fake.isAccessTokenValid(token)).toBe(true);
      expect(h.fake.counters).toMatchObject({ refreshToken: 1, rejectedRefreshTokens: 0 });
    });

    it('a retry pause is cut short by shutdown: the caller gets a typed error and nothing is consumed', async () => {
      const app = await start({ http: { retryBaseDelayMs: 5, maxRetryAfterMs: 60_000 } });
      h.forget(app);
      const ownerId = await staleOwner(app, 'shutdown-pause');
      const before = await storedRefreshToken(app, ownerId);
      h.fake.injectFault(
        { kind: 'rate-limit', retryAfterSeconds: 50 },
        { grantType: 'refresh_token' },
      );
      const pending = app.service.getAccessToken(ownerId).catch((caught: unknown) => caught);
      await until(
      async () => Number((await rawRow(app.dataSource, ownerId)).failure_count) > 0,
      'the first attempt recorded',
    );
      const startedAt = Date.now();
      await app.close();
      expect(Date.now() - startedAt).toBeLessThan(10_000);
      expect(await pending).toBeInstanceOf(ProcoreTokenRefreshError);
      expect(h.fake.isRefreshTokenActive(before)).toBe(true);
      expect(h.fake.counters).toMatchObject({ refreshToken: 1, successfulRefreshes: 0 });
    });
  });
});
