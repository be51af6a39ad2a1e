import { setTimeout as sleep } from 'node:timers/promises';
import { ProcoreTransientError } from '../errors/procore-transient.error.js';

/** Socket errors that prove the request never reached Procore: safe to retry, nothing was consumed. */
export const NOT_SENT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Retry settings taken from `http` options. */
export interface RetryPolicy {
  retries: number;
  retryBaseDelayMs: number;
  maxRetryAfterMs: number;
}

/**
 * Delay before retry number `attempt` (0-based): exponential backoff with jitter, or Procore's
 * `Retry-After` when it sent one. Returns `undefined` when Procore asked for a longer wait than
 * `maxRetryAfterMs` allows: retrying sooner would only be rate limited again.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  attempt: number,
  error: unknown,
): number | undefined {
  const retryAfter = error instanceof ProcoreTransientError ? error.retryAfterMs : undefined;
  if (retryAfter !== undefined) {
    return retryAfter <= policy.maxRetryAfterMs ? retryAfter : undefined;
  }
  const exponential = policy.retryBaseDelayMs * 2 ** attempt;
  return Math.round(exponential / 2 + Math.random() * (exponential / 2));
}

/**
 * Runs `operation` and retries it while `shouldRetry(error)` holds, within the policy's budget.
 * Only for operations that are safe to repeat; the refresh protocol has its own loop.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  shouldRetry: (error: unknown) => boolean,
  operation: () => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      const delay =
        attempt < policy.retries && shouldRetry(error)
          ? retryDelayMs(policy, attempt, error)
          : undefined;
      if (delay === undefined) throw error;
      await sleep(delay);
    }
  }
}
