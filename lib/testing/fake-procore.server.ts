import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  bearerToken,
  HTML_ERROR_PAGE,
  json,
  JSON_CONTENT_TYPE,
  parseJson,
  readBody,
  respond,
  type FakeHttpReply,
  type FakeReply,
} from './fake-http.js';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import {
  FakeProcoreApi,
  type FakeProcoreApiCaller,
  type FakeProcoreApiRefusal,
  type FakeProcoreApiRequest,
  type FakeProcoreCompany,
  type FakeProcoreRateLimit,
} from './fake-procore-api.js';
import {
  isFakeProcoreResponse,
  markFakeProcoreResponse,
  onFakeProcoreSecret,
  reportFakeProcoreSecret,
  type FakeProcoreSecretListener,
} from './fake-procore-secrets.js';

/** A Procore user as the fake knows it: what `GET /rest/v1.0/me` answers. */
export interface FakeProcoreUser {
  /** Procore user id (Procore ids may exceed 32 bits; keep them below 2^53). */
  id: number;
  /** The user's login, an e-mail address. */
  login: string;
  /** Display name. */
  name: string;
}

/** Options of {@link FakeProcoreServer.start}. Every option has a default. */
export interface FakeProcoreServerOptions {
  /** The one registered OAuth client. Default `'fake-procore-client-id'`. */
  clientId?: string;
  /** Its secret. Default `'fake-procore-client-secret'`. */
  clientSecret?: string;
  /** `expires_in` of every access token, in seconds. Default `5400` (Procore's value today). */
  accessTokenTtlSeconds?: number;
  /**
   * The user that `GET /oauth/authorize` auto-approves.
   * Default `{ id: 4242, login: 'ada@example.com', name: 'Ada Lovelace' }`.
   */
  user?: FakeProcoreUser;
  /**
   * The user behind client-credentials (service account) tokens, answered by `GET /rest/v1.0/me`.
   * Default `{ id: 9000, login: 'service-account@fake-procore.test', name: 'Fake Service Account' }`.
   */
  serviceAccountUser?: FakeProcoreUser;
  /** Latency added to every `POST /oauth/token` response, in ms. Default `0`. */
  tokenLatencyMs?: number;
  /** Interface to listen on. Default `'127.0.0.1'`. */
  host?: string;
  /** Port to listen on. Default `0` (a free port chosen by the OS). */
  port?: number;
  /**
   * A JSON file that keeps the fake's state across restarts, for a sample app whose database
   * (and the tokens in it) outlives the process. Default: none, nothing is ever written.
   *
   * When set, {@link FakeProcoreServer.start} loads the state from the file if it exists and
   * rejects, naming the file, if it cannot be read or is not a state file this fake wrote; it
   * never silently starts over. The state is the HS256 signing secret, every grant with its live
   * refresh token and revoked flag, and the clock offset (so the fake clock, and with it token
   * expiry, runs on while the server is down). Pending authorization codes, faults, latency,
   * counters and the options themselves are not kept. A relative path is resolved against the
   * working directory at start; a missing parent directory is created.
   *
   * The file is written at start and after every change of that state (grant created, refresh
   * token rotated, grant revoked, clock moved), synchronously and atomically (`<file>.tmp`, then
   * rename), with mode `0600`. Each write rewrites the whole file, so seeding thousands of
   * grants with {@link FakeProcoreServer.issueTokens} is slow with a state file: leave it
   * unset for benchmarks. Only one server may use a given file at a time.
   *
   * The file holds secrets of this FAKE server only (its signing secret and refresh tokens that
   * nothing but this fake accepts), never anything of the real Procore. Keep it out of version
   * control all the same.
   */
  stateFile?: string;
  /**
   * The companies of the REST API. Default `[{ id: '1001', name: 'Acme Builders' },
   * { id: '9007199254740993', name: 'Big Id Construction' }]`; see {@link FakeProcoreServer.companies}.
   */
  companies?: FakeProcoreCompany[];
  /** Projects each company starts with. Default `250`; see {@link FakeProcoreServer.setProjectCount}. */
  projectsPerCompany?: number;
  /** The API's rate limit. Default 3600 calls per 3600 s; see {@link FakeProcoreServer.setRateLimit}. */
  rateLimit?: FakeProcoreRateLimit;
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

const DEFAULT_CLIENT_ID = 'fake-procore-client-id';
const DEFAULT_CLIENT_SECRET = 'fake-procore-client-secret';
const DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 5400;
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_USER: Readonly<FakeProcoreUser> = {
  id: 4242,
  login: 'ada@example.com',
  name: 'Ada Lovelace',
};
const DEFAULT_SERVICE_ACCOUNT_USER: Readonly<FakeProcoreUser> = {
  id: 9000,
  login: 'service-account@fake-procore.test',
  name: 'Fake Service Account',
};
/** Besides {@link FakeProcoreServer.user} and the service account: who else is in every company's directory. */
const FAKE_COMPANY_COLLEAGUES: readonly Readonly<FakeProcoreUser>[] = [
  { id: 4343, login: 'grace@example.com', name: 'Grace Hopper' },
  { id: 4444, login: 'alan@example.com', name: 'Alan Turing' },
];
const AUTHORIZATION_CODE_TTL_MS = 10 * 60 * 1000;
const MAX_REQUEST_BODY_BYTES = 64 * 1024;
const DEFAULT_OVERSIZED_BYTES = 2 * 1024 * 1024;
const JWT_ISSUER = 'fake-procore';
const SERVICE_ACCOUNT_SUBJECT = 'service-account';
const JWT_SECRET_BYTES = 32;
const STATE_FILE_VERSION = 1;
const STATE_FILE_MODE = 0o600;

/** Doorkeeper's wording (Procore's login host runs Doorkeeper), so error messages look familiar. */
const INVALID_GRANT_DESCRIPTION =
  'The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.';
const INVALID_CLIENT_DESCRIPTION =
  'Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.';

/** A client the token endpoint accepts: the app's own, or a service account. */
interface RegisteredClient {
  readonly id: string;
  secret: string;
  /** Bumped by regenerateClientSecret: tokens carrying an older value are dead. */
  generation: number;
  /** Service accounts may only use `grant_type=client_credentials`. */
  readonly serviceAccount: boolean;
  /** The directory user of a service account; undefined for the app's own client. */
  readonly user: FakeProcoreUser | undefined;
}

/** One authorization: the chain of access and refresh tokens that rotation produces from it. */
interface Grant {
  readonly id: string;
  /** Undefined for client-credentials (service account) grants. */
  readonly user: FakeProcoreUser | undefined;
  /** The one live refresh token of the chain, if any. */
  refreshToken: string | undefined;
  revoked: boolean;
}

/** The content of {@link FakeProcoreServerOptions.stateFile}. Bump `version` on any change. */
interface PersistedState {
  readonly version: typeof STATE_FILE_VERSION;
  /** The HS256 secret, base64url. */
  readonly jwtSecret: string;
  readonly clockOffsetMs: number;
  readonly grants: readonly PersistedGrant[];
}

interface PersistedGrant {
  readonly id: string;
  readonly user: FakeProcoreUser | null;
  readonly refreshToken: string | null;
  readonly revoked: boolean;
}

/** An issued, not yet redeemed authorization code. The client is implied: the fake has one. */
interface AuthorizationCode {
  readonly user: FakeProcoreUser;
  readonly redirectUri: string;
  readonly codeChallenge: string | undefined;
  readonly expiresAtMs: number;
}

interface ScheduledFault {
  readonly fault: FakeProcoreFault;
  readonly path: FakeProcoreFaultPath;
  readonly grantType: FakeProcoreGrantType | undefined;
  remaining: number;
}

type AccessTokenProblem = 'invalid' | 'expired' | 'revoked';

type AccessTokenCheck =
  | { valid: true; grant: Grant; claims: FakeProcoreAccessTokenClaims }
  | { valid: false; reason: AccessTokenProblem };

/** An HTTP answer, and what a handler decided to do with a request; {@link send} carries it out. */
type HttpReply = FakeHttpReply;
type Reply = FakeReply;

/**
 * A fake of Procore's login host (and a sliver of its REST API), for tests, samples and
 * benchmarks. It is a real HTTP server on loopback, so the code under test exercises its real
 * HTTP client, timeouts and error handling.
 *
 * It implements `GET /oauth/authorize` (auto-approving {@link user}), `POST /oauth/token`
 * (`authorization_code`, `refresh_token` with Procore's single-use rotation, `client_credentials`
 * for the app and any {@link addServiceAccount service accounts}), `POST /oauth/revoke` and
 * `GET /oauth/token/info`. Access tokens are HS256 JWTs signed with a per-server secret and
 * checked against a clock that tests can move.
 * Faults can be injected into the token and revoke endpoints, and counters record every call.
 * With {@link FakeProcoreServerOptions.stateFile} its grants and signing secret survive a restart.
 *
 * It also serves a small REST API (in memory only, never in the state file): `GET /rest/v1.0/me`,
 * `GET /rest/v1.0/companies`, `GET|POST /rest/v1.0/projects` (paginated, `Procore-Company-Id`
 * required) and `GET /rest/v1.0/companies/{id}/users`, with per-token rate limits
 * ({@link setRateLimit}), disconnected companies ({@link disconnectCompany}), faults on `/rest`
 * paths and a request log ({@link apiRequests}). Every API call needs a valid bearer token:
 * unknown, expired or revoked tokens, and tokens issued before {@link regenerateClientSecret},
 * answer 401 `{"errors":"The access token is invalid","error":"invalid_token",...}` with
 * `WWW-Authenticate`.
 *
 * The fake logs nothing, so no token ever reaches a log.
 *
 * @example
 * const procore = await FakeProcoreServer.start();
 * // point the module at procore.url (login host and API host), use procore.clientId/clientSecret
 * procore.injectFault({ kind: 'status', status: 503, consumeRefreshToken: true });
 * await procore.close();
 */
export class FakeProcoreServer {
  /** Base URL, e.g. `http://127.0.0.1:54321`: the login host and the API host in one. */
  readonly url: string;
  /** The app's client id: the one client the fake accepts for every grant type. */
  readonly clientId: string;
  /** The user the next `GET /oauth/authorize` auto-approves. Tokens keep the user they were issued for. */
  user: FakeProcoreUser;
  /** The user behind client-credentials tokens, as `GET /rest/v1.0/me` reports it. */
  serviceAccountUser: FakeProcoreUser;
  /** Latency added to every `POST /oauth/token` response, in ms. Applies to requests arriving after a change. */
  tokenLatencyMs: number;
  /** `expires_in` of access tokens issued from now on, in seconds. */
  accessTokenTtlSeconds: number;
  /** Call counters; the object is updated in place, {@link resetCounters} zeroes it. */
  readonly counters: FakeProcoreCounters = zeroCounters();

  private readonly jwtSecret: Buffer;
  /** The app's own client and every service account, by client id. */
  private readonly clients = new Map<string, RegisteredClient>();
  /** The app's own client (`clientId`), also in {@link clients}. */
  private readonly appClient: RegisteredClient;
  private serviceAccountCount = 0;
  /** The REST API (`/rest/...`). */
  private readonly api: FakeProcoreApi;
  /** Absolute path of the state file; undefined when nothing is persisted. */
  private readonly stateFile: string | undefined;
  private readonly grants = new Map<string, Grant>();
  /** Live refresh tokens only: consuming or revoking one removes it. */
  private readonly refreshTokens = new Map<string, Grant>();
  private readonly authorizationCodes = new Map<string, AuthorizationCode>();
  private readonly faults: ScheduledFault[] = [];
  private readonly pendingDelays = new Set<() => void>();
  private pendingDenial: string | undefined;
  /** The fake clock is real time shifted by this offset, so it never stands still. */
  private clockOffsetMs = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    url: string,
    options: FakeProcoreServerOptions,
    stateFile: string | undefined,
    state: PersistedState | undefined,
  ) {
    this.url = url;
    this.stateFile = stateFile;
    this.jwtSecret = state
      ? Buffer.from(state.jwtSecret, 'base64url')
      : randomBytes(JWT_SECRET_BYTES);
    this.clientId = options.clientId ?? DEFAULT_CLIENT_ID;
    this.appClient = {
      id: this.clientId,
      secret: options.clientSecret ?? DEFAULT_CLIENT_SECRET,
      generation: 0,
      serviceAccount: false,
      user: undefined,
    };
    this.clients.set(this.clientId, this.appClient);
    this.user = { ...(options.user ?? DEFAULT_USER) };
    this.serviceAccountUser = { ...(options.serviceAccountUser ?? DEFAULT_SERVICE_ACCOUNT_USER) };
    this.tokenLatencyMs = options.tokenLatencyMs ?? 0;
    this.accessTokenTtlSeconds = options.accessTokenTtlSeconds ?? DEFAULT_ACCESS_TOKEN_TTL_SECONDS;
    this.api = new FakeProcoreApi(
      {
        url,
        counters: this.counters,
        now: () => this.now(),
        authenticate: (token) => this.authenticateApiCall(token),
        directory: () => [this.user, this.serviceAccountUser, ...FAKE_COMPANY_COLLEAGUES],
        takeFault: (pathname) => this.takeApiFault(pathname),
        hold: (release) => this.waitFor(release),
        delay: (ms) => this.delay(ms),
      },
      options.projectsPerCompany,
      options.companies,
      options.rateLimit,
    );
    if (state) this.restore(state);
    reportFakeProcoreSecret(this.clientSecret, 'client-secret');
    reportFakeProcoreSecret(this.jwtSecret.toString('base64url'), 'signing-key');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
  }

  /**
   * Starts a fake on `options.host` (default `127.0.0.1`) and `options.port` (default: any free
   * port) and resolves once it accepts connections. With `options.stateFile`, it first loads the
   * saved state (rejecting, with the file's name, if the file is unreadable or corrupt) and then
   * writes the file, so an unwritable location also fails here.
   */
  static async start(options: FakeProcoreServerOptions = {}): Promise<FakeProcoreServer> {
    validateOptions(options);
    const stateFile = options.stateFile === undefined ? undefined : resolve(options.stateFile);
    const state = stateFile === undefined ? undefined : loadState(stateFile);
    const server = createServer();
    const host = options.host ?? DEFAULT_HOST;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const procore = new FakeProcoreServer(
      server,
      `http://${formatHost(host)}:${port}`,
      options,
      stateFile,
      state,
    );
    if (stateFile !== undefined) {
      try {
        createParentDirectory(stateFile);
        procore.persist();
      } catch (error) {
        await procore.close();
        throw error;
      }
    }
    return procore;
  }

  /**
   * Calls `listener` with every secret that any fake in this process is configured with or issues
   * from now on, as it comes into existence: client secrets and signing keys (at start),
   * authorization codes, access and refresh tokens (including those restored from a state file),
   * and the encryption keys `fakeProcoreAuthOptions()` generates. Meant for leak checks: scan
   * what your app logged or answered for each of them. Returns a function that removes the
   * listener. Listeners run synchronously and must not throw.
   */
  static onSecret(listener: FakeProcoreSecretListener): () => void {
    return onFakeProcoreSecret(listener);
  }

  /**
   * Whether a fake server wrote `response`: its token responses carry tokens by design, so a
   * leak check that records every `http.ServerResponse` of the process skips them.
   */
  static isFakeResponse(response: ServerResponse): boolean {
    return isFakeProcoreResponse(response);
  }

  /** The fake's clock in epoch ms: real time, moved by {@link advanceClock} and {@link setClock}. */
  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /**
   * Moves the fake clock forward, e.g. past `expires_in` to expire access tokens or past 10
   * minutes to expire authorization codes.
   */
  advanceClock(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) {
      throw new RangeError(
        `advanceClock(${seconds}): seconds must be a finite number >= 0; use setClock() to go back`,
      );
    }
    this.clockOffsetMs += seconds * 1000;
    this.persist();
  }

  /** Sets the fake clock to `epochMs`; it keeps running with real time from there. */
  setClock(epochMs: number): void {
    if (!Number.isFinite(epochMs)) {
      throw new RangeError(`setClock(${epochMs}): epochMs must be a finite number`);
    }
    this.clockOffsetMs = epochMs - Date.now();
    this.persist();
  }

  /**
   * Makes the next `times` (default 1) matching calls misbehave. Faults queue in the order they
   * were injected; a call takes the first one whose `path` and `grantType` match.
   *
   * On REST API paths (`path: '/rest'` for every API call, or a `/rest/...` path) a fault answers
   * before the token, the rate limit and the endpoint are reached (nothing counted, nothing
   * created) unless `consumeRefreshToken: true`, which there means "the API did its work"
   * (e.g. the project was created) before the fault answered. `status` answers JSON
   * `{"errors":"Injected fault: HTTP <status>"}` unless `body` is given; `rate-limit` answers
   * Procore's 429 text; `invalid-json` a truncated JSON array; `tamper` and `hold` work as on
   * the token endpoint. {@link apiLatencyMs} still applies.
   */
  injectFault(fault: FakeProcoreFault, options: FakeProcoreFaultOptions = {}): void {
    const times = options.times ?? 1;
    if (!Number.isInteger(times) || times < 1) {
      throw new RangeError(`injectFault: times must be a positive integer, got ${times}`);
    }
    const path = options.path ?? '/oauth/token';
    if (path.startsWith('/rest') && !isRestPath(path)) {
      throw new TypeError(
        `injectFault: an API path is '/rest' or starts with '/rest/', got ${path}`,
      );
    }
    if (path !== '/oauth/token' && options.grantType !== undefined) {
      throw new TypeError(`injectFault: grantType only applies to /oauth/token, not ${path}`);
    }
    this.faults.push({ fault, path, grantType: options.grantType, remaining: times });
  }

  /**
   * Holds the answer of the next matching call (after the server did its work, so a refresh token
   * is already rotated) until `release()`: lets a test act at the exact moment Procore has
   * answered but the client has not yet received it (kill a database session, shut the app down).
   * Works on REST API paths too (`{ path: '/rest' }`): the API answers, then the answer waits.
   */
  hold(options: FakeProcoreFaultOptions = {}): FakeProcoreHold {
    let release!: () => void;
    let arrive!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const arrived = new Promise<void>((resolve) => (arrive = resolve));
    this.injectFault({ kind: 'hold', release: released, onHold: arrive }, options);
    return { arrived, release };
  }

  /** Drops every fault that has not fired yet. */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /**
   * Makes the next valid `GET /oauth/authorize` redirect with `error` (default
   * `'access_denied'`) and the echoed `state` instead of a code, as when the user clicks "Deny".
   */
  denyNextAuthorization(error = 'access_denied'): void {
    this.pendingDenial = error;
  }

  /**
   * Mints a grant for `userId` (default {@link user}'s id) without any HTTP, as if the user had
   * just authorized: handy to seed thousands of connections. A `userId` other than the current
   * user's gets a generated name and login.
   */
  issueTokens(userId: number = this.user.id): FakeProcoreTokenResponse {
    const user = userId === this.user.id ? { ...this.user } : generatedUser(userId);
    const tokens = this.issueUserTokens(this.createGrant(user));
    this.persist();
    return tokens;
  }

  /** Whether `refreshToken` would be accepted now (issued, not yet used, not revoked). */
  isRefreshTokenActive(refreshToken: string): boolean {
    return this.refreshTokens.has(refreshToken);
  }

  /** Whether `accessToken` would be accepted now (signature valid, unexpired on the fake clock, grant not revoked). */
  isAccessTokenValid(accessToken: string): boolean {
    return this.checkAccessToken(accessToken).valid;
  }

  /**
   * Revokes the grant that `token` (an access or refresh token) belongs to, without HTTP and
   * without counting a call: as when the user disconnects the app in Procore.
   * Returns whether the token was known.
   */
  revokeToken(token: string): boolean {
    const grant = this.findGrant(token);
    if (grant) {
      this.revokeGrant(grant);
      this.persist();
    }
    return grant !== undefined;
  }

  /** Zeroes every counter, the API's too (in place: references to {@link counters} stay valid). */
  resetCounters(): void {
    Object.assign(this.counters, zeroCounters());
  }

  // ---------------------------------------------------------------------------------------------
  // Clients and service accounts

  /**
   * The app's client secret the token endpoint accepts now: the configured one, or the one
   * {@link regenerateClientSecret} last returned for {@link clientId}.
   */
  get clientSecret(): string {
    return this.appClient.secret;
  }

  /**
   * Registers a service account: extra client credentials that the token endpoint accepts for
   * `grant_type=client_credentials` only (for any other grant type they answer 400
   * `unauthorized_client`; `/oauth/revoke` accepts only the app's own client). Its tokens carry its
   * client id as `aud`, answer `GET /rest/v1.0/me` with its `user`, and have their own rate-limit
   * windows. The secret is reported to {@link onSecret} listeners. Throws on a client id already in use.
   */
  addServiceAccount(
    options: FakeProcoreServiceAccountOptions = {},
  ): FakeProcoreServiceAccountCredentials {
    const n = this.serviceAccountCount + 1;
    const clientId = options.clientId ?? `fake-service-account-${n}`;
    const clientSecret = options.clientSecret ?? randomToken(24);
    if (clientId === '' || clientSecret === '') {
      throw new RangeError('addServiceAccount: clientId and clientSecret must not be empty');
    }
    if (this.clients.has(clientId)) {
      throw new RangeError(`addServiceAccount: the client id "${clientId}" is already in use`);
    }
    this.serviceAccountCount = n;
    const user = options.user ?? {
      id: DEFAULT_SERVICE_ACCOUNT_USER.id + n,
      login: `service-account-${n}@fake-procore.test`,
      name: `Fake Service Account ${n}`,
    };
    this.clients.set(clientId, {
      id: clientId,
      secret: clientSecret,
      generation: 0,
      serviceAccount: true,
      user: { ...user },
    });
    reportFakeProcoreSecret(clientSecret, 'client-secret');
    return { clientId, clientSecret };
  }

  /**
   * Gives `clientId` (a service account's, or the app's own {@link clientId}) a new random
   * secret and returns it (also reported to {@link onSecret} listeners), as an administrator
   * regenerating it in Procore: the old secret then answers 401 `invalid_client` at the token
   * endpoint, and every access token issued to that client before answers 401 (on the API, on
   * token info and in {@link isAccessTokenValid}). Refresh tokens of the app's users keep
   * working with the new secret. Not kept in the state file. Throws for an unknown client id.
   */
  regenerateClientSecret(clientId: string): string {
    const client = this.clients.get(clientId);
    if (!client) throw new RangeError(`regenerateClientSecret: unknown client id "${clientId}"`);
    client.secret = randomToken(24);
    client.generation++;
    reportFakeProcoreSecret(client.secret, 'client-secret');
    return client.secret;
  }

  // ---------------------------------------------------------------------------------------------
  // REST API

  /**
   * The companies `GET /rest/v1.0/companies` lists and `Procore-Company-Id` may name (ids are
   * strings, compared as strings). Mutable: push, remove or replace entries. Default
   * `[{ id: '1001', name: 'Acme Builders' }, { id: '9007199254740993', name: 'Big Id Construction' }]`
   * (the second id is above 2^53 and is rounded by anything that parses it as a number).
   */
  get companies(): FakeProcoreCompany[] {
    return this.api.companies;
  }

  set companies(companies: FakeProcoreCompany[]) {
    this.api.companies = companies;
  }

  /**
   * The company disconnects the app (Procore's App Management): calls with its
   * `Procore-Company-Id` answer 403 `{"errors":"App is not connected to this company"}`; the
   * user's tokens stay valid for other companies and `/me`. Throws for an id not in {@link companies}.
   */
  disconnectCompany(companyId: string): void {
    this.api.disconnectCompany(companyId);
  }

  /** Undoes {@link disconnectCompany}. Throws for an id not in {@link companies}. */
  reconnectCompany(companyId: string): void {
    this.api.reconnectCompany(companyId);
  }

  /**
   * Sets how many projects `companyId` has (`projectsPerCompany` until set). Project `n`
   * (1-based) has the id `"<companyId>-<n>"`; `POST /rest/v1.0/projects` appends one.
   */
  setProjectCount(companyId: string, count: number): void {
    this.api.setProjectCount(companyId, count);
  }

  /** How many projects `companyId` has now. */
  projectCount(companyId: string): number {
    return this.api.projectCount(companyId);
  }

  /**
   * Replaces the API's rate limit (default `{ limit: 3600, windowSeconds: 3600 }`). Budgets are
   * per access token; for service-account tokens (the app's own client-credentials tokens
   * included) per access token and `Procore-Company-Id` header. Windows are fixed, on the fake
   * clock, starting at the first call; windows already running keep their start and count.
   *
   * Every answer to a valid token carries `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and
   * `X-Rate-Limit-Reset` (the window's end, Unix seconds on the fake clock, rounded up); with a
   * spike window, they describe the window with fewer calls remaining (on a tie, the later
   * reset). A spent window answers 429, `text/plain`, "You have surpassed the max number of
   * requests for an hour. Please wait until your limit resets." with those headers
   * (`Remaining: 0`) and, with `retryAfter: true`, `Retry-After` in seconds; a 429 consumes no
   * budget. 401s carry no rate-limit headers (no token to count against).
   */
  setRateLimit(rateLimit: FakeProcoreRateLimit): void {
    this.api.setRateLimit(rateLimit);
  }

  /** Forgets every rate-limit window: every token starts with a full budget. */
  resetRateLimits(): void {
    this.api.resetRateLimits();
  }

  /**
   * Every `/rest/...` call since start or {@link clearApiRequests}, oldest first (the most
   * recent 100,000): method, path, query, `Procore-Company-Id`, whether the token was valid,
   * status, fake-clock time. It never holds a token (credential-like query values are redacted).
   */
  get apiRequests(): readonly FakeProcoreApiRequest[] {
    return this.api.requestLog;
  }

  /** Empties {@link apiRequests}. */
  clearApiRequests(): void {
    this.api.clearRequestLog();
  }

  /**
   * When set, the base URL of the `Link` headers of paginated answers instead of {@link url}
   * (e.g. `'https://evil.example'`, to test that a client refuses a link to another host).
   */
  get linkBaseUrl(): string | undefined {
    return this.api.linkBaseUrl;
  }

  set linkBaseUrl(base: string | undefined) {
    this.api.linkBaseUrl = base;
  }

  /** Latency added to every REST API answer, in ms (default `0`; for benchmarks). */
  get apiLatencyMs(): number {
    return this.api.latencyMs;
  }

  set apiLatencyMs(ms: number) {
    if (!(Number.isFinite(ms) && ms >= 0)) {
      throw new RangeError(`apiLatencyMs must be a number >= 0, got ${ms}`);
    }
    this.api.latencyMs = ms;
  }

  /**
   * Stops the server: ends hanging and delayed requests, closes every socket and resolves when
   * the server is closed. Safe to call more than once.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    for (const release of this.pendingDelays) release();
    this.pendingDelays.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // close() alone waits for open requests, and a hanging request never ends by itself.
    this.server.closeAllConnections();
    await closed;
  }

  // ---------------------------------------------------------------------------------------------
  // Routing

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    markFakeProcoreResponse(res);
    // An aborted request body also lands in the catch; send() then finds nobody to answer.
    Promise.resolve()
      .then(() => this.route(req))
      .catch(() =>
        json(500, { error: 'server_error', error_description: 'The fake Procore server failed.' }),
      )
      .then((reply) => send(res, reply))
      // Only a reply Node refuses to write (e.g. a malformed injected header) gets here.
      .catch(() => res.destroy());
  }

  private route(req: IncomingMessage): Promise<Reply> | Reply {
    const { pathname, searchParams } = new URL(req.url ?? '/', this.url);
    switch (pathname) {
      case '/oauth/authorize':
        return req.method === 'GET' ? this.authorize(searchParams) : methodNotAllowed('GET');
      case '/oauth/token':
        return req.method === 'POST' ? this.token(req) : methodNotAllowed('POST');
      case '/oauth/revoke':
        return req.method === 'POST' ? this.revoke(req) : methodNotAllowed('POST');
      case '/oauth/token/info':
        return req.method === 'GET' ? this.tokenInfo(req) : methodNotAllowed('GET');
      default:
        if (isRestPath(pathname)) return this.api.handle(req, new URL(req.url ?? '/', this.url));
        return json(404, {
          error: 'not_found',
          error_description: `No route for ${req.method} ${pathname}`,
        });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // GET /oauth/authorize

  private authorize(query: URLSearchParams): Reply {
    this.counters.authorize++;
    const problem = this.authorizeRequestProblem(query);
    if (problem) return problem;
    const redirect = new URL(query.get('redirect_uri') ?? '');
    const state = query.get('state');
    if (this.pendingDenial !== undefined) {
      redirect.searchParams.set('error', this.pendingDenial);
      this.pendingDenial = undefined;
    } else {
      redirect.searchParams.set('code', this.createAuthorizationCode(query));
    }
    if (state !== null) redirect.searchParams.set('state', state);
    return redirectTo(redirect);
  }

  /** Requests that cannot be redirected back are answered with a 400 JSON error. */
  private authorizeRequestProblem(query: URLSearchParams): Reply | undefined {
    if (query.get('client_id') !== this.clientId) {
      return oauthError(400, 'invalid_client', 'Unknown client_id.');
    }
    if (query.get('response_type') !== 'code') {
      return oauthError(400, 'unsupported_response_type', 'Only response_type=code is supported.');
    }
    if (!isAbsoluteHttpUrl(query.get('redirect_uri'))) {
      return oauthError(400, 'invalid_request', 'redirect_uri must be an absolute http(s) URL.');
    }
    const challenge = query.get('code_challenge');
    if (challenge !== null && query.get('code_challenge_method') !== 'S256') {
      return oauthError(400, 'invalid_request', 'Only code_challenge_method=S256 is supported.');
    }
    return undefined;
  }

  private createAuthorizationCode(query: URLSearchParams): string {
    const code = randomToken(24);
    reportFakeProcoreSecret(code, 'authorization-code');
    this.authorizationCodes.set(code, {
      user: { ...this.user },
      redirectUri: query.get('redirect_uri') ?? '',
      codeChallenge: query.get('code_challenge') ?? undefined,
      expiresAtMs: this.now() + AUTHORIZATION_CODE_TTL_MS,
    });
    return code;
  }

  // ---------------------------------------------------------------------------------------------
  // POST /oauth/token

  private async token(req: IncomingMessage): Promise<Reply> {
    const reply = await this.answerTokenRequest(req);
    // The work is done before the delay, so a client that times out has still lost its token.
    await this.delay(this.tokenLatencyMs);
    return reply;
  }

  private async answerTokenRequest(req: IncomingMessage): Promise<Reply> {
    const params = await readParams(req);
    if (!(params instanceof URLSearchParams)) return params;
    const grantType = params.get('grant_type') ?? '';
    this.countTokenCall(grantType);
    const fault = this.takeFault('/oauth/token', grantType);
    return fault
      ? this.answerWithFault(fault, () => this.tokenService(params))
      : this.tokenService(params);
  }

  private countTokenCall(grantType: string): void {
    if (grantType === 'authorization_code') this.counters.authorizationCode++;
    if (grantType === 'refresh_token') this.counters.refreshToken++;
    if (grantType === 'client_credentials') this.counters.clientCredentials++;
  }

  /** The token endpoint proper: client authentication, then the grant. */
  private tokenService(params: URLSearchParams): Reply {
    // Client authentication comes first: a call with a bad secret never reaches the refresh
    // token, so it does not consume it.
    const client = this.authenticateClient(params);
    if (!client) return invalidClient();
    const grantType = params.get('grant_type');
    if (client.serviceAccount && grantType !== 'client_credentials') {
      return oauthError(
        400,
        'unauthorized_client',
        'The client is not authorized to perform this request using this method.',
      );
    }
    switch (grantType) {
      case 'authorization_code':
        return this.redeemAuthorizationCode(params);
      case 'refresh_token':
        return this.redeemRefreshToken(params);
      case 'client_credentials':
        return this.grantClientCredentials(client);
      case null:
      case '':
        return oauthError(400, 'invalid_request', 'grant_type is required.');
      default:
        return oauthError(
          400,
          'unsupported_grant_type',
          'The authorization grant type is not supported.',
        );
    }
  }

  /**
   * Credentials go in the body, as Procore documents (HTTP Basic is deliberately not accepted).
   * The app's own client or a service account; undefined for anything else.
   */
  private authenticateClient(params: URLSearchParams): RegisteredClient | undefined {
    const client = this.clients.get(params.get('client_id') ?? '') ?? this.appClient;
    const idOk = constantTimeEqual(params.get('client_id') ?? '', client.id);
    const secretOk = constantTimeEqual(params.get('client_secret') ?? '', client.secret);
    return idOk && secretOk ? client : undefined;
  }

  private redeemAuthorizationCode(params: URLSearchParams): Reply {
    const code = params.get('code') ?? '';
    const issued = this.authorizationCodes.get(code);
    // Single use: any attempt burns the code, so a replay always fails.
    this.authorizationCodes.delete(code);
    if (!issued || !this.authorizationCodeMatches(issued, params)) return invalidGrant();
    const tokens = this.issueUserTokens(this.createGrant(issued.user));
    this.persist();
    return json(200, tokens, NO_STORE);
  }

  private authorizationCodeMatches(issued: AuthorizationCode, params: URLSearchParams): boolean {
    if (issued.expiresAtMs <= this.now()) return false;
    if (params.get('redirect_uri') !== issued.redirectUri) return false;
    if (issued.codeChallenge === undefined) return true;
    const verifier = params.get('code_verifier');
    return verifier !== null && constantTimeEqual(pkceChallengeOf(verifier), issued.codeChallenge);
  }

  /**
   * Procore: "any call to refresh an access token, successful or not, permanently invalidates the
   * current refresh token". `redirect_uri` is accepted and not checked.
   */
  private redeemRefreshToken(params: URLSearchParams): Reply {
    const refreshToken = params.get('refresh_token');
    if (!refreshToken) return oauthError(400, 'invalid_request', 'refresh_token is required.');
    const grant = this.consumeRefreshToken(refreshToken);
    if (!grant) {
      this.counters.rejectedRefreshTokens++;
      return invalidGrant();
    }
    this.counters.successfulRefreshes++;
    const tokens = this.issueUserTokens(grant);
    this.persist();
    return json(200, tokens, NO_STORE);
  }

  private consumeRefreshToken(refreshToken: string): Grant | undefined {
    const grant = this.refreshTokens.get(refreshToken);
    if (!grant) return undefined;
    this.refreshTokens.delete(refreshToken);
    grant.refreshToken = undefined;
    return grant;
  }

  /** Service-account tokens: an access token and, as at Procore, no refresh token. */
  private grantClientCredentials(client: RegisteredClient): Reply {
    const grant = this.createGrant(undefined);
    const { accessToken, issuedAt } = this.signAccessToken(grant, client);
    this.persist();
    return json(
      200,
      {
        access_token: accessToken,
        token_type: 'bearer',
        expires_in: this.accessTokenTtlSeconds,
        created_at: issuedAt,
      },
      NO_STORE,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // POST /oauth/revoke

  private async revoke(req: IncomingMessage): Promise<Reply> {
    const params = await readParams(req);
    if (!(params instanceof URLSearchParams)) return params;
    this.counters.revoke++;
    const fault = this.takeFault('/oauth/revoke', undefined);
    return fault
      ? this.answerWithFault(fault, () => this.revokeService(params))
      : this.revokeService(params);
  }

  /** RFC 7009: 200 even for an unknown token, so a client cannot probe which tokens exist. */
  private revokeService(params: URLSearchParams): Reply {
    if (this.authenticateClient(params) !== this.appClient) return invalidClient();
    const token = params.get('token');
    if (!token) return oauthError(400, 'invalid_request', 'token is required.');
    this.revokeToken(token);
    return json(200, {});
  }

  /** The grant of a live refresh token, or of an access token with a valid signature (even expired). */
  private findGrant(token: string): Grant | undefined {
    const byRefreshToken = this.refreshTokens.get(token);
    if (byRefreshToken) return byRefreshToken;
    const claims = this.verifyJwt(token);
    return claims ? this.grants.get(claims.grant) : undefined;
  }

  private revokeGrant(grant: Grant): void {
    grant.revoked = true;
    if (grant.refreshToken !== undefined) this.refreshTokens.delete(grant.refreshToken);
    grant.refreshToken = undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Bearer-protected endpoints

  private tokenInfo(req: IncomingMessage): Reply {
    this.counters.tokenInfo++;
    const check = this.checkAccessToken(bearerToken(req));
    if (!check.valid) return invalidToken(check.reason);
    const { grant, claims } = check;
    return json(200, {
      resource_owner_id: grant.user?.id ?? null,
      scope: [],
      expires_in_seconds: Math.max(0, claims.exp - epochSeconds(this.now())),
      application: { uid: claims.aud },
      created_at: claims.iat,
    });
  }

  /** Who a REST API call's bearer token belongs to, or why it is refused. */
  private authenticateApiCall(
    token: string | undefined,
  ): FakeProcoreApiCaller | FakeProcoreApiRefusal {
    const check = this.checkAccessToken(token);
    if (!check.valid) return check;
    const { grant, claims } = check;
    return {
      valid: true,
      tokenId: claims.jti,
      clientId: claims.aud,
      kind: grant.user ? 'user' : 'service-account',
      user: grant.user ?? this.clients.get(claims.aud)?.user ?? this.serviceAccountUser,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Grants and tokens

  private createGrant(user: FakeProcoreUser | undefined): Grant {
    const grant: Grant = { id: randomUUID(), user, refreshToken: undefined, revoked: false };
    this.grants.set(grant.id, grant);
    return grant;
  }

  /** A new access token and a new refresh token for `grant`, replacing its live refresh token. */
  private issueUserTokens(grant: Grant): FakeProcoreTokenResponse {
    const { accessToken, issuedAt } = this.signAccessToken(grant);
    if (grant.refreshToken !== undefined) this.refreshTokens.delete(grant.refreshToken);
    grant.refreshToken = randomToken(32);
    reportFakeProcoreSecret(grant.refreshToken, 'refresh-token');
    this.refreshTokens.set(grant.refreshToken, grant);
    return {
      access_token: accessToken,
      token_type: 'bearer',
      expires_in: this.accessTokenTtlSeconds,
      refresh_token: grant.refreshToken,
      created_at: issuedAt,
    };
  }

  private signAccessToken(
    grant: Grant,
    client: RegisteredClient = this.appClient,
  ): { accessToken: string; issuedAt: number } {
    const issuedAt = epochSeconds(this.now());
    const claims: FakeProcoreAccessTokenClaims = {
      iss: JWT_ISSUER,
      sub: grant.user ? String(grant.user.id) : SERVICE_ACCOUNT_SUBJECT,
      aud: client.id,
      iat: issuedAt,
      exp: issuedAt + this.accessTokenTtlSeconds,
      jti: randomUUID(),
      grant: grant.id,
    };
    // Only once the secret was regenerated, so tokens look exactly as before until then.
    if (client.generation > 0) claims.sgen = client.generation;
    const unsigned = `${base64UrlJson({ alg: 'HS256', typ: 'JWT' })}.${base64UrlJson(claims)}`;
    const accessToken = `${unsigned}.${this.hmac(unsigned)}`;
    reportFakeProcoreSecret(accessToken, 'access-token');
    return { accessToken, issuedAt };
  }

  private checkAccessToken(token: string | undefined): AccessTokenCheck {
    const claims = token === undefined ? undefined : this.verifyJwt(token);
    const grant = claims && this.grants.get(claims.grant);
    if (!claims || !grant) return { valid: false, reason: 'invalid' };
    if (grant.revoked) return { valid: false, reason: 'revoked' };
    // Issued before the client's secret was regenerated (verifyJwt vouches the client exists).
    if ((claims.sgen ?? 0) !== this.clients.get(claims.aud)?.generation) {
      return { valid: false, reason: 'revoked' };
    }
    if (claims.exp * 1000 <= this.now()) return { valid: false, reason: 'expired' };
    return { valid: true, grant, claims };
  }

  /** The claims of a JWT this server signed, whatever its expiry; undefined for anything else. */
  private verifyJwt(token: string): FakeProcoreAccessTokenClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [header, payload, signature] = parts as [string, string, string];
    if (!constantTimeEqual(signature, this.hmac(`${header}.${payload}`))) return undefined;
    const claims = parseJson(Buffer.from(payload, 'base64url').toString('utf8'));
    return isAccessTokenClaims(claims) && this.clients.has(claims.aud) ? claims : undefined;
  }

  private hmac(data: string): string {
    return createHmac('sha256', this.jwtSecret).update(data).digest('base64url');
  }

  // ---------------------------------------------------------------------------------------------
  // State file

  /**
   * Writes the state file, if there is one; call after every change of the persisted state.
   * A failed write throws (inside a request, the client gets a 500).
   */
  private persist(): void {
    if (this.stateFile === undefined) return;
    const state: PersistedState = {
      version: STATE_FILE_VERSION,
      jwtSecret: this.jwtSecret.toString('base64url'),
      clockOffsetMs: this.clockOffsetMs,
      grants: Array.from(this.grants.values(), (grant) => ({
        id: grant.id,
        user: grant.user ?? null,
        refreshToken: grant.refreshToken ?? null,
        revoked: grant.revoked,
      })),
    };
    writeFileAtomically(this.stateFile, JSON.stringify(state));
  }

  private restore(state: PersistedState): void {
    this.clockOffsetMs = state.clockOffsetMs;
    for (const saved of state.grants) {
      const grant: Grant = {
        id: saved.id,
        user: saved.user ?? undefined,
        refreshToken: saved.refreshToken ?? undefined,
        revoked: saved.revoked,
      };
      this.grants.set(grant.id, grant);
      if (grant.refreshToken !== undefined) {
        this.refreshTokens.set(grant.refreshToken, grant);
        reportFakeProcoreSecret(grant.refreshToken, 'refresh-token');
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Faults and latency

  private takeFault(
    path: FakeProcoreFaultPath,
    grantType: string | undefined,
  ): FakeProcoreFault | undefined {
    const index = this.faults.findIndex(
      (scheduled) =>
        scheduled.path === path &&
        (scheduled.grantType === undefined || scheduled.grantType === grantType),
    );
    const scheduled = this.faults[index];
    if (!scheduled) return undefined;
    scheduled.remaining--;
    if (scheduled.remaining === 0) this.faults.splice(index, 1);
    return scheduled.fault;
  }

  /** The first fault injected on an API path that `pathname` is (or is below). */
  private takeApiFault(pathname: string): FakeProcoreFault | undefined {
    const index = this.faults.findIndex(
      ({ path }) =>
        isRestPath(path) &&
        (path === '/rest' || pathname === path || pathname.startsWith(`${path}/`)),
    );
    const scheduled = this.faults[index];
    if (!scheduled) return undefined;
    scheduled.remaining--;
    if (scheduled.remaining === 0) this.faults.splice(index, 1);
    return scheduled.fault;
  }

  /** Waits for `release`, or until the server closes. */
  private async waitFor(release: Promise<void>): Promise<void> {
    await Promise.race([release, new Promise<void>((resolve) => this.pendingDelays.add(resolve))]);
  }

  /** Runs the real service first when the fault says the server did its work, then misbehaves. */
  private answerWithFault(fault: FakeProcoreFault, service: () => Reply): Reply | Promise<Reply> {
    if (fault.kind === 'tamper') return tamperReply(service(), fault.mutate);
    if (fault.kind === 'hold') return this.holdReply(service(), fault);
    if ('consumeRefreshToken' in fault && fault.consumeRefreshToken === true) service();
    return faultReply(fault, this.now(), this.accessTokenTtlSeconds);
  }

  private async holdReply(
    reply: Reply,
    fault: Extract<FakeProcoreFault, { kind: 'hold' }>,
  ): Promise<Reply> {
    fault.onHold?.();
    // close() releases pending delays; a held call must not keep a closing server open either.
    await Promise.race([
      fault.release,
      new Promise<void>((resolve) => this.pendingDelays.add(resolve)),
    ]);
    return reply;
  }

  /** A timer that {@link close} can cut short, so a closing server never waits on latency. */
  private delay(ms: number): Promise<void> {
    if (!(ms > 0)) return Promise.resolve();
    return new Promise((resolve) => {
      const release = (): void => {
        clearTimeout(timer);
        this.pendingDelays.delete(release);
        resolve();
      };
      const timer = setTimeout(release, ms);
      this.pendingDelays.add(release);
    });
  }
}

// -----------------------------------------------------------------------------------------------
// Replies

const NO_STORE: Readonly<Record<string, string>> = {
  'Cache-Control': 'no-store',
  Pragma: 'no-cache',
};

function oauthError(
  status: number,
  error: string,
  description: string,
  headers: Record<string, string> = {},
): HttpReply {
  return json(status, { error, error_description: description }, { ...NO_STORE, ...headers });
}

function invalidGrant(): HttpReply {
  return oauthError(400, 'invalid_grant', INVALID_GRANT_DESCRIPTION);
}

function invalidClient(): HttpReply {
  return oauthError(401, 'invalid_client', INVALID_CLIENT_DESCRIPTION);
}

const INVALID_TOKEN_DESCRIPTIONS: Readonly<Record<AccessTokenProblem, string>> = {
  invalid: 'The access token is invalid',
  expired: 'The access token expired',
  revoked: 'The access token was revoked',
};

function invalidToken(problem: AccessTokenProblem): HttpReply {
  return oauthError(401, 'invalid_token', INVALID_TOKEN_DESCRIPTIONS[problem], {
    'WWW-Authenticate': 'Bearer realm="Procore", error="invalid_token"',
  });
}

function redirectTo(location: URL): HttpReply {
  return {
    type: 'respond',
    status: 302,
    headers: { Location: location.toString(), ...NO_STORE },
    body: '',
  };
}

function methodNotAllowed(allow: string): HttpReply {
  return json(
    405,
    { error: 'method_not_allowed', error_description: `Use ${allow}.` },
    { Allow: allow },
  );
}

/** The real answer with its JSON body rewritten (non-JSON answers pass unchanged). */
function tamperReply(
  reply: Reply,
  mutate: (body: Record<string, unknown>) => Record<string, unknown>,
): Reply {
  if (reply.type !== 'respond') return reply;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(reply.body) as Record<string, unknown>;
  } catch {
    return reply;
  }
  return { ...reply, body: JSON.stringify(mutate(body)) };
}

function faultReply(
  fault: Exclude<FakeProcoreFault, { kind: 'tamper' } | { kind: 'hold' }>,
  nowMs: number,
  expiresIn: number,
): Reply {
  switch (fault.kind) {
    case 'status':
      return statusFaultReply(fault);
    case 'rate-limit':
      return rateLimitReply(fault.retryAfterSeconds, nowMs);
    case 'hang':
      return { type: 'hang' };
    case 'reset':
      return { type: 'reset' };
    case 'invalid-json':
      return respond(200, JSON_CONTENT_TYPE, '{"access_token":"eyJhbGciOi');
    case 'html':
      return respond(fault.status ?? 200, 'text/html; charset=utf-8', HTML_ERROR_PAGE);
    case 'oversized':
      return respond(200, JSON_CONTENT_TYPE, oversizedJson(fault.bytes ?? DEFAULT_OVERSIZED_BYTES));
    case 'missing-access-token':
      return json(200, {
        token_type: 'bearer',
        expires_in: expiresIn,
        created_at: epochSeconds(nowMs),
      });
  }
}

function statusFaultReply(fault: Extract<FakeProcoreFault, { kind: 'status' }>): HttpReply {
  const headers: Record<string, string> = {};
  if (fault.retryAfterSeconds !== undefined)
    headers['Retry-After'] = String(fault.retryAfterSeconds);
  else if (fault.retryAfterDate !== undefined)
    headers['Retry-After'] = fault.retryAfterDate.toUTCString();
  if (fault.body === undefined && fault.contentType === undefined) {
    return oauthError(
      fault.status,
      'server_error',
      `Injected fault: HTTP ${fault.status}.`,
      headers,
    );
  }
  const body = fault.body ?? JSON.stringify({ error: 'server_error' });
  const contentType =
    fault.contentType ??
    (fault.body === undefined ? JSON_CONTENT_TYPE : 'text/plain; charset=utf-8');
  return respond(fault.status, contentType, body, headers);
}

/** Procore's rate-limit answer: 429, `Retry-After` and the `X-Rate-Limit-*` headers. */
function rateLimitReply(retryAfterSeconds: number, nowMs: number): HttpReply {
  return json(
    429,
    { error: 'rate_limited', error_description: 'Too many requests.' },
    {
      'Retry-After': String(retryAfterSeconds),
      'X-Rate-Limit-Limit': '3600',
      'X-Rate-Limit-Remaining': '0',
      'X-Rate-Limit-Reset': String(epochSeconds(nowMs) + retryAfterSeconds),
    },
  );
}

/** Valid JSON of exactly `bytes` bytes (or the smallest such document, if `bytes` is smaller). */
function oversizedJson(bytes: number): string {
  const skeleton = '{"access_token":"","token_type":"bearer","expires_in":5400}';
  const padding = Math.max(0, bytes - skeleton.length);
  return skeleton.replace('""', `"${'x'.repeat(padding)}"`);
}

/** Writes `reply` unless the client is already gone. */
function send(res: ServerResponse, reply: Reply): void {
  if (res.destroyed || res.writableEnded) return;
  switch (reply.type) {
    case 'hang':
      // Left open on purpose; close() destroys the socket.
      return;
    case 'reset':
      res.socket?.resetAndDestroy();
      return;
    case 'respond':
      res.writeHead(reply.status, {
        ...reply.headers,
        'Content-Length': String(Buffer.byteLength(reply.body)),
      });
      res.end(reply.body);
  }
}

// -----------------------------------------------------------------------------------------------
// Requests

/**
 * The parameters of a form-urlencoded or JSON body, or the error reply for a body that is too
 * large or unreadable.
 */
async function readParams(req: IncomingMessage): Promise<URLSearchParams | Reply> {
  const body = await readBody(req, MAX_REQUEST_BODY_BYTES);
  if (body === undefined) {
    return json(413, {
      error: 'payload_too_large',
      error_description: `Request bodies are limited to ${MAX_REQUEST_BODY_BYTES} bytes.`,
    });
  }
  const isJson = (req.headers['content-type'] ?? '').toLowerCase().includes('application/json');
  const params = isJson
    ? jsonParams(body.toString('utf8'))
    : new URLSearchParams(body.toString('utf8'));
  return params ?? oauthError(400, 'invalid_request', 'The request body is not a JSON object.');
}

function jsonParams(text: string): URLSearchParams | undefined {
  const value = parseJson(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const params = new URLSearchParams();
  for (const [key, field] of Object.entries(value)) {
    if (typeof field === 'string' || typeof field === 'number') params.set(key, String(field));
  }
  return params;
}

// -----------------------------------------------------------------------------------------------
// State file

/** The saved state, or undefined when `file` does not exist; throws, naming `file`, otherwise. */
function loadState(file: string): PersistedState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`FakeProcoreServer: cannot read the state file ${file}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(
      `FakeProcoreServer: the state file ${file} is not valid JSON; fix or delete it`,
      { cause: error },
    );
  }
  const problem = persistedStateProblem(value);
  if (problem !== undefined) {
    throw new Error(
      `FakeProcoreServer: the state file ${file} is not a fake Procore state file (${problem}); fix or delete it`,
    );
  }
  return value as PersistedState;
}

/** What is wrong with `value` as a {@link PersistedState}, or undefined when nothing is. */
function persistedStateProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'not a JSON object';
  if (value['version'] !== STATE_FILE_VERSION)
    return `unsupported version ${JSON.stringify(value['version'])}`;
  const secret = value['jwtSecret'];
  const secretBytes = typeof secret === 'string' ? Buffer.from(secret, 'base64url') : undefined;
  // Node's base64url decoder skips what it does not understand, hence the round trip.
  if (secretBytes?.length !== JWT_SECRET_BYTES || secretBytes.toString('base64url') !== secret) {
    return 'bad jwtSecret';
  }
  if (typeof value['clockOffsetMs'] !== 'number' || !Number.isFinite(value['clockOffsetMs'])) {
    return 'bad clockOffsetMs';
  }
  const grants = value['grants'];
  if (!Array.isArray(grants)) return 'grants is not an array';
  const ids = new Set<string>();
  const refreshTokens = new Set<string>();
  for (const [index, grant] of grants.entries()) {
    if (!isPersistedGrant(grant)) return `bad grant at index ${index}`;
    if (ids.has(grant.id)) return `duplicate grant id at index ${index}`;
    ids.add(grant.id);
    if (grant.refreshToken !== null) {
      if (grant.revoked) return `revoked grant with a refresh token at index ${index}`;
      if (refreshTokens.has(grant.refreshToken)) return `duplicate refresh token at index ${index}`;
      refreshTokens.add(grant.refreshToken);
    }
  }
  return undefined;
}

function isPersistedGrant(value: unknown): value is PersistedGrant {
  return (
    isRecord(value) &&
    typeof value['id'] === 'string' &&
    value['id'] !== '' &&
    (value['user'] === null || isUser(value['user'])) &&
    (value['refreshToken'] === null ||
      (typeof value['refreshToken'] === 'string' && value['refreshToken'] !== '')) &&
    typeof value['revoked'] === 'boolean'
  );
}

function isUser(value: unknown): value is FakeProcoreUser {
  return (
    isRecord(value) &&
    Number.isSafeInteger(value['id']) &&
    typeof value['login'] === 'string' &&
    typeof value['name'] === 'string'
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function createParentDirectory(file: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new Error(`FakeProcoreServer: cannot create the directory of the state file ${file}`, {
      cause: error,
    });
  }
}

/** Writes `<file>.tmp` with mode 0600, then renames it over `file`, so a reader never sees half a file. */
function writeFileAtomically(file: string, data: string): void {
  const temporary = `${file}.tmp`;
  try {
    const fd = openSync(temporary, 'w', STATE_FILE_MODE);
    try {
      // The mode of openSync applies only to a new file (and is subject to the umask).
      fchmodSync(fd, STATE_FILE_MODE);
      writeFileSync(fd, data);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  } catch (error) {
    throw new Error(`FakeProcoreServer: cannot write the state file ${file}`, { cause: error });
  }
}

// -----------------------------------------------------------------------------------------------
// Small helpers

function zeroCounters(): FakeProcoreCounters {
  return {
    authorize: 0,
    authorizationCode: 0,
    refreshToken: 0,
    clientCredentials: 0,
    rejectedRefreshTokens: 0,
    successfulRefreshes: 0,
    revoke: 0,
    tokenInfo: 0,
    me: 0,
    api: 0,
    apiRateLimited: 0,
    apiUnauthorized: 0,
    apiForbidden: 0,
  };
}

function validateOptions(options: FakeProcoreServerOptions): void {
  if (options.clientId !== undefined && options.clientId === '') {
    throw new RangeError('FakeProcoreServer: clientId must not be empty');
  }
  if (options.clientSecret !== undefined && options.clientSecret === '') {
    throw new RangeError('FakeProcoreServer: clientSecret must not be empty');
  }
  const ttl = options.accessTokenTtlSeconds;
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0)) {
    throw new RangeError(
      `FakeProcoreServer: accessTokenTtlSeconds must be a positive integer, got ${ttl}`,
    );
  }
  if (options.stateFile !== undefined && options.stateFile === '') {
    throw new RangeError('FakeProcoreServer: stateFile must not be empty');
  }
  const latency = options.tokenLatencyMs;
  if (latency !== undefined && !(Number.isFinite(latency) && latency >= 0)) {
    throw new RangeError(`FakeProcoreServer: tokenLatencyMs must be a number >= 0, got ${latency}`);
  }
}

function generatedUser(id: number): FakeProcoreUser {
  return { id, login: `user-${id}@example.com`, name: `Fake User ${id}` };
}

/** `/rest` itself or a path below it. */
function isRestPath(path: string): boolean {
  return path === '/rest' || path.startsWith('/rest/');
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function isAbsoluteHttpUrl(value: string | null): boolean {
  if (value === null || !URL.canParse(value)) return false;
  const { protocol } = new URL(value);
  return protocol === 'http:' || protocol === 'https:';
}

function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

function pkceChallengeOf(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

function base64UrlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function epochSeconds(epochMs: number): number {
  return Math.floor(epochMs / 1000);
}

/** Compares secrets without leaking, through timing, how much of them matched. */
function constantTimeEqual(a: string, b: string): boolean {
  // Hashing first gives equal lengths, which timingSafeEqual requires.
  const digestA = createHash('sha256').update(a).digest();
  const digestB = createHash('sha256').update(b).digest();
  return timingSafeEqual(digestA, digestB);
}

function isAccessTokenClaims(value: unknown): value is FakeProcoreAccessTokenClaims {
  if (typeof value !== 'object' || value === null) return false;
  const claims = value as Record<string, unknown>;
  return (
    claims['iss'] === JWT_ISSUER &&
    typeof claims['sub'] === 'string' &&
    typeof claims['aud'] === 'string' &&
    typeof claims['iat'] === 'number' &&
    typeof claims['exp'] === 'number' &&
    typeof claims['jti'] === 'string' &&
    typeof claims['grant'] === 'string'
  );
}
