import { describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import pg from 'pg';
import {
  ProcoreLockTimeoutError,
  ProcoreReauthorizationRequiredError,
} from 'nestjs-procore-auth';
import { until, useFaultHarness } from './support/fault-harness.js';
import { connectOwner, rawRow } from './support/procore-test-app.js';

/** Reviewer attacks on the issue-8 code (refresher, in-flight tracking, store, service). */
describe('refresh races found in review (real PostgreSQL, fake Procore)', () => {
  const h = useFaultHarness('review_regressions');
  const { nextOwner, start, staleOwner, idleInTransaction, waitingOnLock, terminate } = h;

  // Regression (review of issue 8): a lost session lock lets a second in-process caller (forced refresh) resend the consumed refresh token, and salvage() then writes the rotated tokens into a row marked reauthorization_required.
  it('a forced refresh on the same instance while the lock of a rotation in flight is lost waits for it: one call, the row active', async () => {
    const app = await start();
    const ownerId = await staleOwner(app, 'lost-lock');
    const hold = h.fake.hold({ grantType: 'refresh_token' });

    const request = app.service.getAccessToken(ownerId).then(
      (token) => ({ ok: true as const, valid: h.fake.isAccessTokenValid(token) }),
      (error: unknown) => ({ ok: false as const, error: (error as Error).name }),
    );
    await hold.arrived; // Procore rotated the token; the answer is in transit
    const locked = await idleInTransaction();
    expect(locked).toHaveLength(1);
    await terminate(locked);

    // A forced refresh on the SAME instance (other single-flight map): the row lock is gone, but
    // it queues behind the refresh in flight instead of sending the consumed token.
    const forcedCall = app.service.refresh(ownerId).then(
      () => 'ok',
      (error: unknown) => (error as Error).name,
    );
    await h.admin.query('SELECT 1');
    expect(h.fake.counters.refreshToken).toBe(1);
    hold.release();
    const first = await request;
    const forced = await forcedCall;
    const row = await rawRow(app.dataSource, ownerId);
    const next = await app.service.getAccessToken(ownerId).then(
      () => 'ok',
      (error: unknown) =>
        error instanceof ProcoreReauthorizationRequiredError ? 'reauth' : 'other',
    );

    expect({
      refreshCalls: h.fake.counters.refreshToken,
      rejectedRefreshTokens: h.fake.counters.rejectedRefreshTokens,
      firstCaller: first,
      forcedCaller: forced,
      rowStatus: row.status,
      rowHasTokens: row.refresh_token !== null,
      nextGetAccessToken: next,
    }).toEqual({
      refreshCalls: 1, // the consumed refresh token is never sent again by this instance
      rejectedRefreshTokens: 0,
      firstCaller: { ok: true, valid: true },
      forcedCaller: 'ok',
      rowStatus: 'active',
      rowHasTokens: true,
      nextGetAccessToken: 'ok', // the rotated grant is stored, so the user is still connected
    });
  });

  // Regression (review of issue 8): revokeReplaced() retries with an un-abortable sleep, so a reconnect in flight holds shutdown for the whole shutdownTimeoutMs and the drain logs a false "rotated tokens may be lost".
  it('a reconnect whose replaced-grant revocation is waiting out Retry-After does not hold shutdown', async () => {
    const app = await start({
      shutdownTimeoutMs: 3_000,
      http: { timeoutMs: 1_000, retries: 2, retryBaseDelayMs: 5, maxRetryAfterMs: 30_000 },
    });
    h.forget(app);
    const ownerId = nextOwner('replaced-pause');
    await connectOwner(app.service, ownerId);
    h.fake.resetCounters();
    h.fake.injectFault(
      { kind: 'status', status: 503, retryAfterSeconds: 4 },
      { path: '/oauth/revoke' },
    );

    const reconnect = connectOwner(app.service, ownerId).catch(() => undefined);
    await until(() => h.fake.counters.revoke === 1, 'the first revoke call');
    await h.admin.query('SELECT 1'); // the 503 has reached the client; it is now sleeping 4 s

    const startedAt = Date.now();
    await app.close();
    const closeMs = Date.now() - startedAt;
    await reconnect;

    expect(h.logger.lines.join('\n')).not.toContain('still running after shutdownTimeoutMs');
    expect(closeMs).toBeLessThan(1_500); // a refresh retry pause is cut at once; this one is not
  });

  // Regression (review of issue 8): upsert() takes the row lock with no lock_timeout: importTokens()/the OAuth callback wait forever behind a stuck lock, while refreshes give up after lockTimeoutMs.
  it('importTokens() behind a stuck row lock gives up like a refresh does (lockTimeoutMs)', async () => {
    const app = await start({
      lockTimeoutMs: 1_500,
      http: { timeoutMs: 500, retryBaseDelayMs: 5 },
    });
    const ownerId = await staleOwner(app, 'stuck-lock');
    const blocker = new pg.Client({ connectionString: h.database.url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT 1 FROM procore_oauth_tokens WHERE owner_id = $1 FOR UPDATE', [
      ownerId,
    ]);
    try {
      let importSettled = false;
      const importing = app.service
        .importTokens(ownerId, h.fake.issueTokens())
        .then(
          () => 'stored',
          (error: unknown) => (error as Error).name,
        )
        .finally(() => {
          importSettled = true;
        });
      await until(
        async () => (await waitingOnLock()).length === 1,
        'the import waiting on the lock',
      );
      // Started after the import, with the same bound the import should have.
      const refresh = await app.service.getAccessToken(ownerId).catch((error: unknown) => error);
      expect(refresh).toBeInstanceOf(ProcoreLockTimeoutError);
      await h.admin.query('SELECT 1');
      const stillWaiting = !importSettled && (await waitingOnLock()).length === 1;
      await blocker.query('ROLLBACK');
      await importing;
      expect(stillWaiting).toBe(false);
    } finally {
      await blocker.end();
    }
  });

  // Regression (review of issue 8): handleCallback()/importTokens() are not tracked by ProcoreInFlightOperations: a code exchanged at shutdown is lost (code consumed, grant orphaned at Procore, user sees an error).
  it('an OAuth callback exchanging its code when app.close() starts is stored before the DataSource closes', async () => {
    const app = await start();
    h.forget(app);
    const ownerId = nextOwner('callback-shutdown');
    const { url } = await app.service.getAuthorizationUrl(ownerId);
    const location = new URL((await fetch(url, { redirect: 'manual' })).headers.get('location')!);
    const hold = h.fake.hold({ grantType: 'authorization_code' });
    const callback = app.service
      .handleCallback({
        code: location.searchParams.get('code'),
        state: location.searchParams.get('state'),
        ownerId,
      })
      .then(
        () => 'stored',
        (error: unknown) => (error as Error).name,
      );
    await hold.arrived;
    let closed = false;
    const closing = app.close().then(() => {
      closed = true;
    });
    await h.admin.query('SELECT 1');
    await h.admin.query('SELECT 1');
    const closedBeforeAnswer = closed;
    hold.release();
    const outcome = await callback;
    await closing;
    const { rows } = await h.admin.query(
      'SELECT status FROM procore_oauth_tokens WHERE owner_id = $1',
      [ownerId],
    );
    expect({ closedBeforeAnswer, outcome, stored: rows.length }).toEqual({
      closedBeforeAnswer: false,
      outcome: 'stored',
      stored: 1,
    });
  });

  // Regression (review of issue 8): the timing check ignores the lock wait: a refresh queued on the row lock at shutdown starts its Procore call late, the drain (shutdownTimeoutMs) gives up mid-call and the rotated token is lost.
  it('a request-path refresh queued behind the row lock when app.close() starts is not lost (options pass the timing check)', async () => {
    // Accepted at bootstrap: shutdownTimeoutMs >= http.timeoutMs + 1 s, lockTimeoutMs too.
    const app = await start({
      lockTimeoutMs: 5_000,
      shutdownTimeoutMs: 3_000,
      http: { timeoutMs: 2_000, retryBaseDelayMs: 5 },
    });
    h.forget(app);
    const ownerId = await staleOwner(app, 'queued-at-shutdown');
    const blocker = new pg.Client({ connectionString: h.database.url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT 1 FROM procore_oauth_tokens WHERE owner_id = $1 FOR UPDATE', [
      ownerId,
    ]);
    const pending = app.service.getAccessToken(ownerId).then(
      () => 'ok',
      (error: unknown) => (error as Error).name,
    );
    await until(
      async () => (await waitingOnLock()).length === 1,
      'the refresh waiting on the lock',
    );
    // Another holder (e.g. another instance's refresh) keeps the lock 2 s (the database waits, not
    // the test); Procore then answers in 1.5 s, well within http.timeoutMs.
    h.fake.tokenLatencyMs = 1_500;
    const blocking = blocker
      .query('SELECT pg_sleep(2)')
      .then(() => blocker.query('ROLLBACK'))
      .finally(() => blocker.end());
    await app.close();
    await blocking;
    const first = await pending;
    h.fake.tokenLatencyMs = 0;

    const next = await start();
    const outcome = await next.service.getAccessToken(ownerId).then(
      (token) => (h.fake.isAccessTokenValid(token) ? 'valid' : 'invalid'),
      (error: unknown) => (error as Error).name,
    );
    expect({
      first,
      successfulRefreshes: h.fake.counters.successfulRefreshes,
      next: outcome,
    }).toEqual({
      // The lock came too late to finish a call before the drain gives up: nothing was sent.
      first: 'ProcoreShutdownError',
      // ...so the next instance refreshes with the intact refresh token.
      successfulRefreshes: 1,
      next: 'valid',
    });
    expect(h.fake.counters.rejectedRefreshTokens).toBe(0);
  });

  // Regression (review of issue 8): storage errors keep the TypeORM QueryFailedError as `cause`, whose `parameters` print the token ciphertext that records and entities deliberately redact.
  it('a ProcoreTokenPersistError does not print token ciphertext when inspected', async () => {
    const app = await start();
    const ownerId = await staleOwner(app, 'cause-ciphertext');
    await h.admin.query(`
      CREATE OR REPLACE FUNCTION review_fail_writes() RETURNS trigger AS $$
      BEGIN
        IF NEW.version <> OLD.version THEN RAISE EXCEPTION 'simulated' USING ERRCODE = '57014'; END IF;
        RETURN NEW;
      END $$ LANGUAGE plpgsql;
      CREATE TRIGGER review_fail_writes BEFORE UPDATE ON procore_oauth_tokens
        FOR EACH ROW EXECUTE FUNCTION review_fail_writes();`);
    let error: unknown;
    try {
      error = await app.service.getAccessToken(ownerId).catch((caught: unknown) => caught);
    } finally {
      await h.admin.query(
        'DROP TRIGGER review_fail_writes ON procore_oauth_tokens; DROP FUNCTION review_fail_writes();',
      );
    }
    expect((error as { code?: string }).code).toBe('refresh_persist_failed');
    const printed = inspect(error, { depth: null });
    const ciphertexts = (printed.match(/v1\.test-key\.[A-Za-z0-9_.-]{20,}/g) ?? []).length;
    expect(ciphertexts).toBe(0);
  });

  // Regression (review of issue 8): revoke() sends the stored refresh token even when the row says it may be consumed (refresh_outcome_unknown): Procore revokes nothing and the rotated grant stays alive.
  it('revoke() after a lost refresh answer kills the grant at Procore', async () => {
    const app = await start({ http: { retries: 0, retryBaseDelayMs: 5 } });
    const ownerId = await staleOwner(app, 'revoke-after-lost');
    let rotated: string | undefined;
    h.fake.injectFault(
      {
        kind: 'tamper',
        mutate: (body) => {
          rotated = body.refresh_token as string;
          return { token_type: 'bearer', expires_in: 5400 }; // unusable 200: answer lost
        },
      },
      { grantType: 'refresh_token' },
    );
    await app.service.getAccessToken(ownerId).catch(() => undefined);
    expect((await rawRow(app.dataSource, ownerId)).last_error_code).toBe('refresh_outcome_unknown');
    expect(rotated).toBeDefined();

    await app.service.revoke(ownerId);

    expect((await rawRow(app.dataSource, ownerId)).status).toBe('revoked');
    expect(h.fake.isRefreshTokenActive(rotated!)).toBe(false);
  });
});
