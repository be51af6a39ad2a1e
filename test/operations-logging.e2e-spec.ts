import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import {
  ProcoreApi,
  ProcoreAuthModule,
  ProcoreToken,
  ProcoreTokenService,
  TokenRefreshScheduler,
  procoreAuthEntities,
  type ProcoreAuthModuleOptions,
  type ProcoreScopedClient,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { ownerFromHeader, type Platform } from './support/procore-http-app.js';
import {
  RecordingLogger,
  TEST_ENCRYPTION_KEY,
  connectOwner,
  expireStoredToken,
  fakeProcoreOptions,
  migrate,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';
import type { DataSource } from 'typeorm';
import { getDataSourceToken } from '@nestjs/typeorm';

@Controller()
class LoggedRoutesController {
  @Get('service/unknown')
  unknownAccount(@ProcoreToken({ serviceAccount: 'not-configured' }) token: string) {
    return { ok: token.length > 0 };
  }

  @Get('token')
  token(@ProcoreToken() token: string) {
    return { ok: token.length > 0 };
  }

  @Get('api/me')
  apiMe(@ProcoreApi() procore: ProcoreScopedClient) {
    return procore.get('/rest/v1.0/me');
  }
}

describe.each<Platform>(['express', 'fastify'])(
  'logging on %s (real PostgreSQL, fake Procore)',
  (platform) => {
    let database: TestDatabase;
    let fake: FakeProcoreServer;
    let app: INestApplication;
    let logger: RecordingLogger;
    let owner = 0;
    const nextOwner = () => `logging-${platform}-user-${++owner}`;

    beforeAll(async () => {
      database = await createTestDatabase(`logging_${platform}`);
      await migrate(database.url);
    });
    beforeEach(async () => {
      fake = await FakeProcoreServer.start();
    });
    afterEach(async () => {
      await app?.close();
      await fake.close();
    });
    afterAll(() => database.drop());

    /** An app whose logger is set the usual way: buffered, then `app.useLogger()`. */
    async function start(overrides: Partial<ProcoreAuthModuleOptions> = {}, extras = {}) {
      @Module({
        imports: [
          TypeOrmModule.forRoot({
            type: 'postgres',
            url: database.url,
            entities: procoreAuthEntities,
          }),
          ProcoreAuthModule.forRoot({
            ...fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader, ...overrides }),
            ...extras,
          }),
        ],
        controllers: [LoggedRoutesController],
      })
      class AppModule {}
      const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
      app =
        platform === 'fastify'
          ? moduleRef.createNestApplication(new FastifyAdapter(), { bufferLogs: true })
          : moduleRef.createNestApplication({ bufferLogs: true });
      logger = new RecordingLogger();
      app.useLogger(logger);
      await app.init();
      if (platform === 'fastify') {
        await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
      }
      return app;
    }

    /** Lines logged while `work` ran. */
    async function linesDuring(work: () => Promise<unknown>): Promise<string[]> {
      const before = logger.lines.length;
      await work();
      return logger.lines.slice(before);
    }

    const secrets = () => [fake.clientSecret, TEST_ENCRYPTION_KEY.split(':')[1] as string];

    it('logs a 500 once, at error level, naming its cause and no secret', async () => {
      await start();

      const lines = await linesDuring(() =>
        request(app.getHttpServer()).get('/service/unknown').expect(500),
      );

      const serverSide = lines.filter((line) => /^(error|warn|log) /.test(line));
      expect(serverSide).toHaveLength(1);
      expect(serverSide[0]).toMatch(
        /^error ProcoreConfigurationError \(configuration_error\) answered 500: /,
      );
      for (const secret of secrets()) expect(serverSide[0]).not.toContain(secret);
    });

    it('logs a 502 of an API call in a handler once, with the error name and code', async () => {
      await start();
      const ownerId = nextOwner();
      await connectOwner(app.get(ProcoreTokenService), ownerId);
      fake.injectFault({ kind: 'status', status: 404 }, { path: '/rest/v1.0/me' });

      const lines = await linesDuring(() =>
        request(app.getHttpServer()).get('/api/me').set('x-user-id', ownerId).expect(502),
      );

      const serverSide = lines.filter((line) => /^(error|warn|log) /.test(line));
      expect(serverSide).toEqual([
        expect.stringMatching(
          /^error ProcoreApiError \(api_error\) answered 502: .*GET \/rest\/v1\.0\/me/,
        ),
      ]);
    });

    it('logs a 503 of a failed refresh once (the refresh failure line), not again for the answer', async () => {
      await start();
      const ownerId = nextOwner();
      await connectOwner(app.get(ProcoreTokenService), ownerId);
      await expireStoredToken(app.get<DataSource>(getDataSourceToken()), fake, ownerId);
      app.get(ProcoreTokenService).evict(ownerId);
      fake.injectFault({ kind: 'status', status: 503 }, { grantType: 'refresh_token', times: 10 });

      const lines = await linesDuring(() =>
        request(app.getHttpServer()).get('/token').set('x-user-id', ownerId).expect(503),
      );

      const serverSide = lines.filter((line) => /^(error|warn|log) /.test(line));
      expect(serverSide).toEqual([
        expect.stringMatching(
          /^warn Procore token refresh failed for owner .*\(http_503, \d attempt\(s\), trigger request\)/,
        ),
      ]);
    });

    it('logs one start-up line through the app logger: environment, hosts, routes, scheduler', async () => {
      await start({ scheduler: { enabled: true } });

      const startup = logger.lines.filter((line) => line.includes('Procore auth ready'));
      expect(startup).toEqual([
        `log Procore auth ready: environment production, login host ${fake.url}, API host ${fake.url}, OAuth routes at /procore/oauth/{authorize,callback}, token refresh scheduler on (every 60 s). ProcoreAuth`,
      ]);
    });

    it('says so when the routes are not mounted and the scheduler is off', async () => {
      await start({ scheduler: { enabled: false } }, { routes: { enabled: false } });

      const startup = logger.lines.filter((line) => line.includes('Procore auth ready'));
      expect(startup).toHaveLength(1);
      expect(startup[0]).toContain('OAuth routes not mounted, token refresh scheduler off.');
    });

    it('an idle scheduler tick logs nothing at the default levels (debug only)', async () => {
      await start();
      // Nothing due: no connection at all.
      await app.get<DataSource>(getDataSourceToken()).query('DELETE FROM procore_oauth_tokens');

      const lines = await linesDuring(() => app.get(TokenRefreshScheduler).runTick());

      expect(lines.filter((line) => /^(error|warn|log) /.test(line))).toEqual([]);
      expect(lines).toEqual([expect.stringMatching(/^debug Procore token refresh: claimed 0/)]);
    });
  },
);
