import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import {
  ProcoreAuthEventType,
  ProcoreInvalidResponseError,
  ProcoreOAuthStateError,
  ProcoreReauthorizationRequiredError,
  ProcoreTokenDecryptionError,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
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
import { PROCORE_TOKEN_CIPHER } from '../lib/procore-auth.constants.js';
import type { TokenCipher } from '../lib/crypto/token-cipher.js';

describe('connections, encrypted storage and revocation (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let instance: ProcoreTestApp;
  const logger = new RecordingLogger();
  const secrets = new Set<string>();
  let owner = 0;
  const nextOwner = () => `owner-${++owner}`;

  beforeAll(async () => {
    database = await createTestDatabase('storage');
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
    const logged = logger.lines.join('\n');
    for (const secret of [...secrets, fake.clientSecret]) expect(logged).not.toContain(secret);
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

  /** Starts a flow and lets the fake approve it; returns what Procore redirected back with. */
  async function authorize(service = instance.service, ownerId: string, returnTo?: string) {
    const { url, state } = await service.getAuthorizationUrl(ownerId, { returnTo });
    const response = await fetch(url, { redirect: 'manual' });
    const location = new URL(response.headers.get('location') as string);
    return { state, code: location.searchParams.get('code') as string, authorizeUrl: new URL(url) };
  }

  describe('authorization-code flow', () => {
    it('exchanges the code, stores an active connection and hands out a token Procore accepts', async () => {
      const ownerId = nextOwner();
      const { state, code, authorizeUrl } = await authorize(
        instance.service,
        ownerId,
        '/projects?tab=1',
      );
      expect(authorizeUrl.searchParams.get('client_id')).toBe(fake.clientId);
      expect(authorizeUrl.searchParams.get('code_challenge')).toBeNull(); // PKCE is opt-in

      const result = await instance.service.handleCallback({ code, state, ownerId });

      expect(result.returnTo).toBe('/projects?tab=1');
      expect(result.connection).toMatchObject({
        ownerId,
        status: 'active',
        environment: 'production',
        failureCount: 0,
      });
      expect(Object.keys(result.connection)).not.toEqual(
        expect.arrayContaining(['accessToken', 'refreshToken']),
      );
      const token = await instance.service.getAccessToken(ownerId);
      secrets.add(token);
      const me = await fetch(`${fake.url}/rest/v1.0/me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(await me.json()).toMatchObject({ id: fake.user.id });
      expect(instance.events).toContainEqual(
        expect.objectContaining({ type: ProcoreAuthEventType.Connected, ownerId }),
      );
    });

    it('uses PKCE S256 when the pkce option is on', async () => {
      await restart({ pkce: true });
      const ownerId = nextOwner();
      const { state, code, authorizeUrl } = await authorize(instance.service, ownerId);
      expect(authorizeUrl.searchParams.get('code_challenge_method')).toBe('S256');

      await instance.service.handleCallback({ code, state, ownerId });

      expect(await instance.service.getConnection(ownerId)).toMatchObject({ status: 'active' });
    });

    it('refuses a reused state (code replay) and leaves the stored connection unchanged', async () => {
      const ownerId = nextOwner();
      const { state, code } = await authorize(instance.service, ownerId);
      await instance.service.handleCallback({ code, state, ownerId });
      const before = await rawRow(instance.dataSource, ownerId);

      await expect(instance.service.handleCallback({ code, state, ownerId })).rejects.toMatchObject(
        { problem: 'unknown_state' },
      );

      expect(await rawRow(instance.dataSource, ownerId)).toEqual(before);
      expect(fake.counters.authorizationCode).toBe(1);
    });

    it('refuses a state issued to another owner, without consuming it', async () => {
      const ownerId = nextOwner();
      const { state, code } = await authorize(instance.service, ownerId);

      await expect(
        instance.service.handleCallback({ code, state, ownerId: 'intruder' }),
      ).rejects.toMatchObject({ problem: 'owner_mismatch' });
      expect(await instance.service.getConnection('intruder')).toBeNull();
      // The rightful owner can still finish the flow.
      await instance.service.handleCallback({ code, state, ownerId });
      expect(await instance.service.getConnection(ownerId)).toMatchObject({ status: 'active' });
    });

    it('refuses an expired state', async () => {
      await restart({ stateTtlSeconds: 10 });
      const ownerId = nextOwner();
      const { state, code } = await authorize(instance.service, ownerId);
      await instance.dataSource.query(
        `UPDATE procore_oauth_states SET expires_at = now() - interval '1 second'`,
      );

      await expect(instance.service.handleCallback({ code, state, ownerId })).rejects.toMatchObject(
        { problem: 'expired_state' },
      );
      expect(await instance.service.getConnection(ownerId)).toBeNull();
    });

    it.each([
      ['no state', { code: 'x' }, 'missing_state'],
      ['an unknown state', { code: 'x', state: 'forged' }, 'unknown_state'],
    ])('refuses a callback with %s', async (_name, params, problem) => {
      const error = await instance.service.handleCallback(params).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProcoreOAuthStateError);
      expect(error).toMatchObject({ problem });
    });

    it('refuses a callback without code or with error=access_denied, storing nothing', async () => {
      const ownerId = nextOwner();
      const first = await instance.service.getAuthorizationUrl(ownerId);
      await expect(
        instance.service.handleCallback({ state: first.state, ownerId }),
      ).rejects.toMatchObject({ problem: 'missing_code' });
      const second = await instance.service.getAuthorizationUrl(ownerId);
      await expect(
        instance.service.handleCallback({ state: second.state, error: 'access_denied', ownerId }),
      ).rejects.toMatchObject({ problem: 'access_denied' });
      expect(await instance.service.getConnection(ownerId)).toBeNull();
    });

    it('refuses a returnTo that is not a same-origin path', async () => {
      for (const returnTo of [
        'https://evil.example/',
        '//evil.example',
        '/\\evil.example',
        'javascript:alert(1)',
      ]) {
        await expect(
          instance.service.getAuthorizationUrl(nextOwner(), { returnTo }),
        ).rejects.toMatchObject({ problem: 'invalid_return_to' });
      }
    });
  });

  describe('encryption at rest', () => {
    it('stores no plaintext token in the row', async () => {
      const ownerId = nextOwner();
      await connectOwner(instance.service, ownerId);
      const token = await instance.service.getAccessToken(ownerId);
      const row = await rawRow(instance.dataSource, ownerId);
      const refreshToken = instance.app
        .get<TokenCipher>(PROCORE_TOKEN_CIPHER)
        .decrypt(row.refresh_token as string, `procore-oauth-token:refresh:${ownerId}`);
      secrets.add(token).add(refreshToken);

      const everything = JSON.stringify(row);
      expect(everything).not.toContain(token);
      expect(everything).not.toContain(refreshToken);
      expect(everything).not.toContain(token.split('.')[1]); // not even the JWT payload
      expect(row.access_token).toMatch(/^v1\.test-key\./);
      expect(row.key_id).toBe('test-key');
    });

    it("does not decrypt a ciphertext copied to another owner's row", async () => {
      const victim = nextOwner();
      const attacker = nextOwner();
      await connectOwner(instance.service, victim);
      await connectOwner(instance.service, attacker);
      await instance.dataSource.query(
        `UPDATE procore_oauth_tokens SET access_token = v.access_token, refresh_token = v.refresh_token
           FROM (SELECT access_token, refresh_token FROM procore_oauth_tokens WHERE owner_id = $1) v
          WHERE owner_id = $2`,
        [victim, attacker],
      );
      instance.service.evict(attacker);

      const error = await instance.service.getAccessToken(attacker).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(ProcoreTokenDecryptionError);
      expect((error as Error).message).toMatch(/altered or belongs to another owner/);
    });

    it('reads tokens written with an old key after rotation, and writes new ones with the new key', async () => {
      const ownerId = nextOwner();
      const oldKey = generateKey('2025');
      await restart({ encryptionKey: oldKey });
      await connectOwner(instance.service, ownerId);
      const tokenBefore = await instance.service.getAccessToken(ownerId);
      await instance.close();

      // Rotate: new current key, the old one kept for decryption only.
      instance = await createProcoreTestApp({
        databaseUrl: database.url,
        options: fakeProcoreOptions(fake, {
          encryptionKey: generateKey('2026'),
          previousEncryptionKeys: [oldKey],
        }),
        logger,
      });
      expect(await instance.service.getAccessToken(ownerId)).toBe(tokenBefore);
      expect((await rawRow(instance.dataSource, ownerId)).key_id).toBe('2025');
      await instance.service.refresh(ownerId);
      const row = await rawRow(instance.dataSource, ownerId);
      expect(row.key_id).toBe('2026');
      expect(row.refresh_token).toMatch(/^v1\.2026\./);
      await instance.close();

      // Without the old key a not-yet-rotated row names the missing key.
      const other = nextOwner();
      instance = await createProcoreTestApp({
        databaseUrl: database.url,
        options: fakeProcoreOptions(fake, { encryptionKey: oldKey }),
        logger,
      });
      await connectOwner(instance.service, other);
      await restart({ encryptionKey: generateKey('2027') });
      await expect(instance.service.getAccessToken(other)).rejects.toThrow(
        /key "2025".*PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS/,
      );
    });
  });

  it('re-encrypts every stored connection with the current key, so the old key can be retired', async () => {
    const oldKey = generateKey('old');
    const newKey = generateKey('new');
    await restart({ encryptionKey: oldKey });
    const owners = [nextOwner(), nextOwner(), nextOwner()];
    for (const ownerId of owners) await connectOwner(instance.service, ownerId);
    const tokens = await Promise.all(
      owners.map((ownerId) => instance.service.getAccessToken(ownerId)),
    );
    await restart({
      encryptionKey: newKey,
      previousEncryptionKeys: [oldKey],
    });
    const { ProcoreKeyRotationService } = await import('nestjs-procore-auth');
    const result = await instance.app.get(ProcoreKeyRotationService).reencryptAll(2);
    expect(result.reencrypted).toBeGreaterThanOrEqual(owners.length);
    const rows = await instance.dataSource.query(
      `SELECT key_id FROM procore_oauth_tokens WHERE owner_id = ANY($1)`,
      [owners],
    );
    expect(rows).toEqual(owners.map(() => ({ key_id: 'new' })));
    // Run again (as after an interruption): only rows still on another key are touched (the
    // suite's other rows, on keys this app no longer has, fail again as they did).
    await expect(instance.app.get(ProcoreKeyRotationService).reencryptAll(2)).resolves.toEqual({
      reencrypted: 0,
      failed: result.failed,
    });
    await restart({ encryptionKey: newKey });
    expect(
      await Promise.all(owners.map((ownerId) => instance.service.getAccessToken(ownerId))),
    ).toEqual(tokens);
  });

  describe('importTokens', () => {
    it('adopts a grant obtained elsewhere and refreshes it later', async () => {
      const ownerId = nextOwner();
      const grant = fake.issueTokens();
      secrets.add(grant.access_token).add(grant.refresh_token);

      const connection = await instance.service.importTokens(ownerId, grant);

      expect(connection).toMatchObject({ status: 'active' });
      expect(await instance.service.getAccessToken(ownerId)).toBe(grant.access_token);
      await instance.service.refresh(ownerId);
      expect(fake.isRefreshTokenActive(grant.refresh_token)).toBe(false);
    });

    it('rejects a malformed token response and stores nothing', async () => {
      const ownerId = nextOwner();
      await expect(
        instance.service.importTokens(ownerId, {
          access_token: '',
          token_type: 'bearer',
          expires_in: 5400,
        }),
      ).rejects.toBeInstanceOf(ProcoreInvalidResponseError);
      await expect(
        instance.service.importTokens(ownerId, {
          access_token: 'a',
          token_type: 'bearer',
          expires_in: -1,
        }),
      ).rejects.toBeInstanceOf(ProcoreInvalidResponseError);
      expect(await instance.service.getConnection(ownerId)).toBeNull();
    });
  });

  describe('revoke', () => {
    it('revokes at Procore, then marks the connection revoked and erases its secrets', async () => {
      const ownerId = nextOwner();
      await connectOwner(instance.service, ownerId);
      const token = await instance.service.getAccessToken(ownerId);
      secrets.add(token);

      await instance.service.revoke(ownerId);

      expect(fake.counters.revoke).toBe(1);
      expect(fake.isAccessTokenValid(token)).toBe(false);
      const row = await rawRow(instance.dataSource, ownerId);
      expect(row).toMatchObject({
        status: 'revoked',
        access_token: null,
        refresh_token: null,
        expires_at: null,
      });
      expect(row.revoked_at).toBeInstanceOf(Date);
      const error = await instance.service.getAccessToken(ownerId).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProcoreReauthorizationRequiredError);
      expect(error).toMatchObject({ reason: 'not_connected', causeCode: 'revoked' });
      expect(instance.events).toContainEqual(
        expect.objectContaining({ type: ProcoreAuthEventType.Revoked, ownerId }),
      );
      // Revoking again is a no-op.
      await instance.service.revoke(ownerId);
      expect(fake.counters.revoke).toBe(1);
    });

    it('keeps the connection when Procore cannot be reached, so the revoke can be retried', async () => {
      const ownerId = nextOwner();
      await connectOwner(instance.service, ownerId);
      fake.injectFault({ kind: 'status', status: 503 }, { path: '/oauth/revoke', times: 10 });

      await expect(instance.service.revoke(ownerId)).rejects.toThrow(/503/);

      expect(await instance.service.getConnection(ownerId)).toMatchObject({ status: 'active' });
    });

    it('reconnecting after a revoke makes the connection active again with a new generation', async () => {
      const ownerId = nextOwner();
      await connectOwner(instance.service, ownerId);
      await instance.service.revoke(ownerId);
      const revoked = await instance.service.getConnection(ownerId);

      await connectOwner(instance.service, ownerId);

      const connection = await instance.service.getConnection(ownerId);
      expect(connection).toMatchObject({ status: 'active', revokedAt: null });
      expect(connection!.version).toBeGreaterThan(revoked!.version);
    });
  });

  describe('environments', () => {
    it('never sends a token stored for another environment', async () => {
      const ownerId = nextOwner();
      await connectOwner(instance.service, ownerId);
      await instance.dataSource.query(
        `UPDATE procore_oauth_tokens SET environment = 'sandbox' WHERE owner_id = $1`,
        [ownerId],
      );
      instance.service.evict(ownerId);
      fake.resetCounters();

      await expect(instance.service.getAccessToken(ownerId)).rejects.toMatchObject({
        causeCode: 'other_environment',
      });
      expect(fake.counters.refreshToken).toBe(0);
    });
  });

  describe('client credentials (service account)', () => {
    it('caches the token until near expiry and makes one token call for 100 concurrent callers', async () => {
      fake.tokenLatencyMs = 30;
      const tokens = await Promise.all(
        Array.from({ length: 100 }, () => instance.service.getClientCredentialsToken()),
      );

      expect(fake.counters.clientCredentials).toBe(1);
      expect(new Set(tokens).size).toBe(1);
      expect(fake.isAccessTokenValid(tokens[0])).toBe(true);
      secrets.add(tokens[0]);
      await instance.service.getClientCredentialsToken();
      expect(fake.counters.clientCredentials).toBe(1);
    });

    it('fetches a new token once the cached one is within the refresh skew', async () => {
      await instance.close();
      fake.accessTokenTtlSeconds = 100; // shorter than the 120 s skew: never served from cache
      instance = await createProcoreTestApp({
        databaseUrl: database.url,
        options: fakeProcoreOptions(fake),
        logger,
      });
      await instance.service.getClientCredentialsToken();
      await instance.service.getClientCredentialsToken();
      expect(fake.counters.clientCredentials).toBe(2);
    });

    it('retries a transient failure of the client-credentials grant', async () => {
      fake.injectFault({ kind: 'status', status: 502 }, { grantType: 'client_credentials' });
      expect(fake.isAccessTokenValid(await instance.service.getClientCredentialsToken())).toBe(
        true,
      );
      expect(fake.counters.clientCredentials).toBe(2);
    });
  });
});
