import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * A failure that may go away on its own: Procore answered 5xx or 429, the connection was reset,
 * or the request never left (connection refused, DNS). `requestSent` tells whether Procore may
 * have processed the request: for a refresh call that means the refresh token may be consumed.
 * @publicApi
 */
export class ProcoreTransientError extends ProcoreAuthError {
  readonly code: string = 'transient_error';

  constructor(
    message: string,
    readonly requestSent: boolean,
    readonly status?: number,
    /** Milliseconds Procore asked us to wait (`Retry-After`), when it said. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
