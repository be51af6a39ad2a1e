import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Test } from '@nestjs/testing';
import { ConfigModule, type ConfigType } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import {
  ProcoreAuthModule,
  ProcoreConfigurationError,
  ProcoreTokenService,
  procoreAuthEntities,
  procoreConfig,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import {
  FakeProcoreServer,
  type FakeProcoreServiceAccountCredentials,
} from 'nestjs-procore-auth/testing';
import { ProcoreServiceAccounts } from '../lib/tokens/procore-service-accounts.js';
import { createHttpTestApp, type Platform } from './support/procore-http-app.js';
import {
  createProcoreTestApp,
  fakeProcoreOptions,
  generateKey,
  migrate,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** The `aud` claim of a fake Procore access token: the client id it was issued to. */
function audienceOf(token: string): unknown {
  const payload = token.split('.')[1] ?? '';
  return (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { aud?: unknown }).aud;
}

/** The error `pending` rejects with (fails the test when it resolves). */
async function rejectionOf(pending: Promise<unknown>): Promise<Error> {
  return pending.then(
    () => {
      throw new Error('expected a rejection, but the call resolved');
    },
    (error: unknown) => error as Error,
  );
}

describe('named service accounts (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let reports: FakeProcoreServiceAccountCredentials;
  let crm: FakeProcoreServiceAccountCredentials;
  /** Every client secret a message must never contain (regenerated ones are added). */
  const secrets: string[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('service_accounts');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
    reports = fake.addServiceAccount();
    crm = fake.addServiceAccount();
    secrets.push(fake.clientSecret, reports.clientSecret, crm.clientSecret);
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    fake.clearFaults();
  });

  afterAll(async () => {
    await fake?.close();
    await database?.drop();
  });

  function expectNoSecretIn(error: Error): void {
    for (const secret of secrets) {
      expect(error.message).not.toContain(secret);
      expect(String(error.stack)).not.toContain(secret);
    }
  }

  /** A fresh app instance (its own token caches) with `reports` and `crm-sync` configured. */
  async function bootApp(
    serviceAccounts: ProcoreAuthModuleOptions['serviceAccounts'] = {
      reports,
      'crm-sync': crm,
    },
  ): Promise<ProcoreTestApp & { accounts: ProcoreServiceAccounts }> {
    const booted = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake, { serviceAccounts }),
    });
    cleanups.push(() => booted.close());
    return { ...booted, accounts: booted.app.get(ProcoreServiceAccounts) };
  }

  it("gives the app and each named account its own token, issued to that account's client id", async () => {
    const { service, accounts } = await bootApp();
    fake.resetCounters();

    const [app, reportsToken, crmToken] = await Promise.all([
      service.getClientCredentialsToken(),
      service.getClientCredentialsToken('reports'),
      service.getClientCredentialsToken('crm-sync'),
    ]);

    expect(audienceOf(app)).toBe(fake.clientId);
    expect(audienceOf(reportsToken)).toBe(reports.clientId);
    expect(audienceOf(crmToken)).toBe(crm.clientId);
    for (const token of [app, reportsToken, crmToken]) {
      expect(fake.isAccessTokenValid(token)).toBe(true);
    }
    expect(fake.counters.clientCredentials).toBe(3);
    expect(accounts.names()).toEqual(['reports', 'crm-sync']);
  });

  it('serves a second call of every account from memory, without a token request', async () => {
    const { service } = await bootApp();
    const names = [undefined, 'reports', 'crm-sync'];
    const first = await Promise.all(names.map((name) => service.getClientCredentialsToken(name)));
    fake.resetCounters();

    const second = await Promise.all(names.map((name) => service.getClientCredentialsToken(name)));

    expect(second).toEqual(first);
    expect(fake.counters.clientCredentials).toBe(0);
  });

  it('makes one token request per account for 100 concurrent callers of each', async () => {
    const { service } = await bootApp();
    fake.resetCounters();
    const names = [undefined, 'reports', 'crm-sync'] as const;

    const tokens = await Promise.all(
      names.map((name) =>
        Promise.all(Array.from({ length: 100 }, () => service.getClientCredentialsToken(name))),
      ),
    );

    expect(fake.counters.clientCredentials).toBe(3);
    expect(tokens.map((perAccount) => new Set(perAccount).size)).toEqual([1, 1, 1]);
    expect(tokens.map((perAccount) => audienceOf(perAccount[0]!))).toEqual([
      fake.clientId,
      reports.clientId,
      crm.clientId,
    ]);
  });

  describe('invalidate', () => {
    it('100 callers reporting the same rejected token cause one new token request', async () => {
      const { accounts } = await bootApp();
      const rejected = await accounts.getToken('reports');
      fake.resetCounters();

      const renewed = await Promise.all(
        Array.from({ length: 100 }, () => {
          accounts.invalidate('reports', rejected);
          return accounts.getToken('reports');
        }),
      );

      expect(fake.counters.clientCredentials).toBe(1);
      expect(new Set(renewed).size).toBe(1);
      expect(renewed[0]).not.toBe(rejected);
      expect(audienceOf(renewed[0]!)).toBe(reports.clientId);
    });

    it('a caller holding an older token does not drop a newer one', async () => {
      const { accounts } = await bootApp();
      const old = await accounts.getToken('reports');
      accounts.invalidate('reports', old);
      const newer = await accounts.getToken('reports');
      fake.resetCounters();

      accounts.invalidate('reports', old);

      expect(await accounts.getToken('reports')).toBe(newer);
      expect(fake.counters.clientCredentials).toBe(0);
    });

    it("drops only the named account's token", async () => {
      const { accounts } = await bootApp();
      const [app, reportsToken, crmToken] = await Promise.all([
        accounts.getToken(),
        accounts.getToken('reports'),
        accounts.getToken('crm-sync'),
      ]);
      fake.resetCounters();

      accounts.invalidate('reports', reportsToken);

      expect(await accounts.getToken()).toBe(app);
      expect(await accounts.getToken('crm-sync')).toBe(crmToken);
      expect(await accounts.getToken('reports')).not.toBe(reportsToken);
      expect(fake.counters.clientCredentials).toBe(1);
    });
  });

  it('a regenerated secret is a configuration error naming the account; the other accounts keep working', async () => {
    // An account of its own: regenerating its secret must not break the other tests.
    const rotated = fake.addServiceAccount();
    secrets.push(rotated.clientSecret);
    const { service, accounts } = await bootApp({ rotated, 'crm-sync': crm });
    const [before, crmBefore] = await Promise.all([
      service.getClientCredentialsToken('rotated'),
      service.getClientCredentialsToken('crm-sync'),
    ]);

    secrets.push(fake.regenerateClientSecret(rotated.clientId));
    // Procore revokes the account's tokens with the old secret.
    expect(fake.isAccessTokenValid(before)).toBe(false);
    accounts.invalidate('rotated', before);
    fake.resetCounters();

    const error = await rejectionOf(service.getClientCredentialsToken('rotated'));

    expect(error).toBeInstanceOf(ProcoreConfigurationError);
    expect(error.message).toContain('service account "rotated"');
    expect(error.message).toContain('invalid_client');
    expect(error.message).toContain('PROCORE_SERVICE_ACCOUNT_ROTATED_CLIENT_SECRET');
    expect(error.message).toContain('PROCORE_SERVICE_ACCOUNT_ROTATED_CLIENT_ID');
    expect(error.message).toMatch(/regenerated/);
    expectNoSecretIn(error);
    // A refused secret is not retried: only a new configuration can fix it.
    expect(fake.counters.clientCredentials).toBe(1);

    expect(await service.getClientCredentialsToken('crm-sync')).toBe(crmBefore);
    accounts.invalidate('crm-sync', crmBefore);
    const crmAfter = await service.getClientCredentialsToken('crm-sync');
    expect(fake.isAccessTokenValid(crmAfter)).toBe(true);
    expect(fake.isAccessTokenValid(await service.getClientCredentialsToken())).toBe(true);
  });

  it('an unknown name is a configuration error naming it, with no token request', async () => {
    const { service } = await bootApp();
    fake.resetCounters();

    const error = await rejectionOf(service.getClientCredentialsToken('billing'));

    expect(error).toBeInstanceOf(ProcoreConfigurationError);
    expect(error.message).toBe(
      'Unknown Procore service account "billing": configure it in serviceAccounts (PROCORE_SERVICE_ACCOUNTS).',
    );
    expectNoSecretIn(error);
    expect(fake.counters.clientCredentials).toBe(0);
  });

  describe('configured through ConfigModule + procoreConfig', () => {
    const savedEnv = new Map<string, string | undefined>();

    afterEach(() => {
      for (const [name, value] of savedEnv) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      savedEnv.clear();
    });

    function setEnv(values: Record<string, string | undefined>): void {
      for (const [name, value] of Object.entries(values)) {
        if (!savedEnv.has(name)) savedEnv.set(name, process.env[name]);
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }

    /** A deployment pointing at the fake, with `PROCORE_SERVICE_ACCOUNTS=reports,crm-sync`. */
    function serviceAccountEnv(): Record<string, string | undefined> {
      return {
        PROCORE_CLIENT_ID: fake.clientId,
        PROCORE_CLIENT_SECRET: fake.clientSecret,
        PROCORE_REDIRECT_URI: 'http://127.0.0.1:3000/procore/oauth/callback',
        PROCORE_AUTH_BASE_URL: fake.url,
        PROCORE_API_BASE_URL: fake.url,
        PROCORE_TOKEN_ENCRYPTION_KEY: generateKey('env-key'),
        PROCORE_SERVICE_ACCOUNTS: 'reports, crm-sync',
        PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_ID: reports.clientId,
        PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_SECRET: reports.clientSecret,
        PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_ID: crm.clientId,
        PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_SECRET: crm.clientSecret,
      };
    }

    /** The SPEC's wiring: procoreConfig reads process.env when the app compiles. */
    async function bootFromEnv(): Promise<INestApplication> {
      const moduleRef = await Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({
            type: 'postgres',
            url: database.url,
            entities: procoreAuthEntities,
          }),
          ConfigModule.forRoot({ ignoreEnvFile: true, load: [] }),
          ProcoreAuthModule.forRootAsync({
            imports: [ConfigModule.forFeature(procoreConfig)],
            inject: [procoreConfig.KEY],
            useFactory: (cfg: ConfigType<typeof procoreConfig>) => ({
              ...cfg,
              scheduler: { enabled: false },
            }),
          }),
        ],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      cleanups.push(() => app.close());
      await app.init();
      return app;
    }

    it('reads PROCORE_SERVICE_ACCOUNTS and each PROCORE_SERVICE_ACCOUNT_<NAME>_* pair', async () => {
      setEnv(serviceAccountEnv());

      const app = await bootFromEnv();
      const service = app.get(ProcoreTokenService);

      expect(audienceOf(await service.getClientCredentialsToken('reports'))).toBe(reports.clientId);
      expect(audienceOf(await service.getClientCredentialsToken('crm-sync'))).toBe(crm.clientId);
      expect(app.get(ProcoreServiceAccounts).names()).toEqual(['reports', 'crm-sync']);
    });

    it('stops the bootstrap naming the variables of a listed account that are missing', async () => {
      setEnv({
        ...serviceAccountEnv(),
        PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_ID: undefined,
        PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_SECRET: undefined,
      });

      const error = await rejectionOf(bootFromEnv());

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain(
        'serviceAccounts.crm-sync.clientId is missing: set PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_ID',
      );
      expect(error.message).toContain(
        'serviceAccounts.crm-sync.clientSecret is missing: set PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_SECRET',
      );
      expect(error.message).not.toContain('serviceAccounts.reports');
      expectNoSecretIn(error);
    });
  });

  describe.each<Platform>(['express', 'fastify'])('@ProcoreToken() on %s', (platform) => {
    async function httpApp(serviceAccounts: ProcoreAuthModuleOptions['serviceAccounts']) {
      const http = await createHttpTestApp({
        platform,
        databaseUrl: database.url,
        fake,
        options: fakeProcoreOptions(fake, { serviceAccounts }),
      });
      cleanups.push(() => http.close());
      return http.app.getHttpServer() as Parameters<typeof request>[0];
    }

    it("yields the named account's token with { serviceAccount: 'reports' }, cached across requests", async () => {
      const server = await httpApp({ reports });
      fake.resetCounters();

      const first = await request(server).get('/service/reports').expect(200);
      const second = await request(server).get('/service/reports').expect(200);

      expect(first.body).toEqual({ valid: true, clientId: reports.clientId });
      expect(second.body).toEqual(first.body);
      expect(fake.counters.clientCredentials).toBe(1);
    });

    it('answers 500 without details when the name is not configured', async () => {
      const server = await httpApp({ 'crm-sync': crm });

      const response = await request(server).get('/service/reports').expect(500);

      expect(response.body).toEqual({
        statusCode: 500,
        error: 'Internal Server Error',
        reason: 'configuration_error',
        message: 'Procore authentication failed on the server.',
      });
    });
  });
});
