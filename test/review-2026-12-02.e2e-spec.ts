import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Injectable, type INestApplication } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { metrics, type MeterProvider } from '@opentelemetry/api';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import {
  ProcoreAuthEventType,
  ProcoreAuthModule,
  ProcoreHealthIndicator,
  ProcoreTokenService,
  ProcoreTokenStore,
  procoreAuthEntities,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import { FakeProcoreServer, connectWithFakeProcore } from 'nestjs-procore-auth/testing';
import { createHttpTestApp, type HttpTestApp } from './support/procore-http-app.js';
import {
  RecordingLogger,
  createProcoreTestApp,
  fakeProcoreOptions,
  migrate,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** Review of the 2026-12-02 changes: each test is a defect found, fixed with it. */

describe('an owner resolver that returns something other than an id', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let http: HttpTestApp;

  beforeAll(async () => {
    database = await createTestDatabase('review_owner_shape');
    await migrate(database.url);
  });
  afterAll(() => database.drop());
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
  });
  afterEach(async () => {
    await http.close();
    await fake.close();
  });

  /** `req => req.user` instead of `req => req.user.id`: a mistake an app can make untyped. */
  const userObject = (req: unknown) =>
    ({ id: (req as { headers: Record<string, string> }).headers['x-user-id'] }) as unknown as string;

  async function appWith(ownerResolver: (req: unknown) => string | undefined) {
    http = await createHttpTestApp({
      platform: 'express',
      databaseUrl: database.url,
      fake,
      options: fakeProcoreOptions(fake, {
        ownerResolver,
      } as Partial<ProcoreAuthModuleOptions>),
    });
  }

  it("never serves one user's connection to another when it returns the user object", async () => {
    await appWith(userObject);
    // The first user's connection, stored under what the object turns into as a string.
    await connectWithFakeProcore(http.service, '[object Object]');
    for (const path of ['/me', '/guarded', '/api/me']) {
      const answer = await request(http.app.getHttpServer()).get(path).set('x-user-id', 'grace');
      expect({ path, status: answer.status, reason: answer.body.reason }).toEqual({
        path,
        status: 401,
        reason: 'no_owner',
      });
    }
  });

  it('takes a bigint id exactly (an ORM BIGINT column beyond 2^53)', async () => {
    await appWith((req) => {
      const id = (req as { headers: Record<string, string | undefined> }).headers['x-user-id'];
      return (id === undefined ? undefined : BigInt(id)) as unknown as string;
    });
    await connectWithFakeProcore(http.service, '9007199254740993');
    const answer = await request(http.app.getHttpServer())
      .get('/guarded')
      .set('x-user-id', '9007199254740993');
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ valid: true });
  });

  it('does not start a connection for an owner it cannot name (a boolean, an object)', async () => {
    await appWith(() => true as unknown as string);
    const answer = await request(http.app.getHttpServer()).get('/procore/oauth/authorize');
    expect(answer.status).toBe(401);
    expect(answer.body.reason).toBe('no_owner');
  });
});

/** An app's listener that rejects: `suppressErrors: false` asks @nestjs/event-emitter to rethrow. */
@Injectable()
class RejectingListener {
  calls = 0;

  @OnEvent(ProcoreAuthEventType.Connected, { suppressErrors: false })
  async onConnected(): Promise<void> {
    this.calls += 1;
    await Promise.resolve();
    throw new Error('listener failed');
  }
}

describe('events through @nestjs/event-emitter to a listener that rejects', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: INestApplication;
  let logger: RecordingLogger;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    database = await createTestDatabase('review_events');
    await migrate(database.url);
  });
  afterAll(() => database.drop());
  beforeEach(async () => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
    fake = await FakeProcoreServer.start();
    const moduleRef = await Test.createTestingModule({
      imports: [
        EventEmitterModule.forRoot(),
        TypeOrmModule.forRoot({ type: 'postgres', url: database.url, entities: procoreAuthEntities }),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake)),
      ],
      providers: [RejectingListener],
    }).compile();
    logger = new RecordingLogger();
    app = moduleRef.createNestApplication({ logger });
    await app.init();
  });
  afterEach(async () => {
    process.off('unhandledRejection', onUnhandled);
    await app.close();
    await fake.close();
  });

  it('logs the rejection once instead of leaving an unhandled rejection (which stops Node)', async () => {
    await connectWithFakeProcore(app.get(ProcoreTokenService), 'events-reject-1');
    // Node reports unhandled rejections once the microtask queue has drained.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(app.get(RejectingListener).calls).toBe(1);
    expect(unhandled).toEqual([]);
    const lines = logger.lines.filter((line) => line.includes(ProcoreAuthEventType.Connected));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error /);
  });

  it("still publishes through an app's stand-in EventEmitter2 that only has emit()", async () => {
    const emitted: string[] = [];
    const moduleRef = await Test.createTestingModule({
      imports: [
        EventEmitterModule.forRoot(),
        TypeOrmModule.forRoot({ type: 'postgres', url: database.url, entities: procoreAuthEntities }),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake)),
      ],
    })
      .overrideProvider(EventEmitter2)
      // on() and removeAllListeners() are for @nestjs/event-emitter itself (3.x, the NestJS 11
      // line, empties the emitter at shutdown); the package calls emit() only.
      .useValue({
        emit: (type: string) => emitted.push(type) > 0,
        on: () => undefined,
        removeAllListeners: () => undefined,
      })
      .compile();
    const standIn = moduleRef.createNestApplication({ logger: new RecordingLogger() });
    await standIn.init();
    try {
      await connectWithFakeProcore(standIn.get(ProcoreTokenService), 'events-stand-in-1');
      expect(emitted).toEqual([ProcoreAuthEventType.Connected]);
    } finally {
      await standIn.close();
    }
  });
});

describe('metrics through a meter whose instruments throw when they record', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let procore: ProcoreTestApp;
  let logger: RecordingLogger;

  beforeAll(async () => {
    database = await createTestDatabase('review_metrics');
    await migrate(database.url);
  });
  afterAll(() => database.drop());
  beforeEach(async () => {
    // An SDK (or a view, an exporter hook) that fails on every measurement.
    const failing = () => ({
      add: () => {
        throw new Error('meter broken');
      },
      record: () => {
        throw new Error('meter broken');
      },
    });
    const meter = { createCounter: failing, createHistogram: failing, createGauge: failing };
    metrics.setGlobalMeterProvider({ getMeter: () => meter } as unknown as MeterProvider);
    fake = await FakeProcoreServer.start();
    logger = new RecordingLogger();
    procore = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
      logger,
    });
  });
  afterEach(async () => {
    await procore.close();
    await fake.close();
    metrics.disable();
  });

  it('still serves and refreshes tokens, and says once that metrics are off', async () => {
    await connectWithFakeProcore(procore.service, 'metrics-broken-1');
    const cached = await procore.service.getAccessToken('metrics-broken-1');
    expect(fake.isAccessTokenValid(cached)).toBe(true);
    const refreshed = await procore.service.refresh('metrics-broken-1');
    expect(refreshed).not.toBe(cached);
    expect(fake.isAccessTokenValid(refreshed)).toBe(true);
    expect(await procore.service.getAccessToken('metrics-broken-1')).toBe(refreshed);
    expect(procore.events.map((event) => event.type)).toContain(ProcoreAuthEventType.TokenRefreshed);
    expect(logger.lines.filter((line) => line.includes('metrics are off'))).toHaveLength(1);
  });
});

describe('clean-up of abandoned authorization states', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let procore: ProcoreTestApp;

  beforeAll(async () => {
    database = await createTestDatabase('review_state_purge');
    await migrate(database.url);
  });
  afterAll(() => database.drop());
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    procore = await createProcoreTestApp({ databaseUrl: database.url, options: fakeProcoreOptions(fake) });
  });
  afterEach(async () => {
    await procore.close();
    await fake.close();
  });

  it('does not make an authorization wait for expired states another transaction is deleting', async () => {
    await procore.dataSource.query(
      `INSERT INTO procore_oauth_states (state_hash, owner_id, expires_at)
       SELECT md5('abandoned-' || g), 'abandoned', now() - interval '2 hours' - g * interval '1 s'
         FROM generate_series(1, 50) g`,
    );
    // Another instance's clean-up (or any transaction) holds the oldest expired states.
    const other = procore.dataSource.createQueryRunner();
    await other.connect();
    await other.startTransaction();
    try {
      await other.query(
        `SELECT state_hash FROM procore_oauth_states ORDER BY expires_at LIMIT 10 FOR UPDATE`,
      );
      const started = await Promise.race([
        procore.service.getAuthorizationUrl('purge-user-1').then(() => 'started'),
        new Promise((resolve) => setTimeout(() => resolve('still waiting'), 3_000)),
      ]);
      expect(started).toBe('started');
    } finally {
      await other.rollbackTransaction();
      await other.release();
    }
    // The states nobody held were cleaned up.
    const [{ count }] = (await procore.dataSource.query(
      `SELECT count(*)::int AS count FROM procore_oauth_states WHERE owner_id = 'abandoned'`,
    )) as { count: number }[];
    expect(count).toBe(10);
  });
});

describe('the health indicator while the token table does not answer', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let procore: ProcoreTestApp;

  beforeAll(async () => {
    database = await createTestDatabase('review_health_hang');
    await migrate(database.url);
  });
  afterAll(() => database.drop());
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    procore = await createProcoreTestApp({ databaseUrl: database.url, options: fakeProcoreOptions(fake) });
  });
  afterEach(async () => {
    await procore.close();
    await fake.close();
  });

  it('answers down within its timeout (a migration holding the table lock), then up again', async () => {
    const migration = procore.dataSource.createQueryRunner();
    await migration.connect();
    await migration.startTransaction();
    const health = procore.app.get(ProcoreHealthIndicator);
    try {
      await migration.query('LOCK TABLE procore_oauth_tokens IN ACCESS EXCLUSIVE MODE');
      const result = await health.isHealthy('procore', { timeoutMs: 300, cacheMs: 0 });
      expect(result.procore).toMatchObject({ status: 'down', database: 'down', tokenEndpoint: 'up' });
      expect(result.procore.message).toContain('Procore token store unreachable');
    } finally {
      await migration.rollbackTransaction();
      await migration.release();
    }
    const again = await health.isHealthy('procore', { timeoutMs: 5_000, cacheMs: 0 });
    expect(again.procore).toMatchObject({ status: 'up', database: 'up', reauthorizationRequired: 0 });
  });
});

describe("the scheduler's claim racing a use of the connection", () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let procore: ProcoreTestApp;

  beforeAll(async () => {
    database = await createTestDatabase('review_claim_touch');
    await migrate(database.url);
  });
  afterAll(() => database.drop());
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    procore = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake, { scheduler: { enabled: false } }),
    });
  });
  afterEach(async () => {
    await procore.close();
    await fake.close();
  });

  const claim = () =>
    procore.app.get(ProcoreTokenStore).claimDue({
      lookAheadSeconds: undefined,
      activeSince: new Date(Date.now() - 7 * 86_400_000),
      limit: 10,
      leaseSeconds: 60,
    });

  it('does not mark idle a connection whose use is being recorded at that moment; the next tick claims it', async () => {
    await connectWithFakeProcore(procore.service, 'claim-race-1');
    // Due, and last used 8 days ago as far as committed rows tell.
    await procore.dataSource.query(
      `UPDATE procore_oauth_tokens SET expires_at = now() - interval '1 minute',
              connected_at = now() - interval '30 days', last_used_at = now() - interval '8 days'
        WHERE owner_id = 'claim-race-1'`,
    );
    // Another instance records a use right now (touch's statement), not yet committed.
    const use = procore.dataSource.createQueryRunner();
    await use.connect();
    await use.startTransaction();
    try {
      await use.query(
        `UPDATE procore_oauth_tokens SET last_used_at = now(), idle = false WHERE owner_id = 'claim-race-1'`,
      );
      await expect(claim()).resolves.toEqual([]);
      await use.commitTransaction();
    } finally {
      await use.release();
    }
    const [row] = (await procore.dataSource.query(
      `SELECT idle FROM procore_oauth_tokens WHERE owner_id = 'claim-race-1'`,
    )) as { idle: boolean }[];
    expect(row).toEqual({ idle: false });
    await expect(claim()).resolves.toEqual(['claim-race-1']);
  });
});
