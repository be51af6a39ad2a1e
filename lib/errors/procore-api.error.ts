import { ProcoreAuthError } from './procore-auth.error.js';

/** Where a failed API call went: never its query string (it may carry ids a log should not keep). */
export interface ProcoreApiCallDescription {
  method: string;
  /** The path without its query, e.g. `/rest/v1.0/projects`. */
  path: string;
  /** Procore's `X-Request-Id`, for Procore support. */
  requestId?: string;
}

/**
 * Procore's REST API answered an error the client does not handle itself: a permission 403, a
 * 404, a 422, a 5xx after the retries, a second 401 right after a successful refresh. `message`
 * carries Procore's own error text only when it is short and cannot hold a token.
 * @publicApi
 */
export class ProcoreApiError extends ProcoreAuthError {
  readonly code: string = 'api_error';
  readonly method: string;
  readonly path: string;
  readonly requestId: string | undefined;

  constructor(
    readonly status: number,
    call: ProcoreApiCallDescription,
    detail?: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Procore ${call.method} ${call.path} answered ${status}${detail ? `: ${detail}` : ''}${
        call.requestId ? ` (request id ${call.requestId})` : ''
      }.`,
      options,
    );
    this.method = call.method;
    this.path = call.path;
    this.requestId = call.requestId;
  }
}
