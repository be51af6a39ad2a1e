import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Inject, Injectable, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  PROCORE_AUTH_OPTIONS,
  ProcoreApi,
  ProcoreAuthModule,
  ProcoreConfigurationError,
  ProcoreOAuthStateStore,
  ProcoreToken,
  ProcoreTokenService,
  ProcoreTokenStore,
  TokenRefreshScheduler,
  type ProcoreScopedClient,
  type ResolvedProcoreAuthOptions,
} from 'nestjs-procore-auth';
import {
  FakeProcoreServer,
  InMemoryProcoreOAuthStateStore,
  InMemoryProcoreTokenStore,
  connectWithFakeProcore,
} from 'nestjs-procore-auth/testing';
import { ownerFromHeader } from './support/procore-http-app.js';
import { fakeProcoreOptions } from './support/procore-test-app.js';
import { secretScanLogger } from './support/secret-scan.js';

/**
 * `storage: { tokens, states }`: an app with its own stores and no TypeORM at all (no
 * TypeOrmModule, no DataSource) connects users and gets tokens through `@ProcoreToken()`.
 */
function routes(fake: FakeProcoreServer) {
  @Controller()
  class ProjectsController {
    @Get('me')
    me(@ProcoreToken() token: string) {
      return { valid: fake.isAccessTokenValid(token) };
    }

    @Get('api/me')
    apiMe(@ProcoreApi() procore: ProcoreScopedClient) {
      return procore.get('/rest/v1.0/me');
    }
  }
  return ProjectsController;
}

async function start(
  fake: FakeProcoreServer,
  module: ReturnType<typeof ProcoreAuthModule.forRoot>,
): Promise<INestApplication> {
  @Module({ imports: [module], controllers: [routes(fake)] })
  class AppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = moduleRef.createNestApplication({ logger: secretScanLogger });
  await app.init();
  return app;
}

/** Authorize route → the fake's consent → callback route, in one browser (cookies kept). */
async function connectThroughRoutes(app: INestApplication, ownerId: string): Promise<void> {
  const browser = request.agent(app.getHttpServer());
  const start = await browser.get('/procore/oauth/authorize').set('x-user-id', ownerId).expect(302);
  const approved = await fetch(start.headers.location as string, { redirect: 'manual' });
  const callback = new URL(approved.headers.get('location') as string);
  await browser
    .get('/procore/oauth/callback')
    .query({ code: callback.searchParams.get('code'), state: callback.searchParams.get('state') })
    .set('x-user-id', ownerId)
    .expect(200);
}

describe('the storage setting', () => {
  let fake: FakeProcoreServer;
  let app: INestApplication | undefined;

  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
    await fake.close();
  });

  it('with store classes and no TypeORM, connects through the OAuth routes and serves @ProcoreToken() and @ProcoreApi()', async () => {
    app = await start(
      fake,
      ProcoreAuthModule.forRoot({
        ...fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
        storage: { tokens: InMemoryProcoreTokenStore, states: InMemoryProcoreOAuthStateStore },
      }),
    );
    const server = app.getHttpServer();
    const before = await request(server).get('/me').set('x-user-id', 'ada').expect(401);
    expect(before.body).toMatchObject({ reason: 'not_connected' });

    await connectThroughRoutes(app, 'ada');

    expect((await request(server).get('/me').set('x-user-id', 'ada').expect(200)).body).toEqual({
      valid: true,
    });
    const me = await request(server).get('/api/me').set('x-user-id', 'ada').expect(200);
    expect(me.body).toMatchObject({ id: expect.anything() });
    // The stores Nest instantiated are the ones in use: the connection is in the app's store.
    const stored = await app.get(ProcoreTokenStore).find('ada');
    expect(app.get(ProcoreTokenStore)).toBeInstanceOf(InMemoryProcoreTokenStore);
    expect(app.get(ProcoreOAuthStateStore)).toBeInstanceOf(InMemoryProcoreOAuthStateStore);
    expect(stored).toMatchObject({ ownerId: 'ada', status: 'active', version: 1 });
    // Without a DataSource, the rate limit is each instance's own (no shared ledger to reach).
    expect(
      app.get<ResolvedProcoreAuthOptions>(PROCORE_AUTH_OPTIONS).api.rateLimitCoordination,
    ).toBe('instance');
  });

  it('with store instances, the module uses exactly those instances', async () => {
    const tokens = new InMemoryProcoreTokenStore();
    const states = new InMemoryProcoreOAuthStateStore(3);
    app = await start(
      fake,
      ProcoreAuthModule.forRoot({
        ...fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
        storage: { tokens, states },
      }),
    );
    const service = app.get(ProcoreTokenService);
    await connectWithFakeProcore(service, 'grace');
    const stored = await tokens.find('grace');
    expect(stored).toMatchObject({ ownerId: 'grace', status: 'active' });
    // Stores only ever see ciphertext.
    const token = await service.getAccessToken('grace');
    expect(stored?.accessToken).not.toContain(token);
    const response = await request(app.getHttpServer()).get('/me').set('x-user-id', 'grace');
    expect(response.body).toEqual({ valid: true });
  });

  it('two app instances sharing one store refresh an expired token exactly once under concurrent requests', async () => {
    const tokens = new InMemoryProcoreTokenStore();
    const states = new InMemoryProcoreOAuthStateStore();
    const module = () =>
      ProcoreAuthModule.forRoot({
        ...fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
        storage: { tokens, states },
      });
    app = await start(fake, module());
    await connectWithFakeProcore(app.get(ProcoreTokenService), 'ada');
    const connected = await tokens.find('ada');
    // Hours later: the stored token has expired, at the fake too.
    fake.advanceClock(fake.accessTokenTtlSeconds + 60);
    await tokens.withLock('ada', 1_000, (_record, writer) =>
      writer.update({ expiresAt: new Date(Date.now() - 60_000) }),
    );
    // Two instances started afterwards (nothing in their token caches), sharing the store.
    await app.close();
    app = await start(fake, module());
    const second = await start(fake, module());
    try {
      const services = [app.get(ProcoreTokenService), second.get(ProcoreTokenService)];
      const handedOut = await Promise.all(
        Array.from({ length: 20 }, (_, i) => services[i % 2].getAccessToken('ada')),
      );
      expect(fake.counters.refreshToken).toBe(1);
      expect(fake.counters.rejectedRefreshTokens).toBe(0);
      expect(new Set(handedOut).size).toBe(1);
      expect(fake.isAccessTokenValid(handedOut[0])).toBe(true);
      const rotated = await tokens.find('ada');
      expect(rotated?.version).toBe((connected?.version ?? 0) + 1);
      expect(rotated?.refreshToken).not.toBe(connected?.refreshToken);
    } finally {
      await second.close();
    }
  });

  it('the scheduler claims through the store: two instances ticking at once refresh a due connection once', async () => {
    const tokens = new InMemoryProcoreTokenStore();
    const module = () =>
      ProcoreAuthModule.forRoot({
        ...fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
        storage: { tokens, states: InMemoryProcoreOAuthStateStore },
      });
    app = await start(fake, module());
    const second = await start(fake, module());
    try {
      await connectWithFakeProcore(app.get(ProcoreTokenService), 'ada');
      // Due: less than the look-ahead (min(15 min, half the lifetime)) remains.
      await tokens.withLock('ada', 1_000, (_record, writer) =>
        writer.update({ expiresAt: new Date(Date.now() + 60_000) }),
      );
      const ticks = await Promise.all([
        app.get(TokenRefreshScheduler).runTick(),
        second.get(TokenRefreshScheduler).runTick(),
      ]);
      expect(ticks.map((tick) => tick.claimed).reduce((a, b) => a + b)).toBe(1);
      expect(ticks.map((tick) => tick.refreshed).reduce((a, b) => a + b)).toBe(1);
      expect(fake.counters.refreshToken).toBe(1);
      expect((await tokens.find('ada'))?.expiresAt?.getTime()).toBeGreaterThan(
        Date.now() + 3_600_000,
      );
    } finally {
      await second.close();
    }
  });

  it('instantiates store classes inside the module: they inject forRootAsync imports and the options', async () => {
    @Injectable()
    class Backend {
      readonly writes: string[] = [];
    }
    @Module({ providers: [Backend], exports: [Backend] })
    class BackendModule {}

    @Injectable()
    class RecordingTokenStore extends InMemoryProcoreTokenStore {
      constructor(
        readonly backend: Backend,
        @Inject(PROCORE_AUTH_OPTIONS) readonly options: ResolvedProcoreAuthOptions,
      ) {
        super();
      }
      override upsert(...args: Parameters<InMemoryProcoreTokenStore['upsert']>) {
        this.backend.writes.push(args[0]);
        return super.upsert(...args);
      }
    }

    app = await start(
      fake,
      ProcoreAuthModule.forRootAsync({
        imports: [BackendModule],
        useFactory: () => fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
        storage: { tokens: RecordingTokenStore, states: InMemoryProcoreOAuthStateStore },
      }),
    );
    await connectThroughRoutes(app, 'lin');
    const store = app.get(ProcoreTokenStore) as RecordingTokenStore;
    expect(store.backend.writes).toEqual(['lin']);
    expect(store.options.clientId).toBe(fake.clientId);
  });

  it('keeps rateLimitCoordination when the app sets it', async () => {
    const module = await Test.createTestingModule({
      imports: [
        ProcoreAuthModule.forRoot({
          ...fakeProcoreOptions(fake, { api: { rateLimitCoordination: 'database' } }),
          storage: { tokens: new InMemoryProcoreTokenStore() },
        }),
      ],
    }).compile();
    expect(
      module.get<ResolvedProcoreAuthOptions>(PROCORE_AUTH_OPTIONS).api.rateLimitCoordination,
    ).toBe('database');
    await module.close();
  });

  it('refuses a value that is not a store, naming the setting', () => {
    expect(() =>
      ProcoreAuthModule.forRoot({
        ...fakeProcoreOptions(fake),
        storage: { tokens: { find: () => null } as unknown as ProcoreTokenStore },
      }),
    ).toThrow(ProcoreConfigurationError);
    expect(() =>
      ProcoreAuthModule.forRoot({
        ...fakeProcoreOptions(fake),
        storage: { states: class NotAStore {} as unknown as typeof InMemoryProcoreOAuthStateStore },
      }),
    ).toThrow(/storage\.states is invalid: .*missing save, consume/);
  });
});
