import {
  HTML_ERROR_PAGE,
  json,
  JSON_CONTENT_TYPE,
  respond,
  type FakeHttpReply,
  type FakeReply,
} from './fake-http.js';
import { oauthError } from './fake-procore-replies.js';
import type {
  FakeProcoreFault,
  FakeProcoreFaultOptions,
  FakeProcoreFaultPath,
  FakeProcoreGrantType,
} from './fake-procore.types.js';

// Fault injection: the queue of faults tests schedule with `FakeProcoreServer.injectFault()`, and
// the answers a fault gives instead of (or after) the real one.

const DEFAULT_OVERSIZED_BYTES = 2 * 1024 * 1024;

interface ScheduledFault {
  readonly fault: FakeProcoreFault;
  readonly path: FakeProcoreFaultPath;
  readonly grantType: FakeProcoreGrantType | undefined;
  remaining: number;
}

/** Injected faults in the order they were injected; a call takes the first one that matches. */
export class FakeProcoreFaultQueue {
  private readonly faults: ScheduledFault[] = [];

  /** Queues `fault` for the next `options.times` (default 1) matching calls; throws on bad options. */
  add(fault: FakeProcoreFault, options: FakeProcoreFaultOptions): void {
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

  clear(): void {
    this.faults.length = 0;
  }

  /** The first fault injected on the login host's `path` for `grantType`, if any. */
  takeOAuth(
    path: FakeProcoreFaultPath,
    grantType: string | undefined,
  ): FakeProcoreFault | undefined {
    return this.take(
      (scheduled) =>
        scheduled.path === path &&
        (scheduled.grantType === undefined || scheduled.grantType === grantType),
    );
  }

  /** The first fault injected on an API path that `pathname` is (or is below). */
  takeApi(pathname: string): FakeProcoreFault | undefined {
    return this.take(
      ({ path }) =>
        isRestPath(path) &&
        (path === '/rest' || pathname === path || pathname.startsWith(`${path}/`)),
    );
  }

  private take(matches: (scheduled: ScheduledFault) => boolean): FakeProcoreFault | undefined {
    const index = this.faults.findIndex(matches);
    const scheduled = this.faults[index];
    if (!scheduled) return undefined;
    scheduled.remaining--;
    if (scheduled.remaining === 0) this.faults.splice(index, 1);
    return scheduled.fault;
  }
}

/** `/rest` itself or a path below it. */
export function isRestPath(path: string): boolean {
  return path === '/rest' || path.startsWith('/rest/');
}

/** The real answer with its JSON body rewritten (non-JSON answers pass unchanged). */
export function tamperReply(
  reply: FakeReply,
  mutate: (body: Record<string, unknown>) => Record<string, unknown>,
): FakeReply {
  if (reply.type !== 'respond') return reply;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(reply.body) as Record<string, unknown>;
  } catch {
    return reply;
  }
  return { ...reply, body: JSON.stringify(mutate(body)) };
}

export function faultReply(
  fault: Exclude<FakeProcoreFault, { kind: 'tamper' } | { kind: 'hold' }>,
  nowSeconds: number,
  expiresIn: number,
): FakeReply {
  switch (fault.kind) {
    case 'status':
      return statusFaultReply(fault);
    case 'rate-limit':
      return rateLimitReply(fault.retryAfterSeconds, nowSeconds);
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
        created_at: nowSeconds,
      });
  }
}

function statusFaultReply(fault: Extract<FakeProcoreFault, { kind: 'status' }>): FakeHttpReply {
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
function rateLimitReply(retryAfterSeconds: number, nowSeconds: number): FakeHttpReply {
  return json(
    429,
    { error: 'rate_limited', error_description: 'Too many requests.' },
    {
      'Retry-After': String(retryAfterSeconds),
      'X-Rate-Limit-Limit': '3600',
      'X-Rate-Limit-Remaining': '0',
      'X-Rate-Limit-Reset': String(nowSeconds + retryAfterSeconds),
    },
  );
}

/** Valid JSON of exactly `bytes` bytes (or the smallest such document, if `bytes` is smaller). */
function oversizedJson(bytes: number): string {
  const skeleton = '{"access_token":"","token_type":"bearer","expires_in":5400}';
  const padding = Math.max(0, bytes - skeleton.length);
  return skeleton.replace('""', `"${'x'.repeat(padding)}"`);
}
