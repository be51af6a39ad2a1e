import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * A refresh failed for a reason that may be temporary (Procore down, rate limited, timeouts) and
 * the retry budget is spent. The connection stays active; the next call tries again.
 * @publicApi
 */
export class ProcoreTokenRefreshError extends ProcoreAuthError {
  readonly code = 'refresh_failed';

  constructor(
    readonly ownerId: string,
    readonly attempts: number,
    options: { cause: unknown },
  ) {
    super(
      `Refreshing the Procore token of owner "${ownerId}" failed after ${attempts} attempt(s): ${
        options.cause instanceof Error ? options.cause.message : String(options.cause)
      }`,
      options,
    );
  }
}
