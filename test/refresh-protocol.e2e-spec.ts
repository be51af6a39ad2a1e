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
import {
  ProcoreAuthEventType,
  ProcoreConfigurationError,
  ProcoreInvalidResponseError,
  ProcoreReauthorizationRequiredError,
  ProcoreTimeoutError,
  ProcoreTokenRefreshError,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  RecordingLogger,
  connectOwner,
  createProcoreTestApp,
  expireStoredToken,
  fakeProcoreOptions,
  migrate,
  rawRow,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';
import { ProcoreTokenStore } from '../lib/storage/procore-token.store.js';
import { PROCORE_TOKEN_CIPHER } from '../lib/procore-auth.constants.js';
import type { TokenCipher } from '../lib/crypto/token-cipher.js';
import { ProcoreTokenRefresher } from '../lib/refresh/procore-token.refresher.js';

describe('refresh protocol (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let instance: ProcoreTestApp;
  const logger = new RecordingLogger();
  const seenSecrets = new Set<string>();
  let encryptionKey: string;
  let owner = 0;
  const nextOwner = () => `user-${++owner}`;

  beforeAll(async () => {
    database = await createTestDatabase('refresh');
    await migrate(database.url);
  });

  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    const options = fakeProcoreOptions(fake, { cache: { maxEntries: 0 } });
    encryptionKey = options.encryptionKey;
    instance = await createProcoreTestApp({ databaseUrl: database.url, options, logger });
  });

  afterEach(async () => {
    await instance.close();
    await fake.close();
  });

  afterAll(async () => {
    // No token, refresh token, client secret or key in anything the app logged.
    const logged = logger.lines.join('\n');
    for (const secret of [...seenSecrets, fake.clientSecret, encryptionKey]) {
      expect(logged).not.toContain(secret);
    }
    expect(logged).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
    await database.drop();
  });

  /** Replaces the running instance with one built from these options: a restart or redeploy. */
  async function restart(overrides: Partial<ProcoreAuthModuleOptions> = {}): Promise<void> {
    await instance.close();
    instance = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake, overrides),
      logger,
    });
  }

  async function connected(): Promise<string> {
    const ownerId = nextOwner();
    await connectOwner(instance.service, ownerId);
    seenSecrets.add(await instance.service.getAccessToken(ownerId));
    return ownerId;
  }

  /** The refresh token currently stored for the owner, decrypted the way the app does it. */
  async function storedRefreshToken(app: ProcoreTestApp, ownerId: string): Promise<string> {
    const token = await app.app.get(ProcoreTokenStore).find(ownerId);
    const { openRefreshToken } = await import('../lib/crypto/connection-secrets.js');
    const value = openRefreshToken(
      app.app.get<TokenCipher>(PROCORE_TOKEN_CIPHER),
      token!,
    ) as string;
    seenSecrets.add(value);
    return value;
  }

  it('serves a fresh token without calling Procore', async () => {
    const ownerId = await connected();
    fake.resetCounters();
    const token = await instance.service.getAccessToken(ownerId);
    expect(fake.isAccessTokenValid(token)).toBe(true);
    expect(fake.counters.refreshToken).toBe(0);
  });

  it('refreshes an expired token once, persists the rotated refresh token, and never reuses the old one', async () => {
    const ownerId = await connected();
    const oldRefreshToken = await storedRefreshToken(instance, ownerId);
    const before = await rawRow(instance.dataSource, ownerId);
    await expireStoredToken(instance.dataSource, fake, ownerId);
    fake.resetCounters();

    const token = await instance.service.getAccessToken(ownerId);

    expect(fake.isAccessTokenValid(token)).toBe(true);
    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.isRefreshTokenActive(oldRefreshToken)).toBe(false);
    const newRefreshToken = await storedRefreshToken(instance, ownerId);
    expect(newRefreshToken).not.toBe(oldRefreshToken);
    expect(fake.isRefreshTokenActive(newRefreshToken)).toBe(true);
    const after = await rawRow(instance.dataSource, ownerId);
    expect(after.version).toBe((before.version as number) + 1);
    expect((after.expires_at as Date).getTime()).toBeGreaterThan(Date.now() + 5000 * 1000);
    expect(instance.events).toContainEqual(
      expect.objectContaining({
        type: ProcoreAuthEventType.TokenRefreshed,
        ownerId,
        trigger: 'request',
      }),
    );

    // Later calls use the stored token; the rejected-token counter proves the old one is never sent.
    await instance.service.getAccessToken(ownerId);
    await instance.service.refresh(ownerId);
    expect(fake.counters.refreshToken).toBe(2);
    expect(fake.counters.rejectedRefreshTokens).toBe(0);
  });

  it('rotates the refresh token exactly once under 500 concurrent getAccessToken calls', async () => {
    const ownerId = await connected();
    await expireStoredToken(instance.dataSource, fake, ownerId);
    fake.resetCounters();
    fake.tokenLatencyMs = 50;
    const store = instance.app.get(ProcoreTokenStore);
    const reads = jest.spyOn(store, 'find');
    const locks = jest.spyOn(store, 'withLock');

    const tokens = await Promise.all(
      Array.from({ length: 500 }, () => instance.service.getAccessToken(ownerId)),
    );

    expect(fake.counters.refreshToken).toBe(1);
    expect(fake.counters.rejectedRefreshTokens).toBe(0);
    expect(new Set(tokens).size).toBe(1);
    expect(fake.isAccessTokenValid(tokens[0])).toBe(true);
    // The in-process single-flight: one read and one locked transaction for all 500 callers.
    expect(reads).toHaveBeenCalledTimes(1);
    expect(locks).toHaveBeenCalledTimes(1);
    reads.mockRestore();
    locks.mockRestore();
  });

  it('rotates exactly once when 3 app instances with their own DataSources race on one expired token', async () => {
    const ownerId = await connected();
    const others = await Promise.all(
      [1, 2].map(() =>
        createProcoreTestApp({
          databaseUrl: database.url,
          options: fakeProcoreOptions(fake, { encryptionKey, cache: { maxEntries: 0 } }),
          logger,
        }),
      ),
    );
    try {
      await expireStoredToken(instance.dataSource, fake, ownerId);
      fake.resetCounters();
      fake.tokenLatencyMs = 50;
      const apps = [instance, ...others];

      const tokens = await Promise.all(
        Array.from({ length: 300 }, (_, i) => apps[i % 3].service.getAccessToken(ownerId)),
      );

      expect(fake.counters.refreshToken).toBe(1);
      expect(fake.counters.rejectedRefreshTokens).toBe(0);
      expect(new Set(tokens).size).toBe(1);
      expect(fake.isAccessTokenValid(tokens[0])).toBe(true);
    } finally {
      await Promise.all(others.map((other) => other.close()));
    }
  });

  it('marks the connection reauthorization_required on invalid_grant, emits the event and keeps the row', async () => {
    const ownerId = await connected();
    fake.revokeToken(await storedRefreshToken(instance, ownerId)); // the user disconnected the app in Procore
    await expireStoredToken(instance.dataSource, fake, ownerId);

    const error = await instance.service.getAccessToken(ownerId).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ProcoreReauthorizationRequiredError);
    expect(error).toMatchObject({ reason: 'reauthorization_required', causeCode: 'invalid_grant' });
    const row = await rawRow(instance.dataSource, ownerId);
    expect(row).toMatchObject({
      status: 'reauthorization_required',
      last_error_code: 'invalid_grant',
      access_token: null,
      refresh_token: null,
    });
    expect(instance.events).toContainEqual(
      expect.objectContaining({
        type: ProcoreAuthEventType.ReauthorizationRequired,
        ownerId,
        cause: 'invalid_grant',
      }),
    );
    // No further call reaches Procore for this owner.
    fake.resetCounters();
    await expect(instance.service.getAccessToken(ownerId)).rejects.toBeInstanceOf(
      ProcoreReauthorizationRequiredError,
    );
    expect(fake.counters.refreshToken).toBe(0);
  });

  it('retries a 503 answered before Procore consumed the refresh token, and rotates once', async () => {
    const ownerId = await connected();
    await expireStoredToken(instance.dataSource, fake, ownerId);
    fake.injectFault({ kind: 'status', status: 503 }, { grantType: 'refresh_token' });
    fake.resetCounters();

    const token = await instance.service.getAccessToken(ownerId);

    expect(fake.isAccessTokenValid(token)).toBe(true);
    expect(fake.counters.refreshToken).toBe(2);
    expect(fake.counters.successfulRefreshes).toBe(1);
    expect(fake.counters.rejectedRefreshTokens).toBe(0);
    expect(await rawRow(instance.dataSource, ownerId)).toMatchObject({
      status: 'active',
      failure_count: 0,
    });
  });

  it('records refresh_response_lost when the 503 came after Procore consumed the refresh token', async () => {
    const ownerId = await connected();
    await expireStoredToken(instance.dataSource, fake, ownerId);
    fake.injectFault(
      { kind: 'status', status: 503, consumeRefreshToken: true },
      { grantType: 'refresh_token' },
    );
    fake.resetCounters();

    const error = await instance.service.getAccessToken(ownerId).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ProcoreReauthorizationRequiredError);
    expect(error).toMatchObject({ causeCode: 'refresh_response_lost' });
    expect(fake.counters.refreshToken).toBe(2); // the lost call and one retry, never more
    expect(await rawRow(instance.dataSource, ownerId)).toMatchObject({
      status: 'reauthorization_required',
      last_error_code: 'refresh_response_lost',
    });
    expect(instance.events).toContainEqual(
      expect.objectContaining({
        type: ProcoreAuthEventType.ReauthorizationRequired,
        ownerId,
        cause: 'refresh_response_lost',
      }),
    );
  });

  it('honours Retry-After on 429 and then refreshes', async () => {
    const ownerId = await connected();
    await expireStoredToken(instance.dataSource, fake, ownerId);
    fake.injectFault({ kind: 'rate-limit', retryAfterSeconds: 0 }, { grantType: 'refresh_token' });
    fake.resetCounters();

    expect(fake.isAccessTokenValid(await instance.service.getAccessToken(ownerId))).toBe(true);
    expect(fake.counters.successfulRefreshes).toBe(1);
  });

  it('gives up on a hanging token endpoint within the configured bound, keeping the connection active', async () => {
    const ownerId = await connected();
    await restart({ encryptionKey, http: { timeoutMs: 300, retries: 0 } });
    await expireStoredToken(instance.dataSource, fake, ownerId);
    fake.injectFault({ kind: 'hang' }, { grantType: 'refresh_token' });

    const startedAt = Date.now();
    const error = await instance.service.getAccessToken(ownerId).catch((e: unknown) => e);

    expect(Date.now() - startedAt).toBeLessThan(3000);
    expect(error).toBeInstanceOf(ProcoreTokenRefreshError);
    expect((error as Error).cause).toBeInstanceOf(ProcoreTimeoutError);
    const row = await rawRow(instance.dataSource, ownerId);
    expect(row).toMatchObject({
      status: 'active',
      failure_count: 1,
      last_error_code: 'refresh_outcome_unknown',
    });
    expect(instance.events).toContainEqual(
      expect.objectContaining({
        type: ProcoreAuthEventType.RefreshFailed,
        ownerId,
        errorCode: 'timeout',
      }),
    );
  });

  it('treats invalid_client as a configuration error and leaves the connection untouched', async () => {
    const ownerId = await connected();
    await restart({ encryptionKey, clientSecret: 'wrong-secret' });
    await expireStoredToken(instance.dataSource, fake, ownerId);
    const before = await rawRow(instance.dataSource, ownerId);

    const error = await instance.service.getAccessToken(ownerId).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ProcoreConfigurationError);
    expect((error as Error).message).toMatch(/PROCORE_CLIENT_SECRET/);
    expect((error as Error).message).not.toContain('wrong-secret');
    const after = await rawRow(instance.dataSource, ownerId);
    expect(after).toEqual(before); // not marked: no status, failure count or error code written
  });

  it.each([
    ['html', { kind: 'html' as const }, 'html'],
    ['invalid JSON', { kind: 'invalid-json' as const }, 'not_json'],
    ['an oversized body', { kind: 'oversized' as const }, 'too_large'],
    ['no access_token', { kind: 'missing-access-token' as const }, 'missing_access_token'],
  ])(
    'rejects a token response with %s as a typed error and stores nothing from it',
    async (_name, fault, problem) => {
      const ownerId = await connected();
      await expireStoredToken(instance.dataSource, fake, ownerId);
      const before = await rawRow(instance.dataSource, ownerId);
      fake.injectFault(fault, { grantType: 'refresh_token' });

      const error = await instance.service.getAccessToken(ownerId).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(ProcoreInvalidResponseError);
      expect(error).toMatchObject({ problem });
      const after = await rawRow(instance.dataSource, ownerId);
      expect(after).toMatchObject({
        access_token: before.access_token,
        refresh_token: before.refresh_token,
        version: before.version,
        status: 'active',
      });
    },
  );

  it('keeps the old refresh token when a refresh response carries none', async () => {
    const ownerId = nextOwner();
    // Import a grant, then answer its refresh without a refresh_token (a response Procore may send).
    const grant = fake.issueTokens();
    seenSecrets.add(grant.refresh_token);
    await instance.service.importTokens(ownerId, grant);
    await expireStoredToken(instance.dataSource, fake, ownerId);
    const refresher = instance.app.get(ProcoreTokenRefresher);
    const client = refresher['client'];
    const original = client.refresh.bind(client);
    client.refresh = async (token: string) => ({
      ...(await original(token)),
      refresh_token: undefined,
    });
    try {
      await instance.service.getAccessToken(ownerId);
    } finally {
      client.refresh = original;
    }
    expect(await storedRefreshToken(instance, ownerId)).toBe(grant.refresh_token);
  });
});
