import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import request from 'supertest';
import { ProcoreApiPipe, ProcoreScopedClient, ProcoreTokenPipe } from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  createHttpTestApp,
  ownerFromHeader,
  type HttpTestApp,
  type Platform,
} from './support/procore-http-app.js';
import { fakeProcoreOptions, migrate } from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * `@ProcoreToken()` and `@ProcoreApi()` resolve in their parameter factory (no pipe, no dependency
 * injection there): with two applications alive in one process, each request must still be
 * answered by its own application's module (its own database, its own Procore).
 */
describe.each<Platform>(['express', 'fastify'])(
  'two applications in one process on %s',
  (platform) => {
    const apps: { database: TestDatabase; fake: FakeProcoreServer; http: HttpTestApp }[] = [];
    const ownerId = `${platform}-only-in-b`;

    beforeAll(async () => {
      for (const name of ['a', 'b']) {
        const database = await createTestDatabase(`two_apps_${name}_${platform}`);
        await migrate(database.url);
        const fake = await FakeProcoreServer.start();
        const http = await createHttpTestApp({
          platform,
          databaseUrl: database.url,
          fake,
          options: fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
        });
        apps.push({ database, fake, http });
      }
      const b = apps[1];
      await b.http.service.importTokens(ownerId, b.fake.issueTokens());
    });
    afterAll(async () => {
      for (const { database, fake, http } of apps) {
        await http.close();
        await fake.close();
        await database.drop();
      }
    });

    it("@ProcoreToken() gives each application's own owner token, or its own 401", async () => {
      const [a, b] = apps;
      // b's token, valid at b's Procore (the route calls it with the token).
      const me = await request(b.http.app.getHttpServer())
        .get('/me')
        .set('x-user-id', ownerId)
        .expect(200);
      expect(me.body).toMatchObject({ id: b.fake.user.id, login: b.fake.user.login });
      // a has no connection for this owner: a's answer, not b's token.
      const refused = await request(a.http.app.getHttpServer())
        .get('/me')
        .set('x-user-id', ownerId)
        .expect(401);
      expect(refused.body).toMatchObject({ statusCode: 401, reason: 'not_connected' });
    });

    it('on a cache hit, the parameter factories hand over the token and the client themselves, not a promise', async () => {
      const b = apps[1];
      const server = b.http.app.getHttpServer();
      const tokenResolve = jest.spyOn(b.http.app.get(ProcoreTokenPipe), 'resolve');
      const apiResolve = jest.spyOn(b.http.app.get(ProcoreApiPipe), 'resolve');
      try {
        await request(server).get('/me').set('x-user-id', ownerId).expect(200);
        await request(server).get('/api/me').set('x-user-id', ownerId).expect(200);
        b.http.service.evict(ownerId);
        await request(server).get('/me').set('x-user-id', ownerId).expect(200);

        const [hit, miss] = tokenResolve.mock.results.map((result) => result.value);
        expect(typeof hit).toBe('string');
        expect(b.fake.isAccessTokenValid(hit as string)).toBe(true);
        expect(apiResolve.mock.results[0]?.value).toBeInstanceOf(ProcoreScopedClient);
        // A miss (evicted): a promise, for the same stored token.
        expect(miss).toBeInstanceOf(Promise);
        await expect(miss).resolves.toBe(hit);
      } finally {
        tokenResolve.mockRestore();
        apiResolve.mockRestore();
      }
    });

    it("@ProcoreApi() gives each application's own client, or its own 401", async () => {
      const [a, b] = apps;
      const me = await request(b.http.app.getHttpServer())
        .get('/api/me')
        .set('x-user-id', ownerId)
        .expect(200);
      expect(me.body).toMatchObject({ id: b.fake.user.id, login: b.fake.user.login });
      const refused = await request(a.http.app.getHttpServer())
        .get('/api/me')
        .set('x-user-id', ownerId)
        .expect(401);
      expect(refused.body).toMatchObject({ statusCode: 401, reason: 'not_connected' });
    });
  },
);
