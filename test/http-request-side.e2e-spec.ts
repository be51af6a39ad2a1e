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

  /** Our authorize route → the fake's authorize (auto-approve) → the code and state Procore sends back. */
  async function startConnection(ownerId: string, returnTo?: string) {
    const start = await request(server())
      .get('/procore/oauth/authorize')
      .query(returnTo ? { returnTo } : {})
      .set('x-user-id', ownerId)
      .expect(302);
    const approved = await fetch(start.headers.location, { redirect: 'manual' });
    const callback = new URL(approved.headers.get('location') as string);
    return {
      code: callback.searchParams.get('code') as string,
      state: callback.searchParams.get('state') as string,
      location: start.headers.location as string,
    };
  }

  async function connect(ownerId: string) {
    const { code, state } = await startConnection(ownerId);
    await request(server())
      .get('/procore/oauth/callback')
      .query({ code, state })
      .set('x-user-id', ownerId)
      .expect(200);
  }

  it('connects through the OAuth routes and serves /me with @ProcoreToken()', async () => {
    const ownerId = nextOwner();
    const { code, state, location } = await startConnection(ownerId, '/projects');
    expect(location.startsWith(`${fake.url}/oauth/authorize?`)).toBe(true);

    const callback = await request(server())
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
    const { code, state } = await startConnection(ownerId);
    const response = await request(server())
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
    const dataSource = http.app.get<DataSource>(
      (await import('@nestjs/typeorm')).getDataSourceToken(),
    );
    const [row] = await dataSource.query(
      'SELECT refresh_token FROM procore_oauth_tokens WHERE owner_id = $1',
      [ownerId],
    );
    fake.revokeToken(
      http.service['cipher'].decrypt(row.refresh_token, `procore-oauth-token:refresh:${ownerId}`),
    );
    await expireStoredToken(dataSource, fake, ownerId);
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
      ownerId = nextOwner();
      await connect(ownerId);
      before = await http.service.getConnection(ownerId);
    });
    afterEach(async () => {
      expect(await http.service.getConnection(ownerId)).toEqual(before);
    });

    const callback = (query: Record<string, string | string[]>, user = ownerId) =>
      request(server()).get('/procore/oauth/callback').query(query).set('x-user-id', user);

    it('missing state', async () => {
      const { code } = await startConnection(ownerId);
      expect((await callback({ code }).expect(400)).body).toMatchObject({
        statusCode: 400,
        error: 'missing_state',
      });
    });

    it('unknown state', async () => {
      const { code } = await startConnection(ownerId);
      expect((await callback({ code, state: 'forged-state' }).expect(400)).body).toMatchObject({
        error: 'unknown_state',
      });
    });

    it('reused state', async () => {
      const { code, state } = await startConnection(ownerId);
      await callback({ code, state }).expect(200);
      before = await http.service.getConnection(ownerId);
      expect((await callback({ code, state }).expect(400)).body).toMatchObject({
        error: 'unknown_state',
      });
    });

    it('expired state', async () => {
      const { code, state } = await startConnection(ownerId);
      const dataSource = http.app.get<DataSource>(
        (await import('@nestjs/typeorm')).getDataSourceToken(),
      );
      await dataSource.query(
        `UPDATE procore_oauth_states SET expires_at = now() - interval '1 second'`,
      );
      expect((await callback({ code, state }).expect(400)).body).toMatchObject({
        error: 'expired_state',
      });
    });

    it('state of another owner', async () => {
      const other = nextOwner();
      const { code, state } = await startConnection(other);
      expect((await callback({ code, state }, ownerId).expect(400)).body).toMatchObject({
        error: 'owner_mismatch',
      });
      expect(await http.service.getConnection(other)).toBeNull();
    });

    it('missing code', async () => {
      const { state } = await startConnection(ownerId);
      expect((await callback({ state }).expect(400)).body).toMatchObject({ error: 'missing_code' });
    });

    it("Procore's error=access_denied", async () => {
      fake.denyNextAuthorization();
      const { state } = await startConnection(ownerId);
      expect((await callback({ state, error: 'access_denied' }).expect(400)).body).toMatchObject({
        error: 'access_denied',
      });
    });

    it('repeated parameters', async () => {
      const { code, state } = await startConnection(ownerId);
      expect((await callback({ code, state: [state, state] }).expect(400)).body).toMatchObject({
        error: 'malformed_callback',
      });
    });

    it('an absolute or foreign returnTo (open redirect)', async () => {
      for (const returnTo of ['https://evil.example/x', '//evil.example', '/\\evil.example']) {
        const response = await request(server())
          .get('/procore/oauth/authorize')
          .query({ returnTo })
          .set('x-user-id', ownerId)
          .expect(400);
        expect(response.body).toMatchObject({ error: 'invalid_return_to' });
      }
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
      await request(server()).get('/service').expect(401);
      await request(server()).get('/health').expect(200, { ok: true });
      const ownerId = nextOwner();
      await connect(ownerId);
      await request(server()).get('/me').set('x-user-id', ownerId).expect(200);
    });
  });
});
