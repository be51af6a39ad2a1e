import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { ProcoreInvalidOwnerError, ProcoreReauthorizationRequiredError } from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  createHttpTestApp,
  ownerFromHeader,
  type HttpTestApp,
} from './support/procore-http-app.js';
import {
  connectOwner,
  createProcoreTestApp,
  expireStoredToken,
  fakeProcoreOptions,
  migrate,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * No owner is ever served another owner's token: owner ids that look alike, or that once collided
 * inside the library (`force:<owner>` was a single-flight key), stay separate in every public
 * method and route. Each owner is connected as a different Procore user, so a token's `sub` says
 * whose it is.
 */
const PAIRS: readonly [string, string][] = [
  ['alice', 'force:alice'],
  ['force:bob', 'bob'],
  ['carol', 'Carol'],
  ['dave', 'dave '],
  ['caf\u00e9', 'cafe\u0301'],
  ['1', '01'],
  ['eve', 'eve\u200b'],
];

function subOf(token: string): string {
  const payload = token.split('.')[1];
  return (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub: string }).sub;
}

describe('owner isolation (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let instance: ProcoreTestApp;
  const userIds = new Map<string, number>();
  let nextUser = 1000;

  beforeAll(async () => {
    database = await createTestDatabase('owner_isolation');
    await migrate(database.url);
  });

  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    instance = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake, { cache: { maxEntries: 0 } }),
    });
    await instance.dataSource.query('TRUNCATE procore_oauth_tokens, procore_oauth_states');
  });

  afterEach(async () => {
    await instance.close();
    await fake.close();
  });

  afterAll(async () => {
    await database.drop();
  });

  /** Connects `ownerId` as its own Procore user. */
  async function connectAs(ownerId: string): Promise<void> {
    const id = ++nextUser;
    userIds.set(ownerId, id);
    fake.user = { id, login: `user${id}@example.com`, name: `User ${id}` };
    await connectOwner(instance.service, ownerId);
  }

  const expectOwn = (ownerId: string, token: string) =>
    expect(subOf(token)).toBe(String(userIds.get(ownerId)));

  it.each(PAIRS)(
    'getAccessToken() and refresh() racing for "%s" and "%s" each get their own token',
    async (first, second) => {
      await connectAs(first);
      await connectAs(second);
      await expireStoredToken(instance.dataSource, fake, [first, second]);
      // Every combination at once: forced and ordinary refreshes of both owners.
      const [a, b, c, d] = await Promise.all([
        instance.service.refresh(first),
        instance.service.getAccessToken(second),
        instance.service.getAccessToken(first),
        instance.service.refresh(second),
      ]);
      expectOwn(first, a);
      expectOwn(second, b);
      expectOwn(first, c);
      expectOwn(second, d);
      expect(fake.counters.rejectedRefreshTokens).toBe(0);
    },
  );

  it.each(PAIRS)(
    'getConnection(), revoke() and importTokens() of "%s" never touch "%s"',
    async (first, second) => {
      await connectAs(first);
      await connectAs(second);
      expect((await instance.service.getConnection(first))?.ownerId).toBe(first);
      expect((await instance.service.getConnection(second))?.ownerId).toBe(second);

      await instance.service.revoke(first);
      expect((await instance.service.getConnection(first))?.status).toBe('revoked');
      expect((await instance.service.getConnection(second))?.status).toBe('active');
      expectOwn(second, await instance.service.getAccessToken(second));
      await expect(instance.service.getAccessToken(first)).rejects.toBeInstanceOf(
        ProcoreReauthorizationRequiredError,
      );

      fake.user = { id: 1, login: 'imported@example.com', name: 'Imported' };
      const imported = fake.issueTokens(1);
      await instance.service.importTokens(first, imported);
      expect(subOf(await instance.service.getAccessToken(first))).toBe('1');
      expectOwn(second, await instance.service.getAccessToken(second));
    },
  );

  it.each([
    ['a lone high surrogate', 'user-\ud800'],
    ['a lone low surrogate', 'user-\udbff'],
    ['the replacement character', 'user-\ufffd'],
  ])('an owner id with %s never reaches another owner', async (_label, id) => {
    await connectAs('user-\ufffd');
    if (id === 'user-\ufffd') {
      expectOwn(id, await instance.service.getAccessToken(id));
      return;
    }
    await expect(instance.service.getAccessToken(id)).rejects.toBeInstanceOf(
      ProcoreInvalidOwnerError,
    );
    await expect(instance.service.revoke(id)).rejects.toBeInstanceOf(ProcoreInvalidOwnerError);
    expect((await instance.service.getConnection('user-\ufffd'))?.status).toBe('active');
  });

  describe.each(['express', 'fastify'] as const)('through the routes on %s', (platform) => {
    let http: HttpTestApp;
    beforeEach(async () => {
      http = await createHttpTestApp({
        platform,
        databaseUrl: database.url,
        fake,
        options: fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
      });
    });
    afterEach(async () => {
      await http.close();
    });

    it.each(
      PAIRS.filter(([a, b]) => a.trim() === a && b.trim() === b && /^[\x20-\x7e]+$/.test(a + b)),
    )('/me for "%s" and "%s" answers each as its own Procore user', async (first, second) => {
      await connectAs(first);
      await connectAs(second);
      await expireStoredToken(instance.dataSource, fake, [first, second]);
      const server = http.app.getHttpServer();
      const answers = await Promise.all(
        [first, second, first, second].map((owner) =>
          request(server).get('/me').set('x-user-id', owner),
        ),
      );
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
      expect(answers.map((answer) => (answer.body as { id: number }).id)).toEqual(
        [first, second, first, second].map((owner) => userIds.get(owner)),
      );
    });
  });
});
