import type { Logger } from '@nestjs/common';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreCompanyDisconnectedError } from '../errors/procore-company-disconnected.error.js';
import { ProcoreAuthEventType, type ProcoreAuthEvents } from '../events/procore-auth.events.js';
import type { ProcoreApiTransport } from './procore-api.transport.js';
import type { ProcoreMetrics } from '../metrics/procore-metrics.js';
import type { ProcoreRateLimitState, RateLimitGovernor } from './rate-limit.governor.js';

/**
 * Whose token a scoped client sends: an owner's (refreshed through the exactly-once protocol) or a
 * service account's (client credentials). Keys never collide across kinds: owner ids and account
 * names cannot contain control characters such as the U+001F that separates the parts.
 */
export interface TokenHolder {
  readonly kind: 'owner' | 'serviceAccount';
  /** The owner id, or the service account name (`''`: the app's own credentials). */
  readonly id: string;
  /** A valid token to send. */
  token(): Promise<string>;
  /** Procore answered 401 to `rejected`: a token to retry with (one recovery, coalesced). */
  recover(rejected: string): Promise<string>;
  /** Procore's rate limits are per token (service accounts: per token and company). */
  rateLimitKey(companyId: string | undefined): string;
}

export function ownerHolder(
  ownerId: string,
  token: () => Promise<string>,
  recover: (rejected: string) => Promise<string>,
): TokenHolder {
  return {
    kind: 'owner',
    id: ownerId,
    token,
    recover,
    rateLimitKey: () => `owner\u001f${ownerId}`,
  };
}

export function serviceAccountHolder(
  name: string,
  token: () => Promise<string>,
  recover: (rejected: string) => Promise<string>,
): TokenHolder {
  return {
    kind: 'serviceAccount',
    id: name,
    token,
    recover,
    rateLimitKey: (companyId) => `account\u001f${name}\u001f${companyId ?? ''}`,
  };
}

function holderOf(holder: TokenHolder): { ownerId: string } | { serviceAccount: string } {
  return holder.kind === 'owner' ? { ownerId: holder.id } : { serviceAccount: holder.id };
}

/**
 * Companies that disconnected the app, per holder: Procore answered 403 "App is not connected to
 * this company". Calls of that holder for that company fail fast until the back-off ends; the
 * holder's other companies are not affected, and the connection itself stays active (it is not a
 * user revoke).
 */
export class CompanyDisconnects {
  private readonly until = new Map<string, number>();

  constructor(
    private readonly backoffMs: number,
    private readonly events: ProcoreAuthEvents,
    private readonly maxEntries = 10_000,
  ) {}

  /** Throws `ProcoreCompanyDisconnectedError` while the holder's back-off for the company runs. */
  assertConnected(holder: TokenHolder, companyId: string): void {
    const key = this.key(holder, companyId);
    const until = this.until.get(key);
    if (until === undefined) return;
    if (until > Date.now()) {
      throw new ProcoreCompanyDisconnectedError(holderOf(holder), companyId, new Date(until));
    }
    this.until.delete(key);
  }

  /** Records a disconnect, emits `company_disconnected`, returns the error to throw. */
  disconnected(holder: TokenHolder, companyId: string): ProcoreCompanyDisconnectedError {
    const until = Date.now() + this.backoffMs;
    if (this.until.size >= this.maxEntries) {
      this.until.delete(this.until.keys().next().value as string);
    }
    this.until.set(this.key(holder, companyId), until);
    const retryAt = new Date(until);
    this.events.emit({
      type: ProcoreAuthEventType.CompanyDisconnected,
      ...holderOf(holder),
      companyId,
      at: new Date(),
      retryAt,
    });
    return new ProcoreCompanyDisconnectedError(holderOf(holder), companyId, retryAt);
  }

  private key(holder: TokenHolder, companyId: string): string {
    return `${holder.kind}\u001f${holder.id}\u001f${companyId}`;
  }
}

/** What every scoped client of one module instance shares. */
export interface ApiContext {
  options: ResolvedProcoreAuthOptions['api'];
  apiBase: URL;
  /** `apiBaseUrl`'s path without a trailing slash (usually `''`). */
  apiBasePath: string;
  transport: ProcoreApiTransport;
  governor: RateLimitGovernor;
  disconnects: CompanyDisconnects;
  /** One debug line per call: method, path, status, duration, attempts. */
  log(method: string, url: URL, status: number, startedAt: number, attempts: number): void;
  /** A 429: emits `rate_limited`. */
  rateLimited(holder: TokenHolder, method: string, url: URL, retryAt: Date): void;
  /** Every answer's rate-limit headers (a metric). */
  rateLimitSeen(holder: TokenHolder, rateLimit: ProcoreRateLimitState): void;
}

export function createApiContext(params: {
  options: ResolvedProcoreAuthOptions;
  transport: ProcoreApiTransport;
  governor: RateLimitGovernor;
  events: ProcoreAuthEvents;
  logger: Logger;
  metrics: ProcoreMetrics;
}): ApiContext {
  const apiBase = new URL(params.options.apiBaseUrl);
  const apiBasePath = apiBase.pathname.replace(/\/+$/, '');
  const pathOf = (url: URL) => url.pathname.slice(apiBasePath.length) || '/';
  return {
    options: params.options.api,
    apiBase,
    apiBasePath,
    transport: params.transport,
    governor: params.governor,
    disconnects: new CompanyDisconnects(
      params.options.api.companyDisconnectBackoffSeconds * 1000,
      params.events,
    ),
    log: (method, url, status, startedAt, attempts) => {
      params.metrics.apiCall(method, status, Date.now() - startedAt);
      params.logger.debug(
        `Procore ${method} ${pathOf(url)} ${status || 'no answer'} in ${Date.now() - startedAt} ms (${attempts} attempt${attempts === 1 ? '' : 's'})`,
      );
    },
    rateLimited: (holder, method, url, retryAt) => {
      params.events.emit({
        type: ProcoreAuthEventType.RateLimited,
        ...holderOf(holder),
        method,
        path: pathOf(url),
        at: new Date(),
        retryAt,
      });
    },
    rateLimitSeen: (holder, rateLimit) => {
      if (rateLimit.remaining !== undefined) {
        params.metrics.rateLimitRemaining(rateLimit.remaining, holder.kind);
      }
    },
  };
}
