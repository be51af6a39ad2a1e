import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  ProcoreAuthEventType,
  ProcoreConfigurationError,
  ProcoreInvalidResponseError,
  ProcoreOAuthError,
  ProcoreReauthorizationRequiredError,
  ProcoreTimeoutError,
  ProcoreTokenRefreshError,
  type ProcoreAuthEvent,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import { FakeProcoreServer, type FakeProcoreFault } from 'nestjs-procore-auth/testing';
import { openAccessToken, openRefreshToken } from '../lib/crypto/connection-secrets.js';
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
import { PROCORE_TOKEN_CIPHER } from '../lib/procore-auth.constants.js';
import type { TokenCipher } from '../lib/crypto/token-cipher.js';

/**
 * The token-endpoint fault matrix (SPEC "Failure classification", issue 8 "Fault matrix"), one
 * row per fault, on real PostgreSQL against the fake Procore server. Every row starts from a
 * connected owner whose access token has expired and makes one `getAccessToken()` call; it then
 * checks the outcome (the token or the typed error), the row, the events, the log lines, and what
 * the fake saw. Where the next call matters (a refresh token that may be consumed), it checks that
 * too. Our code sends a stored refresh token a second time only in the bounded retry after an
 * unknown outcome (5xx, 429, timeout, reset) that the SPEC allows; `rejectedRefreshTokens` counts
 * exactly those sends that hit an already consumed token.
 */

type ErrorClass = abstract new (...args: never[]) => Error;

/** What the one `getAccessToken()` call yields. */
type Outcome =
  | { ok: true }
  | { error: ErrorClass; props?: Record<string, unknown>; check?: (error: Error) => void };

/** What happened to the stored tokens. */
type Tokens =
  /** A new access token and a new refresh token, live at the fake. */
  | 'rotated'
  /** A new access token, the old (consumed) refresh token kept: the answer had none. */
  | 'access-only'
  /** The very ciphertexts of before. */
  | 'kept'
  /** Access token, refresh token and key id erased. */
  | 'erased';

interface Expected {
  outcome: Outcome;
  row: {
    status: 'active' | 'reauthorization_required';
    lastErrorCode: string | null;
    failureCount: number;
    versionBumped: boolean;
    tokens: Tokens;
  };
  /** The owner's events, in order (type plus the fields given). */
  events: Partial<ProcoreAuthEvent>[];
  /** The owner's log lines, exactly: `<level> <message>`. `{owner}` stands for the owner id. */
  logs: string[];
  fake: { refreshToken: number; rejectedRefreshTokens: number; successfulRefreshes: number };
  /** The call took at least this long (a Retry-After was honoured, a timeout ran out). */
  minElapsedMs?: number | (() => number);
  /** ... or at most this long (a Retry-After beyond `maxRetryAfterMs` was not waited for). */
  maxElapsedMs?: number;
}

/** A second `getAccessToken()` once the fault is gone (the stored token expired again if active). */
interface Next {
  outcome: Outcome;
  status: 'active' | 'reauthorization_required';
  lastErrorCode: string | null;
  /** The fake's counters after the second call (totals, both calls). */
  fake: { refreshToken: number; rejectedRefreshTokens: number };
  /** The owner's events emitted by the second call. */
  events: Partial<ProcoreAuthEvent>[];
}

/** App variants: the default options, a short HTTP timeout (for hangs), and no retries. */
type Variant = 'default' | 'short-timeout' | 'no-retries';

interface Row {
  name: string;
  variant?: Variant;
  /** Injects the fault(s); may use the owner's stored refresh token. */
  arrange(fake: FakeProcoreServer, refreshToken: string): void;
  expected: Expected;
  next?: Next;
}

const REFRESH = { grantType: 'refresh_token' } as const;

function inject(fault: FakeProcoreFault, times = 1) {
  return (fake: FakeProcoreServer) => fake.injectFault(fault, { ...REFRESH, times });
}

/** A JSON OAuth error answer with the given `error` field (status fault, nothing consumed). */
function oauthErrorAnswer(status: number, error: string): FakeProcoreFault {
  return {
    kind: 'status',
    status,
    body: JSON.stringify({ error, error_description: 'Injected.' }),
    contentType: 'application/json; charset=utf-8',
  };
}

/** Rewrites the real answer after the fake rotated the refresh token. */
function tamper(mutate: (body: Record<string, unknown>) => void): FakeProcoreFault {
  return {
    kind: 'tamper',
    mutate: (body) => {
      const copy = { ...body };
      mutate(copy);
      return copy;
    },
  };
}

const refreshed = { type: ProcoreAuthEventType.TokenRefreshed, trigger: 'request' } as const;
const failedEvent = (errorCode: string, attempts: number) =>
  ({
    type: ProcoreAuthEventType.RefreshFailed,
    errorCode,
    attempts,
    trigger: 'request',
  }) as const;
const reauthEvent = (cause: string) =>
  ({ type: ProcoreAuthEventType.ReauthorizationRequired, cause }) as const;
const failedLog = (errorCode: string, attempts: number) =>
  `warn Procore token refresh failed for owner "{owner}" (${errorCode}, ${attempts} attempt(s), trigger request).`;
const reauthLog = (cause: string) =>
  `warn Procore connection of owner "{owner}" needs reauthorization (${cause}).`;

const reauthError = (causeCode: string): Outcome => ({
  error: ProcoreReauthorizationRequiredError,
  props: { reason: 'reauthorization_required', causeCode },
});

/** The retried call succeeded: one refresh performed, `calls` calls in all, nothing rejected. */
function succeeded(calls: number, extra: Partial<Expected> = {}): Expected {
  return {
    outcome: { ok: true },
    row: {
      status: 'active',
      lastErrorCode: null,
      failureCount: 0,
      versionBumped: true,
      tokens: 'rotated',
    },
    events: [refreshed],
    logs: [],
    fake: { refreshToken: calls, rejectedRefreshTokens: 0, successfulRefreshes: 1 },
    ...extra,
  };
}

/**
 * The fake consumed the refresh token and the answer was lost; the one allowed retry sent it again,
 * Procore refused it, and the protocol records the distinct cause `refresh_response_lost`.
 */
function responseLost(): Expected {
  return {
    outcome: reauthError('refresh_response_lost'),
    row: {
      status: 'reauthorization_required',
      lastErrorCode: 'refresh_response_lost',
      failureCount: 2,
      versionBumped: false,
      tokens: 'erased',
    },
    events: [reauthEvent('refresh_response_lost')],
    logs: [reauthLog('refresh_response_lost')],
    fake: { refreshToken: 2, rejectedRefreshTokens: 1, successfulRefreshes: 1 },
  };
}

/** A failure the protocol gave up on: the row stays active with its tokens, the error is recorded. */
function failed(params: {
  outcome: Outcome;
  errorCode: string;
  attempts: number;
  lastErrorCode: string;
  consumed: boolean;
}): Expected {
  return {
    outcome: params.outcome,
    row: {
      status: 'active',
      lastErrorCode: params.lastErrorCode,
      failureCount: params.attempts,
      versionBumped: false,
      tokens: 'kept',
    },
    events: [failedEvent(params.errorCode, params.attempts)],
    logs: [failedLog(params.errorCode, params.attempts)],
    fake: {
      refreshToken: params.attempts,
      rejectedRefreshTokens: 0,
      successfulRefreshes: params.consumed ? 1 : 0,
    },
  };
}

/** A 2xx answer that could not be used: a typed error, nothing stored, the token maybe consumed. */
function unusable(problem: string, consumed: boolean): Expected {
  return failed({
    outcome: { error: ProcoreInvalidResponseError, props: { problem, code: 'invalid_response' } },
    errorCode: 'invalid_response',
    attempts: 1,
    // A 2xx reached us: the refresh token may be consumed, so the next refusal reads as lost.
    lastErrorCode: 'refresh_outcome_unknown',
    consumed,
  });
}

/** The next call after a fault that did not consume the token: a normal refresh. */
function nextSucceeds(totalCalls: number): Next {
  return {
    outcome: { ok: true },
    status: 'active',
    lastErrorCode: null,
    fake: { refreshToken: totalCalls, rejectedRefreshTokens: 0 },
    events: [refreshed],
  };
}

/** The next call after a consumed-then-unusable answer: one refusal, recorded as a lost response. */
function nextResponseLost(totalCalls: number): Next {
  return {
    outcome: reauthError('refresh_response_lost'),
    status: 'reauthorization_required',
    lastErrorCode: 'refresh_response_lost',
    fake: { refreshToken: totalCalls, rejectedRefreshTokens: 1 },
    events: [reauthEvent('refresh_response_lost')],
  };
}

/** An HTTP date 1 to 2 seconds ahead (HTTP dates have whole seconds). */
let retryAt = new Date(0);
function retryAfterDate(): Date {
  retryAt = new Date((Math.floor(Date.now() / 1000) + 2) * 1000);
  return retryAt;
}

const LONG_ERROR = 'a'.repeat(65);
const ODD_ERROR = 'Invalid_Grant<script>\u0007"; DROP TABLE procore_oauth_tokens; --';

const rows: Row[] = [
  ...[500, 502, 503].flatMap((status): Row[] => [
    {
      name: `${status} before the refresh token was consumed: retried once, refreshed`,
      arrange: inject({ kind: 'status', status }),
      expected: succeeded(2),
    },
    {
      name: `${status} after the refresh token was consumed: the retry is refused, refresh_response_lost`,
      arrange: inject({ kind: 'status', status, consumeRefreshToken: true }),
      expected: responseLost(),
      next: {
        outcome: reauthError('refresh_response_lost'),
        status: 'reauthorization_required',
        lastErrorCode: 'refresh_response_lost',
        // No call: a row that needs reauthorization is never refreshed.
        fake: { refreshToken: 2, rejectedRefreshTokens: 1 },
        events: [],
      },
    },
  ]),
  {
    name: '503 on every attempt (budget spent), nothing consumed: ProcoreTokenRefreshError, row active',
    arrange: inject({ kind: 'status', status: 503 }, 3),
    expected: failed({
      outcome: {
        error: ProcoreTokenRefreshError,
        props: { attempts: 3, code: 'refresh_failed' },
        check: (error) =>
          expect(error.cause).toMatchObject({
            status: 503,
            requestSent: true,
            name: 'ProcoreTransientError',
          }),
      },
      errorCode: 'http_503',
      attempts: 3,
      lastErrorCode: 'refresh_outcome_unknown',
      consumed: false,
    }),
    next: nextSucceeds(4),
  },
  {
    name: '500 after consumption with retries: 0: the next call records refresh_response_lost',
    variant: 'no-retries',
    arrange: inject({ kind: 'status', status: 500, consumeRefreshToken: true }),
    expected: failed({
      outcome: { error: ProcoreTokenRefreshError, props: { attempts: 1 } },
      errorCode: 'http_500',
      attempts: 1,
      lastErrorCode: 'refresh_outcome_unknown',
      consumed: true,
    }),
    next: nextResponseLost(2),
  },
  {
    name: '429 with Retry-After: 1 (seconds): waits it out, then refreshes',
    arrange: inject({ kind: 'rate-limit', retryAfterSeconds: 1 }),
    expected: succeeded(2, { minElapsedMs: 1_000 }),
  },
  {
    name: '429 with Retry-After beyond http.maxRetryAfterMs: gives up at once, the token kept',
    arrange: inject({ kind: 'rate-limit', retryAfterSeconds: 120 }),
    expected: {
      ...failed({
        outcome: { error: ProcoreTokenRefreshError, props: { attempts: 1 } },
        errorCode: 'http_429',
        attempts: 1,
        lastErrorCode: 'refresh_outcome_unknown',
        consumed: false,
      }),
      maxElapsedMs: 1_000,
    },
    next: nextSucceeds(2),
  },
  {
    name: '503 with Retry-After as an HTTP date: waits until that date, then refreshes',
    arrange: (fake) =>
      fake.injectFault({ kind: 'status', status: 503, retryAfterDate: retryAfterDate() }, REFRESH),
    // The retry is sent at the date at the earliest (timer granularity aside).
    expected: succeeded(2, { minElapsedMs: () => retryAt.getTime() - 20 }),
  },
  {
    name: 'hang (http.timeoutMs 300) before consumption: timeout, retried once, refreshed',
    variant: 'short-timeout',
    arrange: inject({ kind: 'hang' }),
    expected: succeeded(2, { minElapsedMs: 300 }),
  },
  {
    name: 'hang after consumption: timeout, the retry is refused, refresh_response_lost',
    variant: 'short-timeout',
    arrange: inject({ kind: 'hang', consumeRefreshToken: true }),
    expected: responseLost(),
  },
  {
    name: 'hang on every attempt: ProcoreTokenRefreshError caused by ProcoreTimeoutError',
    variant: 'short-timeout',
    arrange: inject({ kind: 'hang' }, 3),
    expected: failed({
      outcome: {
        error: ProcoreTokenRefreshError,
        props: { attempts: 3 },
        check: (error) => expect(error.cause).toBeInstanceOf(ProcoreTimeoutError),
      },
      errorCode: 'timeout',
      attempts: 3,
      lastErrorCode: 'refresh_outcome_unknown',
      consumed: false,
    }),
    next: nextSucceeds(4),
  },
  {
    name: 'connection reset before consumption: retried once, refreshed',
    arrange: inject({ kind: 'reset' }),
    expected: succeeded(2),
  },
  {
    name: 'connection reset after consumption: the retry is refused, refresh_response_lost',
    arrange: inject({ kind: 'reset', consumeRefreshToken: true }),
    expected: responseLost(),
  },
  {
    name: 'connection reset on every attempt: ProcoreTokenRefreshError (transient_error)',
    arrange: inject({ kind: 'reset' }, 3),
    expected: failed({
      outcome: {
        error: ProcoreTokenRefreshError,
        props: { attempts: 3 },
        check: (error) =>
          expect(error.cause).toMatchObject({ requestSent: true, status: undefined }),
      },
      errorCode: 'transient_error',
      attempts: 3,
      lastErrorCode: 'refresh_outcome_unknown',
      consumed: false,
    }),
    next: nextSucceeds(4),
  },
  {
    name: 'an HTML page with 200 (a proxy; nothing consumed): ProcoreInvalidResponseError (html), next call refreshes',
    arrange: inject({ kind: 'html' }),
    expected: unusable('html', false),
    next: nextSucceeds(2),
  },
  {
    name: 'an HTML maintenance page with 503: a 5xx like any other, retried once, refreshed',
    arrange: inject({ kind: 'html', status: 503 }),
    expected: succeeded(2),
  },
  {
    name: 'invalid JSON with 200 after consumption: ProcoreInvalidResponseError (not_json), next refusal is refresh_response_lost',
    arrange: inject({ kind: 'invalid-json', consumeRefreshToken: true }),
    expected: unusable('not_json', true),
    next: nextResponseLost(2),
  },
  {
    name: 'an oversized body (2 MiB > http.maxResponseBytes): ProcoreInvalidResponseError (too_large)',
    arrange: inject({ kind: 'oversized' }),
    expected: unusable('too_large', false),
    next: nextSucceeds(2),
  },
  {
    name: 'no access_token after consumption: ProcoreInvalidResponseError (missing_access_token), next refusal is refresh_response_lost',
    arrange: inject({ kind: 'missing-access-token', consumeRefreshToken: true }),
    expected: unusable('missing_access_token', true),
    next: nextResponseLost(2),
  },
  ...(
    [
      ['missing', (body: Record<string, unknown>) => delete body.expires_in],
      ['0', (body: Record<string, unknown>) => (body.expires_in = 0)],
      ['negative', (body: Record<string, unknown>) => (body.expires_in = -60)],
      [
        '3e9 (overflows the integer column)',
        (body: Record<string, unknown>) => (body.expires_in = 3e9),
      ],
      ['1e13 (an invalid date)', (body: Record<string, unknown>) => (body.expires_in = 1e13)],
    ] as const
  ).map(([label, mutate]): Row => ({
    name: `expires_in ${label} in a real rotation: ProcoreInvalidResponseError (invalid_field), nothing stored`,
    arrange: inject(tamper(mutate)),
    expected: unusable('invalid_field', true),
    next: nextResponseLost(2),
  })),
  {
    name: 'token_type "mac" in a real rotation: ProcoreInvalidResponseError (invalid_field)',
    arrange: inject(tamper((body) => (body.token_type = 'mac'))),
    expected: unusable('invalid_field', true),
    next: nextResponseLost(2),
  },
  {
    name: 'token_type "Bearer" (any case is bearer): refreshed',
    arrange: inject(tamper((body) => (body.token_type = 'Bearer'))),
    expected: succeeded(1),
  },
  {
    name: 'no refresh_token in the answer: the old one is kept (SPEC); Procore consumed it, so the next refresh is refused',
    arrange: inject(tamper((body) => delete body.refresh_token)),
    expected: {
      ...succeeded(1),
      row: {
        ...succeeded(1).row,
        tokens: 'access-only',
        lastErrorCode: 'refresh_token_not_rotated',
      },
    },
    // The kept refresh token was consumed by that call (Procore's rule): the row is marked, so its
    // refusal on the next refresh is recorded as a lost response, not as the user's revoke.
    next: {
      outcome: reauthError('refresh_response_lost'),
      status: 'reauthorization_required',
      lastErrorCode: 'refresh_response_lost',
      fake: { refreshToken: 2, rejectedRefreshTokens: 1 },
      events: [reauthEvent('refresh_response_lost')],
    },
  },
  {
    name: 'invalid_grant: reauthorization required, the row kept with its history, tokens erased',
    arrange: inject(oauthErrorAnswer(400, 'invalid_grant')),
    expected: {
      outcome: reauthError('invalid_grant'),
      row: {
        status: 'reauthorization_required',
        lastErrorCode: 'invalid_grant',
        failureCount: 1,
        versionBumped: false,
        tokens: 'erased',
      },
      events: [reauthEvent('invalid_grant')],
      logs: [reauthLog('invalid_grant')],
      fake: { refreshToken: 1, rejectedRefreshTokens: 0, successfulRefreshes: 0 },
    },
    next: {
      outcome: reauthError('invalid_grant'),
      status: 'reauthorization_required',
      lastErrorCode: 'invalid_grant',
      fake: { refreshToken: 1, rejectedRefreshTokens: 0 },
      events: [],
    },
  },
  {
    name: 'the grant revoked in Procore (a real invalid_grant from the fake): reauthorization required',
    arrange: (fake, refreshToken) => {
      expect(fake.revokeToken(refreshToken)).toBe(true);
    },
    expected: {
      outcome: reauthError('invalid_grant'),
      row: {
        status: 'reauthorization_required',
        lastErrorCode: 'invalid_grant',
        failureCount: 1,
        versionBumped: false,
        tokens: 'erased',
      },
      events: [reauthEvent('invalid_grant')],
      logs: [reauthLog('invalid_grant')],
      // One send of the revoked token, refused; never a second one.
      fake: { refreshToken: 1, rejectedRefreshTokens: 1, successfulRefreshes: 0 },
    },
  },
  {
    name: 'invalid_client (401): ProcoreConfigurationError, the connection not touched',
    arrange: inject(oauthErrorAnswer(401, 'invalid_client')),
    expected: {
      outcome: {
        error: ProcoreConfigurationError,
        check: (error) => expect(error.message).toContain('PROCORE_CLIENT_ID'),
      },
      row: {
        status: 'active',
        lastErrorCode: null,
        failureCount: 0,
        versionBumped: false,
        tokens: 'kept',
      },
      events: [failedEvent('configuration_error', 1)],
      logs: [failedLog('configuration_error', 1)],
      fake: { refreshToken: 1, rejectedRefreshTokens: 0, successfulRefreshes: 0 },
    },
    next: nextSucceeds(2),
  },
  {
    name: 'a bare 401 without an OAuth body: ProcoreConfigurationError, the connection not touched',
    arrange: inject({ kind: 'status', status: 401, body: 'Unauthorized' }),
    expected: {
      outcome: { error: ProcoreConfigurationError },
      row: {
        status: 'active',
        lastErrorCode: null,
        failureCount: 0,
        versionBumped: false,
        tokens: 'kept',
      },
      events: [failedEvent('configuration_error', 1)],
      logs: [failedLog('configuration_error', 1)],
      fake: { refreshToken: 1, rejectedRefreshTokens: 0, successfulRefreshes: 0 },
    },
  },
  {
    name: 'unauthorized_client (400): ProcoreOAuthError, recorded, the connection stays active',
    arrange: inject(oauthErrorAnswer(400, 'unauthorized_client')),
    expected: failed({
      outcome: { error: ProcoreOAuthError, props: { error: 'unauthorized_client', status: 400 } },
      errorCode: 'unauthorized_client',
      attempts: 1,
      // Procore consumes the refresh token on any call it answers: the row is marked so.
      lastErrorCode: 'refresh_outcome_unknown',
      consumed: false,
    }),
    next: nextSucceeds(2),
  },
  {
    name: 'an OAuth error longer than 64 characters: recorded as unknown_error, never echoed',
    arrange: inject(oauthErrorAnswer(400, LONG_ERROR)),
    expected: failed({
      outcome: { error: ProcoreOAuthError, props: { error: 'unknown_error' } },
      errorCode: 'unknown_error',
      attempts: 1,
      lastErrorCode: 'refresh_outcome_unknown',
      consumed: false,
    }),
  },
  {
    name: 'an OAuth error with odd characters (even one resembling invalid_grant): unknown_error, never echoed',
    arrange: inject(oauthErrorAnswer(400, ODD_ERROR)),
    expected: failed({
      outcome: { error: ProcoreOAuthError, props: { error: 'unknown_error' } },
      errorCode: 'unknown_error',
      attempts: 1,
      lastErrorCode: 'refresh_outcome_unknown',
      consumed: false,
    }),
    next: nextSucceeds(2),
  },
];

describe('token endpoint fault matrix (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  const logger = new RecordingLogger();
  const apps = new Map<Variant, ProcoreTestApp>();
  let ownerCount = 0;

  const variantOptions: Record<Variant, Partial<ProcoreAuthModuleOptions>> = {
    default: { http: { retryBaseDelayMs: 5 } },
    // lockTimeoutMs and shutdownTimeoutMs must outlast one call: http.timeoutMs + 1 s.
    'short-timeout': {
      http: { retryBaseDelayMs: 5, timeoutMs: 300 },
      lockTimeoutMs: 1_500,
      shutdownTimeoutMs: 1_500,
    },
    'no-retries': { http: { retryBaseDelayMs: 5, retries: 0 } },
  };

  beforeAll(async () => {
    database = await createTestDatabase('endpoint_faults');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
  });

  afterAll(async () => {
    for (const app of apps.values()) await app.close();
    await fake.close();
    await database.drop();
  });

  async function appFor(variant: Variant): Promise<ProcoreTestApp> {
    let app = apps.get(variant);
    if (!app) {
      app = await createProcoreTestApp({
        databaseUrl: database.url,
        // No access-token cache: every call reads the row, as a fresh instance would.
        options: fakeProcoreOptions(fake, { cache: { maxEntries: 0 }, ...variantOptions[variant] }),
        logger,
      });
      apps.set(variant, app);
    }
    return app;
  }

  function secretsOf(app: ProcoreTestApp, row: Record<string, unknown>) {
    const record = {
      ownerId: row.owner_id,
      accessToken: row.access_token,
      refreshToken: row.refresh_token,
      keyId: row.key_id,
    } as Parameters<typeof openRefreshToken>[1];
    const cipher = app.app.get<TokenCipher>(PROCORE_TOKEN_CIPHER) as Parameters<
      typeof openRefreshToken
    >[0];
    return {
      access: openAccessToken(cipher, record),
      refresh: openRefreshToken(cipher, record),
    };
  }

  async function expectOutcome(
    call: Promise<string>,
    outcome: Outcome,
  ): Promise<string | undefined> {
    const result = await call.then(
      (token) => ({ token }),
      (error: unknown) => ({ error }),
    );
    if ('ok' in outcome) {
      expect(result).toEqual({ token: expect.any(String) });
      const token = (result as { token: string }).token;
      expect(fake.isAccessTokenValid(token)).toBe(true);
      return token;
    }
    expect(result).toEqual({ error: expect.any(Error) });
    const error = (result as { error: Error }).error;
    // The exact class, not merely a subclass or a base class.
    expect(error.constructor).toBe(outcome.error);
    if (outcome.props) expect(error).toMatchObject(outcome.props);
    outcome.check?.(error);
    return undefined;
  }

  function eventsOf(ownerId: string): ProcoreAuthEvent[] {
    return [...apps.values()].flatMap((app) => app.events.filter((e) => e.ownerId === ownerId));
  }

  function logsOf(ownerId: string): string[] {
    return logger.lines.filter((line) => line.includes(`"${ownerId}"`));
  }

  it.each(rows.map((row) => [row.name, row] as const))('%s', async (_name, row) => {
    const app = await appFor(row.variant ?? 'default');
    const ownerId = `fault-${++ownerCount}`;
    await connectOwner(app.service, ownerId);
    await expireStoredToken(app.dataSource, fake, ownerId);
    const before = await rawRow(app.dataSource, ownerId);
    const old = secretsOf(app, before);
    fake.clearFaults();
    fake.resetCounters();
    // Only what the call produces counts (connecting emitted its own event).
    const eventsAtStart = eventsOf(ownerId).length;
    const logsAtStart = logsOf(ownerId).length;
    row.arrange(fake, old.refresh as string);
    const { expected } = row;

    // --- the call -------------------------------------------------------------------------------
    const startedAt = Date.now();
    const token = await expectOutcome(app.service.getAccessToken(ownerId), expected.outcome);
    const finishedAt = Date.now();
    if (expected.minElapsedMs !== undefined) {
      const min =
        typeof expected.minElapsedMs === 'function'
          ? expected.minElapsedMs() - startedAt
          : expected.minElapsedMs;
      expect(finishedAt - startedAt).toBeGreaterThanOrEqual(min);
    }
    if (expected.maxElapsedMs !== undefined) {
      expect(finishedAt - startedAt).toBeLessThan(expected.maxElapsedMs);
    }

    // --- the row --------------------------------------------------------------------------------
    const after = await rawRow(app.dataSource, ownerId);
    expect({
      status: after.status,
      lastErrorCode: after.last_error_code,
      failureCount: after.failure_count,
      versionBumped: after.version !== before.version,
    }).toEqual({
      status: expected.row.status,
      lastErrorCode: expected.row.lastErrorCode,
      failureCount: expected.row.failureCount,
      versionBumped: expected.row.versionBumped,
    });
    if (expected.row.versionBumped) expect(after.version).toBe((before.version as number) + 1);
    switch (expected.row.tokens) {
      case 'kept':
        expect(after).toMatchObject({
          access_token: before.access_token,
          refresh_token: before.refresh_token,
          key_id: before.key_id,
          expires_at: before.expires_at,
        });
        break;
      case 'erased':
        expect(after).toMatchObject({ access_token: null, refresh_token: null, key_id: null });
        break;
      case 'rotated': {
        const now = secretsOf(app, after);
        expect(now.access).toBe(token);
        expect(now.refresh).not.toBe(old.refresh);
        expect(fake.isRefreshTokenActive(now.refresh as string)).toBe(true);
        expect((after.expires_at as Date).getTime()).toBeGreaterThan(Date.now());
        break;
      }
      case 'access-only': {
        const now = secretsOf(app, after);
        expect(now.access).toBe(token);
        expect(now.refresh).toBe(old.refresh);
        expect(fake.isRefreshTokenActive(now.refresh as string)).toBe(false);
        break;
      }
    }
    if (expected.row.tokens === 'kept' && expected.row.lastErrorCode === null) {
      // Not even the failure columns: the connection was not touched at all.
      expect(after).toEqual(before);
    }

    // --- events, logs, and what the fake saw ---------------------------------------------------
    const events = eventsOf(ownerId).slice(eventsAtStart);
    expect(events).toHaveLength(expected.events.length);
    expected.events.forEach((event, index) => expect(events[index]).toMatchObject(event));
    const logs = logsOf(ownerId).slice(logsAtStart);
    expect(logs).toHaveLength(expected.logs.length);
    expected.logs.forEach((line, index) =>
      expect(logs[index]?.startsWith(line.replace('{owner}', ownerId))).toBe(true),
    );
    expect({
      refreshToken: fake.counters.refreshToken,
      rejectedRefreshTokens: fake.counters.rejectedRefreshTokens,
      successfulRefreshes: fake.counters.successfulRefreshes,
    }).toEqual(expected.fake);
    for (const odd of [LONG_ERROR, ODD_ERROR]) {
      expect(JSON.stringify(events)).not.toContain(odd);
      expect(logs.join('\n')).not.toContain(odd);
    }

    // --- the next call, once the fault is gone -------------------------------------------------
    if (!row.next) return;
    expect(fake.counters).toMatchObject(expected.fake);
    fake.clearFaults();
    if (after.status === 'active') await expireStoredToken(app.dataSource, fake, ownerId);
    const eventsBefore = eventsAtStart + events.length;
    await expectOutcome(app.service.getAccessToken(ownerId), row.next.outcome);
    expect(await rawRow(app.dataSource, ownerId)).toMatchObject({
      status: row.next.status,
      last_error_code: row.next.lastErrorCode,
    });
    expect({
      refreshToken: fake.counters.refreshToken,
      rejectedRefreshTokens: fake.counters.rejectedRefreshTokens,
    }).toEqual(row.next.fake);
    const nextEvents = eventsOf(ownerId).slice(eventsBefore);
    expect(nextEvents).toHaveLength(row.next.events.length);
    row.next.events.forEach((event, index) => expect(nextEvents[index]).toMatchObject(event));
  });
});
