import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * Procore's rate limit for this token holder is spent and the call could not wait until it resets
 * (the wait would exceed `api.maxRateLimitWaitMs`, the call is not idempotent, or its deadline
 * came first). Nothing was sent for it after the limit was known to be spent.
 * @publicApi
 */
export class ProcoreRateLimitedError extends ProcoreAuthError {
  readonly code = 'rate_limited';

  constructor(
    readonly method: string,
    readonly path: string,
    /** When Procore's window resets (`X-Rate-Limit-Reset` or `Retry-After`). */
    readonly retryAt: Date,
  ) {
    super(
      `Procore's rate limit is spent for ${method} ${path} until ${retryAt.toISOString()}: try again then.`,
    );
  }
}
