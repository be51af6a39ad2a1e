import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import {
  ProcoreAuthModule,
  ProcoreHealthIndicator,
  ProcoreTokenService,
  ProcoreTokenStore,
  procoreAuthEntities,
} from 'nestjs-procore-auth';
import {
  FakeProcoreServer,
  InMemoryProcoreOAuthStateStore,
  InMemoryProcoreTokenStore,
} from 'nestjs-procore-auth/testing';
import {
  RecordingLogger,
  TEST_ENCRYPTION_KEY,
  connectOwner,
  fakeProcoreOptions,
  migrate,
} from './support/procore-test-app.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** A health endpoint as an app writes it with @nestjs/terminus. */
@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly procore: ProcoreHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.procore.isHealthy('procore', { timeoutMs: 1_000 })]);
  }
}

describe('ProcoreHealthIndicator with @nestjs/terminus (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let proxy: TcpProxy;
  let app: INestApplication;
  let fakeClosed: boolean;

  beforeAll(async () => {
    database = await createTestDatabase('health');
    await migrate(database.url);
  });
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    fakeClosed = false;
    proxy = await TcpProxy.start(database.url);
    const moduleRef = await Test.createTestingModule({
      imports: [
        TerminusModule.forRoot({ logger: false }),
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: proxy.url(database.url),
          entities: procoreAuthEntities,
          retryAttempts: 0,
          // Bounded, for a cut proxy; generous, for a loaded CI machine (500 ms once timed out there).
          extra: { connectionTimeoutMillis: 5_000 },
        }),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake)),
      ],
      controllers: [HealthController],
    }).compile();
    app = moduleRef.createNestApplication({ logger: new RecordingLogger() });
    await app.init();
  });
  afterEach(async () => {
    proxy.restore();
    await app.close();
    await proxy.close();
    if (!fakeClosed) await fake.close();
  });
  afterAll(() => database.drop());

  const health = () => request(app.getHttpServer()).get('/health');

  it('is up with the database and the token endpoint reachable, and counts connections to reauthorize', async () => {
    const service = app.get(ProcoreTokenService);
    await connectOwner(service, 'health-user-ok');
    await connectOwner(service, 'health-user-revoked');
    fake.revokeToken(await service.getAccessToken('health-user-revoked'));
    await expect(service.refresh('health-user-revoked')).rejects.toThrow();

    const response = await health().expect(200);

    expect(response.body).toMatchObject({
      status: 'ok',
      info: {
        procore: { status: 'up', database: 'up', tokenEndpoint: 'up', reauthorizationRequired: 1 },
      },
    });
    // The probe carries no credential, so it consumed and issued nothing.
    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.counters.clientCredentials).toBe(0);
  });

  it('is down with a clear message, and no secret, when the database is unreachable', async () => {
    proxy.cut();

    const response = await health().expect(503);

    expect(response.body.status).toBe('error');
    expect(response.body.error.procore).toMatchObject({
      status: 'down',
      database: 'down',
      tokenEndpoint: 'up',
      message: expect.stringMatching(/^Procore token store unreachable \(\w+\)$/),
    });
    const answered = JSON.stringify(response.body);
    for (const secret of [
      fake.clientSecret,
      TEST_ENCRYPTION_KEY.split(':')[1] as string,
      database.url,
    ]) {
      expect(answered).not.toContain(secret);
    }
  });

  it('is down when the token endpoint is unreachable', async () => {
    await fake.close();
    fakeClosed = true;

    const response = await health().expect(503);

    expect(response.body.error.procore).toMatchObject({
      status: 'down',
      database: 'up',
      tokenEndpoint: 'down',
      message: 'Procore token endpoint unreachable (ECONNREFUSED)',
    });
  });

  it("is down when the token endpoint answers 5xx, and reuses the endpoint's answer for 30 s", async () => {
    fake.injectFault({ kind: 'status', status: 502 });
    const down = await health().expect(503);
    expect(down.body.error.procore).toMatchObject({
      tokenEndpoint: 'down',
      message: 'Procore token endpoint answered 502',
    });

    // Within the cache time the endpoint is not called again: its answer stands.
    await health().expect(503);
    await app.get(ProcoreHealthIndicator).isHealthy('procore', { cacheMs: 0 });
    const up = await health().expect(200);
    expect(up.body.info.procore).toMatchObject({ status: 'up', tokenEndpoint: 'up' });
  });
});

/** A store whose owner ids live in a uuid column: any other id is an error, as in PostgreSQL. */
class UuidKeyedTokenStore extends InMemoryProcoreTokenStore {
  pings = 0;
  override find(ownerId: string) {
    if (!/^[0-9a-f-]{36}$/.test(ownerId)) {
      return Promise.reject(new Error(`invalid input syntax for type uuid: "${ownerId}"`));
    }
    return super.find(ownerId);
  }
  override async ping(): Promise<void> {
    this.pings++;
  }
}

describe('ProcoreHealthIndicator with the storage option (no TypeORM)', () => {
  /** An app whose token store is `tokens` (in-memory states), against a fresh fake. */
  async function withStoreApp(
    tokens: typeof InMemoryProcoreTokenStore,
    work: (app: INestApplication) => Promise<void>,
  ): Promise<void> {
    const fake = await FakeProcoreServer.start();
    const moduleRef = await Test.createTestingModule({
      imports: [
        ProcoreAuthModule.forRoot({
          ...fakeProcoreOptions(fake),
          storage: { tokens, states: InMemoryProcoreOAuthStateStore },
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: new RecordingLogger() });
    await app.init();
    try {
      await work(app);
    } finally {
      await app.close();
      await fake.close();
    }
  }

  it("asks the store's ping(): a store that cannot look up the default probe id stays up", () =>
    withStoreApp(UuidKeyedTokenStore, async (app) => {
      const result = await app.get(ProcoreHealthIndicator).isHealthy('tokens');

      expect(result).toEqual({ tokens: { status: 'up', database: 'up', tokenEndpoint: 'up' } });
      expect(app.get(ProcoreTokenStore)).toBeInstanceOf(UuidKeyedTokenStore);
      expect((app.get(ProcoreTokenStore) as UuidKeyedTokenStore).pings).toBe(1);
    }));

  it('probes the database through the store in use; the count needs the TypeORM store', () =>
    withStoreApp(InMemoryProcoreTokenStore, async (app) => {
      const result = await app.get(ProcoreHealthIndicator).isHealthy('tokens');

      expect(result).toEqual({ tokens: { status: 'up', database: 'up', tokenEndpoint: 'up' } });
    }));
});
