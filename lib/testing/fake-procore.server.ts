import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { bearerToken, json, send, type FakeReply as Reply } from './fake-http.js';
import {
  FakeProcoreApi,
  type FakeProcoreApiCaller,
  type FakeProcoreApiRefusal,
  type FakeProcoreApiRequest,
  type FakeProcoreCompany,
  type FakeProcoreRateLimit,
} from './fake-procore-api.js';
import {
  constantTimeEqual,
  epochSeconds,
  JWT_SECRET_BYTES,
  pkceChallengeOf,
  randomToken,
} from './fake-procore-crypto.js';
import {
  faultReply,
  FakeProcoreFaultQueue,
  isRestPath,
  tamperReply,
} from './fake-procore-faults.js';
import { FakeProcoreGrants, type RegisteredClient } from './fake-procore-grants.js';
import {
  invalidClient,
  invalidGrant,
  invalidToken,
  methodNotAllowed,
  NO_STORE,
  oauthError,
  readParams,
  redirectTo,
} from './fake-procore-replies.js';
import {
  isFakeProcoreResponse,
  markFakeProcoreResponse,
  onFakeProcoreSecret,
  reportFakeProcoreSecret,
  type FakeProcoreSecretListener,
} from './fake-procore-secrets.js';
import {
  DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
  DEFAULT_CLIENT_ID,
  DEFAULT_CLIENT_SECRET,
  DEFAULT_HOST,
  DEFAULT_SERVICE_ACCOUNT_USER,
  DEFAULT_USER,
  validateOptions,
  type FakeProcoreServerOptions,
} from './fake-procore-server.options.js';
import {
  createParentDirectory,
  loadState,
  persistedState,
  writeFileAtomically,
  type PersistedState,
} from './fake-procore-state-file.js';
import type {
  FakeProcoreCounters,
  FakeProcoreFault,
  FakeProcoreFaultOptions,
  FakeProcoreHold,
  FakeProcoreServiceAccountCredentials,
  FakeProcoreServiceAccountOptions,
  FakeProcoreTokenResponse,
  FakeProcoreUser,
} from './fake-procore.types.js';

// The server itself: its public, test-facing methods and its OAuth endpoints. What it knows
// (clients, grants, tokens) is in `fake-procore-grants.ts`, its REST API in `fake-procore-api.ts`,
// fault injection in `fake-procore-faults.ts`, the state file in `fake-procore-state-file.ts`.

/** Besides {@link FakeProcoreServer.user} and the service account: who else is in every company's directory. */
const FAKE_COMPANY_COLLEAGUES: readonly Readonly<FakeProcoreUser>[] = [
  { id: 4343, login: 'grace@example.com', name: 'Grace Hopper' },
  { id: 4444, login: 'alan@example.com', name: 'Alan Turing' },
];
const AUTHORIZATION_CODE_TTL_MS = 10 * 60 * 1000;

/** An issued, not yet redeemed authorization code. The client is implied: the fake has one. */
interface AuthorizationCode {
  readonly user: FakeProcoreUser;
  readonly redirectUri: string;
  readonly codeChallenge: string | undefined;
  readonly expiresAtMs: number;
}

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
 * @publicApi
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

  /** Clients, grants and the tokens they were issued. */
  private readonly grants: FakeProcoreGrants;
  private serviceAccountCount = 0;
  /** The REST API (`/rest/...`). */
  private readonly api: FakeProcoreApi;
  /** Absolute path of the state file; undefined when nothing is persisted. */
  private readonly stateFile: string | undefined;
  private readonly authorizationCodes = new Map<string, AuthorizationCode>();
  private readonly faults = new FakeProcoreFaultQueue();
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
    this.clientId = options.clientId ?? DEFAULT_CLIENT_ID;
    this.grants = new FakeProcoreGrants(
      {
        id: this.clientId,
        secret: options.clientSecret ?? DEFAULT_CLIENT_SECRET,
        generation: 0,
        serviceAccount: false,
        user: undefined,
      },
      state ? Buffer.from(state.jwtSecret, 'base64url') : randomBytes(JWT_SECRET_BYTES),
      { now: () => this.now(), accessTokenTtlSeconds: () => this.accessTokenTtlSeconds },
    );
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
        takeFault: (pathname) => this.faults.takeApi(pathname),
        hold: (release) => this.waitFor(release),
        delay: (ms) => this.delay(ms),
      },
      options.projectsPerCompany,
      options.companies,
      options.rateLimit,
    );
    if (state) {
      this.clockOffsetMs = state.clockOffsetMs;
      this.grants.restore(state.grants);
    }
    reportFakeProcoreSecret(this.clientSecret, 'client-secret');
    reportFakeProcoreSecret(this.grants.signingSecret, 'signing-key');
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
    this.faults.add(fault, options);
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
    this.faults.clear();
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
    const tokens = this.grants.issueUserTokens(this.grants.create(user));
    this.persist();
    return tokens;
  }

  /** Whether `refreshToken` would be accepted now (issued, not yet used, not revoked). */
  isRefreshTokenActive(refreshToken: string): boolean {
    return this.grants.isRefreshTokenActive(refreshToken);
  }

  /** Whether `accessToken` would be accepted now (signature valid, unexpired on the fake clock, grant not revoked). */
  isAccessTokenValid(accessToken: string): boolean {
    return this.grants.checkAccessToken(accessToken).valid;
  }

  /**
   * Revokes the grant that `token` (an access or refresh token) belongs to, without HTTP and
   * without counting a call: as when the user disconnects the app in Procore.
   * Returns whether the token was known.
   */
  revokeToken(token: string): boolean {
    const grant = this.grants.find(token);
    if (grant) {
      this.grants.revoke(grant);
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
    return this.grants.appClient.secret;
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
    if (this.grants.clients.has(clientId)) {
      throw new RangeError(`addServiceAccount: the client id "${clientId}" is already in use`);
    }
    this.serviceAccountCount = n;
    const user = options.user ?? {
      id: DEFAULT_SERVICE_ACCOUNT_USER.id + n,
      login: `service-account-${n}@fake-procore.test`,
      name: `Fake Service Account ${n}`,
    };
    this.grants.clients.set(clientId, {
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
    const client = this.grants.clients.get(clientId);
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
    const fault = this.faults.takeOAuth('/oauth/token', grantType);
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
    return this.grants.authenticateClient(
      params.get('client_id') ?? '',
      params.get('client_secret') ?? '',
    );
  }

  private redeemAuthorizationCode(params: URLSearchParams): Reply {
    const code = params.get('code') ?? '';
    const issued = this.authorizationCodes.get(code);
    // Single use: any attempt burns the code, so a replay always fails.
    this.authorizationCodes.delete(code);
    if (!issued || !this.authorizationCodeMatches(issued, params)) return invalidGrant();
    const tokens = this.grants.issueUserTokens(this.grants.create(issued.user));
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
    const grant = this.grants.consumeRefreshToken(refreshToken);
    if (!grant) {
      this.counters.rejectedRefreshTokens++;
      return invalidGrant();
    }
    this.counters.successfulRefreshes++;
    const tokens = this.grants.issueUserTokens(grant);
    this.persist();
    return json(200, tokens, NO_STORE);
  }

  /** Service-account tokens: an access token and, as at Procore, no refresh token. */
  private grantClientCredentials(client: RegisteredClient): Reply {
    const grant = this.grants.create(undefined);
    const { accessToken, issuedAt } = this.grants.signAccessToken(grant, client);
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
    const fault = this.faults.takeOAuth('/oauth/revoke', undefined);
    return fault
      ? this.answerWithFault(fault, () => this.revokeService(params))
      : this.revokeService(params);
  }

  /** RFC 7009: 200 even for an unknown token, so a client cannot probe which tokens exist. */
  private revokeService(params: URLSearchParams): Reply {
    if (this.authenticateClient(params) !== this.grants.appClient) return invalidClient();
    const token = params.get('token');
    if (!token) return oauthError(400, 'invalid_request', 'token is required.');
    this.revokeToken(token);
    return json(200, {});
  }

  // ---------------------------------------------------------------------------------------------
  // Bearer-protected endpoints

  private tokenInfo(req: IncomingMessage): Reply {
    this.counters.tokenInfo++;
    const check = this.grants.checkAccessToken(bearerToken(req));
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
    const check = this.grants.checkAccessToken(token);
    if (!check.valid) return check;
    const { grant, claims } = check;
    return {
      valid: true,
      tokenId: claims.jti,
      clientId: claims.aud,
      kind: grant.user ? 'user' : 'service-account',
      user: grant.user ?? this.grants.clients.get(claims.aud)?.user ?? this.serviceAccountUser,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // State file

  /**
   * Writes the state file, if there is one; call after every change of the persisted state.
   * A failed write throws (inside a request, the client gets a 500).
   */
  private persist(): void {
    if (this.stateFile === undefined) return;
    const state = persistedState({
      jwtSecret: this.grants.signingSecret,
      clockOffsetMs: this.clockOffsetMs,
      grants: this.grants.toPersisted(),
    });
    writeFileAtomically(this.stateFile, JSON.stringify(state));
  }

  // ---------------------------------------------------------------------------------------------
  // Faults and latency

  /** Waits for `release`, or until the server closes. */
  private async waitFor(release: Promise<void>): Promise<void> {
    await Promise.race([release, new Promise<void>((resolve) => this.pendingDelays.add(resolve))]);
  }

  /** Runs the real service first when the fault says the server did its work, then misbehaves. */
  private answerWithFault(fault: FakeProcoreFault, service: () => Reply): Reply | Promise<Reply> {
    if (fault.kind === 'tamper') return tamperReply(service(), fault.mutate);
    if (fault.kind === 'hold') return this.holdReply(service(), fault);
    if ('consumeRefreshToken' in fault && fault.consumeRefreshToken === true) service();
    return faultReply(fault, epochSeconds(this.now()), this.accessTokenTtlSeconds);
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

function generatedUser(id: number): FakeProcoreUser {
  return { id, login: `user-${id}@example.com`, name: `Fake User ${id}` };
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function isAbsoluteHttpUrl(value: string | null): boolean {
  if (value === null || !URL.canParse(value)) return false;
  const { protocol } = new URL(value);
  return protocol === 'http:' || protocol === 'https:';
}
