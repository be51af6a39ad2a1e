import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * Procore's login host answered a request with an OAuth error (`invalid_grant`,
 * `invalid_request`, `unsupported_grant_type`, ...). `error` is the OAuth error code; the
 * `error_description` Procore sent is kept only when it contains nothing that looks like a token.
 * @publicApi
 */
export class ProcoreOAuthError extends ProcoreAuthError {
  readonly code = 'oauth_error';

  constructor(
    readonly status: number,
    readonly error: string,
    readonly endpoint: string,
    description?: string,
  ) {
    super(
      `Procore ${endpoint} answered ${status} ${error}${description ? `: ${description}` : ''}.`,
    );
  }
}
