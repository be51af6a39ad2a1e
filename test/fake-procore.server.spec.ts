import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, expect, beforeEach, afterEach } from '@jest/globals';
import {
  FakeProcoreServer,
  type FakeProcoreServerOptions,
  type FakeProcoreTokenResponse,
} from '../lib/testing/index.js';

const REDIRECT_URI = 'https://app.example.com/procore/oauth/callback';

function epochSeconds(epochMs: number): number {
  return Math.floor(epochMs / 1000);
}

function decodeJwtPart(part: string | undefined): unknown {
  return JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8'));
}

interface TokenCall {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

describe('FakeProcoreServer', () => {
  let procore: FakeProcoreServer;

  beforeEach(async () => {
    procore = await FakeProcoreServer.start();
  });

  afterEach(async () => {
    await procore.close();
  });

  // --- helpers: plain HTTP, the way a client of Procore would talk to it ---------------------

  function authorize(params: Record<string, string> = {}): Promise<Response> {
    const url = new URL('/oauth/authorize', procore.url);
    const query = {
      response_type: 'code',
      client_id: procore.clientId,
      redirect_uri: REDIRECT_URI,
      state: 'st-1',
      ...params,
    };
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    return fetch(url, { redirect: 'manual' });
  }

  async function authorizationCode(params: Record<string, string> = {}): Promise<string> {
    const response = await authorize(params);
    const code = new URL(response.headers.get('location') ?? '').searchParams.get('code');
    if (!code) throw new Error(`no code in redirect (status ${response.status})`);
    return code;
  }

  function postForm(
    path: string,
    params: Record<string, string>,
    init: RequestInit = {},
  ): Promise<Response> {
    return fetch(new URL(path, procore.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params).toString(),
      ...init,
    });
  }

  async function callToken(params: Record<string, string>): Promise<TokenCall> {
    const response = await postForm('/oauth/token', {
      client_id: procore.clientId,
      client_secret: procore.clientSecret,
      ...params,
    });
    return {
      status: response.status,
      headers: response.headers,
      body: (await response.json()) as Record<string, unknown>,
    };
  }

  function exchangeCode(code: string, extra: Record<string, string> = {}): Promise<TokenCall> {
    return callToken({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      ...extra,
    });
  }

  function refresh(refreshToken: string): Promise<TokenCall> {
    return callToken({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      redirect_uri: REDIRECT_URI,
    });
  }

  function rawRefresh(refreshToken: string, init: RequestInit = {}): Promise<Response> {
    const params = {
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: procore.clientId,
      client_secret: procore.clientSecret,
    };
    return postForm('/oauth/token', params, init);
  }

  function me(accessToken: string): Promise<Response> {
    return fetch(new URL('/rest/v1.0/me', procore.url), {
      headers: { authorization: `Bearer ${accessToken}` },
    });
  }

  function revoke(token: string, clientSecret = procore.clientSecret): Promise<Response> {
    return postForm('/oauth/revoke', {
      token,
      client_id: procore.clientId,
      client_secret: clientSecret,
    });
  }

  function asTokens(call: TokenCall): FakeProcoreTokenResponse {
    expect(call.status).toBe(200);
    return call.body as unknown as FakeProcoreTokenResponse;
  }

  /** Waits (without a timer) until the server has seen what the test is waiting for. */
  async function until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise((resolve) => setImmediate(resolve));
  }

  // --- authorization-code grant -----------------------------------------------------------------

  describe('authorization-code grant', () => {
    it('auto-approves, redirects with a code and the echoed state, and the code buys tokens that /me accepts', async () => {
      const response = await authorize({ state: 'opaque state/+=' });
      expect(response.status).toBe(302);
      const location = new URL(response.headers.get('location') ?? '');
      expect(`${location.origin}${location.pathname}`).toBe(REDIRECT_URI);
      expect(location.searchParams.get('state')).toBe('opaque state/+=');

      const before = epochSeconds(procore.now());
      const call = await exchangeCode(location.searchParams.get('code') ?? '');
      const tokens = asTokens(call);
      expect(call.headers.get('content-type')).toMatch(/^application\/json/);
      expect(tokens).toEqual({
        access_token: expect.any(String),
        token_type: 'bearer',
        expires_in: 5400,
        refresh_token: expect.any(String),
        created_at: expect.any(Number),
      });
      expect(tokens.created_at).toBeGreaterThanOrEqual(before);
      expect(tokens.created_at).toBeLessThanOrEqual(epochSeconds(procore.now()));

      const profile = await me(tokens.access_token);
      expect(profile.status).toBe(200);
      expect(await profile.json()).toEqual({
        id: 4242,
        login: 'ada@example.com',
        name: 'Ada Lovelace',
      });
      expect(procore.counters).toMatchObject({ authorize: 1, authorizationCode: 1, me: 1 });
    });

    it('issues access tokens that are HS256 JWTs with the documented claims', async () => {
      const { access_token, created_at } = asTokens(await exchangeCode(await authorizationCode()));
      const [header, payload] = access_token.split('.');
      expect(decodeJwtPart(header)).toEqual({ alg: 'HS256', typ: 'JWT' });
      const iat = created_at;
      expect(decodeJwtPart(payload)).toEqual({
        iss: 'fake-procore',
        sub: '4242',
        aud: procore.clientId,
        iat,
        exp: iat + 5400,
        jti: expect.any(String),
        grant: expect.any(String),
      });
      expect(procore.isAccessTokenValid(`${access_token.slice(0, -2)}xx`)).toBe(false);
    });

    it('rejects a replayed authorization code with invalid_grant', async () => {
      const code = await authorizationCode();
      expect((await exchangeCode(code)).status).toBe(200);

      const replay = await exchangeCode(code);
      expect(replay.status).toBe(400);
      expect(replay.body['error']).toBe('invalid_grant');
    });

    it('rejects a code redeemed with another redirect_uri', async () => {
      const code = await authorizationCode();
      const call = await exchangeCode(code, { redirect_uri: 'https://evil.example.com/callback' });
      expect(call.status).toBe(400);
      expect(call.body['error']).toBe('invalid_grant');
    });

    it('expires an authorization code after 10 minutes of the fake clock', async () => {
      const code = await authorizationCode();
      procore.advanceClock(10 * 60);
      expect((await exchangeCode(code)).body['error']).toBe('invalid_grant');
    });

    it('verifies the PKCE S256 code_verifier bound to the code', async () => {
      const verifier = randomBytes(32).toString('base64url');
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      const pkce = { code_challenge: challenge, code_challenge_method: 'S256' };

      const wrong = await exchangeCode(await authorizationCode(pkce), {
        code_verifier: 'not-the-verifier',
      });
      expect(wrong.body['error']).toBe('invalid_grant');
      const missing = await exchangeCode(await authorizationCode(pkce));
      expect(missing.body['error']).toBe('invalid_grant');
      const right = await exchangeCode(await authorizationCode(pkce), { code_verifier: verifier });
      expect(right.status).toBe(200);
    });

    it('answers 400 JSON for an unknown client_id, a response_type other than code or a plain PKCE challenge', async () => {
      const unknownClient = await authorize({ client_id: 'someone-else' });
      expect(unknownClient.status).toBe(400);
      expect(await unknownClient.json()).toMatchObject({ error: 'invalid_client' });

      const implicit = await authorize({ response_type: 'token' });
      expect(implicit.status).toBe(400);
      expect(await implicit.json()).toMatchObject({ error: 'unsupported_response_type' });

      const plain = await authorize({ code_challenge: 'abc', code_challenge_method: 'plain' });
      expect(plain.status).toBe(400);
    });

    it('redirects with error=access_denied and the state when the user denies, then approves again', async () => {
      procore.denyNextAuthorization();
      const denied = new URL((await authorize({ state: 's-42' })).headers.get('location') ?? '');
      expect(denied.searchParams.get('error')).toBe('access_denied');
      expect(denied.searchParams.get('state')).toBe('s-42');
      expect(denied.searchParams.has('code')).toBe(false);

      expect(await authorizationCode()).toMatch(/^[A-Za-z0-9_-]{32}$/); // the denial was one-shot
    });

    it('approves the user configured at the time of authorization', async () => {
      procore.user = { id: 2 ** 40, login: 'grace@example.com', name: 'Grace Hopper' };
      const { access_token } = asTokens(await exchangeCode(await authorizationCode()));
      expect(await (await me(access_token)).json()).toEqual({
        id: 2 ** 40,
        login: 'grace@example.com',
        name: 'Grace Hopper',
      });
    });
  });

  // --- the token endpoint's request handling ------------------------------------------------------

  describe('token endpoint', () => {
    it('answers invalid_client for a wrong client secret and leaves the refresh token alone', async () => {
      const { refresh_token } = procore.issueTokens();
      const call = await callToken({
        grant_type: 'refresh_token',
        refresh_token,
        client_secret: 'wrong',
      });
      expect(call.status).toBe(401);
      expect(call.body).toMatchObject({
        error: 'invalid_client',
        error_description: expect.any(String),
      });
      expect(procore.isRefreshTokenActive(refresh_token)).toBe(true);
    });

    it('answers invalid_client when the client credentials are missing from the body', async () => {
      const response = await postForm('/oauth/token', { grant_type: 'client_credentials' });
      expect(response.status).toBe(401);
    });

    it('accepts a JSON body as well as a form body', async () => {
      const response = await fetch(new URL('/oauth/token', procore.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          grant_type: 'client_credentials',
          client_id: procore.clientId,
          client_secret: procore.clientSecret,
        }),
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ token_type: 'bearer' });
    });

    it('rejects an unknown grant type with unsupported_grant_type', async () => {
      const call = await callToken({ grant_type: 'password' });
      expect(call.status).toBe(400);
      expect(call.body['error']).toBe('unsupported_grant_type');
    });

    it('delays token responses by tokenLatencyMs', async () => {
      procore.tokenLatencyMs = 60;
      const started = performance.now();
      await refresh(procore.issueTokens().refresh_token);
      expect(performance.now() - started).toBeGreaterThanOrEqual(55);
    });
  });

  // --- refresh-token grant ------------------------------------------------------------------------

  describe('refresh-token grant', () => {
    it('rotates: the new pair works and the old refresh token is rejected afterwards', async () => {
      const first = asTokens(await exchangeCode(await authorizationCode()));
      const second = asTokens(await refresh(first.refresh_token));
      expect(second.refresh_token).not.toBe(first.refresh_token);
      expect(second.access_token).not.toBe(first.access_token);
      expect((await me(second.access_token)).status).toBe(200);

      const reuse = await refresh(first.refresh_token);
      expect(reuse.status).toBe(400);
      expect(reuse.body['error']).toBe('invalid_grant');
      expect(procore.isRefreshTokenActive(first.refresh_token)).toBe(false);
      expect(procore.isRefreshTokenActive(second.refresh_token)).toBe(true);
      expect(procore.counters).toMatchObject({
        refreshToken: 2,
        successfulRefreshes: 1,
        rejectedRefreshTokens: 1,
      });
    });

    it('lets exactly one of 200 concurrent refreshes with the same token succeed, under latency', async () => {
      procore.tokenLatencyMs = 50;
      const { refresh_token } = procore.issueTokens();
      const calls = await Promise.all(Array.from({ length: 200 }, () => refresh(refresh_token)));
      expect(calls.filter((call) => call.status === 200)).toHaveLength(1);
      expect(procore.counters).toMatchObject({
        refreshToken: 200,
        successfulRefreshes: 1,
        rejectedRefreshTokens: 199,
      });
    });

    it('counts an unknown refresh token as rejected', async () => {
      expect((await refresh('never-issued')).body['error']).toBe('invalid_grant');
      expect(procore.counters.rejectedRefreshTokens).toBe(1);
    });

    it('consumes the refresh token when a 503 answers after the rotation (response lost)', async () => {
      const { refresh_token } = procore.issueTokens();
      procore.injectFault({ kind: 'status', status: 503, consumeRefreshToken: true });

      const lost = await rawRefresh(refresh_token);
      expect(lost.status).toBe(503);
      expect(procore.isRefreshTokenActive(refresh_token)).toBe(false);

      const retry = await refresh(refresh_token);
      expect(retry.body['error']).toBe('invalid_grant');
      expect(procore.counters).toMatchObject({
        refreshToken: 2,
        successfulRefreshes: 1,
        rejectedRefreshTokens: 1,
      });
    });

    it('keeps the refresh token usable when a 503 answers before the token service is reached', async () => {
      const { refresh_token } = procore.issueTokens();
      procore.injectFault({ kind: 'status', status: 503, retryAfterSeconds: 3 });

      const failed = await rawRefresh(refresh_token);
      expect(failed.status).toBe(503);
      expect(failed.headers.get('retry-after')).toBe('3');
      expect(await failed.json()).toMatchObject({ error: 'server_error' });

      expect((await refresh(refresh_token)).status).toBe(200);
    });

    it('answers 429 with Retry-After without consuming the refresh token', async () => {
      const { refresh_token } = procore.issueTokens();
      procore.injectFault({ kind: 'rate-limit', retryAfterSeconds: 7 });

      const limited = await rawRefresh(refresh_token);
      expect(limited.status).toBe(429);
      expect(limited.headers.get('retry-after')).toBe('7');
      expect(limited.headers.get('x-rate-limit-remaining')).toBe('0');
      expect(procore.isRefreshTokenActive(refresh_token)).toBe(true);
    });

    it('applies a fault to the next `times` matching calls, in the order faults were injected', async () => {
      procore.injectFault({ kind: 'status', status: 502 }, { times: 2 });
      procore.injectFault({ kind: 'rate-limit', retryAfterSeconds: 1 });
      const { refresh_token } = procore.issueTokens();

      const statuses: number[] = [];
      for (let call = 0; call < 4; call++) statuses.push((await rawRefresh(refresh_token)).status);
      expect(statuses).toEqual([502, 502, 429, 200]);
    });

    it('scopes a fault to one grant type', async () => {
      procore.injectFault({ kind: 'status', status: 500 }, { grantType: 'refresh_token' });

      const service = await callToken({ grant_type: 'client_credentials' });
      expect(service.status).toBe(200);
      const code = await exchangeCode(await authorizationCode());
      expect(code.status).toBe(200);
      expect((await rawRefresh(asTokens(code).refresh_token)).status).toBe(500);
    });

    it('clearFaults drops faults that have not fired', async () => {
      procore.injectFault({ kind: 'status', status: 500 }, { times: 5 });
      procore.clearFaults();
      expect((await refresh(procore.issueTokens().refresh_token)).status).toBe(200);
    });
  });

  // --- transport-level faults ---------------------------------------------------------------------

  describe('transport faults', () => {
    it('hangs until the client gives up, and close() still resolves promptly', async () => {
      procore.injectFault({ kind: 'hang' });
      const { refresh_token } = procore.issueTokens();

      await expect(
        rawRefresh(refresh_token, { signal: AbortSignal.timeout(100) }),
      ).rejects.toThrow();
      expect(procore.isRefreshTokenActive(refresh_token)).toBe(true);

      const started = performance.now();
      await procore.close();
      expect(performance.now() - started).toBeLessThan(1000);
    });

    it('ends a request that is still hanging when the server closes', async () => {
      procore.injectFault({ kind: 'hang', consumeRefreshToken: true });
      const { refresh_token } = procore.issueTokens();

      const pending = rawRefresh(refresh_token);
      await until(() => procore.counters.refreshToken === 1);
      expect(procore.isRefreshTokenActive(refresh_token)).toBe(false);

      await procore.close();
      await expect(pending).rejects.toThrow();
    });

    it('ends requests waiting on tokenLatencyMs when the server closes', async () => {
      procore.tokenLatencyMs = 60_000;
      const pending = rawRefresh(procore.issueTokens().refresh_token);
      await until(() => procore.counters.refreshToken === 1);

      const started = performance.now();
      await procore.close();
      expect(performance.now() - started).toBeLessThan(1000);
      await expect(pending).rejects.toThrow();
    });

    it('resets the connection so the request fails, consuming the token when told to', async () => {
      const { refresh_token } = procore.issueTokens();
      procore.injectFault({ kind: 'reset', consumeRefreshToken: true });

      await expect(rawRefresh(refresh_token)).rejects.toThrow();
      expect(procore.isRefreshTokenActive(refresh_token)).toBe(false);
      expect(procore.counters.successfulRefreshes).toBe(1);
    });

    it('answers 200 with a body that is not JSON', async () => {
      procore.injectFault({ kind: 'invalid-json' });
      const response = await rawRefresh(procore.issueTokens().refresh_token);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const text = await response.text();
      expect(() => JSON.parse(text) as unknown).toThrow(SyntaxError);
    });

    it('answers an HTML error page, with the given status', async () => {
      procore.injectFault({ kind: 'html' });
      procore.injectFault({ kind: 'html', status: 502 });
      const { refresh_token } = procore.issueTokens();

      const first = await rawRefresh(refresh_token);
      expect(first.status).toBe(200);
      expect(first.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await first.text()).toMatch(/^<!DOCTYPE html>/);
      expect((await rawRefresh(refresh_token)).status).toBe(502);
    });

    it('answers an oversized JSON body of the requested size', async () => {
      procore.injectFault({ kind: 'oversized' });
      procore.injectFault({ kind: 'oversized', bytes: 100_000 });
      const { refresh_token } = procore.issueTokens();

      const huge = await rawRefresh(refresh_token);
      expect(huge.headers.get('content-length')).toBe(String(2 * 1024 * 1024));
      expect((await huge.arrayBuffer()).byteLength).toBe(2 * 1024 * 1024);

      const large = await (await rawRefresh(refresh_token)).text();
      expect(large.length).toBe(100_000);
      expect(JSON.parse(large)).toMatchObject({ token_type: 'bearer' });
    });

    it('answers a token response without access_token', async () => {
      procore.injectFault({ kind: 'missing-access-token' });
      const call = await refresh(procore.issueTokens().refresh_token);
      expect(call.status).toBe(200);
      expect(call.body).not.toHaveProperty('access_token');
      expect(call.body).toMatchObject({ token_type: 'bearer' });
    });

    it('can fault the revoke endpoint after the revocation happened', async () => {
      const { refresh_token, access_token } = procore.issueTokens();
      procore.injectFault(
        { kind: 'status', status: 500, consumeRefreshToken: true },
        { path: '/oauth/revoke' },
      );

      expect((await revoke(refresh_token)).status).toBe(500);
      expect(procore.isAccessTokenValid(access_token)).toBe(false);
    });
  });

  // --- client-credentials grant -------------------------------------------------------------------

  describe('client-credentials grant', () => {
    it('returns an access token and no refresh token, for the service account', async () => {
      const call = await callToken({ grant_type: 'client_credentials' });
      expect(call.status).toBe(200);
      expect(call.body).toEqual({
        access_token: expect.any(String),
        token_type: 'bearer',
        expires_in: 5400,
        created_at: expect.any(Number),
      });
      expect(call.body).not.toHaveProperty('refresh_token');

      const accessToken = call.body['access_token'] as string;
      expect(decodeJwtPart(accessToken.split('.')[1])).toMatchObject({ sub: 'service-account' });
      expect(await (await me(accessToken)).json()).toEqual(procore.serviceAccountUser);
      expect(procore.counters.clientCredentials).toBe(1);
    });
  });

  // --- revocation ---------------------------------------------------------------------------------

  describe('revocation', () => {
    it('revokes both tokens of the grant when given the refresh token', async () => {
      const { access_token, refresh_token } = procore.issueTokens();
      const response = await revoke(refresh_token);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({});

      expect((await me(access_token)).status).toBe(401);
      expect((await refresh(refresh_token)).body['error']).toBe('invalid_grant');
    });

    it('revokes both tokens of the grant when given the access token', async () => {
      const { access_token, refresh_token } = procore.issueTokens();
      expect((await revoke(access_token)).status).toBe(200);

      expect(procore.isAccessTokenValid(access_token)).toBe(false);
      expect(procore.isRefreshTokenActive(refresh_token)).toBe(false);
      expect(procore.counters.revoke).toBe(1);
    });

    it('leaves other grants of the same user alone', async () => {
      const revoked = procore.issueTokens();
      const other = procore.issueTokens();
      await revoke(revoked.refresh_token);
      expect(procore.isAccessTokenValid(other.access_token)).toBe(true);
      expect(procore.isRefreshTokenActive(other.refresh_token)).toBe(true);
    });

    it('answers 200 for an unknown token and 401 for a wrong client secret', async () => {
      expect((await revoke('no-such-token')).status).toBe(200);
      const { refresh_token } = procore.issueTokens();
      expect((await revoke(refresh_token, 'wrong')).status).toBe(401);
      expect(procore.isRefreshTokenActive(refresh_token)).toBe(true);
    });

    it('revokeToken() simulates the user disconnecting the app in Procore', async () => {
      const { access_token, refresh_token } = procore.issueTokens();
      expect(procore.revokeToken(access_token)).toBe(true);
      expect((await refresh(refresh_token)).body['error']).toBe('invalid_grant');
      expect(procore.revokeToken('unknown')).toBe(false);
    });
  });

  // --- bearer-protected endpoints -----------------------------------------------------------------

  describe('token info and /me', () => {
    it('describes a valid access token', async () => {
      const { access_token, created_at } = procore.issueTokens();
      procore.advanceClock(400);
      const response = await fetch(new URL('/oauth/token/info', procore.url), {
        headers: { authorization: `Bearer ${access_token}` },
      });
      expect(response.status).toBe(200);
      const info = (await response.json()) as Record<string, unknown>;
      expect(info).toEqual({
        resource_owner_id: 4242,
        scope: [],
        expires_in_seconds: expect.any(Number),
        application: { uid: procore.clientId },
        created_at,
      });
      expect(info['expires_in_seconds']).toBeGreaterThan(4990);
      expect(info['expires_in_seconds']).toBeLessThanOrEqual(5000);
    });

    it('answers 401 invalid_token without a valid bearer token', async () => {
      const missing = await fetch(new URL('/oauth/token/info', procore.url));
      expect(missing.status).toBe(401);
      expect(await missing.json()).toMatchObject({ error: 'invalid_token' });
      expect((await me('not.a.jwt')).status).toBe(401);
      expect(procore.counters).toMatchObject({ tokenInfo: 1, me: 1 });
    });

    it('expires access tokens when the fake clock passes expires_in', async () => {
      // On a whole second, so that iat (whole seconds) is exactly the issue time.
      procore.setClock(Date.UTC(2030, 0, 1));
      const { access_token } = procore.issueTokens();
      procore.advanceClock(5399);
      expect((await me(access_token)).status).toBe(200);

      procore.advanceClock(1);
      const expired = await me(access_token);
      expect(expired.status).toBe(401);
      expect(await expired.json()).toMatchObject({
        error: 'invalid_token',
        error_description: 'The access token expired',
      });
    });

    it('moves the clock with setClock and honours accessTokenTtlSeconds', async () => {
      procore.setClock(Date.UTC(2030, 0, 1));
      procore.accessTokenTtlSeconds = 900;
      const tokens = procore.issueTokens();
      expect(tokens.created_at).toBe(Date.UTC(2030, 0, 1) / 1000);
      expect(tokens.expires_in).toBe(900);
      procore.advanceClock(900);
      expect(procore.isAccessTokenValid(tokens.access_token)).toBe(false);
    });
  });

  // --- seeding and housekeeping -------------------------------------------------------------------

  describe('issueTokens', () => {
    it('mints working grants without HTTP, for any user id', async () => {
      const seeded = Array.from({ length: 1000 }, (_, index) => procore.issueTokens(index + 1));
      expect(new Set(seeded.map((tokens) => tokens.refresh_token)).size).toBe(1000);
      expect(procore.counters.authorizationCode).toBe(0);

      const last = seeded[999]!;
      expect(await (await me(last.access_token)).json()).toMatchObject({ id: 1000 });
      expect((await refresh(last.refresh_token)).status).toBe(200);
    });
  });

  it('resetCounters zeroes every counter', async () => {
    await refresh('x');
    procore.resetCounters();
    expect(Object.values(procore.counters).every((value) => value === 0)).toBe(true);
  });

  it('answers 404 JSON for an unknown path and 413 for a body over 64 KiB', async () => {
    const missing = await fetch(new URL('/no/such/path', procore.url));
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: 'not_found' });

    const huge = await postForm('/oauth/token', {
      grant_type: 'refresh_token',
      refresh_token: 'x'.repeat(70 * 1024),
    });
    expect(huge.status).toBe(413);
    expect(procore.counters.refreshToken).toBe(0);
  });

  // --- state file -----------------------------------------------------------------------------------

  describe('stateFile', () => {
    let dir: string;

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fake-procore-state-'));
    });

    afterEach(async () => {
      await procore.close();
      await rm(dir, { recursive: true, force: true });
    });

    /** Closes the current server and starts another one; the helpers above then talk to it. */
    async function restart(options: FakeProcoreServerOptions): Promise<void> {
      await procore.close();
      procore = await FakeProcoreServer.start(options);
    }

    it('keeps the signing secret, grants and rotations across restarts', async () => {
      const stateFile = join(dir, 'nested', 'fake-procore.json');
      await restart({ stateFile });
      procore.setClock(Date.UTC(2030, 0, 1));
      const first = asTokens(await exchangeCode(await authorizationCode()));
      expect(await readdir(join(dir, 'nested'))).toEqual(['fake-procore.json']);
      if (process.platform !== 'win32') expect((await stat(stateFile)).mode & 0o777).toBe(0o600);

      await restart({ stateFile });
      expect(procore.now()).toBeGreaterThanOrEqual(Date.UTC(2030, 0, 1));
      expect(procore.now()).toBeLessThan(Date.UTC(2030, 0, 1) + 60_000);
      const profile = await me(first.access_token);
      expect(profile.status).toBe(200);
      expect(await profile.json()).toEqual({
        id: 4242,
        login: 'ada@example.com',
        name: 'Ada Lovelace',
      });
      const second = asTokens(await refresh(first.refresh_token));
      const reuse = await refresh(first.refresh_token);
      expect(reuse.status).toBe(400);
      expect(reuse.body['error']).toBe('invalid_grant');

      await restart({ stateFile });
      expect(procore.isRefreshTokenActive(first.refresh_token)).toBe(false);
      expect(procore.isRefreshTokenActive(second.refresh_token)).toBe(true);
      expect((await me(second.access_token)).status).toBe(200);
      expect((await refresh(first.refresh_token)).body['error']).toBe('invalid_grant');
      expect((await refresh(second.refresh_token)).status).toBe(200);
    });

    it('keeps revocations, service-account grants and clock moves, but not codes, faults or counters', async () => {
      const stateFile = join(dir, 'state.json');
      await restart({ stateFile });
      const revoked = procore.issueTokens();
      const kept = procore.issueTokens(7);
      expect((await revoke(revoked.refresh_token)).status).toBe(200);
      const service = await callToken({ grant_type: 'client_credentials' });
      const pendingCode = await authorizationCode();
      procore.injectFault({ kind: 'status', status: 500 }, { times: 5 });
      procore.advanceClock(3600);

      await restart({ stateFile });
      expect(Object.values(procore.counters).every((value) => value === 0)).toBe(true);
      expect(procore.now() - Date.now()).toBeGreaterThan(3_590_000);
      expect(procore.now() - Date.now()).toBeLessThanOrEqual(3_600_000);
      expect(await (await me(revoked.access_token)).json()).toMatchObject({
        error: 'invalid_token',
        error_description: 'The access token was revoked',
      });
      expect(procore.isRefreshTokenActive(revoked.refresh_token)).toBe(false);
      expect(await (await me(service.body['access_token'] as string)).json()).toEqual(
        procore.serviceAccountUser,
      );
      expect(await (await me(kept.access_token)).json()).toMatchObject({ id: 7 });
      expect((await exchangeCode(pendingCode)).body['error']).toBe('invalid_grant');
      procore.advanceClock(1800);
      expect(procore.isAccessTokenValid(kept.access_token)).toBe(false);
      expect((await refresh(kept.refresh_token)).status).toBe(200);
    });

    it('rewrites the file after every change that matters, and only then', async () => {
      const stateFile = join(dir, 'state.json');
      await restart({ stateFile });
      let saved = await readFile(stateFile, 'utf8');
      async function expectRewritten(changed: boolean): Promise<void> {
        const now = await readFile(stateFile, 'utf8');
        if (changed) expect(now).not.toBe(saved);
        else expect(now).toBe(saved);
        saved = now;
      }

      const seeded = procore.issueTokens();
      await expectRewritten(true);
      const viaCode = asTokens(await exchangeCode(await authorizationCode()));
      await expectRewritten(true);
      await refresh(viaCode.refresh_token);
      await expectRewritten(true);
      await callToken({ grant_type: 'client_credentials' });
      await expectRewritten(true);
      await revoke(viaCode.access_token);
      await expectRewritten(true);
      procore.revokeToken(seeded.refresh_token);
      await expectRewritten(true);
      procore.advanceClock(1);
      await expectRewritten(true);
      procore.setClock(Date.UTC(2030, 0, 1));
      await expectRewritten(true);

      await refresh(viaCode.refresh_token);
      await me(seeded.access_token);
      await authorizationCode();
      procore.injectFault({ kind: 'status', status: 500 });
      await expectRewritten(false);
      expect(await readdir(dir)).toEqual(['state.json']);
    });

    it('refuses to start from a corrupt or unreadable file, naming it, and leaves the file alone', async () => {
      const stateFile = join(dir, 'state.json');
      await writeFile(stateFile, '{"version":1,"jwtSec');
      await expect(FakeProcoreServer.start({ stateFile })).rejects.toThrow(stateFile);
      expect(await readFile(stateFile, 'utf8')).toBe('{"version":1,"jwtSec');

      await writeFile(
        stateFile,
        JSON.stringify({ version: 1, jwtSecret: 'short', clockOffsetMs: 0, grants: [] }),
      );
      await expect(FakeProcoreServer.start({ stateFile })).rejects.toThrow(
        `the state file ${stateFile} is not a fake Procore state file (bad jwtSecret)`,
      );

      const directory = join(dir, 'a-directory');
      await mkdir(directory);
      await expect(FakeProcoreServer.start({ stateFile: directory })).rejects.toThrow(
        `cannot read the state file ${directory}`,
      );
    });

    it('writes nothing without a stateFile', async () => {
      const cwd = process.cwd();
      process.chdir(dir);
      try {
        await restart({});
        const first = asTokens(await exchangeCode(await authorizationCode()));
        const second = asTokens(await refresh(first.refresh_token));
        await callToken({ grant_type: 'client_credentials' });
        procore.issueTokens(9);
        await revoke(second.access_token);
        procore.advanceClock(60);
        procore.setClock(Date.UTC(2030, 0, 1));
        await procore.close();
      } finally {
        process.chdir(cwd);
      }
      expect(await readdir(dir)).toEqual([]);
    });
  });

  it('starts with the given options', async () => {
    const custom = await FakeProcoreServer.start({
      clientId: 'id-1',
      clientSecret: 'secret-1',
      accessTokenTtlSeconds: 60,
    });
    try {
      expect(custom.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(custom.issueTokens().expires_in).toBe(60);
      expect(custom.clientId).toBe('id-1');
    } finally {
      await custom.close();
    }
  });
});
