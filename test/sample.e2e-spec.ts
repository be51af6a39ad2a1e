import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { generateKey } from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * The whole user journey through the sample app (sample/app.module.ts, wired the way a user wires
 * the package: ConfigModule + procoreConfig + forRootAsync, TypeORM running the shipped migration),
 * with the fake Procore server and a real PostgreSQL.
 */
describe('the sample app, end to end', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: INestApplication;
  const savedEnv = { ...process.env };
  const alice = { 'x-user-id': 'alice' };

  beforeAll(async () => {
    database = await createTestDatabase('sample');
    fake = await FakeProcoreServer.start();
    Object.assign(process.env, {
      DATABASE_URL: database.url,
      PROCORE_CLIENT_ID: fake.clientId,
      PROCORE_CLIENT_SECRET: fake.clientSecret,
      PROCORE_REDIRECT_URI: 'http://localhost:3000/procore/oauth/callback',
      PROCORE_AUTH_BASE_URL: fake.url,
      PROCORE_API_BASE_URL: fake.url,
      PROCORE_TOKEN_ENCRYPTION_KEY: generateKey('sample'),
    });
    const { AppModule } = await import('../sample/app.module.js');
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });

  afterAll(async () => {
    jest.useRealTimers();
    await app?.close();
    await fake.close();
    await database.drop();
    process.env = savedEnv;
  });

  it('connects, calls Procore, survives three hours with one refresh, and revokes', async () => {
    const server = app.getHttpServer();
    // Alice's browser: it keeps the cookie that binds the flow to it.
    const browser = request.agent(server);

    // Start the connection: our route sends the user to Procore's authorize URL.
    const start = await browser.get('/procore/oauth/authorize?returnTo=/me').set(alice).expect(302);
    expect(start.headers.location).toMatch(new RegExp(`^${fake.url}/oauth/authorize\\?`));
    expect(start.headers['set-cookie']).toEqual([
      expect.stringMatching(/^procore_oauth_[0-9a-f]{16}=.+; HttpOnly; SameSite=Lax$/),
    ]);

    // Procore (the fake) approves and redirects to the callback with code and state.
    const approved = await fetch(start.headers.location, { redirect: 'manual' });
    const callback = new URL(approved.headers.get('location') as string);
    expect(callback.pathname).toBe('/procore/oauth/callback');

    // Only the browser that started the flow can complete it.
    await request(server).get(`${callback.pathname}${callback.search}`).set(alice).expect(400);
    const done = await browser.get(`${callback.pathname}${callback.search}`).set(alice).expect(302);
    expect(done.headers.location).toBe('/me');

    const me = await request(server).get('/me').set(alice).expect(200);
    expect(me.body).toEqual(fake.user);
    // Procore's API through @ProcoreApi(): the companies, and every project of one, across pages.
    const companies = await request(server).get('/companies').set(alice).expect(200);
    expect(companies.body).toEqual(fake.companies);
    const bigId = '9007199254740993';
    const projects = await request(server)
      .get(`/companies/${bigId}/projects`)
      .set(alice)
      .expect(200);
    expect(projects.body.count).toBe(fake.projectCount(bigId));
    expect(new Set(projects.body.projects.map((p: { id: string }) => p.id)).size).toBe(
      fake.projectCount(bigId),
    );
    expect(fake.apiRequests.filter((call) => call.path === '/rest/v1.0/projects')).toEqual(
      expect.arrayContaining([expect.objectContaining({ companyId: bigId })]),
    );
    await request(server)
      .get('/companies/1e3/projects')
      .set(alice)
      .expect(400)
      .expect((answer) => expect(answer.body.reason).toBe('invalid_company_id'));
    const status = await request(server).get('/status').set(alice).expect(200);
    expect(status.body).toMatchObject({ ownerId: 'alice', status: 'active' });
    expect(JSON.stringify(status.body)).not.toMatch(/token"|eyJ/);

    // Three hours later (both the app's and the fake's clocks): the token expired long ago.
    fake.resetCounters();
    jest.useFakeTimers({
      doNotFake: [
        'nextTick',
        'setImmediate',
        'clearImmediate',
        'setTimeout',
        'clearTimeout',
        'setInterval',
        'clearInterval',
        'queueMicrotask',
        'hrtime',
        'performance',
      ],
      advanceTimers: true,
    });
    jest.setSystemTime(Date.now() + 3 * 60 * 60 * 1000);

    await request(server).get('/me').set(alice).expect(200, fake.user);
    await request(server).get('/me').set(alice).expect(200, fake.user);
    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.counters.rejectedRefreshTokens).toBe(0);

    // Disconnect: revoked at Procore, and the app answers 401 not_connected from then on.
    await request(server).delete('/connection').set(alice).expect(200, { revoked: true });
    expect(fake.counters.revoke).toBe(1);
    const after = await request(server).get('/me').set(alice).expect(401);
    expect(after.body).toMatchObject({
      reason: 'not_connected',
      authorizePath: '/procore/oauth/authorize',
    });
  });
});
