import type { CanActivate, Type } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { ProcoreEnvironment } from '../config/procore-environments.js';

// Derived from the table of environments and their hosts (`PROCORE_ENVIRONMENT_HOSTS`).
export type { ProcoreEnvironment };

/** Finds the owner of a request (usually your user id). Return `undefined`/`null` when there is none. */
export type ProcoreOwnerResolver = (request: unknown) => string | number | null | undefined;

/** HTTP behaviour of calls to Procore's login host. */
export interface ProcoreHttpOptions {
  /** Abort a call to Procore after this many milliseconds. Default `10000`. */
  timeoutMs?: number;
  /**
   * Retries after a transient failure (5xx, 429, timeout, reset, connection refused), with
   * exponential backoff and jitter. A refresh is retried only within this budget: Procore consumes
   * a refresh token on every call, so a retry after a lost response can end in reauthorization.
   * Default `2`.
   */
  retries?: number;
  /** First backoff delay in milliseconds (doubles per retry, plus jitter). Default `250`. */
  retryBaseDelayMs?: number;
  /** Longest `Retry-After` honoured before giving up, in milliseconds. Default `30000`. */
  maxRetryAfterMs?: number;
  /** Largest response body accepted from Procore, in bytes. Default `65536`. */
  maxResponseBytes?: number;
}

/** Calls to Procore's REST API through `ProcoreClient` / `@ProcoreApi()`. */
export interface ProcoreApiOptions {
  /** Abort one API call after this many milliseconds (per attempt). Default `30000`. */
  timeoutMs?: number;
  /**
   * Retries of idempotent calls (GET, HEAD, PUT, DELETE, or any call marked `idempotent`) after a
   * 5xx, a timeout or a reset, with exponential backoff and jitter. Default `2`.
   */
  retries?: number;
  /** First backoff delay in milliseconds (doubles per retry, plus jitter). Default `250`. */
  retryBaseDelayMs?: number;
  /**
   * Longest a call waits for Procore's rate limit to reset (`X-Rate-Limit-Reset`, `Retry-After`)
   * before failing with `ProcoreRateLimitedError`. Default `60000`.
   */
  maxRateLimitWaitMs?: number;
  /**
   * After Procore answered 403 "App is not connected to this company", calls of that owner (or
   * service account) for that company fail fast for this many seconds. Default `300`.
   */
  companyDisconnectBackoffSeconds?: number;
  /** Largest API answer accepted, in bytes (a page of 10,000 items is large). Default `33554432` (32 MiB). */
  maxResponseBytes?: number;
  /** Keep-alive connections to the API host per instance. Default `64`. */
  connections?: number;
  /**
   * How instances share Procore's rate limit (it is per token, not per instance):
   * `'database'` reserves calls from a row per token holder in `procore_rate_limits` (the
   * package's own database; in chunks while the budget is large, one at a time near its end);
   * `'instance'` lets each instance spend what its own answers report (fine for one instance).
   * Default `'database'`.
   */
  rateLimitCoordination?: 'database' | 'instance';
}

/** The scheduled refresh job. */
export interface ProcoreSchedulerOptions {
  /** Run the job. Default `true`. */
  enabled?: boolean;
  /** Milliseconds between ticks. Default `60000`. */
  intervalMs?: number;
  /**
   * Refresh a connection when less than this many seconds of its access token remain. Default:
   * min(15 minutes, half the token's lifetime), computed per connection.
   */
  lookAheadSeconds?: number;
  /** Connections claimed per batch (`FOR UPDATE SKIP LOCKED`). Default `100`. */
  batchSize?: number;
  /** Refreshes in flight at once per instance. Default `4`. */
  concurrency?: number;
  /**
   * Only connections used (or connected) within this many days are refreshed ahead of time;
   * idle ones are refreshed on their next use (Procore refresh tokens do not expire). Default `7`.
   */
  activeWithinDays?: number;
}

/** The in-memory cache of valid access tokens (the hot path). */
export interface ProcoreCacheOptions {
  /**
   * Owners kept; when full, the entry that expires first (the oldest) makes room. Default `10000`.
   */
  maxEntries?: number;
  /**
   * Longest time an entry is served without looking at the database, in seconds: bounds how long
   * a revoke on another instance takes to be seen everywhere. Default `60`.
   */
  ttlSeconds?: number;
}

/**
 * The OAuth routes mounted by the module. A module-level setting (next to `isGlobal` in
 * `forRootAsync()`), because Nest builds its route table before async options resolve.
 */
export interface ProcoreRoutesOptions {
  /** Mount `GET <path>/authorize` and `GET <path>/callback`. Default `true`. */
  enabled?: boolean;
  /** Path prefix. Default `'procore/oauth'`. */
  path?: string;
  /**
   * The authorize path told to clients in 401 bodies. Default `/<path>/authorize`; set it when
   * the app has a global prefix (`/api/procore/oauth/authorize`) or its own connect page.
   */
  authorizePath?: string;
  /**
   * The app's own guards for the OAuth routes (classes or instances, run like `@UseGuards()`):
   * an array for both routes, or `{ authorize, callback }` per route. A guard that signs the user
   * in (sets `req.user`) lets the routes find the owner. Browsers reach `callback` by a redirect
   * from Procore, with cookies but no `Authorization` header: guard it only with a guard that
   * accepts such a request (a session), and leave header guards to `authorize`. Guard classes are
   * instantiated inside `ProcoreAuthModule`: their dependencies must be global, or come from
   * `forRootAsync`'s `imports`. Global guards (`APP_GUARD`) apply to these routes anyway.
   * Default: none.
   */
  guards?:
    ProcoreRouteGuard[] | { authorize?: ProcoreRouteGuard[]; callback?: ProcoreRouteGuard[] };
}

/** A guard given to `routes.guards`: a class Nest instantiates, or an instance. */
export type ProcoreRouteGuard = CanActivate | Type<CanActivate>;

/** The client credentials of one Procore service account (client-credentials grant). */
export interface ProcoreServiceAccountCredentials {
  /** The service account's client id (`PROCORE_SERVICE_ACCOUNT_<NAME>_CLIENT_ID`). */
  clientId: string;
  /** The service account's client secret (`PROCORE_SERVICE_ACCOUNT_<NAME>_CLIENT_SECRET`). */
  clientSecret: string;
}

/** Options of `ProcoreAuthModule.forRoot()` / `forRootAsync()`. `procoreConfig` reads them from env variables. */
export interface ProcoreAuthModuleOptions {
  /** OAuth client id of your Procore app (`PROCORE_CLIENT_ID`). Required. */
  clientId: string;
  /** OAuth client secret of your Procore app (`PROCORE_CLIENT_SECRET`). Required. */
  clientSecret: string;
  /** Absolute URL of the mounted callback route, as registered in Procore (`PROCORE_REDIRECT_URI`). Required. */
  redirectUri: string;
  /** Picks the preset hosts (`PROCORE_ENVIRONMENT`). Default `'production'`. */
  environment?: ProcoreEnvironment;
  /** Login host override, e.g. `https://login-sandbox.procore.com` (`PROCORE_AUTH_BASE_URL`). HTTPS unless loopback. */
  authBaseUrl?: string;
  /** REST API host override, e.g. `https://sandbox.procore.com` (`PROCORE_API_BASE_URL`). HTTPS unless loopback. */
  apiBaseUrl?: string;
  /**
   * Current token encryption key: 32 random bytes in base64, optionally `keyId:base64`
   * (`PROCORE_TOKEN_ENCRYPTION_KEY`). Generate one with `openssl rand -base64 32`. Required.
   */
  encryptionKey: string;
  /** Older keys, same format, used only to decrypt (`PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS`, comma-separated). Default `[]`. */
  previousEncryptionKeys?: string[];
  /**
   * Named service accounts, besides the app's own credentials: each gets its own client-credentials
   * token, cached until `refreshSkewSeconds` before it expires and fetched once at a time. Use them
   * with `getClientCredentialsToken('reports')` or `@ProcoreToken({ serviceAccount: 'reports' })`.
   * Names: letters, digits, `_` and `-`, at most 64. From env variables (`procoreConfig`):
   * `PROCORE_SERVICE_ACCOUNTS=reports,crm-sync` and, per name,
   * `PROCORE_SERVICE_ACCOUNT_<NAME>_CLIENT_ID` / `_CLIENT_SECRET` (`<NAME>`: the name upper-cased,
   * `-` → `_`, e.g. `PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_SECRET`). Default `{}`.
   *
   * ```ts
   * serviceAccounts: {
   *   reports: { clientId: process.env.REPORTS_ID!, clientSecret: process.env.REPORTS_SECRET! },
   * }
   * ```
   */
  serviceAccounts?: Record<string, ProcoreServiceAccountCredentials>;
  /** Finds the owner of a request. Default: `req.user.id`. */
  ownerResolver?: ProcoreOwnerResolver;
  /** The request path refreshes when less than this many seconds remain. Default `120`. */
  refreshSkewSeconds?: number;
  /** Use PKCE (S256) in the authorization flow. Procore does not document PKCE. Default `false`. */
  pkce?: boolean;
  /** Lifetime of an authorization `state`, in seconds. Default `600`. */
  stateTtlSeconds?: number;
  /**
   * Pending authorizations kept per owner (one per browser tab that started a connection):
   * starting one more deletes the owner's oldest, so repeated `/authorize` calls cannot fill the
   * table. Default `10`.
   */
  maxPendingStatesPerOwner?: number;
  /**
   * Bind the mounted OAuth routes' flow to the browser that started it (RFC 9700): `/authorize`
   * sets a short-lived HttpOnly cookie tied to the `state`, and `/callback` answers 400
   * `browser_mismatch` without it, so a leaked `state` alone cannot complete a connection. Turn
   * off only when the callback is completed by another client than the one that started the flow.
   * `getAuthorizationUrl()` called by your own code is never bound. Default `true`.
   */
  bindFlowToBrowser?: boolean;
  /**
   * Longest wait for another caller's refresh of the same connection (row lock), in ms. The lock
   * is held across one call to Procore at most, so this must exceed `http.timeoutMs` by at least
   * one second (checked at bootstrap). Default `15000`.
   */
  lockTimeoutMs?: number;
  /**
   * On shutdown, how long to wait for refreshes and revocations in flight (so a rotated token is
   * stored before the DataSource closes), in ms. Must exceed `http.timeoutMs` by at least one
   * second (checked at bootstrap); keep it below your platform's grace period (Kubernetes: 30 s).
   * Default `15000`.
   */
  shutdownTimeoutMs?: number;
  /** "Last used" is written at most once per this many seconds per owner. Default `300`. */
  touchIntervalSeconds?: number;
  http?: ProcoreHttpOptions;
  /** `ProcoreClient` (Procore's REST API). */
  api?: ProcoreApiOptions;
  scheduler?: ProcoreSchedulerOptions;
  cache?: ProcoreCacheOptions;
  /**
   * The TypeORM DataSource holding `procore_oauth_tokens`: an instance, or the name of a
   * DataSource registered with `TypeOrmModule.forRoot({ name })`. Default: the app's default DataSource.
   */
  dataSource?: DataSource | string;
}

/** What a `useClass` / `useExisting` options provider implements. */
export interface ProcoreAuthOptionsFactory {
  createProcoreAuthOptions(): ProcoreAuthModuleOptions | Promise<ProcoreAuthModuleOptions>;
}
