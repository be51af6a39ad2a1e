import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Injectable, Module, type INestApplication } from '@nestjs/common';
import { ConfigModule, ConfigService, type ConfigType } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import request from 'supertest';
import { DataSource } from 'typeorm';
import {
  ProcoreAuthModule,
  ProcoreToken,
  ProcoreTokenService,
  procoreAuthMigrations,
  procoreConfig,
  type ProcoreAuthModuleOptions,
  type ProcoreAuthOptionsFactory,
} from 'nestjs-procore-auth';
import {
  FakeProcoreServer,
  InMemoryProcoreOAuthStateStore,
  InMemoryProcoreTokenStore,
  PROCORE_TEST_ENCRYPTION_KEY,
  connectWithFakeProcore,
  overrideProcoreAuthOptions,
  resetProcoreTables,
} from 'nestjs-procore-auth/testing';
import { ownerFromHeader } from './support/procore-http-app.js';
import { secretScanLogger } from './support/secret-scan.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * The README's "Testing your app": an app module written the way the README's "Configure" shows
 * (ConfigModule, TypeORM, `forRootAsync` with `procoreConfig`, no Procore env variables set) is
 * pointed at the fake server with `overrideProcoreAuthOptions`, and its tables are reset between
 * tests with `resetProcoreTables`.
 */
@Controller()
class MeController {
  @Get('me')
  me(@ProcoreToken() token: string) {
    return { token: token.length > 0 };
  }
}

const PROCORE_ENV = [
  'PROCORE_CLIENT_ID',
  'PROCORE_CLIENT_SECRET',
  'PROCORE_REDIRECT_URI',
  'PROCORE_ENVIRONMENT',
  'PROCORE_AUTH_BASE_URL',
  'PROCORE_API_BASE_URL',
  'PROCORE_TOKEN_ENCRYPTION_KEY',
  'PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS',
  'PROCORE_SERVICE_ACCOUNTS',
];

function appModule(url: string, schema?: string) {
  @Module({
    imports: [
      ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true }),
      TypeOrmModule.forRoot({
        type: 'postgres',
        url,
        schema,
        autoLoadEntities: true,
        migrations: procoreAuthMigrations,
        migrationsRun: true,
      }),
      ProcoreAuthModule.forRootAsync({
        isGlobal: true,
        imports: [ConfigModule.forFeature(procoreConfig)],
        inject: [procoreConfig.KEY],
        useFactory: (cfg: ConfigType<typeof procoreConfig>) => ({
          ...cfg,
          ownerResolver: ownerFromHeader,
        }),
      }),
    ],
    controllers: [MeController],
  })
  class AppModule {}
  return AppModule;
}

async function startApp(
  module: unknown,
  fake: FakeProcoreServer,
  overrides: Parameters<typeof overrideProcoreAuthOptions>[2] = {},
): Promise<INestApplication> {
  const moduleRef = await overrideProcoreAuthOptions(
    Test.createTestingModule({ imports: [module as never] }),
    fake,
    overrides,
  ).compile();
  const app = moduleRef.createNestApplication({ logger: secretScanLogger });
  await app.init();
  return app;
}

/** Authorize route → the fake's consent → callback route, in one browser (cookies kept). */
async function connectThroughRoutes(app: INestApplication, ownerId: string): Promise<void> {
  const browser = request.agent(app.getHttpServer());
  const start = await browser.get('/procore/oauth/authorize').set('x-user-id', ownerId).expect(302);
  const location = start.headers.location as string;
  expect(location.startsWith(`${fakeUrl}/`)).toBe(true);
  const approved = await fetch(location, { redirect: 'manual' });
  const callback = new URL(approved.headers.get('location') as string);
  await browser
    .get('/procore/oauth/callback')
    .query({ code: callback.searchParams.get('code'), state: callback.searchParams.get('state') })
    .set('x-user-id', ownerId)
    .expect(200);
}

let fakeUrl = '';
const savedEnv: Record<string, string | undefined> = {};

beforeAll(() => {
  // The app reads its Procore settings from env; the test sets none, as a CI job would not.
  for (const name of PROCORE_ENV) {
    savedEnv[name] = process.env[name];
    delete process.env[name];
  }
});
afterAll(() => {
  for (const name of PROCORE_ENV) {
    if (savedEnv[name] !== undefined) process.env[name] = savedEnv[name];
  }
});

describe('testing an app that registers ProcoreAuthModule.forRootAsync(procoreConfig)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: INestApplication;

  beforeAll(async () => {
    database = await createTestDatabase('testing-your-app');
    fake = await FakeProcoreServer.start();
    fakeUrl = fake.url;
    app = await startApp(appModule(database.url), fake);
  });
  afterEach(async () => {
    await resetProcoreTables(app);
  });
  afterAll(async () => {
    await app?.close();
    await fake?.close();
    await database?.drop();
  });

  it('connects through the mounted routes and the fake, and @ProcoreToken() answers for the app’s own owner resolver', async () => {
    const server = app.getHttpServer();
    await request(server).get('/me').set('x-user-id', 'ada').expect(401);

    await connectThroughRoutes(app, 'ada');

    expect((await request(server).get('/me').set('x-user-id', 'ada').expect(200)).body).toEqual({
      token: true,
    });
    expect(fake.counters.authorizationCode).toBe(1);
    // Stored under the published test key.
    const [row] = (await app
      .get(DataSource)
      .query(`SELECT access_token FROM procore_oauth_tokens WHERE owner_id = 'ada'`)) as Array<{
      access_token: string;
    }>;
    expect(row?.access_token.startsWith('v1.procore-test-only.')).toBe(true);
  });

  it('starts from empty tables after resetProcoreTables(app): the connection of the previous test is gone, also from the cache', async () => {
    const rows = (await app
      .get(DataSource)
      .query('SELECT count(*)::int AS n FROM procore_oauth_tokens')) as Array<{ n: number }>;
    expect(rows[0]?.n).toBe(0);
    const response = await request(app.getHttpServer()).get('/me').set('x-user-id', 'ada');
    expect(response.status).toBe(401);
    expect(response.body).toMatchObject({ reason: 'not_connected' });
  });

  it('a second app instance built the same way reads the first one’s connection (one fixed test key)', async () => {
    await connectWithFakeProcore(app.get(ProcoreTokenService), 'grace');
    const second = await startApp(appModule(database.url), fake);
    try {
      await request(second.getHttpServer()).get('/me').set('x-user-id', 'grace').expect(200);
    } finally {
      await second.close();
    }
  });
});

describe('overrideProcoreAuthOptions', () => {
  let fake: FakeProcoreServer;
  let app: INestApplication | undefined;

  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    fakeUrl = fake.url;
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
    await fake.close();
  });

  it('points a forRoot() app configured for production Procore at the fake, keeping the app’s other options', async () => {
    @Module({
      imports: [
        ProcoreAuthModule.forRoot({
          clientId: 'production-client',
          clientSecret: 'production-secret-value',
          redirectUri: 'https://app.example.com/procore/oauth/callback',
          encryptionKey: PROCORE_TEST_ENCRYPTION_KEY,
          ownerResolver: ownerFromHeader,
          storage: { tokens: InMemoryProcoreTokenStore, states: InMemoryProcoreOAuthStateStore },
        }),
      ],
      controllers: [MeController],
    })
    class ForRootAppModule {}
    app = await startApp(ForRootAppModule, fake);

    await connectThroughRoutes(app, 'linus');

    await request(app.getHttpServer()).get('/me').set('x-user-id', 'linus').expect(200);
    expect(fake.counters.authorizationCode).toBe(1);
  });

  it('works with the in-memory stores and forRootAsync (no DataSource); resetProcoreTables(app) then says there are no tables to reset', async () => {
    @Module({
      imports: [
        ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true }),
        ProcoreAuthModule.forRootAsync({
          imports: [ConfigModule.forFeature(procoreConfig)],
          inject: [procoreConfig.KEY],
          useFactory: (cfg: ConfigType<typeof procoreConfig>) => ({
            ...cfg,
            ownerResolver: ownerFromHeader,
          }),
          storage: { tokens: InMemoryProcoreTokenStore, states: InMemoryProcoreOAuthStateStore },
        }),
      ],
      controllers: [MeController],
    })
    class InMemoryAppModule {}
    app = await startApp(InMemoryAppModule, fake);

    await connectThroughRoutes(app, 'margaret');

    await request(app.getHttpServer()).get('/me').set('x-user-id', 'margaret').expect(200);
    await expect(resetProcoreTables(app)).rejects.toThrow(
      /found no TypeORM DataSource \(the default one\) in this app: with your own stores/,
    );
  });

  it('works with forRootAsync({ useClass }) reading ConfigService', async () => {
    @Injectable()
    class ProcoreOptions implements ProcoreAuthOptionsFactory {
      constructor(private readonly config: ConfigService) {}
      createProcoreAuthOptions(): ProcoreAuthModuleOptions {
        return {
          clientId: this.config.get<string>('PROCORE_CLIENT_ID') as string,
          clientSecret: this.config.get<string>('PROCORE_CLIENT_SECRET') as string,
          redirectUri: this.config.get<string>('PROCORE_REDIRECT_URI') as string,
          encryptionKey: this.config.get<string>('PROCORE_TOKEN_ENCRYPTION_KEY') as string,
          ownerResolver: ownerFromHeader,
        };
      }
    }
    @Module({
      imports: [
        ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true }),
        ProcoreAuthModule.forRootAsync({
          useClass: ProcoreOptions,
          storage: { tokens: InMemoryProcoreTokenStore, states: InMemoryProcoreOAuthStateStore },
        }),
      ],
      controllers: [MeController],
    })
    class UseClassAppModule {}
    app = await startApp(UseClassAppModule, fake);

    await connectThroughRoutes(app, 'edsger');

    await request(app.getHttpServer()).get('/me').set('x-user-id', 'edsger').expect(200);
  });

  it('applies the overrides given last (here: owner from another header)', async () => {
    app = await startApp(
      (() => {
        @Module({
          imports: [
            ProcoreAuthModule.forRoot({
              clientId: 'x',
              clientSecret: 'y',
              redirectUri: 'https://app.example.com/cb',
              encryptionKey: PROCORE_TEST_ENCRYPTION_KEY,
              storage: {
                tokens: InMemoryProcoreTokenStore,
                states: InMemoryProcoreOAuthStateStore,
              },
            }),
          ],
          controllers: [MeController],
        })
        class OverriddenAppModule {}
        return OverriddenAppModule;
      })(),
      fake,
      {
        ownerResolver: (req) =>
          (req as { headers: Record<string, string> }).headers['x-tenant-user'],
      },
    );
    await connectWithFakeProcore(app.get(ProcoreTokenService), 'barbara');
    await request(app.getHttpServer()).get('/me').set('x-tenant-user', 'barbara').expect(200);
    await request(app.getHttpServer()).get('/me').set('x-user-id', 'barbara').expect(401);
  });

  it('refuses to run with NODE_ENV=production', () => {
    const previous = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      expect(() => overrideProcoreAuthOptions(Test.createTestingModule({}), fake)).toThrow(
        /refuses to run with NODE_ENV=production/,
      );
    } finally {
      process.env.NODE_ENV = previous;
    }
  });
});

describe('resetProcoreTables(dataSource)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;

  beforeAll(async () => {
    database = await createTestDatabase('testing-reset-schema');
    fake = await FakeProcoreServer.start();
    fakeUrl = fake.url;
  });
  afterAll(async () => {
    await fake?.close();
    await database?.drop();
  });

  it('empties the tables in the DataSource’s schema and leaves other schemas alone', async () => {
    const admin = new DataSource({ type: 'postgres', url: database.url });
    await admin.initialize();
    await admin.query('CREATE SCHEMA tenant_a');
    await admin.query('CREATE SCHEMA tenant_b');
    const apps: INestApplication[] = [];
    try {
      for (const schema of ['tenant_a', 'tenant_b']) {
        const app = await startApp(appModule(database.url, schema), fake);
        apps.push(app);
        await connectWithFakeProcore(app.get(ProcoreTokenService), `${schema}-user`);
        await app.get(ProcoreTokenService).getAuthorizationUrl(`${schema}-pending`);
      }
      const count = async (schema: string) =>
        (
          (await admin.query(
            `SELECT count(*)::int AS n FROM ${schema}.procore_oauth_tokens`,
          )) as Array<{
            n: number;
          }>
        )[0]?.n;
      expect(await count('tenant_a')).toBe(1);
      const pendingStates = async (schema: string) =>
        (
          (await admin.query(
            `SELECT count(*)::int AS n FROM ${schema}.procore_oauth_states`,
          )) as Array<{
            n: number;
          }>
        )[0]?.n;
      expect(await pendingStates('tenant_a')).toBe(1);

      await resetProcoreTables(apps[0]!.get<DataSource>(getDataSourceToken()));

      expect(await count('tenant_a')).toBe(0);
      expect(await count('tenant_b')).toBe(1);
      expect(await pendingStates('tenant_a')).toBe(0);
      expect(await pendingStates('tenant_b')).toBe(1);
    } finally {
      for (const app of apps) await app.close();
      await admin.destroy();
    }
  });
});
