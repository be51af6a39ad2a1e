import { describe, it, expect, beforeEach, afterEach } from '@jest/globals';
import {
  FakeProcoreServer,
  type FakeProcoreFaultPath,
  type FakeProcoreProject,
} from '../lib/testing/index.js';

/** A whole second, so that token `iat`s and window resets are exact. */
const T0 = Date.UTC(2030, 0, 1);
const BIG_ID = '9007199254740993';
const RATE_LIMITED_BODY =
  'You have surpassed the max number of requests for an hour. Please wait until your limit resets.';

interface CallOptions {
  token?: string;
  companyId?: string;
  method?: string;
  body?: unknown;
  query?: Record<string, string>;
  signal?: AbortSignal;
}

describe('FakeProcoreServer REST API', () => {
  let procore: FakeProcoreServer;

  beforeEach(async () => {
    procore = await FakeProcoreServer.start();
    procore.setClock(T0);
  });

  afterEach(async () => {
    await procore.close();
  });

  // --- helpers: plain HTTP, the way a client of Procore would talk to it -----------------------

  function call(path: string, options: CallOptions = {}): Promise<Response> {
    const url = new URL(path, procore.url);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      url.searchParams.set(name, value);
    }
    const headers: Record<string, string> = {};
    if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
    if (options.companyId !== undefined) headers['procore-company-id'] = options.companyId;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    return fetch(url, {
      method: options.method ?? 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  }

  function userToken(): string {
    return procore.issueTokens().access_token;
  }

  function tokenCall(params: Record<string, string>): Promise<Response> {
    return fetch(new URL('/oauth/token', procore.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params).toString(),
    });
  }

  async function serviceToken(clientId: string, clientSecret: string): Promise<string> {
    const response = await tokenCall({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: clientSecret,
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { access_token: string }).access_token;
  }

  function rateHeaders(response: Response): { limit: number; remaining: number; reset: number } {
    return {
      limit: Number(response.headers.get('x-rate-limit-limit')),
      remaining: Number(response.headers.get('x-rate-limit-remaining')),
      reset: Number(response.headers.get('x-rate-limit-reset')),
    };
  }

  function links(response: Response): Record<string, string> {
    const result: Record<string, string> = {};
    for (const part of (response.headers.get('link') ?? '').split(', ')) {
      const match = /^<([^>]+)>; rel="(\w+)"$/.exec(part);
      if (match) result[match[2]!] = match[1]!;
    }
    return result;
  }

  // --- companies and projects ----------------------------------------------------------------------

  describe('companies', () => {
    it('lists every company to user and service tokens without a company header, ids as exact strings', async () => {
      const expected = [
        { id: '1001', name: 'Acme Builders' },
        { id: BIG_ID, name: 'Big Id Construction' },
      ];
      const user = await call('/rest/v1.0/companies', { token: userToken() });
      expect(user.status).toBe(200);
      expect(user.headers.get('link')).toBeNull();
      const text = await user.text();
      expect(text).toContain(`"id":"${BIG_ID}"`);
      expect(JSON.parse(text)).toEqual(expected);

      const service = await serviceToken(procore.clientId, procore.clientSecret);
      const answer = await call('/rest/v1.0/companies', { token: service });
      expect(await answer.json()).toEqual(expected);
    });

    it('follows changes to the public companies array', async () => {
      procore.companies.push({ id: '77', name: 'Pushed Co' });
      procore.setProjectCount('77', 3);
      const token = userToken();
      const companies = (await (await call('/rest/v1.0/companies', { token })).json()) as unknown[];
      expect(companies).toContainEqual({ id: '77', name: 'Pushed Co' });
      const projects = await call('/rest/v1.0/projects', { token, companyId: '77' });
      expect(await projects.json()).toEqual([
        { id: '77-1', name: 'Pushed Co project 1', company_id: '77' },
        { id: '77-2', name: 'Pushed Co project 2', company_id: '77' },
        { id: '77-3', name: 'Pushed Co project 3', company_id: '77' },
      ]);
    });
  });

  describe('projects', () => {
    it('requires a well-formed Procore-Company-Id of a known company, compared as a string', async () => {
      const token = userToken();
      const missing = await call('/rest/v1.0/projects', { token });
      expect(missing.status).toBe(400);
      expect(missing.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await missing.json()).toEqual({ errors: 'The Procore-Company-Id header is required' });

      for (const bad of ['abc', '0', '-5', '1.5', '01001']) {
        expect((await call('/rest/v1.0/projects', { token, companyId: bad })).status).toBe(400);
      }
      // 2^53: what Number('9007199254740993') rounds to.
      const rounded = await call('/rest/v1.0/projects', { token, companyId: '9007199254740992' });
      expect(rounded.status).toBe(404);

      const exact = await call('/rest/v1.0/projects', {
        token,
        companyId: BIG_ID,
        query: { per_page: '1' },
      });
      expect(exact.status).toBe(200);
      expect(await exact.text()).toBe(
        `[{"id":"${BIG_ID}-1","name":"Big Id Construction project 1","company_id":"${BIG_ID}"}]`,
      );
      expect(procore.apiRequests.at(-1)?.companyId).toBe(BIG_ID);
    });

    it('paginates with Total, Per-Page and absolute first/prev/next/last links', async () => {
      const token = userToken();
      const base = `${procore.url}/rest/v1.0/projects`;
      const page1 = await call('/rest/v1.0/projects', { token, companyId: '1001' });
      expect(page1.headers.get('total')).toBe('250');
      expect(page1.headers.get('per-page')).toBe('100');
      expect(links(page1)).toEqual({
        first: `${base}?page=1&per_page=100`,
        next: `${base}?page=2&per_page=100`,
        last: `${base}?page=3&per_page=100`,
      });
      const items1 = (await page1.json()) as FakeProcoreProject[];
      expect(items1).toHaveLength(100);
      expect(items1[0]).toEqual({
        id: '1001-1',
        name: 'Acme Builders project 1',
        company_id: '1001',
      });

      const page2 = await call('/rest/v1.0/projects', {
        token,
        companyId: '1001',
        query: { page: '2', filter: 'x' },
      });
      expect(links(page2)).toEqual({
        first: `${base}?filter=x&page=1&per_page=100`,
        prev: `${base}?filter=x&page=1&per_page=100`,
        next: `${base}?filter=x&page=3&per_page=100`,
        last: `${base}?filter=x&page=3&per_page=100`,
      });

      const page3 = await call('/rest/v1.0/projects', {
        token,
        companyId: '1001',
        query: { page: '3' },
      });
      const items3 = (await page3.json()) as FakeProcoreProject[];
      expect(items3.map((project) => project.id)).toEqual(
        Array.from({ length: 50 }, (_, index) => `1001-${201 + index}`),
      );
      expect(links(page3)).toEqual({
        first: `${base}?page=1&per_page=100`,
        prev: `${base}?page=2&per_page=100`,
        last: `${base}?page=3&per_page=100`,
      });

      const beyond = await call('/rest/v1.0/projects', {
        token,
        companyId: '1001',
        query: { page: '9' },
      });
      expect(await beyond.json()).toEqual([]);
      expect(links(beyond)).toMatchObject({ prev: `${base}?page=3&per_page=100` });
      expect(links(beyond)).not.toHaveProperty('next');
    });

    it('walks every page by following rel="next" exactly once each', async () => {
      procore.setProjectCount(BIG_ID, 23);
      const token = userToken();
      const ids: string[] = [];
      let next: string | undefined = `${procore.url}/rest/v1.0/projects?per_page=5`;
      while (next !== undefined) {
        const response: Response = await fetch(next, {
          headers: { authorization: `Bearer ${token}`, 'procore-company-id': BIG_ID },
        });
        expect(response.headers.get('total')).toBe('23');
        ids.push(...((await response.json()) as FakeProcoreProject[]).map((project) => project.id));
        next = links(response)['next'];
      }
      expect(ids).toEqual(Array.from({ length: 23 }, (_, index) => `${BIG_ID}-${index + 1}`));
      expect(procore.counters.api).toBe(5);
    });

    it('caps per_page at 10,000 and refuses invalid page and per_page with 400', async () => {
      procore.setProjectCount('1001', 10_001);
      const token = userToken();
      const max = await call('/rest/v1.0/projects', {
        token,
        companyId: '1001',
        query: { per_page: '10000' },
      });
      expect(max.headers.get('per-page')).toBe('10000');
      expect((await max.json()) as unknown[]).toHaveLength(10_000);
      expect(links(max)['last']).toContain('page=2&per_page=10000');

      const over = await call('/rest/v1.0/projects', {
        token,
        companyId: '1001',
        query: { per_page: '50000' },
      });
      expect(over.status).toBe(200);
      expect(over.headers.get('per-page')).toBe('10000');

      const invalid: Record<string, string>[] = [
        { per_page: '0' },
        { per_page: 'ten' },
        { page: '0' },
        { page: '-1' },
      ];
      for (const query of invalid) {
        const bad = await call('/rest/v1.0/projects', { token, companyId: '1001', query });
        expect(bad.status).toBe(400);
        expect(await bad.json()).toMatchObject({
          errors: expect.stringMatching(/positive integer/),
        });
      }
    });

    it('creates a project with POST (201), counted against the rate limit', async () => {
      procore.setRateLimit({ limit: 10, windowSeconds: 60 });
      const token = userToken();
      const created = await call('/rest/v1.0/projects', {
        token,
        companyId: '1001',
        method: 'POST',
        body: { project: { name: 'New tower' } },
      });
      expect(created.status).toBe(201);
      expect(await created.json()).toEqual({
        id: '1001-251',
        name: 'New tower',
        company_id: '1001',
      });
      expect(rateHeaders(created).remaining).toBe(9);
      expect(procore.projectCount('1001')).toBe(251);

      const last = await call('/rest/v1.0/projects', {
        token,
        companyId: '1001',
        query: { page: '3' },
      });
      expect(last.headers.get('total')).toBe('251');
      expect(((await last.json()) as FakeProcoreProject[]).at(-1)?.name).toBe('New tower');

      const noName = await call('/rest/v1.0/projects', {
        token,
        companyId: '1001',
        method: 'POST',
        body: { project: {} },
      });
      expect(noName.status).toBe(422);
      const noCompany = await call('/rest/v1.0/projects', {
        token,
        method: 'POST',
        body: { project: { name: 'x' } },
      });
      expect(noCompany.status).toBe(400);
      expect(procore.projectCount('1001')).toBe(251);
    });

    it('lists company users without pagination; the header must match the path', async () => {
      const token = userToken();
      const users = await call('/rest/v1.0/companies/1001/users', { token, companyId: '1001' });
      expect(users.status).toBe(200);
      expect(users.headers.get('link')).toBeNull();
      expect(users.headers.get('total')).toBeNull();
      expect(await users.json()).toContainEqual({
        id: procore.user.id,
        login: procore.user.login,
        name: procore.user.name,
      });
      expect((await call('/rest/v1.0/companies/1001/users', { token })).status).toBe(400);
      const mismatch = await call(`/rest/v1.0/companies/1001/users`, { token, companyId: BIG_ID });
      expect(mismatch.status).toBe(400);
      const big = await call(`/rest/v1.0/companies/${BIG_ID}/users`, { token, companyId: BIG_ID });
      expect(big.status).toBe(200);
    });

    it('answers 404 JSON for an unknown /rest path and 405 for a wrong method', async () => {
      const token = userToken();
      const unknown = await call('/rest/v1.0/nothing-here', { token });
      expect(unknown.status).toBe(404);
      expect(await unknown.json()).toMatchObject({ errors: expect.any(String) });
      const wrong = await call('/rest/v1.0/companies', { token, method: 'DELETE' });
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get('allow')).toBe('GET');
    });
  });

  // --- 401 and 403 -----------------------------------------------------------------------------------

  describe('authorization', () => {
    it('answers 401 with WWW-Authenticate for a missing, forged, expired or revoked token', async () => {
      const expectRefused = async (response: Response, description: string): Promise<void> => {
        expect(response.status).toBe(401);
        expect(response.headers.get('www-authenticate')).toBe(
          'Bearer realm="Procore", error="invalid_token"',
        );
        expect(response.headers.get('x-rate-limit-limit')).toBeNull();
        expect(await response.json()).toEqual({
          errors: 'The access token is invalid',
          error: 'invalid_token',
          error_description: description,
        });
      };
      await expectRefused(await call('/rest/v1.0/companies'), 'The access token is invalid');
      await expectRefused(
        await call('/rest/v1.0/companies', { token: 'not.a.jwt' }),
        'The access token is invalid',
      );

      const expiring = userToken();
      procore.advanceClock(5400);
      await expectRefused(
        await call('/rest/v1.0/me', { token: expiring }),
        'The access token expired',
      );

      const { access_token, refresh_token } = procore.issueTokens();
      expect((await call('/rest/v1.0/me', { token: access_token })).status).toBe(200);
      procore.revokeToken(refresh_token);
      await expectRefused(
        await call('/rest/v1.0/projects', { token: access_token, companyId: '1001' }),
        'The access token was revoked',
      );
      expect(procore.counters).toMatchObject({ api: 5, apiUnauthorized: 4, me: 2 });
    });

    it('answers 403 for a disconnected company only, and 200 again after reconnectCompany', async () => {
      const token = userToken();
      procore.disconnectCompany('1001');
      const refused = await call('/rest/v1.0/projects', { token, companyId: '1001' });
      expect(refused.status).toBe(403);
      expect(await refused.text()).toBe('{"errors":"App is not connected to this company"}');
      expect(rateHeaders(refused).limit).toBe(3600);

      const users = await call('/rest/v1.0/companies/1001/users', { token, companyId: '1001' });
      expect(users.status).toBe(403);
      // Not a revoke: the same token works for /me and for another company.
      expect((await call('/rest/v1.0/me', { token })).status).toBe(200);
      expect((await call('/rest/v1.0/projects', { token, companyId: BIG_ID })).status).toBe(200);
      expect(procore.isAccessTokenValid(token)).toBe(true);
      expect(procore.counters.apiForbidden).toBe(2);

      procore.reconnectCompany('1001');
      expect((await call('/rest/v1.0/projects', { token, companyId: '1001' })).status).toBe(200);
      expect(() => procore.disconnectCompany('42')).toThrow(RangeError);
    });
  });

  // --- service accounts ----------------------------------------------------------------------------

  describe('service accounts', () => {
    it('accepts extra client credentials for client_credentials only; /me answers the account', async () => {
      const account = procore.addServiceAccount({
        clientId: 'reports-bot',
        user: { id: 777, login: 'reports@fake-procore.test', name: 'Reports Bot' },
      });
      expect(account.clientId).toBe('reports-bot');
      const token = await serviceToken(account.clientId, account.clientSecret);
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
        aud: string;
      };
      expect(claims.aud).toBe('reports-bot');
      expect(await (await call('/rest/v1.0/me', { token })).json()).toEqual({
        id: 777,
        login: 'reports@fake-procore.test',
        name: 'Reports Bot',
      });
      expect(procore.apiRequests.at(-1)).toMatchObject({
        clientId: 'reports-bot',
        tokenKind: 'service-account',
      });

      const { refresh_token } = procore.issueTokens();
      const refresh = await tokenCall({
        grant_type: 'refresh_token',
        refresh_token,
        client_id: account.clientId,
        client_secret: account.clientSecret,
      });
      expect(refresh.status).toBe(400);
      expect(await refresh.json()).toMatchObject({ error: 'unauthorized_client' });
      expect(procore.isRefreshTokenActive(refresh_token)).toBe(true);

      const second = procore.addServiceAccount();
      expect(second.clientId).toBe('fake-service-account-2');
      expect(() => procore.addServiceAccount({ clientId: 'reports-bot' })).toThrow(RangeError);
    });

    it('regenerateClientSecret: old secret invalid_client, new one works, old tokens 401, other accounts unaffected', async () => {
      const a = procore.addServiceAccount();
      const b = procore.addServiceAccount();
      const tokenA = await serviceToken(a.clientId, a.clientSecret);
      const tokenB = await serviceToken(b.clientId, b.clientSecret);

      const newSecret = procore.regenerateClientSecret(a.clientId);
      expect(newSecret).not.toBe(a.clientSecret);
      const old = await tokenCall({
        grant_type: 'client_credentials',
        client_id: a.clientId,
        client_secret: a.clientSecret,
      });
      expect(old.status).toBe(401);
      expect(await old.json()).toMatchObject({ error: 'invalid_client' });

      const before = await call('/rest/v1.0/companies', { token: tokenA, companyId: '1001' });
      expect(before.status).toBe(401);
      expect(procore.isAccessTokenValid(tokenA)).toBe(false);

      const fresh = await serviceToken(a.clientId, newSecret);
      expect((await call('/rest/v1.0/companies', { token: fresh })).status).toBe(200);
      expect((await call('/rest/v1.0/companies', { token: tokenB })).status).toBe(200);
      expect(() => procore.regenerateClientSecret('nobody')).toThrow(RangeError);
    });

    it("regenerating the app's own secret kills its access tokens, not its users' refresh tokens", async () => {
      const oldSecret = procore.clientSecret;
      const { access_token, refresh_token } = procore.issueTokens();
      const newSecret = procore.regenerateClientSecret(procore.clientId);
      expect(procore.clientSecret).toBe(newSecret);
      expect((await call('/rest/v1.0/me', { token: access_token })).status).toBe(401);

      const refuse = await tokenCall({
        grant_type: 'refresh_token',
        refresh_token,
        client_id: procore.clientId,
        client_secret: oldSecret,
      });
      expect(refuse.status).toBe(401);
      const refreshed = await tokenCall({
        grant_type: 'refresh_token',
        refresh_token,
        client_id: procore.clientId,
        client_secret: newSecret,
      });
      expect(refreshed.status).toBe(200);
      const { access_token: renewed } = (await refreshed.json()) as { access_token: string };
      expect((await call('/rest/v1.0/me', { token: renewed })).status).toBe(200);
    });
  });

  // --- rate limits ---------------------------------------------------------------------------------

  describe('rate limits', () => {
    it('reports the default 3600-per-hour window on every answer', async () => {
      const token = userToken();
      const first = await call('/rest/v1.0/me', { token });
      const start = procore.apiRequests[0]!.at;
      expect(rateHeaders(first)).toEqual({
        limit: 3600,
        remaining: 3599,
        reset: Math.ceil((start + 3_600_000) / 1000),
      });
    });

    it('answers 429 with Procore text and headers once spent, consuming nothing, until the window ends', async () => {
      procore.setRateLimit({ limit: 3, windowSeconds: 60 });
      const token = userToken();
      const remaining: number[] = [];
      for (let index = 0; index < 3; index++) {
        remaining.push(rateHeaders(await call('/rest/v1.0/me', { token })).remaining);
      }
      expect(remaining).toEqual([2, 1, 0]);
      const reset = Math.ceil((procore.apiRequests[0]!.at + 60_000) / 1000);

      procore.advanceClock(30);
      for (let index = 0; index < 3; index++) {
        const refused = await call('/rest/v1.0/me', { token });
        expect(refused.status).toBe(429);
        expect(refused.headers.get('content-type')).toMatch(/^text\/plain/);
        expect(await refused.text()).toBe(RATE_LIMITED_BODY);
        expect(rateHeaders(refused)).toEqual({ limit: 3, remaining: 0, reset });
        expect(refused.headers.get('retry-after')).toBeNull();
      }
      expect(procore.counters.apiRateLimited).toBe(3);

      procore.advanceClock(30);
      const again = await call('/rest/v1.0/me', { token });
      expect(again.status).toBe(200);
      expect(rateHeaders(again)).toMatchObject({ limit: 3, remaining: 2 });
    });

    it('adds Retry-After (seconds to the reset) when retryAfter is set', async () => {
      procore.setRateLimit({ limit: 1, windowSeconds: 60, retryAfter: true });
      const token = userToken();
      expect((await call('/rest/v1.0/me', { token })).status).toBe(200);
      procore.advanceClock(20);
      const refused = await call('/rest/v1.0/me', { token });
      expect(refused.status).toBe(429);
      const [first, second] = procore.apiRequests;
      expect(Number(refused.headers.get('retry-after'))).toBe(
        Math.ceil((first!.at + 60_000 - second!.at) / 1000),
      );
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(40);
      expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(41);
    });

    it('keeps a separate window per token: two service accounts do not share a budget', async () => {
      procore.setRateLimit({ limit: 2, windowSeconds: 60 });
      const a = procore.addServiceAccount();
      const b = procore.addServiceAccount();
      const tokenA = await serviceToken(a.clientId, a.clientSecret);
      const tokenB = await serviceToken(b.clientId, b.clientSecret);
      const statuses = async (token: string): Promise<number[]> => [
        (await call('/rest/v1.0/companies', { token, companyId: '1001' })).status,
        (await call('/rest/v1.0/companies', { token, companyId: '1001' })).status,
        (await call('/rest/v1.0/companies', { token, companyId: '1001' })).status,
      ];
      expect(await statuses(tokenA)).toEqual([200, 200, 429]);
      expect(await statuses(tokenB)).toEqual([200, 200, 429]);
    });

    it('keeps service-account windows per company header, user windows per token only', async () => {
      procore.setRateLimit({ limit: 1, windowSeconds: 60 });
      const service = await serviceToken(procore.clientId, procore.clientSecret);
      const projects = (token: string, companyId: string): Promise<Response> =>
        call('/rest/v1.0/projects', { token, companyId, query: { per_page: '1' } });
      expect((await projects(service, '1001')).status).toBe(200);
      expect((await projects(service, BIG_ID)).status).toBe(200);
      expect((await projects(service, '1001')).status).toBe(429);

      const user = userToken();
      expect((await projects(user, '1001')).status).toBe(200);
      expect((await projects(user, BIG_ID)).status).toBe(429);
    });

    it('adds a spike window; the headers describe whichever window is closer to running out', async () => {
      procore.setRateLimit({
        limit: 5,
        windowSeconds: 3600,
        spikeLimit: 3,
        spikeWindowSeconds: 10,
      });
      const token = userToken();
      const seen: { status: number; limit: number; remaining: number }[] = [];
      const record = async (): Promise<Response> => {
        const response = await call('/rest/v1.0/me', { token });
        const { limit, remaining } = rateHeaders(response);
        seen.push({ status: response.status, limit, remaining });
        return response;
      };
      await record(); // hourly 4 left, spike 2 left → spike
      await record(); // 3, 1 → spike
      await record(); // 2, 0 → spike
      const spiked = await record(); // spike spent → 429 until the spike window ends
      const start = procore.apiRequests[0]!.at;
      expect(rateHeaders(spiked).reset).toBe(Math.ceil((start + 10_000) / 1000));

      procore.advanceClock(10);
      await record(); // hourly 1 left, spike 2 left → hourly
      await record(); // 0, 1 → hourly
      const hourly = await record(); // hourly spent → 429 until the hour ends
      expect(seen).toEqual([
        { status: 200, limit: 3, remaining: 2 },
        { status: 200, limit: 3, remaining: 1 },
        { status: 200, limit: 3, remaining: 0 },
        { status: 429, limit: 3, remaining: 0 },
        { status: 200, limit: 5, remaining: 1 },
        { status: 200, limit: 5, remaining: 0 },
        { status: 429, limit: 5, remaining: 0 },
      ]);
      expect(rateHeaders(hourly).reset).toBe(Math.ceil((start + 3_600_000) / 1000));
      expect(() => procore.setRateLimit({ limit: 5, windowSeconds: 60, spikeLimit: 2 })).toThrow(
        RangeError,
      );
    });
  });

  // --- faults, log, links, latency -----------------------------------------------------------------

  describe('faults on API paths', () => {
    it("'/rest' matches every API call: 503 with Retry-After, then normal answers", async () => {
      const token = userToken();
      procore.injectFault(
        { kind: 'status', status: 503, retryAfterSeconds: 7 },
        { path: '/rest', times: 2 },
      );
      const first = await call('/rest/v1.0/me', { token });
      expect(first.status).toBe(503);
      expect(first.headers.get('retry-after')).toBe('7');
      expect(await first.json()).toEqual({ errors: 'Injected fault: HTTP 503' });
      const second = await call('/rest/v1.0/projects', { token, companyId: '1001' });
      expect(second.status).toBe(503);
      expect((await call('/rest/v1.0/me', { token })).status).toBe(200);
      // The faulted calls were answered before the rate limiter.
      expect(procore.apiRequests.map((request) => request.status)).toEqual([503, 503, 200]);
    });

    it('an exact path only matches that endpoint; html and invalid-json bodies', async () => {
      const token = userToken();
      procore.injectFault({ kind: 'html', status: 502 }, { path: '/rest/v1.0/projects' });
      procore.injectFault({ kind: 'invalid-json' }, { path: '/rest/v1.0/projects' });
      expect((await call('/rest/v1.0/me', { token })).status).toBe(200);
      const html = await call('/rest/v1.0/projects', { token, companyId: '1001' });
      expect(html.status).toBe(502);
      expect(html.headers.get('content-type')).toMatch(/^text\/html/);
      const broken = await call('/rest/v1.0/projects', { token, companyId: '1001' });
      expect(broken.status).toBe(200);
      await expect(broken.json()).rejects.toThrow();
      expect(() =>
        procore.injectFault({ kind: 'reset' }, { path: '/restless' as FakeProcoreFaultPath }),
      ).toThrow(TypeError);
    });

    it('hang and reset fail the call; with consumeRefreshToken the POST was still done', async () => {
      const token = userToken();
      procore.injectFault({ kind: 'hang' }, { path: '/rest' });
      await expect(
        call('/rest/v1.0/me', { token, signal: AbortSignal.timeout(200) }),
      ).rejects.toThrow();

      procore.injectFault(
        { kind: 'reset', consumeRefreshToken: true },
        { path: '/rest/v1.0/projects' },
      );
      await expect(
        call('/rest/v1.0/projects', {
          token,
          companyId: '1001',
          method: 'POST',
          body: { project: { name: 'Lost answer' } },
        }),
      ).rejects.toThrow();
      expect(procore.projectCount('1001')).toBe(251);
      expect(procore.apiRequests.map((request) => request.status)).toEqual([0, 0]);
    });

    it('hold() keeps an API answer until release()', async () => {
      const token = userToken();
      const held = procore.hold({ path: '/rest/v1.0/me' });
      const pending = call('/rest/v1.0/me', { token });
      await held.arrived;
      held.release();
      expect((await pending).status).toBe(200);
    });
  });

  describe('observability', () => {
    it('logs every call without the token; counters and the log reset', async () => {
      const token = userToken();
      await call('/rest/v1.0/projects', {
        token,
        companyId: BIG_ID,
        query: { page: '2', access_token: token },
      });
      await call('/rest/v1.0/me', { token: 'forged' });
      expect(procore.apiRequests).toEqual([
        {
          method: 'GET',
          path: '/rest/v1.0/projects',
          query: { page: '2', access_token: '[redacted]' },
          companyId: BIG_ID,
          authorization: 'valid',
          clientId: procore.clientId,
          tokenKind: 'user',
          status: 200,
          at: expect.any(Number),
        },
        {
          method: 'GET',
          path: '/rest/v1.0/me',
          query: {},
          companyId: undefined,
          authorization: 'invalid',
          clientId: undefined,
          tokenKind: undefined,
          status: 401,
          at: expect.any(Number),
        },
      ]);
      expect(JSON.stringify(procore.apiRequests)).not.toContain(token);
      expect(procore.apiRequests[0]!.at).toBeGreaterThanOrEqual(T0);

      procore.clearApiRequests();
      procore.resetCounters();
      expect(procore.apiRequests).toEqual([]);
      expect(procore.counters).toMatchObject({
        api: 0,
        apiRateLimited: 0,
        apiUnauthorized: 0,
        apiForbidden: 0,
      });
    });

    it('linkBaseUrl puts another host into Link headers', async () => {
      procore.linkBaseUrl = 'https://evil.example';
      const response = await call('/rest/v1.0/projects', {
        token: userToken(),
        companyId: '1001',
      });
      expect(links(response)['next']).toBe(
        'https://evil.example/rest/v1.0/projects?page=2&per_page=100',
      );
    });

    it('apiLatencyMs delays every API answer', async () => {
      const token = userToken();
      procore.apiLatencyMs = 150;
      const started = performance.now();
      await call('/rest/v1.0/me', { token });
      expect(performance.now() - started).toBeGreaterThanOrEqual(140);
      expect(() => (procore.apiLatencyMs = -1)).toThrow(RangeError);
    });
  });
});
