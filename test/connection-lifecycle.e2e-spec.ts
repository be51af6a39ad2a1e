import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { ProcoreAuthEventType } from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { openAccessToken, openRefreshToken } from '../lib/crypto/connection-secrets.js';
import {
  RecordingLogger,
  connectOwner,
  createProcoreTestApp,
  fakeProcoreOptions,
  migrate,
  rawRow,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';
import { ProcoreTokenStore } from '../lib/storage/procore-token.store.js';
import { PROCORE_TOKEN_CIPHER } from '../lib/procore-auth.constants.js';
import type { TokenCipher } from '../lib/crypto/token-cipher.js';

/** Reconnects and revocations: the replaced grant dies at Procore, and no lock waits on a retry. */
describe('connection lifecycle (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let instance: ProcoreTestApp;
  let logger: RecordingLogger;
  let owner = 0;
  const nextOwner = () => `lifecycle-${++owner}`;

  beforeAll(async () => {
    database = await createTestDatabase('lifecycle');
    await migrate(database.url);
  });

  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    logger = new RecordingLogger();
    instance = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake, { http: { retryBaseDelayMs: 5, retries: 2 } }),
      logger,
    });
  });

  afterEach(async () => {
    await instance.close();
    await fake.close();
  });

  afterAll(async () => {
    await database.drop();
  });

  async function storedTokens(ownerId: string): Promise<{ access: string; refresh: string }> {
    const record = await instance.app.get(ProcoreTokenStore).find(ownerId);
    const cipher = instance.app.get<TokenCipher>(PROCORE_TOKEN_CIPHER);
    return {
      access: openAccessToken(cipher, record!) as string,
      refresh: openRefreshToken(cipher, record!) as string,
    };
  }

  it('reconnecting revokes the replaced grant at Procore after the new tokens are stored', async () => {
    const ownerId = nextOwner();
    await connectOwner(instance.service, ownerId);
    const replaced = await storedTokens(ownerId);
    fake.resetCounters();

    await connectOwner(instance.service, ownerId);

    const current = await storedTokens(ownerId);
    expect(current.refresh).not.toBe(replaced.refresh);
    expect(fake.counters.revoke).toBe(1);
    expect(fake.isRefreshTokenActive(replaced.refresh)).toBe(false);
    expect(fake.isAccessTokenValid(replaced.access)).toBe(false);
    expect(fake.isRefreshTokenActive(current.refresh)).toBe(true);
    expect(fake.isAccessTokenValid(await instance.service.getAccessToken(ownerId))).toBe(true);
    expect(await rawRow(instance.dataSource, ownerId)).toMatchObject({ status: 'active' });
  });

  it('importing the tokens already stored revokes nothing', async () => {
    const ownerId = nextOwner();
    const tokens = fake.issueTokens();
    await instance.service.importTokens(ownerId, tokens);
    fake.resetCounters();
    await instance.service.importTokens(ownerId, tokens);
    expect(fake.counters.revoke).toBe(0);
    expect(fake.isRefreshTokenActive(tokens.refresh_token)).toBe(true);
  });

  it('a replaced grant that cannot be revoked is logged (no secret) and the new connection is kept', async () => {
    const ownerId = nextOwner();
    await connectOwner(instance.service, ownerId);
    const replaced = await storedTokens(ownerId);
    fake.injectFault({ kind: 'status', status: 500 }, { path: '/oauth/revoke', times: 3 });

    await connectOwner(instance.service, ownerId);

    expect(fake.counters.revoke).toBe(3);
    expect(fake.isRefreshTokenActive(replaced.refresh)).toBe(true);
    expect(fake.isAccessTokenValid(await instance.service.getAccessToken(ownerId))).toBe(true);
    const warning = logger.lines.find((line) => line.includes('Could not revoke the replaced'));
    expect(warning).toMatch(/owner "lifecycle-\d+" \(http_500\)/);
    expect(warning).not.toContain(replaced.refresh);
  });

  it('revoke() retries a transient failure with a fresh lock and closes the row', async () => {
    const ownerId = nextOwner();
    await connectOwner(instance.service, ownerId);
    const tokens = await storedTokens(ownerId);
    fake.injectFault({ kind: 'status', status: 503 }, { path: '/oauth/revoke' });

    await instance.service.revoke(ownerId);

    expect(fake.counters.revoke).toBe(2);
    expect(fake.isRefreshTokenActive(tokens.refresh)).toBe(false);
    expect(await rawRow(instance.dataSource, ownerId)).toMatchObject({
      status: 'revoked',
      access_token: null,
      refresh_token: null,
    });
    expect(instance.events).toContainEqual(
      expect.objectContaining({ type: ProcoreAuthEventType.Revoked, ownerId }),
    );
  });

  it('revoke() that keeps failing leaves the connection active so it can be retried', async () => {
    const ownerId = nextOwner();
    await connectOwner(instance.service, ownerId);
    fake.injectFault({ kind: 'status', status: 503 }, { path: '/oauth/revoke', times: 3 });

    await expect(instance.service.revoke(ownerId)).rejects.toMatchObject({ status: 503 });

    expect(fake.counters.revoke).toBe(3);
    expect(await rawRow(instance.dataSource, ownerId)).toMatchObject({ status: 'active' });
    expect(fake.isAccessTokenValid(await instance.service.getAccessToken(ownerId))).toBe(true);
  });
});
