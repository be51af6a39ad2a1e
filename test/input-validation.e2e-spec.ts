import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import {
  ProcoreConfigurationError,
  ProcoreInvalidOwnerError,
  ProcoreInvalidResponseError,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { createHttpTestApp, type HttpTestApp } from './support/procore-http-app.js';
import {
  RecordingLogger,
  connectOwner,
  createProcoreTestApp,
  fakeProcoreOptions,
  generateKey,
  migrate,
  rawRow,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** The error `work` rejects with (fails the test when it resolves). */
async function rejectionOf(work: () => Promise<unknown>): Promise<Error> {
  try {
    await work();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection, but the call resolved');
}

describe('hostile input: owner ids, token responses, keyrings (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let instance: ProcoreTestApp;
  const logger = new RecordingLogger();
  let owner = 0;
  const nextOwner = () => `input-owner-${++owner}`;

  beforeAll(async () => {
    database = await createTestDatabase('input_validation');
    await migrate(database.url);
  });

  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    instance = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
      logger,
    });
  });

  afterEach(async () => {
    await instance?.close();
    await fake.close();
  });

  afterAll(async () => {
    expect(logger.lines.join('\n')).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
    await database.drop();
  });

  describe('owner ids', () => {
    it("never serves or revokes the connection of 'user-\\uFFFD' for a lone surrogate lookalike", async () => {
      const victim = `${nextOwner()}-\uFFFD`;
      await connectOwner(instance.service, victim);
      const lookalikes = [victim.replace('\uFFFD', '\uD800'), victim.replace('\uFFFD', '\uDBFF')];

      for (const lookalike of lookalikes) {
        await expect(instance.service.getAccessToken(lookalike)).rejects.toThrow(
          ProcoreInvalidOwnerError,
        );
        await expect(instance.service.refresh(lookalike)).rejects.toThrow(ProcoreInvalidOwnerError);
        await expect(instance.service.revoke(lookalike)).rejects.toThrow(ProcoreInvalidOwnerError);
        await expect(instance.service.getConnection(lookalike)).rejects.toThrow(
          ProcoreInvalidOwnerError,
        );
      }

      expect(await instance.service.getConnection(victim)).toMatchObject({ status: 'active' });
      expect(fake.isAccessTokenValid(await instance.service.getAccessToken(victim))).toBe(true);
    });

    it('answers an id with NUL with the typed error, not a database error, and stores nothing', async () => {
      const ownerId = `${nextOwner()}\u0000admin`;

      for (const call of [
        () => instance.service.getConnection(ownerId),
        () => instance.service.getAuthorizationUrl(ownerId),
        () => instance.service.importTokens(ownerId, fake.issueTokens()),
      ]) {
        const error = await rejectionOf(call);
        expect(error).toBeInstanceOf(ProcoreInvalidOwnerError);
        expect(error.message).not.toContain(ownerId);
      }
      const [{ count }] = (await instance.dataSource.query(
        `SELECT count(*)::int AS count FROM procore_oauth_tokens WHERE owner_id LIKE 'input-owner-%admin'`,
      )) as { count: number }[];
      expect(count).toBe(0);
    });
  });

  describe('token responses', () => {
    it('rejects importTokens() with created_at in milliseconds and stores nothing', async () => {
      const ownerId = nextOwner();
      const tokens = fake.issueTokens();

      const error = await rejectionOf(() =>
        instance.service.importTokens(ownerId, { ...tokens, created_at: Date.now() }),
      );

      expect(error).toBeInstanceOf(ProcoreInvalidResponseError);
      expect((error as ProcoreInvalidResponseError).problem).toBe('invalid_field');
      expect(error.message).toContain('created_at');
      expect(error.message).not.toContain(tokens.access_token);
      expect(error.message).not.toContain(tokens.refresh_token);
      expect(await rawRow(instance.dataSource, ownerId)).toBeUndefined();
    });

    it.each([
      ['3e9 (beyond the integer lifetime column)', 3e9],
      ['1e13 (beyond any valid Date)', 1e13],
    ])('rejects importTokens() with expires_in %s and stores nothing', async (_name, expiresIn) => {
      const ownerId = nextOwner();

      await expect(
        instance.service.importTokens(ownerId, { ...fake.issueTokens(), expires_in: expiresIn }),
      ).rejects.toThrow(ProcoreInvalidResponseError);

      expect(await rawRow(instance.dataSource, ownerId)).toBeUndefined();
    });

    it('still imports a response with created_at in seconds, expiring created_at + expires_in', async () => {
      const ownerId = nextOwner();
      const tokens = fake.issueTokens();
      const createdAt = Math.floor(Date.now() / 1000) - 600;

      const connection = await instance.service.importTokens(ownerId, {
        ...tokens,
        created_at: createdAt,
      });

      expect(connection.expiresAt?.getTime()).toBe((createdAt + tokens.expires_in) * 1000);
    });

    it('refuses a client-credentials token whose expires_in is beyond 30 days', async () => {
      fake.accessTokenTtlSeconds = 3e9;

      await expect(instance.service.getClientCredentialsToken()).rejects.toThrow(
        ProcoreInvalidResponseError,
      );
    });
  });

  describe('encryption keyring', () => {
    it('does not boot with two different keys under one key id, naming the id and the variables but no key', async () => {
      const current = generateKey('dup');
      const previous = generateKey('dup');

      const error = await rejectionOf(() =>
        createProcoreTestApp({
          databaseUrl: database.url,
          options: fakeProcoreOptions(fake, {
            encryptionKey: current,
            previousEncryptionKeys: [previous],
          }),
        }),
      );

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('"dup"');
      expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_KEY');
      expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS');
      for (const secret of [current, previous, current.slice(4), previous.slice(4)]) {
        expect(error.message).not.toContain(secret);
      }
    });

    it('boots with the same key listed as current and previous', async () => {
      const key = generateKey('same');
      const app = await createProcoreTestApp({
        databaseUrl: database.url,
        options: fakeProcoreOptions(fake, { encryptionKey: key, previousEncryptionKeys: [key] }),
      });
      try {
        const tokens = fake.issueTokens();
        await app.service.importTokens('same-key-owner', tokens);
        app.service.evict('same-key-owner'); // read it back through the keyring
        expect(await app.service.getAccessToken('same-key-owner')).toBe(tokens.access_token);
      } finally {
        await app.close();
      }
    });
  });
});

describe('unusable owner ids over HTTP answer 401 no_owner (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let http: HttpTestApp;
  const server = () => http.app.getHttpServer();

  beforeAll(async () => {
    database = await createTestDatabase('input_validation_http');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
    http = await createHttpTestApp({
      platform: 'express',
      databaseUrl: database.url,
      fake,
      // The owner id is a JSON string literal in a header, so a test can send '\ud800' or '\u0000'
      // in plain ASCII, as a decoded session or token claim could hand them to the app.
      options: fakeProcoreOptions(fake, {
        ownerResolver: (request) => {
          const header = (request as { headers: Record<string, string | undefined> }).headers[
            'x-user-json'
          ];
          return header === undefined ? undefined : (JSON.parse(`"${header}"`) as string);
        },
      }),
    });
  });

  afterAll(async () => {
    await http?.close();
    await fake?.close();
    await database?.drop();
  });

  it.each([
    ['a lone surrogate', 'user-\\ud800'],
    ['NUL', 'user-\\u0000'],
    ['a C1 control', 'user-\\u0085'],
    ['256 characters', 'x'.repeat(256)],
  ])(
    'answers %s with 401 no_owner on the guard, @ProcoreToken() and /authorize',
    async (_name, owner) => {
      for (const path of ['/guarded', '/me', '/procore/oauth/authorize']) {
        const response = await request(server()).get(path).set('x-user-json', owner).expect(401);
        expect(response.body).toEqual({
          statusCode: 401,
          error: 'Unauthorized',
          reason: 'no_owner',
          message: 'No signed-in user on this request: authenticate before using Procore.',
          authorizePath: '/procore/oauth/authorize',
        });
      }
    },
  );
});
