import type { IncomingMessage } from 'node:http';
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
import type {
  FakeProcoreCounters,
  FakeProcoreFault,
  FakeProcoreUser,
} from './fake-procore.types.js';

// The REST API part of the fake Procore server: `/rest/...` requests are handed to
// {@link FakeProcoreApi} by `FakeProcoreServer`, which owns tokens, clock, faults and latency.
// It does not import the server.

/** A company as the fake's API knows it. Ids are decimal strings and compared as strings. */
export interface FakeProcoreCompany {
  /**
   * Procore company id, a positive decimal integer as a string. Ids may exceed 2^53 (the default
   * `'9007199254740993'` does): the fake never turns them into numbers.
   */
  id: string;
  /** Display name. */
  name: string;
}

/**
 * A project, as `GET /rest/v1.0/projects` answers it. Ids are deterministic strings
 * `"<companyId>-<n>"`, `n` counting from 1 (e.g. `"1001-1"` … `"1001-250"`), so they never lose
 * precision and say which company they belong to.
 */
export interface FakeProcoreProject {
  id: string;
  name: string;
  company_id: string;
}

/**
 * The fake's rate limits, per access token (for service-account tokens, per access token and
 * `Procore-Company-Id` header). Set with `FakeProcoreServer.setRateLimit`.
 *
 * Windows are fixed windows on the fake clock (`now()`): a window starts at the first call after
 * the previous one ended and lasts `windowSeconds`. Every call with a valid token counts,
 * whatever it answers, except a 429: a refused call does not consume budget.
 */
export interface FakeProcoreRateLimit {
  /** Calls per window (Procore's hourly default: 3600). */
  limit: number;
  /** Window length in seconds (Procore's: 3600). */
  windowSeconds: number;
  /** Whether a 429 carries `Retry-After` (seconds until the spent window ends). Default `false`. */
  retryAfter?: boolean;
  /** Calls per spike window (Procore's short-term limit); set with `spikeWindowSeconds`. */
  spikeLimit?: number;
  /** Spike window length in seconds, e.g. `10`; set with `spikeLimit`. */
  spikeWindowSeconds?: number;
}

/** One `/rest/...` call, as `FakeProcoreServer.apiRequests` records it. Never holds a token. */
export interface FakeProcoreApiRequest {
  /** HTTP method, e.g. `'GET'`. */
  method: string;
  /** The path without its query, e.g. `/rest/v1.0/projects`. */
  path: string;
  /**
   * The query parameters (the last value of a repeated name). Values of names that look like
   * credentials (`*token*`, `*secret*`, `*password*`, `code`) read `'[redacted]'`.
   */
  query: Record<string, string>;
  /** The `Procore-Company-Id` header exactly as sent, or undefined without one. */
  companyId: string | undefined;
  /** Whether the call carried an access token the fake accepted (`'invalid'` also when missing). */
  authorization: 'valid' | 'invalid';
  /** The client id the (valid) token was issued to: the app's or a service account's. */
  clientId: string | undefined;
  /** What the (valid) token stands for: a user (authorization code) or a service account. */
  tokenKind: 'user' | 'service-account' | undefined;
  /** The status answered; `0` when an injected `hang` or `reset` fault answered nothing. */
  status: number;
  /** Arrival time on the fake clock, epoch ms. */
  at: number;
}

/** @internal Who an accepted access token belongs to. */
export interface FakeProcoreApiCaller {
  readonly valid: true;
  /** The token's `jti`: rate-limit windows are kept per token without keeping the token. */
  readonly tokenId: string;
  readonly clientId: string;
  readonly kind: 'user' | 'service-account';
  /** The user (or the service account's directory user) `GET /rest/v1.0/me` answers. */
  readonly user: FakeProcoreUser;
}

/** @internal Why an access token was refused. */
export interface FakeProcoreApiRefusal {
  readonly valid: false;
  readonly reason: 'invalid' | 'expired' | 'revoked';
}

/** @internal What {@link FakeProcoreApi} needs from the server that owns it. */
export interface FakeProcoreApiHost {
  /** The server's own base URL (`Link` headers use it unless `linkBaseUrl` is set). */
  readonly url: string;
  readonly counters: FakeProcoreCounters;
  /** The fake clock, epoch ms. */
  now(): number;
  /** Checks a bearer token (signature, expiry, revoked grant, regenerated client secret). */
  authenticate(token: string | undefined): FakeProcoreApiCaller | FakeProcoreApiRefusal;
  /** The users `GET /rest/v1.0/companies/{id}/users` lists. */
  directory(): FakeProcoreUser[];
  /** Takes the first injected fault whose path matches `pathname`, if any. */
  takeFault(pathname: string): FakeProcoreFault | undefined;
  /** Waits for `release`, or less if the server closes. */
  hold(release: Promise<void>): Promise<void>;
  /** Waits `ms`, or less if the server closes. */
  delay(ms: number): Promise<void>;
}

/** @internal An HTTP answer (the server's). */
export type FakeApiHttpReply = FakeHttpReply;

/** @internal What the API decided to do with a request (the server's `Reply`). */
export type FakeApiReply = FakeReply;

/** The companies a new fake has: one small id, one above 2^53 (compare ids as strings). */
export const DEFAULT_FAKE_PROCORE_COMPANIES: readonly Readonly<FakeProcoreCompany>[] = [
  { id: '1001', name: 'Acme Builders' },
  { id: '9007199254740993', name: 'Big Id Construction' },
];
/** Projects per company unless `projectsPerCompany` or `setProjectCount` says otherwise. */
export const DEFAULT_PROJECTS_PER_COMPANY = 250;
/** Procore's documented default: 3,600 calls per hour, per token. */
export const DEFAULT_FAKE_PROCORE_RATE_LIMIT: Readonly<FakeProcoreRateLimit> = {
  limit: 3600,
  windowSeconds: 3600,
  retryAfter: false,
};

/** Procore's 429 body (plain text), word for word from its rate-limiting page. */
export const RATE_LIMITED_MESSAGE =
  'You have surpassed the max number of requests for an hour. Please wait until your limit resets.';
/** The 403 Procore answers when a company disconnected (uninstalled) the app. */
export const COMPANY_NOT_CONNECTED_MESSAGE = 'App is not connected to this company';
/** The message of every API 401 (expired, revoked or unknown token alike). */
export const INVALID_ACCESS_TOKEN_MESSAGE = 'The access token is invalid';

const DEFAULT_PER_PAGE = 100;
const MAX_PER_PAGE = 10_000;
const MAX_REQUEST_BODY_BYTES = 64 * 1024;
/** The request log keeps the most recent calls only, so a long benchmark cannot exhaust memory. */
const MAX_LOGGED_REQUESTS = 100_000;
const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';
const COMPANY_ID_PATTERN = /^[1-9][0-9]{0,39}$/;
const COMPANY_USERS_PATH = /^\/rest\/v1\.0\/companies\/([^/]+)\/users$/;
const SECRET_QUERY_NAME = /token|secret|password|^code$/i;
const REFUSAL_DESCRIPTIONS: Readonly<Record<FakeProcoreApiRefusal['reason'], string>> = {
  invalid: 'The access token is invalid',
  expired: 'The access token expired',
  revoked: 'The access token was revoked',
};

/**
 * The fake's REST API: `GET /rest/v1.0/me`, `GET /rest/v1.0/companies`,
 * `GET|POST /rest/v1.0/projects` (paginated, `Procore-Company-Id` required),
 * `GET /rest/v1.0/companies/{id}/users`, per-token rate limits, disconnected companies, faults
 * and a request log. State lives in memory only (never in the server's state file).
 *
 * Order of checks for a call: an injected fault (answers first, as a proxy would, unless it says
 * the work was done) → the bearer token (401) → the rate limit (429) → the route (404/405) → the
 * company header (400/404/403) → the endpoint.
 *
 * @internal Used through `FakeProcoreServer`, whose methods document the behaviour.
 */
export class FakeProcoreApi {
  /** The companies every token can see. Mutable: tests may push, remove or rename. */
  companies: FakeProcoreCompany[];
  /** Base of the URLs in `Link` headers; undefined: the server's own URL. */
  linkBaseUrl: string | undefined;
  /** Latency added to every answer, in ms. */
  latencyMs = 0;

  private readonly disconnected = new Set<string>();
  private readonly projectCounts = new Map<string, number>();
  /** Names given by `POST /projects`, per company, by project number. */
  private readonly projectNames = new Map<string, Map<number, string>>();
  private readonly requests: FakeProcoreApiRequest[] = [];
  private readonly limiter: RateLimiter;

  constructor(
    private readonly host: FakeProcoreApiHost,
    private readonly projectsPerCompany: number = DEFAULT_PROJECTS_PER_COMPANY,
    companies: readonly FakeProcoreCompany[] = DEFAULT_FAKE_PROCORE_COMPANIES,
    rateLimit: FakeProcoreRateLimit = DEFAULT_FAKE_PROCORE_RATE_LIMIT,
  ) {
    validateCount('projectsPerCompany', projectsPerCompany);
    this.companies = companies.map((company) => ({ ...company }));
    this.limiter = new RateLimiter(rateLimit);
  }

  /** The request log, oldest first (the most recent 100,000 calls). */
  get requestLog(): readonly FakeProcoreApiRequest[] {
    return this.requests;
  }

  clearRequestLog(): void {
    this.requests.length = 0;
  }

  setRateLimit(rateLimit: FakeProcoreRateLimit): void {
    this.limiter.configure(rateLimit);
  }

  resetRateLimits(): void {
    this.limiter.reset();
  }

  disconnectCompany(companyId: string): void {
    this.requireCompany('disconnectCompany', companyId);
    this.disconnected.add(companyId);
  }

  reconnectCompany(companyId: string): void {
    this.requireCompany('reconnectCompany', companyId);
    this.disconnected.delete(companyId);
  }

  isCompanyConnected(companyId: string): boolean {
    return !this.disconnected.has(companyId);
  }

  setProjectCount(companyId: string, count: number): void {
    this.requireCompany('setProjectCount', companyId);
    validateCount('setProjectCount: count', count);
    this.projectCounts.set(companyId, count);
    const names = this.projectNames.get(companyId);
    if (names) for (const index of names.keys()) if (index > count) names.delete(index);
  }

  projectCount(companyId: string): number {
    return this.projectCounts.get(companyId) ?? this.projectsPerCompany;
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  /** Answers one `/rest/...` request: counts it, applies faults and latency, logs it. */
  async handle(req: IncomingMessage, url: URL): Promise<FakeApiReply> {
    this.host.counters.api++;
    // `me` counts every GET /me, answered or refused, as it always did.
    if (url.pathname === '/rest/v1.0/me' && req.method === 'GET') this.host.counters.me++;
    const at = this.host.now();
    const companyId = headerValue(req.headers['procore-company-id']);
    const caller = this.host.authenticate(bearerToken(req));
    const serve = (): Promise<FakeApiHttpReply> => this.serve(req, url, caller, companyId, at);
    const fault = this.host.takeFault(url.pathname);
    const reply = fault ? await this.answerWithFault(fault, serve) : await serve();
    const status = reply.type === 'respond' ? reply.status : 0;
    this.count(status);
    this.log({
      method: req.method ?? 'GET',
      path: url.pathname,
      query: loggedQuery(url.searchParams),
      companyId,
      authorization: caller.valid ? 'valid' : 'invalid',
      clientId: caller.valid ? caller.clientId : undefined,
      tokenKind: caller.valid ? caller.kind : undefined,
      status,
      at,
    });
    if (reply.type === 'respond') await this.host.delay(this.latencyMs);
    return reply;
  }

  private async serve(
    req: IncomingMessage,
    url: URL,
    caller: FakeProcoreApiCaller | FakeProcoreApiRefusal,
    companyId: string | undefined,
    nowMs: number,
  ): Promise<FakeApiHttpReply> {
    if (!caller.valid) return unauthorized(caller.reason);
    // Procore counts per token; a service account's budget is per token and company.
    const key =
      caller.kind === 'service-account' ? `${caller.tokenId}\n${companyId ?? ''}` : caller.tokenId;
    // Rate windows run on the arrival time, the `at` of the request log.
    const rate = this.limiter.take(key, nowMs);
    if (!rate.allowed) return rateLimited(rate, nowMs, this.limiter.retryAfter);
    const reply = await this.route(req, url, caller, companyId);
    Object.assign(reply.headers, rateLimitHeaders(rate));
    return reply;
  }

  private async route(
    req: IncomingMessage,
    url: URL,
    caller: FakeProcoreApiCaller,
    companyId: string | undefined,
  ): Promise<FakeApiHttpReply> {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    switch (path) {
      case '/rest/v1.0/me':
        return method === 'GET' ? this.me(caller) : methodNotAllowed('GET');
      case '/rest/v1.0/companies':
        return method === 'GET' ? this.listCompanies() : methodNotAllowed('GET');
      case '/rest/v1.0/projects':
        if (method === 'GET') return this.listProjects(url, companyId);
        if (method === 'POST') return this.createProject(req, companyId);
        return methodNotAllowed('GET, POST');
    }
    const users = COMPANY_USERS_PATH.exec(path);
    if (users) {
      return method === 'GET'
        ? this.listCompanyUsers(users[1] ?? '', companyId)
        : methodNotAllowed('GET');
    }
    return json(404, { errors: `No route matches ${method} ${path}`, error: 'not_found' });
  }

  private me(caller: FakeProcoreApiCaller): FakeApiHttpReply {
    const { id, login, name } = caller.user;
    return json(200, { id, login, name });
  }

  private listCompanies(): FakeApiHttpReply {
    return json(
      200,
      this.companies.map(({ id, name }) => ({ id, name })),
    );
  }

  private listProjects(url: URL, companyId: string | undefined): FakeApiHttpReply {
    const company = this.connectedCompany(companyId);
    if (!isCompany(company)) return company;
    const page = pageParameter(url.searchParams, 'page', 1);
    if (typeof page !== 'number') return page;
    const requestedPerPage = pageParameter(url.searchParams, 'per_page', DEFAULT_PER_PAGE);
    if (typeof requestedPerPage !== 'number') return requestedPerPage;
    // Like Rails pagination's max_per_page: a larger value is capped, not refused.
    const perPage = Math.min(requestedPerPage, MAX_PER_PAGE);
    const total = this.projectCount(company.id);
    const lastPage = Math.max(1, Math.ceil(total / perPage));
    const first = (page - 1) * perPage + 1;
    const items: FakeProcoreProject[] = [];
    for (let index = first; index <= Math.min(total, page * perPage); index++) {
      items.push(this.project(company, index));
    }
    const linkUrl = (target: number): string => {
      const link = new URL(url.pathname + url.search, this.linkBaseUrl ?? this.host.url);
      // Other parameters keep their order; page and per_page always come last.
      link.searchParams.delete('page');
      link.searchParams.delete('per_page');
      link.searchParams.append('page', String(target));
      link.searchParams.append('per_page', String(perPage));
      return link.toString();
    };
    const links = [`<${linkUrl(1)}>; rel="first"`];
    if (page > 1) links.push(`<${linkUrl(Math.min(page - 1, lastPage))}>; rel="prev"`);
    if (page < lastPage) links.push(`<${linkUrl(page + 1)}>; rel="next"`);
    links.push(`<${linkUrl(lastPage)}>; rel="last"`);
    return json(200, items, {
      Total: String(total),
      'Per-Page': String(perPage),
      Link: links.join(', '),
    });
  }

  private async createProject(
    req: IncomingMessage,
    companyId: string | undefined,
  ): Promise<FakeApiHttpReply> {
    const company = this.connectedCompany(companyId);
    if (!isCompany(company)) return company;
    const body = await readBody(req, MAX_REQUEST_BODY_BYTES);
    if (body === undefined) {
      return json(413, { errors: `Request bodies are limited to ${MAX_REQUEST_BODY_BYTES} bytes` });
    }
    const value = parseJson(body.toString('utf8'));
    if (!isRecord(value) || !isRecord(value['project'])) {
      return json(400, { errors: 'The body must be JSON: {"project":{"name":"..."}}' });
    }
    const name = value['project']['name'];
    if (typeof name !== 'string' || name.trim() === '') {
      return json(422, { errors: { name: ["can't be blank"] } });
    }
    const index = this.projectCount(company.id) + 1;
    this.projectCounts.set(company.id, index);
    let names = this.projectNames.get(company.id);
    if (!names) this.projectNames.set(company.id, (names = new Map()));
    names.set(index, name);
    return json(201, this.project(company, index));
  }

  private listCompanyUsers(pathCompanyId: string, companyId: string | undefined): FakeApiHttpReply {
    if (companyId !== undefined && companyId !== pathCompanyId) {
      return json(400, {
        errors: 'The Procore-Company-Id header does not match the company in the path',
      });
    }
    const company = this.connectedCompany(companyId);
    if (!isCompany(company)) return company;
    return json(
      200,
      this.host.directory().map(({ id, login, name }) => ({ id, login, name })),
    );
  }

  private project(company: FakeProcoreCompany, index: number): FakeProcoreProject {
    return {
      id: `${company.id}-${index}`,
      name: this.projectNames.get(company.id)?.get(index) ?? `${company.name} project ${index}`,
      company_id: company.id,
    };
  }

  /** The company named by the header, or the 400/404/403 answer. */
  private connectedCompany(companyId: string | undefined): FakeProcoreCompany | FakeApiHttpReply {
    if (companyId === undefined) {
      return json(400, { errors: 'The Procore-Company-Id header is required' });
    }
    if (!COMPANY_ID_PATTERN.test(companyId)) {
      return json(400, { errors: 'The Procore-Company-Id header must be a positive integer' });
    }
    // Compared as strings: 9007199254740993 must never match 9007199254740992.
    const company = this.companies.find((candidate) => candidate.id === companyId);
    if (!company) return json(404, { errors: `Company ${companyId} not found` });
    if (this.disconnected.has(company.id)) {
      return json(403, { errors: COMPANY_NOT_CONNECTED_MESSAGE });
    }
    return company;
  }

  private requireCompany(method: string, companyId: string): void {
    if (!this.companies.some((company) => company.id === companyId)) {
      throw new RangeError(`${method}: no company with id "${companyId}" in companies`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Faults, counters, log

  /**
   * An injected fault on an API path. It answers before the API is reached (nothing counted
   * against the rate limit, no project created) unless `consumeRefreshToken` (read here as "the
   * server did its work") is set; `tamper` and `hold` always let the real answer be computed.
   */
  private async answerWithFault(
    fault: FakeProcoreFault,
    serve: () => Promise<FakeApiHttpReply>,
  ): Promise<FakeApiReply> {
    switch (fault.kind) {
      case 'tamper':
        return tamperJson(await serve(), fault.mutate);
      case 'hold': {
        const reply = await serve();
        fault.onHold?.();
        await this.host.hold(fault.release);
        return reply;
      }
    }
    if ('consumeRefreshToken' in fault && fault.consumeRefreshToken === true) await serve();
    switch (fault.kind) {
      case 'status':
        return statusFaultReply(fault);
      case 'rate-limit': {
        const nowMs = this.host.now();
        const resetMs = nowMs + fault.retryAfterSeconds * 1000;
        return respond(429, TEXT_CONTENT_TYPE, RATE_LIMITED_MESSAGE, {
          'Retry-After': String(fault.retryAfterSeconds),
          ...rateLimitHeaders({ limit: this.limiter.limit, remaining: 0, resetMs }),
        });
      }
      case 'hang':
        return { type: 'hang' };
      case 'reset':
        return { type: 'reset' };
      case 'invalid-json':
        return respond(200, JSON_CONTENT_TYPE, '[{"id":"1001","name":"Acme Buil');
      case 'html':
        return respond(fault.status ?? 200, 'text/html; charset=utf-8', HTML_ERROR_PAGE);
      case 'oversized':
        return respond(200, JSON_CONTENT_TYPE, oversizedJson(fault.bytes ?? 2 * 1024 * 1024));
      case 'missing-access-token':
        return json(200, {});
    }
  }

  private count(status: number): void {
    const counters = this.host.counters;
    if (status === 401) counters.apiUnauthorized++;
    if (status === 403) counters.apiForbidden++;
    if (status === 429) counters.apiRateLimited++;
  }

  private log(entry: FakeProcoreApiRequest): void {
    this.requests.push(entry);
    // Trimmed in batches, so a long run does not shift the array on every call.
    if (this.requests.length > MAX_LOGGED_REQUESTS * 1.1) {
      this.requests.splice(0, this.requests.length - MAX_LOGGED_REQUESTS);
    }
  }
}

// -----------------------------------------------------------------------------------------------
// Rate limits

interface RateWindow {
  startMs: number;
  count: number;
}

interface RateState {
  /** What the headers report: the window closer to running out (or the spent one). */
  limit: number;
  remaining: number;
  resetMs: number;
}

interface RateDecision extends RateState {
  allowed: boolean;
}

/** Fixed windows per key: an hourly one and, optionally, a spike one. */
class RateLimiter {
  private config!: Required<Omit<FakeProcoreRateLimit, 'spikeLimit' | 'spikeWindowSeconds'>> &
    Pick<FakeProcoreRateLimit, 'spikeLimit' | 'spikeWindowSeconds'>;
  private readonly windows = new Map<string, RateWindow[]>();
  private takesSinceSweep = 0;

  constructor(config: FakeProcoreRateLimit) {
    this.configure(config);
  }

  get limit(): number {
    return this.config.limit;
  }

  get retryAfter(): boolean {
    return this.config.retryAfter;
  }

  configure(config: FakeProcoreRateLimit): void {
    validateLimit('limit', config.limit);
    validateSeconds('windowSeconds', config.windowSeconds);
    if ((config.spikeLimit === undefined) !== (config.spikeWindowSeconds === undefined)) {
      throw new RangeError('setRateLimit: set spikeLimit and spikeWindowSeconds together');
    }
    if (config.spikeLimit !== undefined) validateLimit('spikeLimit', config.spikeLimit);
    if (config.spikeWindowSeconds !== undefined) {
      validateSeconds('spikeWindowSeconds', config.spikeWindowSeconds);
    }
    this.config = { ...config, retryAfter: config.retryAfter ?? false };
  }

  reset(): void {
    this.windows.clear();
  }

  /** Counts a call for `key` unless a window is spent; says what the headers report. */
  take(key: string, nowMs: number): RateDecision {
    this.sweep(nowMs);
    const specs = this.specs();
    let windows = this.windows.get(key);
    if (!windows) this.windows.set(key, (windows = []));
    const states: RateState[] = specs.map((spec, index) => {
      let window = windows[index];
      if (!window || nowMs >= window.startMs + spec.windowMs) {
        window = windows[index] = { startMs: nowMs, count: 0 };
      }
      return {
        limit: spec.limit,
        remaining: Math.max(0, spec.limit - window.count),
        resetMs: window.startMs + spec.windowMs,
      };
    });
    const spent = states.filter((state) => state.remaining === 0);
    if (spent.length > 0) return { allowed: false, ...latestReset(spent) };
    for (const [index, state] of states.entries()) {
      windows[index]!.count++;
      state.remaining--;
    }
    // Procore reports whichever window is closer to running out; on a tie, the later reset.
    const fewest = Math.min(...states.map((state) => state.remaining));
    return {
      allowed: true,
      ...latestReset(states.filter((state) => state.remaining === fewest)),
    };
  }

  private specs(): { limit: number; windowMs: number }[] {
    const specs = [{ limit: this.config.limit, windowMs: this.config.windowSeconds * 1000 }];
    const { spikeLimit, spikeWindowSeconds } = this.config;
    if (spikeLimit !== undefined && spikeWindowSeconds !== undefined) {
      specs.push({ limit: spikeLimit, windowMs: spikeWindowSeconds * 1000 });
    }
    return specs;
  }

  /** Drops keys whose windows have all ended, now and then, so old tokens do not pile up. */
  private sweep(nowMs: number): void {
    if (++this.takesSinceSweep < 10_000) return;
    this.takesSinceSweep = 0;
    const longestMs = Math.max(...this.specs().map((spec) => spec.windowMs));
    for (const [key, windows] of this.windows) {
      if (windows.every((window) => nowMs >= window.startMs + longestMs)) this.windows.delete(key);
    }
  }
}

function latestReset(states: RateState[]): RateState {
  return states.reduce((a, b) => (b.resetMs > a.resetMs ? b : a));
}

/** `X-Rate-Limit-Reset` is the window's end in Unix seconds, rounded up (never early). */
function rateLimitHeaders(state: RateState): Record<string, string> {
  return {
    'X-Rate-Limit-Limit': String(state.limit),
    'X-Rate-Limit-Remaining': String(state.remaining),
    'X-Rate-Limit-Reset': String(Math.ceil(state.resetMs / 1000)),
  };
}

function rateLimited(state: RateState, nowMs: number, retryAfter: boolean): FakeApiHttpReply {
  const headers = rateLimitHeaders(state);
  if (retryAfter) {
    headers['Retry-After'] = String(Math.max(1, Math.ceil((state.resetMs - nowMs) / 1000)));
  }
  return respond(429, TEXT_CONTENT_TYPE, RATE_LIMITED_MESSAGE, headers);
}

// -----------------------------------------------------------------------------------------------
// Replies

/**
 * Every API 401: Procore's `errors` message, plus the OAuth `error`/`error_description` pair the
 * fake's `/me` always answered (the description says which problem it was).
 */
function unauthorized(reason: FakeProcoreApiRefusal['reason']): FakeApiHttpReply {
  return json(
    401,
    {
      errors: INVALID_ACCESS_TOKEN_MESSAGE,
      error: 'invalid_token',
      error_description: REFUSAL_DESCRIPTIONS[reason],
    },
    { 'WWW-Authenticate': 'Bearer realm="Procore", error="invalid_token"' },
  );
}

function methodNotAllowed(allow: string): FakeApiHttpReply {
  return json(405, { errors: `Use ${allow}`, error: 'method_not_allowed' }, { Allow: allow });
}

function statusFaultReply(fault: Extract<FakeProcoreFault, { kind: 'status' }>): FakeApiHttpReply {
  const headers: Record<string, string> = {};
  if (fault.retryAfterSeconds !== undefined) {
    headers['Retry-After'] = String(fault.retryAfterSeconds);
  } else if (fault.retryAfterDate !== undefined) {
    headers['Retry-After'] = fault.retryAfterDate.toUTCString();
  }
  if (fault.body === undefined) {
    return respond(
      fault.status,
      fault.contentType ?? JSON_CONTENT_TYPE,
      JSON.stringify({ errors: `Injected fault: HTTP ${fault.status}` }),
      headers,
    );
  }
  return respond(fault.status, fault.contentType ?? TEXT_CONTENT_TYPE, fault.body, headers);
}

/** The real answer with its JSON object body rewritten (other bodies pass unchanged). */
function tamperJson(
  reply: FakeApiHttpReply,
  mutate: (body: Record<string, unknown>) => Record<string, unknown>,
): FakeApiHttpReply {
  const body = parseJson(reply.body);
  return isRecord(body) ? { ...reply, body: JSON.stringify(mutate(body)) } : reply;
}

/** A valid JSON array of about `bytes` bytes. */
function oversizedJson(bytes: number): string {
  const skeleton = '[{"id":"1","name":""}]';
  return skeleton.replace('""', `"${'x'.repeat(Math.max(0, bytes - skeleton.length))}"`);
}

// -----------------------------------------------------------------------------------------------
// Requests

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

function loggedQuery(params: URLSearchParams): Record<string, string> {
  const query: Record<string, string> = {};
  for (const [name, value] of params) {
    query[name] = SECRET_QUERY_NAME.test(name) ? '[redacted]' : value;
  }
  return query;
}

/** A positive integer query parameter, its default when absent, or the 400 answer. */
function pageParameter(
  params: URLSearchParams,
  name: string,
  fallback: number,
): number | FakeApiHttpReply {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const value = /^[0-9]{1,15}$/.test(raw) ? Number(raw) : 0;
  return value >= 1 ? value : json(400, { errors: `${name} must be a positive integer` });
}

// -----------------------------------------------------------------------------------------------
// Small helpers

function isCompany(value: FakeProcoreCompany | FakeApiHttpReply): value is FakeProcoreCompany {
  return !('type' in value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function validateCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`FakeProcoreServer: ${name} must be an integer >= 0, got ${value}`);
  }
}

function validateLimit(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`setRateLimit: ${name} must be a positive integer, got ${value}`);
  }
}

function validateSeconds(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`setRateLimit: ${name} must be a number > 0, got ${value}`);
  }
}
