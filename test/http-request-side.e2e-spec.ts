import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  it,
  jest,
} from '@jest/globals';
import request from 'supertest';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  createHttpTestApp,
  ownerFromHeader,
  type HttpTestApp,
  type Platform,
} from './support/procore-http-app.js';
import { expireStoredToken, fakeProcoreOptions, migrate } from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';
import type { DataSource } from 'typeorm';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { ProcoreAuthModuleOptions } from 'nestjs-procore-auth';
import { PROCORE_TOKEN_CIPHER } from '../lib/procore-auth.constants.js';
import type { TokenCipher } from '../lib/crypto/token-cipher.js';

/** The `Set-Cookie` headers of a response. */
function setCookies(response: { headers: Record<string, unknown> }): string[] {
  const header = response.headers['set-cookie'];
  if (header === undefined) return [];
  return Array.isArray(header) ? (header as string[]) : [String(header)];
}

describe.each<Platform>(['express', 'fastify'])('request side on %s', (platform) => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let http: HttpTestApp;
  let owner = 0;
  const nextOwner = () => `${platform}-user-${++owner}`;
  const server = () => http.app.getHttpServer();

  beforeAll(async () => {
    database = await createTestDatabase(`http_${platform}`);
    await migrate(database.url);
  });
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    http = await createHttpTestApp({
      platform,
      databaseUrl: database.url,
      fake,
      options: fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
    });
  });
  afterEach(async () => {
    await http.close();
    await fake.close();
  });
  afterAll(() => database.drop());

  /** A browser: a supertest agent keeps the cookies our routes set. */
  const browser = () => request.agent(server());

  /**
   * Our authorize route (in `agent`, a browser) → the fake's authorize (auto-approve) → the code
   * and state Procore sends back, and the browser-binding cookie the route set.
   */
  async function startConnection(ownerId: string, returnTo?: string, agent = browser()) {
    const start = await agent
      .get('/procore/oauth/authorize')
      .query(returnTo ? { returnTo } : {})
      .set('x-user-id', ownerId)
      .expect(302);
    const approved = await fetch(start.headers.location, { redirect: 'manual' });
    const callback = new URL(approved.headers.get('location') as string);
    const setCookie = setCookies(start)[0];
    return {
      agent,
      code: callback.searchParams.get('code') as string,
      state: callback.searchParams.get('state') as string,
      location: start.headers.location as string,
      /** The `Set-Cookie` header of the authorize answer, and its `name=value` part. */
      setCookie,
      cookie: setCookie?.split(';')[0],
    };
  }

  type Flow = Awaited<ReturnType<typeof startConnection>>;

  /** Replaces the app with one built from these options (same database, same fake). */
  async function restart(
    overrides: Partial<ProcoreAuthModuleOptions> = {},
    extras: { extendedQueryParser?: boolean } = {},
  ) {
    await http.close();
    http = await createHttpTestApp({
      platform,
      databaseUrl: database.url,
      fake,
      options: fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader, ...overrides }),
      ...extras,
    });
  }

  async function connect(ownerId: string) {
    const { agent, code, state } = await startConnection(ownerId);
    await agent
      .get('/procore/oauth/callback')
      .query({ code, state })
      .set('x-user-id', ownerId)
      .expect(200);
  }

  /** The connection row as stored, secrets included (to prove a bad request changed nothing). */
  async function storedRow(ownerId: string): Promise<unknown> {
    const [row] = await dataSource().query(
      'SELECT * FROM procore_oauth_tokens WHERE owner_id = $1',
      [ownerId],
    );
    return row ?? null;
  }

  async function pendingStates(ownerId: string): Promise<number> {
    const [{ count }] = await dataSource().query(
      'SELECT count(*)::int AS count FROM procore_oauth_states WHERE owner_id = $1',
      [ownerId],
    );
    return count as number;
  }

  const dataSource = () => http.app.get<DataSource>(getDataSourceToken());

  it('connects through the OAuth routes and serves /me with @ProcoreToken()', async () => {
    const ownerId = nextOwner();
    const { agent, code, state, location } = await startConnection(ownerId, '/projects');
    expect(location.startsWith(`${fake.url}/oauth/authorize?`)).toBe(true);

    const callback = await agent
      .get('/procore/oauth/callback')
      .query({ code, state })
      .set('x-user-id', ownerId);
    expect(callback.status).toBe(302);
    expect(callback.headers.location).toBe('/projects');

    const me = await request(server()).get('/me').set('x-user-id', ownerId).expect(200);
    expect(me.body).toMatchObject({ id: fake.user.id, login: fake.user.login });
  });

  it('answers the callback with JSON when no returnTo was given', async () => {
    const ownerId = nextOwner();
    const { agent, code, state } = await startConnection(ownerId);
    const response = await agent
      .get('/procore/oauth/callback')
      .query({ code, state })
      .set('x-user-id', ownerId)
      .expect(200);
    expect(response.body).toMatchObject({ connected: true, ownerId, status: 'active' });
    expect(JSON.stringify(response.body)).not.toMatch(/token/i);
  });

  it('answers 401 no_owner without a signed-in user', async () => {
    const response = await request(server()).get('/me').expect(401);
    expect(response.body).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      reason: 'no_owner',
      message: expect.any(String),
      authorizePath: '/procore/oauth/authorize',
    });
    await request(server()).get('/procore/oauth/authorize').expect(401);
  });

  it('answers 401 not_connected for a user who never connected, from the decorator and from the guard', async () => {
    for (const path of ['/me', '/guarded']) {
      const response = await request(server()).get(path).set('x-user-id', nextOwner()).expect(401);
      expect(response.body).toMatchObject({
        statusCode: 401,
        reason: 'not_connected',
        authorizePath: '/procore/oauth/authorize',
      });
    }
  });

  it('answers 401 reauthorization_required when Procore rejected the grant', async () => {
    const ownerId = nextOwner();
    await connect(ownerId);
    const [row] = await dataSource().query(
      'SELECT refresh_token FROM procore_oauth_tokens WHERE owner_id = $1',
      [ownerId],
    );
    fake.revokeToken(
      http.app
        .get<TokenCipher>(PROCORE_TOKEN_CIPHER)
        .decrypt(row.refresh_token, `procore-oauth-token:refresh:${ownerId}`),
    );
    await expireStoredToken(dataSource(), fake, ownerId);
    http.service.evict(ownerId);

    const response = await request(server()).get('/me').set('x-user-id', ownerId).expect(401);
    expect(response.body).toMatchObject({ reason: 'reauthorization_required' });
  });

  it('looks the token up once per request when the guard and the decorator are both used', async () => {
    const ownerId = nextOwner();
    await connect(ownerId);
    const spy = jest.spyOn(http.service, 'getAccessToken');

    const response = await request(server()).get('/guarded').set('x-user-id', ownerId).expect(200);

    expect(response.body).toEqual({ valid: true });
    expect(spy).toHaveBeenCalledTimes(1);
  });

  it('yields the client-credentials token with @ProcoreToken({ serviceAccount: true }), without an owner', async () => {
    const response = await request(server()).get('/service').expect(200);
    expect(response.body).toEqual({ valid: true });
  });

  describe('bad callback input: 400 and nothing stored or overwritten', () => {
    let ownerId: string;
    let before: unknown;

    beforeEach(async () => {
      await restart({}, { extendedQueryParser: true });
      ownerId = nextOwner();
      await connect(ownerId);
      before = await storedRow(ownerId);
    });
    afterEach(async () => {
      expect(await storedRow(ownerId)).toEqual(before);
    });

    const callback = (flow: Flow, query: Record<string, unknown>, user = ownerId) =>
      flow.agent.get('/procore/oauth/callback').query(query).set('x-user-id', user);

    it('missing state', async () => {
      const flow = await startConnection(ownerId);
      expect((await callback(flow, { code: flow.code }).expect(400)).body).toMatchObject({
        statusCode: 400,
        error: 'Bad Request',
        reason: 'missing_state',
      });
    });

    it('unknown state (no browser can hold its cookie)', async () => {
      const flow = await startConnection(ownerId);
      const response = await callback(flow, { code: flow.code, state: 'forged-state' });
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ error: 'Bad Request', reason: 'browser_mismatch' });
    });

    it('reused state, even replayed with its cookie', async () => {
      const flow = await startConnection(ownerId);
      await callback(flow, { code: flow.code, state: flow.state }).expect(200);
      before = await storedRow(ownerId);
      const replay = await request(server())
        .get('/procore/oauth/callback')
        .query({ code: flow.code, state: flow.state })
        .set('x-user-id', ownerId)
        .set('Cookie', flow.cookie as string)
        .expect(400);
      expect(replay.body).toMatchObject({ error: 'Bad Request', reason: 'unknown_state' });
    });

    it('expired state', async () => {
      const flow = await startConnection(ownerId);
      await dataSource().query(
        `UPDATE procore_oauth_states SET expires_at = now() - interval '1 second'`,
      );
      expect(
        (await callback(flow, { code: flow.code, state: flow.state }).expect(400)).body,
      ).toMatchObject({ error: 'Bad Request', reason: 'expired_state' });
    });

    it('state of another owner', async () => {
      const other = nextOwner();
      const flow = await startConnection(other);
      expect(
        (await callback(flow, { code: flow.code, state: flow.state }, ownerId).expect(400)).body,
      ).toMatchObject({ error: 'Bad Request', reason: 'owner_mismatch' });
      expect(await http.service.getConnection(other)).toBeNull();
    });

    it('missing code', async () => {
      const flow = await startConnection(ownerId);
      expect((await callback(flow, { state: flow.state }).expect(400)).body).toMatchObject({
        error: 'Bad Request',
        reason: 'missing_code',
      });
    });

    it("Procore's error=access_denied", async () => {
      fake.denyNextAuthorization();
      const flow = await startConnection(ownerId);
      expect(
        (await callback(flow, { state: flow.state, error: 'access_denied' }).expect(400)).body,
      ).toMatchObject({ error: 'Bad Request', reason: 'access_denied' });
    });

    it('repeated parameters', async () => {
      const flow = await startConnection(ownerId);
      expect(
        (await callback(flow, { code: flow.code, state: [flow.state, flow.state] }).expect(400))
          .body,
      ).toMatchObject({ error: 'Bad Request', reason: 'malformed_callback' });
    });

    it('object parameters (?state[a]=x, ?code[a]=x with an extended query parser)', async () => {
      const flow = await startConnection(ownerId);
      for (const query of [
        `state[a]=x&code=${flow.code}`,
        `state=${flow.state}&code[a]=x`,
        `state=${flow.state}&code=${flow.code}&error[a]=x`,
      ]) {
        const response = await flow.agent
          .get(`/procore/oauth/callback?${query}`)
          .set('x-user-id', ownerId);
        expect(response.status).toBe(400);
        expect(response.body).toMatchObject({ error: 'Bad Request', reason: 'malformed_callback' });
      }
      // The state was not consumed: the same browser still completes the flow.
      await callback(flow, { code: flow.code, state: flow.state }).expect(200);
      before = await storedRow(ownerId);
    });

    it('an object returnTo', async () => {
      const response = await browser()
        .get('/procore/oauth/authorize?returnTo[a]=/x')
        .set('x-user-id', ownerId);
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ error: 'Bad Request', reason: 'invalid_return_to' });
      expect(await pendingStates(ownerId)).toBe(0);
    });

    it('an absolute or foreign returnTo (open redirect)', async () => {
      for (const returnTo of [
        'https://evil.example/x',
        '//evil.example',
        '/\\evil.example',
        '/%2F%2Fevil.example',
        '/..//evil.example',
        '/\t/evil.example',
      ]) {
        const response = await browser()
          .get('/procore/oauth/authorize')
          .query({ returnTo })
          .set('x-user-id', ownerId)
          .expect(400);
        expect(response.body).toMatchObject({ error: 'Bad Request', reason: 'invalid_return_to' });
        expect(response.headers['set-cookie']).toBeUndefined();
      }
      expect(await pendingStates(ownerId)).toBe(0);
    });
  });

  it('redirects to a non-ASCII returnTo percent-encoded, after storing the connection once', async () => {
    const ownerId = nextOwner();
    const flow = await startConnection(ownerId, '/projects/ā?name=ā b');
    const [state] = await dataSource().query(
      'SELECT return_to FROM procore_oauth_states WHERE owner_id = $1',
      [ownerId],
    );
    expect(state.return_to).toBe('/projects/%C4%81?name=%C4%81%20b');

    const response = await flow.agent
      .get('/procore/oauth/callback')
      .query({ code: flow.code, state: flow.state })
      .set('x-user-id', ownerId);

    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('/projects/%C4%81?name=%C4%81%20b');
    expect(await http.service.getConnection(ownerId)).toMatchObject({ status: 'active' });
  });

  describe('binding the flow to the browser that started it (bindFlowToBrowser, default on)', () => {
    it('sets one short-lived, HttpOnly, SameSite=Lax cookie per flow, scoped to the callback path', async () => {
      const ownerId = nextOwner();
      const first = await startConnection(ownerId);
      const second = await startConnection(ownerId);

      expect(first.setCookie).toMatch(/^procore_oauth_[0-9a-f]{16}=[A-Za-z0-9_-]{43}; /);
      const attributes = (first.setCookie as string).split('; ').slice(1);
      expect(attributes.sort()).toEqual(
        ['HttpOnly', 'Max-Age=600', 'Path=/procore/oauth/callback', 'SameSite=Lax'].sort(),
      );
      expect(first.cookie?.split('=')[0]).not.toBe(second.cookie?.split('=')[0]);
      // The cookie carries neither the state nor anything Procore issued.
      expect(first.setCookie).not.toContain(first.state);
      expect(first.setCookie).not.toContain(first.code);

      // Two tabs of one browser connect in parallel: each callback finds its own cookie.
      const agent = browser();
      const tabA = await startConnection(ownerId, '/a', agent);
      const tabB = await startConnection(ownerId, '/b', agent);
      for (const [tab, location] of [
        [tabB, '/b'],
        [tabA, '/a'],
      ] as const) {
        const done = await agent
          .get('/procore/oauth/callback')
          .query({ code: tab.code, state: tab.state })
          .set('x-user-id', ownerId)
          .expect(302);
        expect(done.headers.location).toBe(location);
        // Cleared on success.
        expect(setCookies(done)).toEqual([
          expect.stringMatching(new RegExp(`^${tab.cookie?.split('=')[0]}=; Max-Age=0; `)),
        ]);
      }
    });

    it.each([
      ['without the cookie', () => undefined],
      ["with another flow's cookie", (_flow: Flow, other: Flow) => other.cookie],
      [
        'with a tampered cookie',
        (flow: Flow) => `${flow.cookie?.slice(0, -2)}${flow.cookie?.endsWith('AA') ? 'BA' : 'AA'}`,
      ],
      [
        "with another flow's value under this flow's name",
        (flow: Flow, other: Flow) =>
          `${flow.cookie?.split('=')[0]}=${other.cookie?.split('=')[1] ?? ''}`,
      ],
    ] as [string, (flow: Flow, other: Flow) => string | undefined][])(
      'refuses the callback %s (400 browser_mismatch), consuming and storing nothing',
      async (_name, cookieFor) => {
        const ownerId = nextOwner();
        await connect(ownerId);
        const before = await storedRow(ownerId);
        const flow = await startConnection(ownerId);
        const other = await startConnection(nextOwner());
        const cookie = cookieFor(flow, other);

        const attempt = request(server())
          .get('/procore/oauth/callback')
          .query({ code: flow.code, state: flow.state });
        const response = await (cookie ? attempt.set('Cookie', cookie) : attempt);

        expect(response.status).toBe(400);
        expect(response.body).toEqual({
          statusCode: 400,
          error: 'Bad Request',
          reason: 'browser_mismatch',
          message: expect.stringContaining('same browser'),
        });
        const answered = `${JSON.stringify(response.body)} ${JSON.stringify(response.headers)}`;
        for (const secret of [flow.code, flow.state, flow.cookie?.split('=')[1] as string])
          expect(answered).not.toContain(secret);
        expect(await storedRow(ownerId)).toEqual(before);
        expect(fake.counters.authorizationCode).toBe(1);

        // The state was left alone: the browser that started the flow still completes it.
        await flow.agent
          .get('/procore/oauth/callback')
          .query({ code: flow.code, state: flow.state })
          .set('x-user-id', ownerId)
          .expect(200);
      },
    );

    it('clears the cookie when the callback fails', async () => {
      const ownerId = nextOwner();
      fake.denyNextAuthorization();
      const flow = await startConnection(ownerId);
      const response = await flow.agent
        .get('/procore/oauth/callback')
        .query({ state: flow.state, error: 'access_denied' })
        .expect(400);
      expect(setCookies(response)).toEqual([
        expect.stringMatching(new RegExp(`^${flow.cookie?.split('=')[0]}=; Max-Age=0; `)),
      ]);
    });

    it('marks the cookie Secure and scopes it to the path of an https redirectUri (global prefix)', async () => {
      await restart({ redirectUri: 'https://app.example/api/procore/oauth/callback' });
      const flow = await browser()
        .get('/procore/oauth/authorize')
        .set('x-user-id', nextOwner())
        .expect(302);
      const [cookie] = setCookies(flow);
      expect(cookie.split('; ')).toEqual(
        expect.arrayContaining(['Secure', 'Path=/api/procore/oauth/callback', 'HttpOnly']),
      );
    });

    it('with bindFlowToBrowser: false, sets no cookie and completes a callback without one', async () => {
      await restart({ bindFlowToBrowser: false });
      const ownerId = nextOwner();
      const flow = await startConnection(ownerId);
      expect(flow.setCookie).toBeUndefined();
      await request(server())
        .get('/procore/oauth/callback')
        .query({ code: flow.code, state: flow.state })
        .expect(200);
      expect(await http.service.getConnection(ownerId)).toMatchObject({ status: 'active' });
    });

    it('does not bind flows started with getAuthorizationUrl() by the app itself', async () => {
      const ownerId = nextOwner();
      const { url } = await http.service.getAuthorizationUrl(ownerId);
      const approved = await fetch(url, { redirect: 'manual' });
      const callback = new URL(approved.headers.get('location') as string);
      const result = await http.service.handleCallback({
        code: callback.searchParams.get('code'),
        state: callback.searchParams.get('state'),
      });
      expect(result.connection).toMatchObject({ ownerId, status: 'active' });
    });
  });

  describe('as a global guard', () => {
    beforeEach(async () => {
      await http.close();
      http = await createHttpTestApp({
        platform,
        databaseUrl: database.url,
        fake,
        options: fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
        globalGuard: true,
      });
    });

    it('protects every route except @SkipProcoreAuth() ones and the OAuth routes', async () => {
      const refused = await request(server()).get('/service').expect(401);
      expect(refused.body).toMatchObject({ statusCode: 401, reason: 'no_owner' });
      await request(server()).get('/health').expect(200, { ok: true });
      await request(server()).get('/public/status').expect(200, { public: true });
      const ownerId = nextOwner();
      await request(server()).get('/health').set('x-user-id', ownerId).expect(200, { ok: true });
      // The OAuth routes answer an owner who is not connected yet (the guard would say 401).
      await connect(ownerId);
      await request(server()).get('/me').set('x-user-id', ownerId).expect(200);
    });
  });
});
