// The public types of the fake Procore server (`nestjs-procore-auth/testing`), apart from its
// options (`fake-procore-server.options.ts`). Type-only: the REST API half imports them without
// importing the server.

/** A Procore user as the fake knows it: what `GET /rest/v1.0/me` answers. */
export interface FakeProcoreUser {
  /** Procore user id (Procore ids may exceed 32 bits; keep them below 2^53). */
  id: number;
  /** The user's login, an e-mail address. */
  login: string;
  /** Display name. */
  name: string;
}

/**
 * A misbehaviour of the login host, injected with {@link FakeProcoreServer.injectFault}.
 *
 * `consumeRefreshToken: true` means the server did its work before misbehaving: the refresh
 * token the call carries is rotated and the new pair is lost (as when Procore answered but the
 * response never arrived). The same flag on an `authorization_code` call redeems the code, and on
 * `/oauth/revoke` performs the revocation, before the fault answers. Without it (the default) the
 * fault answers before the token service is reached and nothing is consumed.
 */
export type FakeProcoreFault =
  /** Answer `status` (e.g. 500, 502, 503) with `body` (default a JSON OAuth error). */
  | {
      kind: 'status';
      status: number;
      consumeRefreshToken?: boolean;
      /** Response body. Default `{"error":"server_error",...}`. */
      body?: string;
      /** Default `application/json` without `body`, `text/plain; charset=utf-8` with one. */
      contentType?: string;
      /** Adds a `Retry-After` header, as Procore does on 503. */
      retryAfterSeconds?: number;
      /** Adds a `Retry-After` header as an HTTP date (IMF-fixdate); `retryAfterSeconds` wins. */
      retryAfterDate?: Date;
    }
  /** 429 with `Retry-After` and Procore's `X-Rate-Limit-*` headers; never consumes anything. */
  | { kind: 'rate-limit'; retryAfterSeconds: number }
  /** Never answers; the request stays open until the client gives up or the server closes. */
  | { kind: 'hang'; consumeRefreshToken?: boolean }
  /** Resets the TCP connection without a response. */
  | { kind: 'reset'; consumeRefreshToken?: boolean }
  /** 200 `application/json` whose body is not JSON (a truncated document). */
  | { kind: 'invalid-json'; consumeRefreshToken?: boolean }
  /** An HTML error page, as a proxy or maintenance page would send. Default status 200. */
  | { kind: 'html'; status?: number; consumeRefreshToken?: boolean }
  /** 200 with a valid JSON body of `bytes` bytes (default 2 MiB). */
  | { kind: 'oversized'; bytes?: number; consumeRefreshToken?: boolean }
  /** 200 JSON that looks like a token response but has no `access_token`. */
  | { kind: 'missing-access-token'; consumeRefreshToken?: boolean }
  /**
   * The server does its work (a refresh token is consumed and a new pair issued), then the JSON
   * body of its real answer is passed through `mutate` before it is sent: e.g. a huge
   * `expires_in`, `token_type: "mac"`, no `refresh_token`, an overlong `error`.
   */
  | { kind: 'tamper'; mutate: (body: Record<string, unknown>) => Record<string, unknown> }
  /**
   * The server does its work, then holds its real answer until `release` resolves; `onHold` runs
   * when the call arrives. Prefer {@link FakeProcoreServer.hold}, which builds both.
   */
  | { kind: 'hold'; release: Promise<void>; onHold?: () => void };

/** A call held by {@link FakeProcoreServer.hold}. */
export interface FakeProcoreHold {
  /** Resolves when the held call has arrived and Procore's work (e.g. the rotation) is done. */
  readonly arrived: Promise<void>;
  /** Sends the held answer. */
  release(): void;
}

/** The grant types of `POST /oauth/token` the fake implements. */
export type FakeProcoreGrantType = 'authorization_code' | 'refresh_token' | 'client_credentials';

/**
 * The endpoints faults can be injected into. `'/rest'` matches every REST API call; a longer
 * `/rest/...` path matches that path and the paths below it (`'/rest/v1.0/projects'` also matches
 * `'/rest/v1.0/projects/1'`).
 */
export type FakeProcoreFaultPath = '/oauth/token' | '/oauth/revoke' | '/rest' | `/rest/${string}`;

/** Where and how often an injected fault applies. */
export interface FakeProcoreFaultOptions {
  /** How many matching calls the fault answers. Default `1`. */
  times?: number;
  /** Only token calls of this grant type match. Default: any grant type. Token endpoint only. */
  grantType?: FakeProcoreGrantType;
  /** The endpoint. Default `'/oauth/token'`. */
  path?: FakeProcoreFaultPath;
}

/** Calls the fake has seen since it started or since {@link FakeProcoreServer.resetCounters}. */
export interface FakeProcoreCounters {
  /** `GET /oauth/authorize` calls. */
  authorize: number;
  /** `POST /oauth/token` calls with `grant_type=authorization_code`. */
  authorizationCode: number;
  /** `POST /oauth/token` calls with `grant_type=refresh_token`, successful or not. */
  refreshToken: number;
  /** `POST /oauth/token` calls with `grant_type=client_credentials`. */
  clientCredentials: number;
  /** Refresh calls rejected with `invalid_grant` because the refresh token was unknown, used or revoked. */
  rejectedRefreshTokens: number;
  /**
   * Refresh calls that rotated the grant, including those whose answer an injected fault then
   * replaced (the rotation happened on the server; only the response was lost).
   */
  successfulRefreshes: number;
  /** `POST /oauth/revoke` calls. */
  revoke: number;
  /** `GET /oauth/token/info` calls. */
  tokenInfo: number;
  /** `GET /rest/v1.0/me` calls. */
  me: number;
  /** Every `/rest/...` call, whatever it answered (including `/me`). */
  api: number;
  /** `/rest/...` calls answered 429. */
  apiRateLimited: number;
  /** `/rest/...` calls answered 401. */
  apiUnauthorized: number;
  /** `/rest/...` calls answered 403. */
  apiForbidden: number;
}

/** Options of {@link FakeProcoreServer.addServiceAccount}. */
export interface FakeProcoreServiceAccountOptions {
  /** Default `'fake-service-account-<n>'`. Must differ from every other client id. */
  clientId?: string;
  /** Default: a random secret. */
  clientSecret?: string;
  /**
   * The directory user `GET /rest/v1.0/me` answers for its tokens. Default
   * `{ id: 9000 + n, login: 'service-account-<n>@fake-procore.test', name: 'Fake Service Account <n>' }`.
   */
  user?: FakeProcoreUser;
}

/** The credentials of a service account, as {@link FakeProcoreServer.addServiceAccount} returns them. */
export interface FakeProcoreServiceAccountCredentials {
  clientId: string;
  clientSecret: string;
}

/** A successful token response of the authorization-code or refresh-token grant. */
export interface FakeProcoreTokenResponse {
  access_token: string;
  token_type: 'bearer';
  /** Seconds the access token lives, from {@link FakeProcoreServer.accessTokenTtlSeconds}. */
  expires_in: number;
  refresh_token: string;
  /** Issue time on the fake clock, epoch seconds. */
  created_at: number;
}

/** The claims of the fake's access tokens (HS256 JWTs). */
export interface FakeProcoreAccessTokenClaims {
  /** Always `'fake-procore'`. */
  iss: string;
  /** The user id as a string, or `'service-account'` for client-credentials tokens. */
  sub: string;
  /** The client id the token was issued to. */
  aud: string;
  /** Issued at, fake clock, epoch seconds. */
  iat: number;
  /** Expiry, fake clock, epoch seconds. */
  exp: number;
  /** Unique token id. */
  jti: string;
  /** The grant (authorization) the token belongs to; revoking the grant kills the token. */
  grant: string;
  /**
   * How many times the client's secret had been regenerated when the token was issued; absent
   * while it never was. Tokens issued before {@link FakeProcoreServer.regenerateClientSecret}
   * answer 401.
   */
  sgen?: number;
}
