import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import request from 'supertest';
import {
  ProcoreApiError,
  ProcoreAuthEventType,
  ProcoreClient,
  ProcoreCompanyDisconnectedError,
  ProcoreConfigurationError,
  ProcoreInvalidCompanyIdError,
  ProcoreRateLimitedError,
  ProcoreReauthorizationRequiredError,
  ProcoreUnsafeUrlError,
  type ProcoreAuthEvent,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import type {
  FakeProcoreApiRequest,
  FakeProcoreProject,
  FakeProcoreServiceAccountCredentials,
} from 'nestjs-procore-auth/testing';
import { until, useFaultHarness } from './support/fault-harness.js';
import {
  createHttpTestApp,
  ownerFromHeader,
  type HttpTestApp,
  type Platform,
} from './support/procore-http-app.js';
import {
  connectOwner,
  fakeProcoreOptions,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { recordOutput } from './support/secret-scan.js';

/** A company id above 2^53: `Number(BIG_ID)` is 9007199254740992, another company. */
const BIG_ID = '9007199254740993';
const ACME = '1001';
/** Fast retries and timeouts: the suite waits on conditions, never on long defaults. */
const FAST_API = { retryBaseDelayMs: 5, timeoutMs: 5_000 } as const;

type EventOf<T extends ProcoreAuthEvent['type']> = Extract<ProcoreAuthEvent, { type: T }>;

function eventsOf<T extends ProcoreAuthEvent['type']>(app: ProcoreTestApp, type: T): EventOf<T>[] {
  return app.events.filter((event): event is EventOf<T> => event.type === type);
}

/**
 * The error `pending` rejects with (fails the test when it resolves). Recorded for the suite-wide
 * secret check: the client's errors are what an app logs or answers.
 */
async function rejectionOf(pending: Promise<unknown>): Promise<Error> {
  return pending.then(
    () => {
      throw new Error('expected a rejection, but the call resolved');
    },
    (error: unknown) => {
      recordOutput('error from ProcoreScopedClient', error);
      return error as Error;
    },
  );
}

/** Every item of an async iterable (pagination). */
async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** A plain HTTP server standing for a host the token must never reach; counts what arrives. */
async function startForeignHost(): Promise<{
  url: string;
  hits: string[];
  close(): Promise<void>;
}> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url} ${req.headers.authorization ? 'with' : 'without'} auth`);
    res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
    res.end('[]');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('ProcoreClient against the fake Procore API (real PostgreSQL)', () => {
  const harness = useFaultHarness('procore_client');
  const cleanups: (() => Promise<unknown>)[] = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** An app instance (default token cache on), fast API retries, closed after the test. */
  async function boot(
    overrides: Partial<ProcoreAuthModuleOptions> = {},
  ): Promise<ProcoreTestApp & { client: ProcoreClient }> {
    const app = await harness.start({
      cache: {},
      ...overrides,
      api: { ...FAST_API, ...overrides.api },
    });
    return { ...app, client: app.app.get(ProcoreClient) };
  }

  /** A connected owner; the fake's counters and request log start from zero. */
  async function connected(app: ProcoreTestApp, label: string): Promise<string> {
    const ownerId = harness.nextOwner(label);
    await connectOwner(app.service, ownerId);
    harness.fake.resetCounters();
    harness.fake.clearApiRequests();
    return ownerId;
  }

  const requestsTo = (path: string, method = 'GET'): FakeProcoreApiRequest[] =>
    harness.fake.apiRequests.filter((entry) => entry.path === path && entry.method === method);

  // --- calls and answers ---------------------------------------------------------------------

  it('GETs /rest/v1.0/me for an owner: request() answers status, headers, data and the rate limit', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'me');
    const procore = app.client.forOwner(owner);

    const startedAt = Date.now();
    const answer = await procore.request('GET', '/rest/v1.0/me');

    const user = { id: fake.user.id, login: fake.user.login, name: fake.user.name };
    expect(answer.status).toBe(200);
    expect(answer.data).toEqual(user);
    expect(answer.headers['content-type']).toContain('application/json');
    expect(answer.headers['x-rate-limit-limit']).toBe('3600');
    expect(answer.rateLimit).toMatchObject({ limit: 3600, remaining: 3599 });
    const resetAt = answer.rateLimit.resetAt!.getTime();
    expect(resetAt).toBeGreaterThanOrEqual(startedAt + 3_599_000);
    expect(resetAt).toBeLessThanOrEqual(Date.now() + 3_601_000);
    expect(await procore.get('/rest/v1.0/me')).toEqual(user);
    expect(fake.apiRequests).toEqual([
      expect.objectContaining({
        method: 'GET',
        path: '/rest/v1.0/me',
        authorization: 'valid',
        tokenKind: 'user',
        clientId: fake.clientId,
        companyId: undefined,
        status: 200,
      }),
      expect.objectContaining({ path: '/rest/v1.0/me', status: 200 }),
    ]);
    expect(fake.counters.refreshToken).toBe(0);
    expect(await app.service.getConnection(owner)).toMatchObject({
      status: 'active',
      failureCount: 0,
    });
  });

  it('keeps the token and company header its own: extra headers cannot replace them', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'headers');

    const projects = await app.client
      .forOwner(owner, { companyId: ACME })
      .get('/rest/v1.0/projects', {
        query: { per_page: 1 },
        headers: { Authorization: 'Bearer not-the-token', 'Procore-Company-Id': BIG_ID },
      });

    expect(projects).toEqual([expect.objectContaining({ company_id: ACME })]);
    expect(fake.apiRequests).toEqual([
      expect.objectContaining({ authorization: 'valid', companyId: ACME, status: 200 }),
    ]);
  });

  it('answers a 200 whose body is not JSON (truncated, HTML) with a ProcoreApiError, never as data', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'not-json');
    const procore = app.client.forOwner(owner);

    fake.injectFault({ kind: 'invalid-json' }, { path: '/rest/v1.0/companies' });
    const truncated = await rejectionOf(procore.get('/rest/v1.0/companies'));
    fake.injectFault({ kind: 'html' }, { path: '/rest/v1.0/companies' });
    const html = await rejectionOf(procore.get('/rest/v1.0/companies'));

    expect(truncated).toBeInstanceOf(ProcoreApiError);
    expect(html).toBeInstanceOf(ProcoreApiError);
    expect(html.message).not.toContain('<html');
  });

  it('logs one debug line per call with method, path, status, duration and attempts', async () => {
    const app = await boot();
    const owner = await connected(app, 'debug-line');
    const procore = app.client.forOwner(owner);

    await procore.get('/rest/v1.0/me', { query: { view: 'compact' } });
    await rejectionOf(procore.get('/rest/v1.0/nowhere'));

    const lines = harness.logger.lines.filter((line) => line.includes('Procore GET'));
    expect(lines).toEqual([
      expect.stringMatching(/^debug Procore GET \/rest\/v1\.0\/me 200 in \d+ ms \(1 attempt\)/),
      expect.stringMatching(
        /^debug Procore GET \/rest\/v1\.0\/nowhere 404 in \d+ ms \(1 attempt\)/,
      ),
    ]);
    expect(lines.join('\n')).not.toContain('compact');
  });

  it('logs one debug line for every call that reached Procore, whatever its outcome', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'debug-outcomes');
    const acme = app.client.forOwner(owner, { companyId: ACME });

    fake.disconnectCompany(ACME);
    await rejectionOf(acme.get('/rest/v1.0/projects'));
    fake.injectFault({ kind: 'rate-limit', retryAfterSeconds: 1 }, { path: '/rest' });
    await rejectionOf(acme.withCompany(BIG_ID).post('/rest/v1.0/projects', { body: {} }));

    expect(fake.counters.api).toBe(2);
    expect(harness.logger.lines.filter((line) => line.startsWith('debug Procore '))).toEqual([
      expect.stringMatching(
        /^debug Procore GET \/rest\/v1\.0\/projects 403 in \d+ ms \(1 attempt\)/,
      ),
      expect.stringMatching(
        /^debug Procore POST \/rest\/v1\.0\/projects 429 in \d+ ms \(1 attempt\)/,
      ),
    ]);
  });

  // Regression: a call whose 401 recovery fails (invalid_grant, or invalid_client for a service account) still logs its line.
  it('logs the debug line of a call whose 401 recovery failed', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'debug-401');
    fake.revokeToken(await harness.storedRefreshToken(app, owner));

    await rejectionOf(app.client.forOwner(owner).get('/rest/v1.0/me'));

    expect(fake.counters.api).toBe(1);
    expect(harness.logger.lines.filter((line) => line.startsWith('debug Procore '))).toEqual([
      expect.stringMatching(/^debug Procore GET \/rest\/v1\.0\/me 401 in \d+ ms \(1 attempt\)/),
    ]);
  });

  // --- 401 recovery ----------------------------------------------------------------------------

  it('recovers a 401 with exactly one refresh (trigger unauthorized) and retries the call', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'unauthorized');
    const before = await app.service.getConnection(owner);
    const rejected = await app.service.getAccessToken(owner);
    // Procore no longer takes the token while our database (and cache) still think it fresh.
    fake.advanceClock(fake.accessTokenTtlSeconds + 60);
    expect(fake.isAccessTokenValid(rejected)).toBe(false);

    const me = await app.client.forOwner(owner).get('/rest/v1.0/me');

    expect(me).toMatchObject({ id: fake.user.id });
    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.apiRequests.map((entry) => [entry.authorization, entry.status])).toEqual([
      ['invalid', 401],
      ['valid', 200],
    ]);
    expect(eventsOf(app, ProcoreAuthEventType.TokenRefreshed)).toEqual([
      expect.objectContaining({ ownerId: owner, trigger: 'unauthorized' }),
    ]);
    expect(await app.service.getConnection(owner)).toMatchObject({
      status: 'active',
      version: before!.version + 1,
      failureCount: 0,
      lastErrorCode: null,
    });
    const current = await app.service.getAccessToken(owner);
    expect(current).not.toBe(rejected);
    expect(fake.isAccessTokenValid(current)).toBe(true);
  });

  it('serves 500 concurrent calls that all got 401 on one token generation with ONE refresh', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'storm');
    const before = await app.service.getConnection(owner);
    fake.advanceClock(fake.accessTokenTtlSeconds + 60);
    // The refresh is held at Procore until every call has had its 401.
    const refresh = fake.hold({ path: '/oauth/token' });
    const procore = app.client.forOwner(owner);

    const calls = Array.from({ length: 500 }, () => procore.get('/rest/v1.0/me'));
    await refresh.arrived;
    await until(() => fake.counters.apiUnauthorized === 500, '500 API answers 401');
    refresh.release();
    const answers = await Promise.all(calls);

    expect(answers).toHaveLength(500);
    expect(new Set(answers.map((answer) => JSON.stringify(answer))).size).toBe(1);
    expect(answers[0]).toMatchObject({ id: fake.user.id });
    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.counters.apiUnauthorized).toBe(500);
    expect(fake.apiRequests.filter((entry) => entry.status === 200)).toHaveLength(500);
    expect(eventsOf(app, ProcoreAuthEventType.TokenRefreshed)).toEqual([
      expect.objectContaining({ ownerId: owner, trigger: 'unauthorized' }),
    ]);
    expect(await app.service.getConnection(owner)).toMatchObject({
      status: 'active',
      version: before!.version + 1,
    });
  });

  it('makes ONE refresh for concurrent 401s on one token generation across 4 app instances', async () => {
    const { fake } = harness;
    const apps = [await boot(), await boot(), await boot(), await boot()];
    const owner = await connected(apps[0]!, 'storm-instances');
    // Every instance holds the same token in its cache; Procore then stops taking it.
    const tokens = await Promise.all(apps.map((app) => app.service.getAccessToken(owner)));
    expect(new Set(tokens).size).toBe(1);
    fake.advanceClock(fake.accessTokenTtlSeconds + 60);

    const answers = await Promise.all(
      apps.flatMap((app) =>
        Array.from({ length: 100 }, () => app.client.forOwner(owner).get('/rest/v1.0/me')),
      ),
    );

    expect(answers).toHaveLength(400);
    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.counters.apiUnauthorized).toBe(400);
    expect(fake.apiRequests.filter((entry) => entry.status === 200)).toHaveLength(400);
    const refreshed = apps.flatMap((app) => eventsOf(app, ProcoreAuthEventType.TokenRefreshed));
    expect(refreshed).toEqual([
      expect.objectContaining({ ownerId: owner, trigger: 'unauthorized' }),
    ]);
    expect(await apps[0]!.service.getConnection(owner)).toMatchObject({ status: 'active' });
  });

  it('turns a grant revoked in Procore into ProcoreReauthorizationRequiredError and marks the connection', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'revoked');
    // The user removed the app in Procore: the grant (access and refresh token) is gone.
    expect(fake.revokeToken(await harness.storedRefreshToken(app, owner))).toBe(true);
    const procore = app.client.forOwner(owner);

    const error = await rejectionOf(procore.get('/rest/v1.0/me'));

    expect(error).toBeInstanceOf(ProcoreReauthorizationRequiredError);
    expect(error).toMatchObject({
      ownerId: owner,
      reason: 'reauthorization_required',
      causeCode: 'invalid_grant',
    });
    expect(fake.apiRequests.map((entry) => entry.status)).toEqual([401]);
    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.counters.rejectedRefreshTokens).toBe(1);
    expect(eventsOf(app, ProcoreAuthEventType.ReauthorizationRequired)).toEqual([
      expect.objectContaining({ ownerId: owner, cause: 'invalid_grant' }),
    ]);
    expect(await app.service.getConnection(owner)).toMatchObject({
      status: 'reauthorization_required',
      lastErrorCode: 'invalid_grant',
    });
    // From then on the call fails before reaching Procore.
    const calls = fake.counters.api;
    expect(await rejectionOf(procore.get('/rest/v1.0/me'))).toBeInstanceOf(
      ProcoreReauthorizationRequiredError,
    );
    expect(fake.counters.api).toBe(calls);
    expect(fake.counters.refreshToken).toBe(1);
  });

  it('answers a second 401 right after a successful refresh with a ProcoreApiError 401, the connection left active', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'second-401');
    const before = await app.service.getConnection(owner);
    const first = await app.service.getAccessToken(owner);
    fake.injectFault({ kind: 'status', status: 401 }, { path: '/rest', times: 2 });

    const error = await rejectionOf(
      app.client.forOwner(owner).get('/rest/v1.0/me', { query: { secret_probe: 'x' } }),
    );

    expect(error).toBeInstanceOf(ProcoreApiError);
    expect(error).toMatchObject({ status: 401, method: 'GET', path: '/rest/v1.0/me' });
    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.apiRequests.map((entry) => entry.status)).toEqual([401, 401]);
    expect(eventsOf(app, ProcoreAuthEventType.ReauthorizationRequired)).toEqual([]);
    expect(eventsOf(app, ProcoreAuthEventType.RefreshFailed)).toEqual([]);
    expect(await app.service.getConnection(owner)).toMatchObject({
      status: 'active',
      failureCount: before!.failureCount,
      lastErrorCode: before!.lastErrorCode,
      version: before!.version + 1,
    });
    // No token (old or new) and no query in what an app would log.
    const second = await app.service.getAccessToken(owner);
    const printed = `${error.message}\n${inspect(error)}`;
    for (const token of [first, second]) expect(printed).not.toContain(token);
    expect(printed).not.toMatch(/eyJ|Bearer|secret_probe/);
    // The refreshed token works, without another refresh.
    await expect(app.client.forOwner(owner).get('/rest/v1.0/me')).resolves.toMatchObject({
      id: fake.user.id,
    });
    expect(fake.counters.refreshToken).toBe(1);
  });

  // --- service accounts ----------------------------------------------------------------------------

  describe('service accounts', () => {
    let reports: FakeProcoreServiceAccountCredentials;
    let crm: FakeProcoreServiceAccountCredentials;
    const reportsUser = { id: 9101, login: 'reports@fake-procore.test', name: 'Reports Bot' };
    const crmUser = { id: 9102, login: 'crm@fake-procore.test', name: 'CRM Bot' };

    async function bootWithAccounts() {
      reports = harness.fake.addServiceAccount({ user: reportsUser });
      crm = harness.fake.addServiceAccount({ user: crmUser });
      return boot({ serviceAccounts: { reports, 'crm-sync': crm } });
    }

    it("calls the API with the app's own credentials and with a named account's", async () => {
      const { fake } = harness;
      const app = await bootWithAccounts();

      const own = await app.client.forServiceAccount().get('/rest/v1.0/me');
      const named = await app.client.forServiceAccount('reports').get('/rest/v1.0/me');

      expect(own).toEqual({
        id: fake.serviceAccountUser.id,
        login: fake.serviceAccountUser.login,
        name: fake.serviceAccountUser.name,
      });
      expect(named).toEqual(reportsUser);
      expect(fake.apiRequests).toEqual([
        expect.objectContaining({ tokenKind: 'service-account', clientId: fake.clientId }),
        expect.objectContaining({ tokenKind: 'service-account', clientId: reports.clientId }),
      ]);
      expect(fake.counters.clientCredentials).toBe(2);
      // Service accounts send their company on /me and /companies too.
      await app.client.forServiceAccount('reports', { companyId: ACME }).get('/rest/v1.0/me');
      expect(fake.apiRequests.at(-1)).toMatchObject({ companyId: ACME, status: 200 });
    });

    it('answers a regenerated secret with a ProcoreConfigurationError naming the account; the others keep working', async () => {
      const { fake } = harness;
      const app = await bootWithAccounts();
      const reportsClient = app.client.forServiceAccount('reports');
      await reportsClient.get('/rest/v1.0/me');
      await app.client.forServiceAccount('crm-sync').get('/rest/v1.0/me');
      const newSecret = fake.regenerateClientSecret(reports.clientId);
      fake.resetCounters();
      fake.clearApiRequests();

      const error = await rejectionOf(reportsClient.get('/rest/v1.0/me'));

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('reports');
      for (const secret of [reports.clientSecret, newSecret]) {
        expect(inspect(error)).not.toContain(secret);
      }
      // The cached token got its 401, was dropped, and one new token was asked for (refused).
      expect(fake.apiRequests.map((entry) => [entry.clientId, entry.status])).toEqual([
        [undefined, 401],
      ]);
      expect(fake.counters.clientCredentials).toBe(1);
      await expect(app.client.forServiceAccount('crm-sync').get('/rest/v1.0/me')).resolves.toEqual(
        crmUser,
      );
      await expect(app.client.forServiceAccount().get('/rest/v1.0/me')).resolves.toMatchObject({
        id: fake.serviceAccountUser.id,
      });
    });

    it('fetches ONE new token for 100 concurrent calls whose service token Procore no longer takes', async () => {
      const { fake } = harness;
      const app = await bootWithAccounts();
      const procore = app.client.forServiceAccount('reports');
      await procore.get('/rest/v1.0/me');
      // Expired at Procore, still fresh in the app's memory.
      fake.advanceClock(fake.accessTokenTtlSeconds + 60);
      fake.resetCounters();
      fake.clearApiRequests();

      const answers = await Promise.all(
        Array.from({ length: 100 }, () => procore.get('/rest/v1.0/me')),
      );

      expect(answers).toEqual(Array(100).fill(reportsUser));
      expect(fake.counters.clientCredentials).toBe(1);
      expect(fake.counters.apiUnauthorized).toBe(100);
      expect(fake.apiRequests.filter((entry) => entry.status === 200)).toHaveLength(100);
    });

    it('drops a service token that got a 401, fetches a new one once and retries', async () => {
      const { fake } = harness;
      const app = await bootWithAccounts();
      const procore = app.client.forServiceAccount('reports');
      await procore.get('/rest/v1.0/me');
      fake.resetCounters();
      fake.clearApiRequests();
      fake.injectFault({ kind: 'status', status: 401 }, { path: '/rest' });

      await expect(procore.get('/rest/v1.0/me')).resolves.toEqual(reportsUser);

      expect(fake.counters.clientCredentials).toBe(1);
      expect(fake.apiRequests.map((entry) => entry.status)).toEqual([401, 200]);
      await procore.get('/rest/v1.0/me');
      expect(fake.counters.clientCredentials).toBe(1);
    });
  });

  // --- company disconnect --------------------------------------------------------------------------

  it('a company disconnect: typed error and event, other companies work, fail fast during the back-off, then Procore again', async () => {
    const { fake } = harness;
    const app = await boot({ api: { companyDisconnectBackoffSeconds: 1 } });
    const owner = await connected(app, 'disconnect');
    const acme = app.client.forOwner(owner, { companyId: ACME });
    await acme.get('/rest/v1.0/projects', { query: { per_page: 1 } });
    fake.disconnectCompany(ACME);

    const error = await rejectionOf(acme.get('/rest/v1.0/projects', { query: { per_page: 1 } }));

    expect(error).toBeInstanceOf(ProcoreCompanyDisconnectedError);
    const disconnected = error as ProcoreCompanyDisconnectedError;
    expect(disconnected).toMatchObject({ holder: { ownerId: owner }, companyId: ACME });
    expect(eventsOf(app, ProcoreAuthEventType.CompanyDisconnected)).toEqual([
      expect.objectContaining({ ownerId: owner, companyId: ACME, retryAt: disconnected.retryAt }),
    ]);
    // Not a user revoke: the connection stays active and works elsewhere.
    expect(await app.service.getConnection(owner)).toMatchObject({
      status: 'active',
      failureCount: 0,
    });
    expect(eventsOf(app, ProcoreAuthEventType.ReauthorizationRequired)).toEqual([]);
    expect(fake.counters.refreshToken).toBe(0);
    await expect(
      acme.withCompany(BIG_ID).get('/rest/v1.0/projects', { query: { per_page: 1 } }),
    ).resolves.toEqual([expect.objectContaining({ company_id: BIG_ID })]);
    await expect(acme.get('/rest/v1.0/me')).resolves.toMatchObject({ id: fake.user.id });

    // During the back-off: fails fast without reaching Procore.
    const calls = fake.counters.api;
    const fast = await rejectionOf(acme.get('/rest/v1.0/projects'));
    expect(fast).toBeInstanceOf(ProcoreCompanyDisconnectedError);
    expect(fake.counters.api).toBe(calls);

    // After it: Procore is asked again (the company installed the app again meanwhile).
    fake.reconnectCompany(ACME);
    await until(() => Date.now() > disconnected.retryAt.getTime(), 'the back-off to end');
    await expect(acme.get('/rest/v1.0/projects', { query: { per_page: 1 } })).resolves.toEqual([
      expect.objectContaining({ id: `${ACME}-1` }),
    ]);
    expect(fake.counters.api).toBe(calls + 1);
    expect(eventsOf(app, ProcoreAuthEventType.CompanyDisconnected)).toHaveLength(1);
  });

  it("a service account's calls for a disconnected company fail with its name in the error and event", async () => {
    const { fake } = harness;
    const app = await boot();
    fake.disconnectCompany(ACME);

    const error = await rejectionOf(
      app.client.forServiceAccount(undefined, { companyId: ACME }).get('/rest/v1.0/projects'),
    );

    expect(error).toBeInstanceOf(ProcoreCompanyDisconnectedError);
    expect(error).toMatchObject({ holder: { serviceAccount: '' }, companyId: ACME });
    expect(eventsOf(app, ProcoreAuthEventType.CompanyDisconnected)).toEqual([
      expect.objectContaining({ serviceAccount: '', companyId: ACME }),
    ]);
  });

  it('other 403s and 404s are plain ProcoreApiErrors: nothing marked, later calls reach Procore', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'forbidden');
    const acme = app.client.forOwner(owner, { companyId: ACME });
    fake.injectFault(
      {
        kind: 'status',
        status: 403,
        body: JSON.stringify({ errors: 'You do not have permission to view this tool' }),
        contentType: 'application/json',
      },
      { path: '/rest/v1.0/projects' },
    );

    const forbidden = await rejectionOf(acme.get('/rest/v1.0/projects'));
    const missing = await rejectionOf(acme.get('/rest/v1.0/no-such-thing', { query: { q: 'x' } }));
    const unknownCompany = await rejectionOf(acme.withCompany('5').get('/rest/v1.0/projects'));

    expect(forbidden).toBeInstanceOf(ProcoreApiError);
    expect(forbidden).not.toBeInstanceOf(ProcoreCompanyDisconnectedError);
    expect(forbidden).toMatchObject({ status: 403, path: '/rest/v1.0/projects' });
    expect(forbidden.message).toContain('You do not have permission to view this tool');
    expect(missing).toMatchObject({ status: 404, path: '/rest/v1.0/no-such-thing' });
    expect(missing.message).not.toContain('q=x');
    expect(unknownCompany).toBeInstanceOf(ProcoreApiError);
    expect(unknownCompany).toMatchObject({ status: 404 });
    expect(eventsOf(app, ProcoreAuthEventType.CompanyDisconnected)).toEqual([]);
    expect(await app.service.getConnection(owner)).toMatchObject({
      status: 'active',
      failureCount: 0,
    });
    await expect(acme.get('/rest/v1.0/projects', { query: { per_page: 1 } })).resolves.toHaveLength(
      1,
    );
    expect(fake.counters.api).toBe(4);
  });

  // --- rate limits ---------------------------------------------------------------------------------

  describe('rate limits', () => {
    /** 3 instances × 8 callers × 2 calls = 48 calls for one owner against 10 per second. */
    async function threeInstances(coordination: 'database' | 'instance'): Promise<number> {
      const { fake } = harness;
      fake.setRateLimit({ limit: 10, windowSeconds: 1 });
      const apps = await Promise.all(
        [0, 1, 2].map(() =>
          boot({ api: { rateLimitCoordination: coordination, maxRateLimitWaitMs: 10_000 } }),
        ),
      );
      const owner = await connected(apps[0], `shared-${coordination}`);
      fake.resetRateLimits();
      fake.resetCounters();
      const answers = await Promise.all(
        apps.flatMap((app) =>
          Array.from({ length: 8 }, async () => {
            const procore = app.client.forOwner(owner);
            await procore.get('/rest/v1.0/me');
            return procore.get('/rest/v1.0/me');
          }),
        ),
      );
      expect(answers).toHaveLength(24);
      expect(fake.counters.api - fake.counters.apiRateLimited).toBe(48);
      return fake.counters.apiRateLimited;
    }

    it('3 instances of one owner share the budget through PostgreSQL: (almost) no 429s', async () => {
      // Measured: 0 in 8 runs; a little slack for a loaded machine.
      expect(await threeInstances('database')).toBeLessThanOrEqual(2);
    });

    it("with rateLimitCoordination 'instance' each instance spends the whole budget: many 429s", async () => {
      expect(await threeInstances('instance')).toBeGreaterThanOrEqual(10);
    });

    it('holds the calls after a 429 until the reset, sends none before it, then serves them all', async () => {
      const { fake } = harness;
      fake.setRateLimit({ limit: 5, windowSeconds: 2 });
      const app = await boot();
      const owner = await connected(app, 'rate-429');
      // Another instance (here: plain HTTP with the same token) spends the whole window.
      const token = await app.service.getAccessToken(owner);
      for (let i = 0; i < 5; i++) {
        const spent = await fetch(`${fake.url}/rest/v1.0/me`, {
          headers: { authorization: `Bearer ${token}` },
        });
        expect(spent.status).toBe(200);
        await spent.arrayBuffer();
      }
      const windowStart = fake.apiRequests[0]!.at;
      fake.resetCounters();
      fake.clearApiRequests();
      const procore = app.client.forOwner(owner);

      const answers = await Promise.all(
        Array.from({ length: 5 }, () => procore.get('/rest/v1.0/me')),
      );

      expect(answers).toEqual(
        Array.from({ length: 5 }, () => expect.objectContaining({ id: fake.user.id })),
      );
      expect(fake.counters.apiRateLimited).toBe(1);
      const [limited, ...served] = fake.apiRequests;
      expect(limited).toMatchObject({ status: 429 });
      const rateLimited = eventsOf(app, ProcoreAuthEventType.RateLimited);
      expect(rateLimited).toEqual([
        expect.objectContaining({ ownerId: owner, method: 'GET', path: '/rest/v1.0/me' }),
      ]);
      const resetAt = rateLimited[0]!.retryAt.getTime();
      expect(resetAt).toBeGreaterThanOrEqual(windowStart + 2_000);
      expect(served).toHaveLength(5);
      for (const entry of served) {
        expect(entry.status).toBe(200);
        expect(entry.at).toBeGreaterThanOrEqual(resetAt);
      }
    });

    it('holds calls once the budget is spent instead of firing them into 429s', async () => {
      const { fake } = harness;
      fake.setRateLimit({ limit: 5, windowSeconds: 2 });
      const app = await boot();
      const owner = await connected(app, 'rate-budget');
      const procore = app.client.forOwner(owner);

      const answers = await Promise.all(
        Array.from({ length: 8 }, () => procore.get('/rest/v1.0/me')),
      );

      expect(answers).toHaveLength(8);
      expect(fake.counters.apiRateLimited).toBe(0);
      expect(fake.apiRequests.map((entry) => entry.status)).toEqual(Array(8).fill(200));
      const windowStart = fake.apiRequests[0]!.at;
      expect(fake.apiRequests.filter((entry) => entry.at < windowStart + 2_000)).toHaveLength(5);
      expect(eventsOf(app, ProcoreAuthEventType.RateLimited)).toEqual([]);
    });

    it("holds calls at the spike window's budget too (the headers describe the closer window)", async () => {
      const { fake } = harness;
      fake.setRateLimit({ limit: 100, windowSeconds: 60, spikeLimit: 3, spikeWindowSeconds: 1 });
      const app = await boot();
      const owner = await connected(app, 'rate-spike');
      const procore = app.client.forOwner(owner);

      await Promise.all(Array.from({ length: 6 }, () => procore.get('/rest/v1.0/me')));

      expect(fake.counters.apiRateLimited).toBe(0);
      expect(fake.apiRequests.map((entry) => entry.status)).toEqual(Array(6).fill(200));
      const windowStart = fake.apiRequests[0]!.at;
      expect(fake.apiRequests.filter((entry) => entry.at < windowStart + 1_000)).toHaveLength(3);
    });

    it("keeps a service account's budget per company, as Procore counts it", async () => {
      const { fake } = harness;
      fake.setRateLimit({ limit: 2, windowSeconds: 60 });
      const app = await boot({ api: { maxRateLimitWaitMs: 200 } });
      const acme = app.client.forServiceAccount(undefined, { companyId: ACME });
      await acme.get('/rest/v1.0/projects', { query: { per_page: 1 } });
      await acme.get('/rest/v1.0/projects', { query: { per_page: 1 } });

      await expect(
        acme.withCompany(BIG_ID).get('/rest/v1.0/projects', { query: { per_page: 1 } }),
      ).resolves.toHaveLength(1);
      expect(await rejectionOf(acme.get('/rest/v1.0/projects'))).toBeInstanceOf(
        ProcoreRateLimitedError,
      );
      expect(fake.apiRequests.map((entry) => [entry.companyId, entry.status])).toEqual([
        [ACME, 200],
        [ACME, 200],
        [BIG_ID, 200],
      ]);
    });

    it("does not hold an owner's calls behind one slow call while the budget is not spent", async () => {
      const { fake } = harness;
      const app = await boot();
      const owner = await connected(app, 'rate-slow');
      const procore = app.client.forOwner(owner);
      const slow = fake.hold({ path: '/rest/v1.0/projects' });
      const pending = procore.get('/rest/v1.0/projects', { companyId: ACME });
      try {
        await slow.arrived;
        const me = procore.get('/rest/v1.0/me');
        await until(() => fake.counters.me === 1, 'the /me call to reach Procore', 2_000);
        await expect(me).resolves.toMatchObject({ id: fake.user.id });
      } finally {
        slow.release();
        await pending;
      }
    });

    it('fails with ProcoreRateLimitedError (retryAt) when the wait would exceed api.maxRateLimitWaitMs', async () => {
      const { fake } = harness;
      fake.setRateLimit({ limit: 2, windowSeconds: 60 });
      const app = await boot({ api: { maxRateLimitWaitMs: 500 } });
      const owner = await connected(app, 'rate-wait');
      const procore = app.client.forOwner(owner);
      await procore.get('/rest/v1.0/me');
      await procore.get('/rest/v1.0/me');
      const windowEnd = Math.ceil((fake.apiRequests[0]!.at + 60_000) / 1000) * 1000;

      // This instance knows the budget is spent (whichever client object of the owner): nothing is sent.
      const held = await rejectionOf(app.client.forOwner(owner).get('/rest/v1.0/me'));
      expect(held).toBeInstanceOf(ProcoreRateLimitedError);
      expect(held).toMatchObject({ method: 'GET', path: '/rest/v1.0/me' });
      expect((held as ProcoreRateLimitedError).retryAt.getTime()).toBe(windowEnd);
      expect(fake.apiRequests).toHaveLength(2);

      // Another instance learns it from Procore's 429: one call, an event, the same error.
      const other = await boot({ api: { maxRateLimitWaitMs: 500 } });
      const refused = await rejectionOf(other.client.forOwner(owner).get('/rest/v1.0/me'));
      expect(refused).toBeInstanceOf(ProcoreRateLimitedError);
      expect((refused as ProcoreRateLimitedError).retryAt.getTime()).toBe(windowEnd);
      expect(fake.counters.apiRateLimited).toBe(1);
      expect(fake.apiRequests).toHaveLength(3);
      expect(eventsOf(other, ProcoreAuthEventType.RateLimited)).toEqual([
        expect.objectContaining({
          ownerId: owner,
          method: 'GET',
          path: '/rest/v1.0/me',
          retryAt: new Date(windowEnd),
        }),
      ]);
    });

    it('never retries a POST or PATCH after a 5xx, a timeout or a 429', async () => {
      const { fake } = harness;
      const app = await boot();
      const owner = await connected(app, 'post-once');
      const acme = app.client.forOwner(owner, { companyId: ACME });
      const count = fake.projectCount(ACME);
      const body = { project: { name: 'Never twice' } };

      fake.injectFault({ kind: 'status', status: 503 }, { path: '/rest/v1.0/projects' });
      const unavailable = await rejectionOf(acme.post('/rest/v1.0/projects', { body }));
      fake.injectFault({ kind: 'status', status: 500 }, { path: '/rest/v1.0/projects' });
      const patched = await rejectionOf(acme.patch('/rest/v1.0/projects', { body }));
      fake.injectFault({ kind: 'hang' }, { path: '/rest/v1.0/projects' });
      const timedOut = await rejectionOf(
        acme.post('/rest/v1.0/projects', { body, timeoutMs: 200 }),
      );
      fake.injectFault(
        { kind: 'rate-limit', retryAfterSeconds: 1 },
        { path: '/rest/v1.0/projects' },
      );
      const limited = await rejectionOf(acme.post('/rest/v1.0/projects', { body }));

      expect(unavailable).toMatchObject({ status: 503, method: 'POST' });
      expect(patched).toMatchObject({ status: 500, method: 'PATCH' });
      expect(timedOut).toBeInstanceOf(ProcoreApiError);
      expect(timedOut).toMatchObject({ status: 0, method: 'POST' });
      expect(limited).toBeInstanceOf(ProcoreRateLimitedError);
      expect(fake.apiRequests.map((entry) => [entry.method, entry.status])).toEqual([
        ['POST', 503],
        ['PATCH', 500],
        ['POST', 0],
        ['POST', 429],
      ]);
      expect(fake.projectCount(ACME)).toBe(count);
      expect(eventsOf(app, ProcoreAuthEventType.RateLimited)).toEqual([
        expect.objectContaining({ ownerId: owner, method: 'POST', path: '/rest/v1.0/projects' }),
      ]);
    });

    it('retries a POST marked idempotent after a 5xx and after a 429 (waiting for Retry-After)', async () => {
      const { fake } = harness;
      const app = await boot();
      const owner = await connected(app, 'post-idempotent');
      const acme = app.client.forOwner(owner, { companyId: ACME });
      const count = fake.projectCount(ACME);

      fake.injectFault({ kind: 'status', status: 503 }, { path: '/rest/v1.0/projects' });
      const first = await acme.post<FakeProcoreProject>('/rest/v1.0/projects', {
        body: { project: { name: 'Retried after 503' } },
        idempotent: true,
      });
      fake.injectFault(
        { kind: 'rate-limit', retryAfterSeconds: 1 },
        { path: '/rest/v1.0/projects' },
      );
      const second = await acme.post<FakeProcoreProject>('/rest/v1.0/projects', {
        body: { project: { name: 'Retried after 429' } },
        idempotent: true,
      });

      expect(first).toEqual({
        id: `${ACME}-${count + 1}`,
        name: 'Retried after 503',
        company_id: ACME,
      });
      expect(second).toMatchObject({ id: `${ACME}-${count + 2}`, name: 'Retried after 429' });
      const posts = requestsTo('/rest/v1.0/projects', 'POST');
      expect(posts.map((entry) => entry.status)).toEqual([503, 201, 429, 201]);
      expect(posts[3]!.at).toBeGreaterThanOrEqual(posts[2]!.at + 1_000);
      expect(fake.projectCount(ACME)).toBe(count + 2);
      expect(eventsOf(app, ProcoreAuthEventType.RateLimited)).toEqual([
        expect.objectContaining({ ownerId: owner, method: 'POST', path: '/rest/v1.0/projects' }),
      ]);
    });
  });

  // --- pagination and hosts ------------------------------------------------------------------------

  it('paginate() yields every project of a company across pages, in order', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'pages');
    fake.setProjectCount(ACME, 7);

    const projects = await collect(
      app.client
        .forOwner(owner, { companyId: ACME })
        .paginate<FakeProcoreProject>('/rest/v1.0/projects', { perPage: 3 }),
    );

    expect(projects.map((project) => project.id)).toEqual(
      Array.from({ length: 7 }, (_, index) => `${ACME}-${index + 1}`),
    );
    expect(
      fake.apiRequests.map((entry) => [entry.query.page, entry.query.per_page, entry.companyId]),
    ).toEqual([
      ['1', '3', ACME],
      ['2', '3', ACME],
      ['3', '3', ACME],
    ]);
  });

  it('paginate() over a list that is not paginated yields its one page', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'one-page');

    const users = await collect(
      app.client.forOwner(owner, { companyId: ACME }).paginate('/rest/v1.0/companies/1001/users'),
    );

    expect(users).toHaveLength(4);
    expect(users).toContainEqual({
      id: fake.user.id,
      login: fake.user.login,
      name: fake.user.name,
    });
    expect(fake.apiRequests).toHaveLength(1);
  });

  it('refuses a Link to another host: ProcoreUnsafeUrlError, and nothing is sent there', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'evil-link');
    const acme = app.client.forOwner(owner, { companyId: ACME });
    const foreign = await startForeignHost();
    cleanups.push(() => foreign.close());

    for (const base of ['http://evil.example', foreign.url]) {
      fake.linkBaseUrl = base;
      fake.clearApiRequests();
      const seen: string[] = [];
      const error = await rejectionOf(
        (async () => {
          for await (const project of acme.paginate<FakeProcoreProject>('/rest/v1.0/projects', {
            perPage: 3,
          })) {
            seen.push(project.id);
          }
        })(),
      );

      expect(error).toBeInstanceOf(ProcoreUnsafeUrlError);
      expect(error.message).not.toContain('page=');
      expect(seen).toEqual([`${ACME}-1`, `${ACME}-2`, `${ACME}-3`]);
      expect(fake.apiRequests).toHaveLength(1);
    }
    expect(foreign.hits).toEqual([]);
  });

  it('refuses an absolute URL or a protocol-relative path to another host before sending anything', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'evil-url');
    const procore = app.client.forOwner(owner, { companyId: ACME });
    const foreign = await startForeignHost();
    cleanups.push(() => foreign.close());

    for (const target of [
      'http://evil.example/rest/v1.0/me',
      `${foreign.url}/rest/v1.0/me`,
      `//${new URL(foreign.url).host}/rest/v1.0/me`,
      'https://evil.example/rest/v1.0/projects',
    ]) {
      expect(await rejectionOf(procore.get(target))).toBeInstanceOf(ProcoreUnsafeUrlError);
      expect(await rejectionOf(collect(procore.paginate(target)))).toBeInstanceOf(
        ProcoreUnsafeUrlError,
      );
    }

    expect(foreign.hits).toEqual([]);
    expect(fake.counters.api).toBe(0);
    // The configured API host itself, spelled absolutely, is fine.
    await expect(procore.get(`${fake.url}/rest/v1.0/me`)).resolves.toMatchObject({
      id: fake.user.id,
    });
  });

  // --- company ids ---------------------------------------------------------------------------------

  it('sends a company id above 2^53 exactly, as a string or a bigint', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'big-id');
    const procore = app.client.forOwner(owner);
    const expected = [
      { id: `${BIG_ID}-1`, name: 'Big Id Construction project 1', company_id: BIG_ID },
    ];

    const calls = [
      () =>
        app.client
          .forOwner(owner, { companyId: BIG_ID })
          .get('/rest/v1.0/projects', { query: { per_page: 1 } }),
      () =>
        app.client
          .forOwner(owner, { companyId: 9007199254740993n })
          .get('/rest/v1.0/projects', { query: { per_page: 1 } }),
      () =>
        procore
          .withCompany(9007199254740993n)
          .get('/rest/v1.0/projects', { query: { per_page: 1 } }),
      () => procore.get('/rest/v1.0/projects', { companyId: BIG_ID, query: { per_page: 1 } }),
    ];
    for (const call of calls) await expect(call()).resolves.toEqual(expected);

    expect(fake.apiRequests.map((entry) => [entry.companyId, entry.status])).toEqual(
      Array(4).fill([BIG_ID, 200]),
    );
  });

  it('refuses a company id that is not an exact positive integer with ProcoreInvalidCompanyIdError', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'bad-id');
    const procore = app.client.forOwner(owner);
    const rounded = Number(BIG_ID); // already 9007199254740992: another company

    expect(() => app.client.forOwner(owner, { companyId: rounded })).toThrow(
      ProcoreInvalidCompanyIdError,
    );
    expect(() => procore.withCompany(rounded)).toThrow(ProcoreInvalidCompanyIdError);
    expect(() => app.client.forServiceAccount(undefined, { companyId: rounded })).toThrow(
      ProcoreInvalidCompanyIdError,
    );
    for (const bad of [rounded, '0', '-1', '1e3', '1001abc', ' 1001', 1.5, 0n]) {
      expect(
        await rejectionOf(procore.get('/rest/v1.0/projects', { companyId: bad })),
      ).toBeInstanceOf(ProcoreInvalidCompanyIdError);
    }
    expect(fake.counters.api).toBe(0);
  });

  // --- timeouts, faults, abort ---------------------------------------------------------------------

  it('retries a GET after 5xx answers and serves it; gives up with ProcoreApiError after api.retries', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'retry-5xx');
    const procore = app.client.forOwner(owner);

    fake.injectFault({ kind: 'status', status: 502 }, { path: '/rest/v1.0/me', times: 2 });
    await expect(procore.get('/rest/v1.0/me')).resolves.toMatchObject({ id: fake.user.id });
    expect(fake.apiRequests.map((entry) => entry.status)).toEqual([502, 502, 200]);

    // PUT and DELETE are idempotent too (the fake has no such route: 405 once retried).
    fake.clearApiRequests();
    fake.injectFault({ kind: 'status', status: 503 }, { path: '/rest/v1.0/me' });
    expect(await rejectionOf(procore.put('/rest/v1.0/me', { body: {} }))).toMatchObject({
      status: 405,
    });
    fake.injectFault({ kind: 'status', status: 503 }, { path: '/rest/v1.0/me' });
    expect(await rejectionOf(procore.delete('/rest/v1.0/me'))).toMatchObject({ status: 405 });
    expect(fake.apiRequests.map((entry) => [entry.method, entry.status])).toEqual([
      ['PUT', 503],
      ['PUT', 405],
      ['DELETE', 503],
      ['DELETE', 405],
    ]);

    fake.clearApiRequests();
    fake.injectFault({ kind: 'status', status: 500 }, { path: '/rest/v1.0/me', times: 3 });
    const error = await rejectionOf(procore.get('/rest/v1.0/me'));
    expect(error).toBeInstanceOf(ProcoreApiError);
    expect(error).toMatchObject({ status: 500 });
    expect(fake.apiRequests.map((entry) => entry.status)).toEqual([500, 500, 500]);
    expect(await app.service.getConnection(owner)).toMatchObject({ status: 'active' });
  });

  it("honours a 503's Retry-After before retrying a GET", async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'retry-503');

    fake.injectFault({ kind: 'status', status: 503, retryAfterSeconds: 1 }, { path: '/rest' });
    await expect(app.client.forOwner(owner).get('/rest/v1.0/me')).resolves.toMatchObject({
      id: fake.user.id,
    });

    const [unavailable, served] = fake.apiRequests;
    expect(unavailable).toMatchObject({ status: 503 });
    expect(served).toMatchObject({ status: 200 });
    expect(served!.at).toBeGreaterThanOrEqual(unavailable!.at + 1_000);
  });

  it('retries a GET that timed out (api.timeoutMs) or whose connection was reset', async () => {
    const { fake } = harness;
    const app = await boot({ api: { timeoutMs: 200 } });
    const owner = await connected(app, 'timeouts');
    const procore = app.client.forOwner(owner);

    fake.injectFault({ kind: 'hang' }, { path: '/rest' });
    await expect(procore.get('/rest/v1.0/me')).resolves.toMatchObject({ id: fake.user.id });
    fake.injectFault({ kind: 'reset' }, { path: '/rest' });
    await expect(procore.get('/rest/v1.0/me')).resolves.toMatchObject({ id: fake.user.id });
    expect(fake.apiRequests.map((entry) => entry.status)).toEqual([0, 200, 0, 200]);

    fake.clearApiRequests();
    fake.injectFault({ kind: 'hang' }, { path: '/rest', times: 3 });
    const error = await rejectionOf(procore.get('/rest/v1.0/me'));
    expect(error).toBeInstanceOf(ProcoreApiError);
    expect(error).toMatchObject({ status: 0, method: 'GET', path: '/rest/v1.0/me' });
    expect(fake.apiRequests).toHaveLength(3);
  });

  it('aborts a call in flight, and a call waiting for the rate limit, through its AbortSignal', async () => {
    const { fake } = harness;
    const app = await boot();
    const owner = await connected(app, 'abort');
    const procore = app.client.forOwner(owner);

    const held = fake.hold({ path: '/rest' });
    const inFlight = new AbortController();
    const pending = rejectionOf(procore.get('/rest/v1.0/me', { signal: inFlight.signal }));
    await held.arrived;
    inFlight.abort();
    const aborted = await pending;
    held.release();
    expect(aborted.name).toBe('AbortError');
    expect(fake.counters.api).toBe(1);

    // A 429 with a long Retry-After: the retry waits, and the signal ends the wait.
    fake.injectFault({ kind: 'rate-limit', retryAfterSeconds: 30 }, { path: '/rest' });
    const waiting = new AbortController();
    const waited = rejectionOf(procore.get('/rest/v1.0/me', { signal: waiting.signal }));
    await until(() => fake.counters.apiRateLimited === 1, 'the 429');
    waiting.abort();
    expect((await waited).name).toBe('AbortError');
    expect(fake.counters.api).toBe(2);
  });

  // --- @ProcoreApi() over HTTP ---------------------------------------------------------------------

  describe.each<Platform>(['express', 'fastify'])('@ProcoreApi() on %s', (platform) => {
    async function bootHttp(): Promise<HttpTestApp> {
      const http = await createHttpTestApp({
        platform,
        databaseUrl: harness.database.url,
        fake: harness.fake,
        options: fakeProcoreOptions(harness.fake, {
          ownerResolver: ownerFromHeader,
          api: FAST_API,
        }),
      });
      cleanups.push(() => http.close());
      return http;
    }

    it('answers API errors raised in a handler: 403 company_disconnected, 429 with Retry-After, 502 procore_error', async () => {
      const { fake } = harness;
      const http = await bootHttp();
      const server = http.app.getHttpServer();
      const owner = harness.nextOwner(`${platform}-handler-errors`);
      await connectOwner(http.service, owner);

      fake.disconnectCompany('1001');
      const disconnected = await request(server)
        .get('/api/companies/1001/projects')
        .set('x-user-id', owner)
        .expect(403);
      expect(disconnected.body).toMatchObject({ statusCode: 403, reason: 'company_disconnected' });
      fake.reconnectCompany('1001');

      fake.injectFault({ kind: 'status', status: 404 }, { path: '/rest/v1.0/projects' });
      const failed = await request(server)
        .get(`/api/companies/${BIG_ID}/projects`)
        .set('x-user-id', owner)
        .expect(502);
      expect(failed.body).toEqual({
        statusCode: 502,
        error: 'Bad Gateway',
        reason: 'procore_error',
        message: 'Procore answered an error.',
        procoreStatus: 404,
      });

      fake.setRateLimit({ limit: 1, windowSeconds: 600 });
      fake.resetRateLimits();
      await request(server).get('/api/me').set('x-user-id', owner).expect(200);
      const limited = await request(server).get('/api/me').set('x-user-id', owner).expect(429);
      expect(limited.body).toMatchObject({ statusCode: 429, reason: 'rate_limited' });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(60);
    });

    it("answers /me through the owner's client, and the service account's with { serviceAccount: true }", async () => {
      const { fake } = harness;
      const http = await bootHttp();
      const owner = harness.nextOwner(`${platform}-api`);
      await connectOwner(http.service, owner);

      const me = await request(http.app.getHttpServer())
        .get('/api/me')
        .set('x-user-id', owner)
        .expect(200);
      const service = await request(http.app.getHttpServer()).get('/api/service/me').expect(200);

      expect(me.body).toEqual({ id: fake.user.id, login: fake.user.login, name: fake.user.name });
      expect(service.body).toMatchObject({ id: fake.serviceAccountUser.id });
      expect(fake.apiRequests.map((entry) => entry.tokenKind)).toEqual(['user', 'service-account']);
    });

    it('answers 401 no_owner and not_connected with the same bodies as @ProcoreToken()', async () => {
      const { fake } = harness;
      const http = await bootHttp();
      const server = http.app.getHttpServer();
      const stranger = harness.nextOwner(`${platform}-stranger`);

      const noOwner = await request(server).get('/api/me').expect(401);
      const noOwnerToken = await request(server).get('/me').expect(401);
      const notConnected = await request(server)
        .get('/api/me')
        .set('x-user-id', stranger)
        .expect(401);
      const notConnectedToken = await request(server)
        .get('/me')
        .set('x-user-id', stranger)
        .expect(401);

      expect(noOwner.body).toMatchObject({ statusCode: 401, reason: 'no_owner' });
      expect(noOwner.body).toEqual(noOwnerToken.body);
      expect(notConnected.body).toMatchObject({ statusCode: 401, reason: 'not_connected' });
      expect(notConnected.body).toEqual(notConnectedToken.body);
      expect(fake.counters.api).toBe(0);
    });

    it('scopes the client to the company in the path: exact beyond 2^53, 400 invalid_company_id otherwise', async () => {
      const { fake } = harness;
      const http = await bootHttp();
      const owner = harness.nextOwner(`${platform}-company`);
      await connectOwner(http.service, owner);
      fake.setProjectCount(BIG_ID, 3);
      const server = http.app.getHttpServer();

      const listed = await request(server)
        .get(`/api/companies/${BIG_ID}/projects`)
        .set('x-user-id', owner)
        .expect(200);
      expect(listed.body).toEqual({
        companyId: BIG_ID,
        projects: [1, 2, 3].map((n) => ({
          id: `${BIG_ID}-${n}`,
          name: `Big Id Construction project ${n}`,
          company_id: BIG_ID,
        })),
      });
      expect(fake.apiRequests.map((entry) => entry.companyId)).toEqual([BIG_ID, BIG_ID]);

      for (const bad of ['abc', '0', '-7', '99999999999999999999999']) {
        const refused = await request(server)
          .get(`/api/companies/${bad}/projects`)
          .set('x-user-id', owner)
          .expect(400);
        expect(refused.body).toMatchObject({ statusCode: 400, reason: 'invalid_company_id' });
      }
      expect(fake.apiRequests).toHaveLength(2);
    });

    it('answers 401 reauthorization_required when Procore refuses the grant during the call', async () => {
      const { fake } = harness;
      const http = await bootHttp();
      const owner = harness.nextOwner(`${platform}-revoked`);
      await connectOwner(http.service, owner);
      const token = await http.service.getAccessToken(owner);
      fake.revokeToken(token);
      const server = http.app.getHttpServer();

      const refused = await request(server).get('/api/me').set('x-user-id', owner);
      const byToken = await request(server).get('/me').set('x-user-id', owner);

      expect(refused.status).toBe(401);
      expect(refused.body).toEqual(byToken.body);
      expect(refused.body).toMatchObject({ reason: 'reauthorization_required' });
    });
  });
});
