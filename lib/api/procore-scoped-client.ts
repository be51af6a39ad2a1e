import { setTimeout as sleep } from 'node:timers/promises';
import { ProcoreApiError } from '../errors/procore-api.error.js';
import { ProcoreAuthError } from '../errors/procore-auth.error.js';
import { mayShowProviderText } from '../errors/provider-text.js';
import { ProcoreRateLimitedError } from '../errors/procore-rate-limited.error.js';
import { retryDelayMs } from '../oauth/retry-policy.js';
import { resolveApiUrl, type ProcoreQueryValue } from './api-url.js';
import { normalizeCompanyId, type ProcoreCompanyId } from './company-id.js';
import { parseLinkHeader } from './link-header.js';
import type { ApiContext, TokenHolder } from './procore-api.context.js';
import { ApiTransportError, type ApiExchange } from './procore-api.transport.js';
import {
  RateLimitWaitExceeded,
  readRateLimit,
  readRetryAfter,
  type ProcoreRateLimitState,
} from './rate-limit.governor.js';

/** Per-call options of `ProcoreScopedClient`. */
export interface ProcoreRequestOptions {
  /** Query parameters; arrays repeat the key, `undefined`/`null` are left out. */
  query?: Record<string, ProcoreQueryValue>;
  /** A JSON body (sent with `Content-Type: application/json`). */
  body?: unknown;
  /** Extra headers. `Authorization` and `Procore-Company-Id` are the client's and cannot be set here. */
  headers?: Record<string, string>;
  /** The company of this call, overriding the client's (`null`: send no company header). */
  companyId?: ProcoreCompanyId | null;
  /** Aborts the call (and any wait for a rate limit). */
  signal?: AbortSignal;
  /** Per-attempt timeout in milliseconds. Default `api.timeoutMs` (30 s). */
  timeoutMs?: number;
  /**
   * Lets POST/PATCH be retried after a 5xx, a timeout or a 429 (GET, HEAD, PUT and DELETE always
   * are). Only when repeating the call cannot create a second record.
   */
  idempotent?: boolean;
}

/** Options of `paginate()`. */
export interface ProcorePaginateOptions extends Omit<ProcoreRequestOptions, 'body' | 'idempotent'> {
  /** Items per page (`per_page`), at most 10,000. Default `100`. */
  perPage?: number;
}

/** A whole answer of `request()`. */
export interface ProcoreResponse<T> {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string>;
  /** The parsed JSON body (`undefined` for an empty body). */
  data: T;
  /** Procore's rate-limit headers of this answer. */
  rateLimit: ProcoreRateLimitState;
}

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const ALWAYS_IDEMPOTENT = new Set<Method>(['GET', 'HEAD', 'PUT', 'DELETE']);
/** User tokens reach these without a company; service accounts still send theirs. */
const COMPANYLESS_PATH = /^\/rest\/v[0-9.]+\/(?:me|companies)\/?$/;
const RESERVED_HEADERS = new Set(['authorization', 'procore-company-id', 'host', 'content-length']);
/** A bound on follow-ups (401 recovery, waits, retries) of one call, whatever the options. */
const MAX_ATTEMPTS = 12;

/**
 * A Procore API client bound to one token holder (an owner or a service account) and optionally
 * one company. Calls go to the configured API host only; 401, 403 "not connected", 429/503 and
 * pagination are handled here, once. Get one from `ProcoreClient` or `@ProcoreApi()`.
 * @publicApi
 */
export class ProcoreScopedClient {
  /** @internal */
  constructor(
    private readonly context: ApiContext,
    private readonly holder: TokenHolder,
    /** The company every call is scoped to, as sent (exact decimal). */
    readonly companyId: string | undefined,
  ) {}

  /** The same holder, scoped to another company. */
  withCompany(companyId: ProcoreCompanyId): ProcoreScopedClient {
    return new ProcoreScopedClient(this.context, this.holder, normalizeCompanyId(companyId));
  }

  get<T = unknown>(path: string, options?: ProcoreRequestOptions): Promise<T> {
    return this.data<T>('GET', path, options);
  }

  post<T = unknown>(path: string, options?: ProcoreRequestOptions): Promise<T> {
    return this.data<T>('POST', path, options);
  }

  put<T = unknown>(path: string, options?: ProcoreRequestOptions): Promise<T> {
    return this.data<T>('PUT', path, options);
  }

  patch<T = unknown>(path: string, options?: ProcoreRequestOptions): Promise<T> {
    return this.data<T>('PATCH', path, options);
  }

  delete<T = unknown>(path: string, options?: ProcoreRequestOptions): Promise<T> {
    return this.data<T>('DELETE', path, options);
  }

  /**
   * Every item of every page of a list endpoint: `page`/`per_page`, then the `Link` header's
   * `rel="next"` (refused if it names another host). A list that is not paginated (no `Link`)
   * yields its one page.
   */
  async *paginate<T = unknown>(
    path: string,
    options: ProcorePaginateOptions = {},
  ): AsyncIterable<T> {
    const { perPage = 100, ...rest } = options;
    let target: string | undefined = path;
    let query: ProcoreRequestOptions['query'] = { page: 1, ...rest.query, per_page: perPage };
    const seen = new Set<string>();
    while (target !== undefined) {
      const answer: ProcoreResponse<unknown> = await this.request('GET', target, {
        ...rest,
        query,
      });
      if (!Array.isArray(answer.data)) {
        throw new ProcoreApiError(
          answer.status,
          this.describe('GET', target, answer.headers),
          'expected a JSON array',
        );
      }
      yield* answer.data as T[];
      const next = parseLinkHeader(answer.headers.link).get('next');
      if (next === undefined || seen.has(next)) break;
      seen.add(next);
      target = next;
      query = undefined; // the next link carries its own query
    }
  }

  /** The whole answer: status, headers, parsed body and rate-limit state. */
  async request<T = unknown>(
    method: Method,
    path: string,
    options: ProcoreRequestOptions = {},
  ): Promise<ProcoreResponse<T>> {
    const url = resolveApiUrl(this.context.apiBase, path, options.query);
    const companyId =
      options.companyId === null
        ? undefined
        : options.companyId !== undefined
          ? normalizeCompanyId(options.companyId)
          : this.companyId;
    const sendCompany =
      companyId !== undefined &&
      (this.holder.kind === 'serviceAccount' ||
        !COMPANYLESS_PATH.test(url.pathname.slice(this.context.apiBasePath.length)));
    const holderKey = this.holder.rateLimitKey(sendCompany ? companyId : undefined);
    if (sendCompany) this.context.disconnects.assertConnected(this.holder, companyId as string);

    const idempotent = ALWAYS_IDEMPOTENT.has(method) || options.idempotent === true;
    const startedAt = Date.now();
    const deadline = startedAt + this.context.options.maxRateLimitWaitMs;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    let token = await this.holder.token();
    let recovered = false;
    let retries = 0;
    const place = {}; // this call's place in the holder's line, kept across attempts
    for (let attempt = 1; ; attempt++) {
      await this.acquire(holderKey, deadline, method, url, options.signal, place);
      let exchange: ApiExchange;
      try {
        exchange = await this.context.transport.send({
          method,
          url,
          headers: this.headers(token, sendCompany ? companyId : undefined, body, options.headers),
          body,
          timeoutMs: options.timeoutMs ?? this.context.options.timeoutMs,
          signal: options.signal,
        });
      } catch (error) {
        this.context.governor.release(holderKey, undefined, undefined);
        const failure = error instanceof ApiTransportError ? error.failure : 'no_answer';
        const retryable = failure === 'not_sent' || (failure === 'no_answer' && idempotent);
        if (retryable && retries < this.context.options.retries && attempt < MAX_ATTEMPTS) {
          await sleep(this.backoff(retries++), undefined, { signal: options.signal });
          continue;
        }
        throw this.transportError(method, url, error, attempt, startedAt, options.signal);
      }

      const rateLimit = readRateLimit(exchange.headers);
      this.context.rateLimitSeen(this.holder, rateLimit);
      const status = exchange.status;
      const retryAt =
        status === 429
          ? (readRetryAfter(exchange.headers['retry-after']) ??
            rateLimit.resetAt?.getTime() ??
            Date.now() + 1_000)
          : status === 503
            ? readRetryAfter(exchange.headers['retry-after'])
            : undefined;
      this.context.governor.release(
        holderKey,
        rateLimit,
        retryAt === undefined ? undefined : { retryAt },
      );

      if (status === 401 && !recovered && attempt < MAX_ATTEMPTS) {
        // Procore did not process the call: recover the token once (coalesced), then retry.
        recovered = true;
        try {
          token = await this.holder.recover(token);
        } catch (error) {
          this.context.log(method, url, status, startedAt, attempt);
          throw error;
        }
        continue;
      }
      if (status === 403 && sendCompany && /not connected to this company/i.test(exchange.body)) {
        this.context.log(method, url, status, startedAt, attempt);
        throw this.context.disconnects.disconnected(this.holder, companyId as string);
      }
      if (status === 429) {
        this.context.rateLimited(this.holder, method, url, new Date(retryAt as number));
        if (idempotent && (retryAt as number) <= deadline && attempt < MAX_ATTEMPTS) continue;
        this.context.log(method, url, status, startedAt, attempt);
        throw new ProcoreRateLimitedError(method, this.pathOf(url), new Date(retryAt as number));
      }
      if (
        status >= 500 &&
        idempotent &&
        retries < this.context.options.retries &&
        attempt < MAX_ATTEMPTS
      ) {
        if (retryAt === undefined)
          await sleep(this.backoff(retries), undefined, { signal: options.signal });
        retries++;
        if (retryAt === undefined || retryAt <= deadline) continue;
      }
      this.context.log(method, url, status, startedAt, attempt);
      if (status >= 200 && status < 300) {
        const data = parseSuccess(exchange);
        if (data === NOT_JSON) {
          // A proxy's page or a truncated document: never handed out as data.
          throw new ProcoreApiError(
            status,
            this.describe(method, url.toString(), exchange.headers),
            'the answer is not JSON',
          );
        }
        return { status, headers: exchange.headers, data: data as T, rateLimit };
      }
      throw new ProcoreApiError(
        status,
        this.describe(method, url.toString(), exchange.headers),
        safeMessage(exchange.body),
      );
    }
  }

  private async data<T>(method: Method, path: string, options?: ProcoreRequestOptions): Promise<T> {
    return (await this.request<T>(method, path, options)).data;
  }

  /** Waits for the holder's rate limit, or fails with `ProcoreRateLimitedError`. */
  private async acquire(
    holderKey: string,
    deadline: number,
    method: Method,
    url: URL,
    signal: AbortSignal | undefined,
    place: { ticket?: number },
  ): Promise<void> {
    try {
      await this.context.governor.acquire(holderKey, deadline, signal, place);
    } catch (error) {
      if (error instanceof RateLimitWaitExceeded) {
        throw new ProcoreRateLimitedError(method, this.pathOf(url), new Date(error.retryAt));
      }
      throw error;
    }
  }

  private headers(
    token: string,
    companyId: string | undefined,
    body: string | undefined,
    extra: Record<string, string> | undefined,
  ): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    for (const [name, value] of Object.entries(extra ?? {})) {
      if (!RESERVED_HEADERS.has(name.toLowerCase())) headers[name.toLowerCase()] = value;
    }
    headers.authorization = `Bearer ${token}`;
    if (companyId !== undefined) headers['procore-company-id'] = companyId;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return headers;
  }

  private backoff(retry: number): number {
    // Exponential backoff with jitter, the login host's policy with the API's base delay.
    return retryDelayMs({ ...this.context.options, maxRetryAfterMs: 0 }, retry, undefined) ?? 0;
  }

  private transportError(
    method: Method,
    url: URL,
    error: unknown,
    attempts: number,
    startedAt: number,
    signal: AbortSignal | undefined,
  ): unknown {
    if (error instanceof ProcoreAuthError) return error;
    // The caller's own abort: rethrow its reason (an AbortError by default), as fetch does.
    if (error instanceof ApiTransportError && error.failure === 'aborted')
      return signal?.reason ?? error;
    this.context.log(method, url, 0, startedAt, attempts);
    const detail = error instanceof ApiTransportError ? error.detail : 'network error';
    return new ProcoreApiError(
      0,
      this.describe(method, url.toString(), {}),
      `no answer (${detail})`,
      { cause: error },
    );
  }

  private pathOf(url: URL): string {
    return url.pathname.slice(this.context.apiBasePath.length) || '/';
  }

  private describe(method: string, target: string, headers: Record<string, string>) {
    const path = target.startsWith('/')
      ? target.replace(/[?#].*$/, '')
      : this.pathOf(new URL(target));
    return { method, path, requestId: safeRequestId(headers['x-request-id']) };
  }
}

const NOT_JSON = Symbol('not JSON');

/** A 2xx body: JSON, or nothing (204); anything else is `NOT_JSON`. */
function parseSuccess(exchange: ApiExchange): unknown {
  if (exchange.body.length === 0) return undefined;
  try {
    return JSON.parse(exchange.body) as unknown;
  } catch {
    return NOT_JSON;
  }
}

function parseJson(body: string): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return body;
  }
}

/** Procore's own error text, when it is short and cannot carry a token. */
function safeMessage(body: string): string | undefined {
  const parsed = parseJson(body);
  const candidate =
    typeof parsed === 'string'
      ? parsed
      : parsed && typeof parsed === 'object'
        ? [
            (parsed as Record<string, unknown>).errors,
            (parsed as Record<string, unknown>).error,
            (parsed as Record<string, unknown>).message,
          ].find((value): value is string => typeof value === 'string')
        : undefined;
  if (candidate === undefined || !mayShowProviderText(candidate) || candidate.includes('eyJ')) {
    return undefined;
  }
  return candidate.replace(/\s+/g, ' ').trim();
}

function safeRequestId(value: string | undefined): string | undefined {
  return value !== undefined && /^[A-Za-z0-9._:-]{1,128}$/.test(value) ? value : undefined;
}
