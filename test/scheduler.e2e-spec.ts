import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Module } from '@nestjs/common';
import { ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { filter, firstValueFrom } from 'rxjs';
import {
  PROCORE_REFRESH_JOB,
  ProcoreAuthEvents,
  ProcoreAuthEventType,
  ProcoreAuthModule,
  TokenRefreshScheduler,
  procoreAuthEntities,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  RecordingLogger,
  createProcoreTestApp,
  fakeProcoreOptions,
  migrate,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';
import type { ProcoreAuthModuleOptions } from 'nestjs-procore-auth';
import { PROCORE_TOKEN_CIPHER } from '../lib/procore-auth.constants.js';
import type { TokenCipher } from '../lib/crypto/token-cipher.js';
import { ProcoreUserTokens } from '../lib/tokens/procore-user-tokens.js';

describe('scheduled refresh (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  const apps: ProcoreTestApp[] = [];
  let batch = 0;

  beforeAll(async () => {
    database = await createTestDatabase('scheduler');
    await migrate(database.url);
  });
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
    await fake.close();
  });
  afterAll(() => database.drop());

  async function start(options: Partial<ProcoreAuthModuleOptions> = {}, logger?: RecordingLogger) {
    const app = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake, { cache: { maxEntries: 0 }, ...options }),
      logger,
    });
    apps.push(app);
    return app;
  }

  /** `count` connections (fresh grants at the fake) whose access tokens expire in 5 minutes. */
  async function seedDue(app: ProcoreTestApp, count: number): Promise<string[]> {
    const prefix = `batch${++batch}-`;
    const owners = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
    for (let i = 0; i < owners.length; i += 50) {
      await Promise.all(
        owners.slice(i, i + 50).map((owner) => app.service.importTokens(owner, fake.issueTokens())),
      );
    }
    await app.dataSource.query(
      `UPDATE procore_oauth_tokens SET expires_at = now() + interval '5 minutes' WHERE owner_id LIKE $1`,
      [`${prefix}%`],
    );
    fake.resetCounters();
    return owners;
  }

  async function rows(app: ProcoreTestApp, owners: string[]) {
    return (await app.dataSource.query(
      `SELECT owner_id, status, version, expires_at FROM procore_oauth_tokens WHERE owner_id = ANY($1)`,
      [owners],
    )) as { owner_id: string; status: string; version: number; expires_at: Date }[];
  }

  it('refreshes 1,000 due connections exactly once each when 3 instances run the job at once', async () => {
    const instances = [await start(), await start(), await start()];
    const owners = await seedDue(instances[0], 1000);
    const before = new Map(
      (await rows(instances[0], owners)).map((row) => [row.owner_id, row.version]),
    );

    const summaries = await Promise.all(
      instances.map((app) => app.app.get(TokenRefreshScheduler).runTick()),
    );

    expect(summaries.reduce((sum, s) => sum + s.refreshed, 0)).toBe(1000);
    expect(summaries.reduce((sum, s) => sum + s.claimed, 0)).toBe(1000); // no connection claimed twice
    expect(summaries.every((s) => s.claimed > 0)).toBe(true); // the work was shared
    expect(fake.counters.refreshToken).toBe(1000);
    expect(fake.counters.successfulRefreshes).toBe(1000);
    expect(fake.counters.rejectedRefreshTokens).toBe(0);
    const after = await rows(instances[0], owners);
    expect(after).toHaveLength(1000);
    for (const row of after) {
      expect(row.status).toBe('active');
      expect(row.version).toBe((before.get(row.owner_id) as number) + 1);
      expect(row.expires_at.getTime()).toBeGreaterThan(Date.now() + 60 * 60 * 1000);
    }
    // Every stored token works at Procore: none lost.
    const tokens = await Promise.all(
      owners.map((owner) => instances[1].service.getAccessToken(owner)),
    );
    expect(tokens.every((token) => fake.isAccessTokenValid(token))).toBe(true);
    expect(fake.counters.refreshToken).toBe(1000);
  });

  it('does one refresh when a request and the scheduler race for the same connection', async () => {
    const [requests, scheduler] = [await start(), await start()];
    const [owner] = await seedDue(requests, 1);
    // Make the stored token stale for the request path too.
    await requests.dataSource.query(
      `UPDATE procore_oauth_tokens SET expires_at = now() + interval '30 seconds' WHERE owner_id = $1`,
      [owner],
    );
    fake.tokenLatencyMs = 100;

    const [token, summary] = await Promise.all([
      requests.service.getAccessToken(owner),
      scheduler.app.get(TokenRefreshScheduler).runTick(),
    ]);

    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.counters.rejectedRefreshTokens).toBe(0);
    expect(fake.isAccessTokenValid(token)).toBe(true);
    expect(summary.refreshed + summary.skipped).toBe(summary.claimed);
  });

  it('leaves idle connections to be refreshed on their next use', async () => {
    const app = await start({ scheduler: { enabled: false, activeWithinDays: 7 } });
    const owners = await seedDue(app, 3);
    await app.dataSource.query(
      `UPDATE procore_oauth_tokens SET connected_at = now() - interval '30 days', last_used_at = now() - interval '8 days' WHERE owner_id = $1`,
      [owners[0]],
    );

    const summary = await app.app.get(TokenRefreshScheduler).runTick();

    expect(summary.claimed).toBe(2);
    expect(fake.counters.refreshToken).toBe(2);
    // The idle connection left the claim index: no tick examines it again...
    const idle = async () =>
      (
        await app.dataSource.query(`SELECT idle FROM procore_oauth_tokens WHERE owner_id = $1`, [
          owners[0],
        ])
      )[0].idle;
    expect(await idle()).toBe(true);
    // ...until it is used again: the request refreshes it, its use is recorded, and the
    // scheduler keeps it fresh from then on.
    await app.service.getAccessToken(owners[0]);
    await app.app.get(ProcoreUserTokens)['lastUsed'].flush();
    expect(await idle()).toBe(false);
    await app.dataSource.query(
      `UPDATE procore_oauth_tokens SET expires_at = now() + interval '1 minute' WHERE owner_id = $1`,
      [owners[0]],
    );
    expect((await app.app.get(TokenRefreshScheduler).runTick()).claimed).toBe(1);
  });

  it('uses min(15 minutes, half the token lifetime) as the default look-ahead', async () => {
    const app = await start();
    const owners = await seedDue(app, 3);
    // 20 min left of a 90 min token: not due (window 15 min); 12 min left of a 30 min token: due
    // (window 15 min); 10 min left of a 16 min token: not due (window 8 min, half its lifetime).
    await app.dataSource.query(
      `UPDATE procore_oauth_tokens SET expires_at = now() + make_interval(mins => v.mins), token_lifetime_seconds = v.lifetime
         FROM (VALUES ($1, 20, 5400), ($2, 12, 1800), ($3, 10, 960)) AS v(owner, mins, lifetime)
        WHERE owner_id = v.owner`,
      owners,
    );

    const summary = await app.app.get(TokenRefreshScheduler).runTick();

    expect(summary.claimed).toBe(1);
    expect((await rows(app, [owners[1]]))[0].version).toBe(2);
  });

  it('records failures and reauthorizations without stopping the tick, and logs one summary line', async () => {
    const logger = new RecordingLogger();
    const app = await start({}, logger);
    const owners = await seedDue(app, 4);
    const [row] = await app.dataSource.query(
      `SELECT refresh_token FROM procore_oauth_tokens WHERE owner_id = $1`,
      [owners[0]],
    );
    fake.revokeToken(
      app.app
        .get<TokenCipher>(PROCORE_TOKEN_CIPHER)
        .decrypt(row.refresh_token, `procore-oauth-token:refresh:${owners[0]}`),
    );

    const summary = await app.app.get(TokenRefreshScheduler).runTick();

    expect(summary).toMatchObject({
      claimed: 4,
      refreshed: 3,
      reauthorizationRequired: 1,
      failed: 0,
    });
    const lines = logger.lines.filter((line) => line.includes('Procore token refresh:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /claimed 4, refreshed 3, skipped 0, failed 0, reauthorization required 1 in \d+ ms/,
    );
    expect(logger.lines.filter((line) => line.includes('cannot keep up'))).toEqual([]);
  });

  it('warns, with the sizing rule, when a tick takes longer than the interval', async () => {
    const logger = new RecordingLogger();
    const app = await start(
      { scheduler: { enabled: false, intervalMs: 200, concurrency: 1 } },
      logger,
    );
    await seedDue(app, 3);
    // Three refreshes one at a time, each answered after 100 ms: the tick takes over 300 ms.
    fake.tokenLatencyMs = 100;

    const summary = await app.app.get(TokenRefreshScheduler).runTick();

    expect(summary.refreshed).toBe(3);
    const warnings = logger.lines.filter((line) => line.includes('cannot keep up'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^warn Procore token refresh cannot keep up: this tick took \d+ s for 3 connection\(s\)/,
    );
    expect(warnings[0]).toContain('scheduler.concurrency (1;');
  });

  it('stops cleanly on shutdown in the middle of a tick, leaving every row consistent', async () => {
    const app = await start({ scheduler: { enabled: false, concurrency: 4, batchSize: 50 } });
    const owners = await seedDue(app, 40);
    fake.tokenLatencyMs = 150;
    const scheduler = app.app.get(TokenRefreshScheduler);
    const events = app.app.get(ProcoreAuthEvents);
    const firstRefresh = firstValueFrom(events.on(ProcoreAuthEventType.TokenRefreshed));

    const tick = scheduler.runTick();
    await firstRefresh; // refreshes are in flight now
    await app.close();
    apps.splice(apps.indexOf(app), 1);
    const summary = await tick;

    // The first `concurrency` refreshes were in flight together when shutdown began: all finish.
    expect(summary.refreshed).toBeGreaterThanOrEqual(4);
    expect(summary.refreshed).toBeLessThan(40); // the rest were abandoned before calling Procore
    expect(fake.counters.successfulRefreshes).toBe(summary.refreshed); // nothing half-written
    fake.tokenLatencyMs = 0;
    const restarted = await start({ scheduler: { enabled: false } });
    const [{ committed }] = (await restarted.dataSource.query(
      'SELECT count(*)::int AS committed FROM procore_oauth_tokens WHERE owner_id = ANY($1) AND version > 1',
      [owners],
    )) as { committed: number }[];
    expect(committed).toBe(summary.refreshed);
    const tokens = await Promise.all(
      owners.map((owner) => restarted.service.getAccessToken(owner)),
    );
    expect(tokens.every((token) => fake.isAccessTokenValid(token))).toBe(true);
    expect(fake.counters.rejectedRefreshTokens).toBe(0);
  });

  it("runs without ScheduleModule, and registers with the app's SchedulerRegistry when there is one", async () => {
    const options = fakeProcoreOptions(fake, { scheduler: { enabled: true, intervalMs: 200 } });
    @Module({
      imports: [
        ScheduleModule.forRoot(),
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: database.url,
          entities: procoreAuthEntities,
        }),
        ProcoreAuthModule.forRoot(options),
      ],
    })
    class WithSchedule {}
    const moduleRef = await Test.createTestingModule({ imports: [WithSchedule] }).compile();
    const withSchedule = moduleRef.createNestApplication({ logger: false });
    await withSchedule.init();
    try {
      expect(withSchedule.get(SchedulerRegistry).getIntervals()).toContain(PROCORE_REFRESH_JOB);
    } finally {
      await withSchedule.close();
    }
    expect(() => withSchedule.get(SchedulerRegistry).getInterval(PROCORE_REFRESH_JOB)).toThrow();

    // Without ScheduleModule the job still runs on its own timer.
    const app = await start({ scheduler: { enabled: true, intervalMs: 200 } });
    const owner = `batch${batch + 1}-0`; // the owner seedDue() is about to create
    // Subscribe before seeding: the timer may fire as soon as the row is due.
    const refreshed = firstValueFrom(
      app.app
        .get(ProcoreAuthEvents)
        .on(ProcoreAuthEventType.TokenRefreshed)
        .pipe(filter((event) => event.ownerId === owner)),
    );
    await seedDue(app, 1);
    expect(await refreshed).toMatchObject({ ownerId: owner, trigger: 'scheduler' });
  });
});
