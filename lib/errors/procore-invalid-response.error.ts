import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * Procore's answer could not be used: not JSON, an HTML page, larger than
 * `http.maxResponseBytes`, or a token response without `access_token`. Nothing from it is stored.
 * @publicApi
 */
export class ProcoreInvalidResponseError extends ProcoreAuthError {
  readonly code = 'invalid_response';

  constructor(
    readonly endpoint: string,
    readonly status: number,
    readonly problem: 'not_json' | 'html' | 'too_large' | 'missing_access_token' | 'invalid_field',
    detail: string,
  ) {
    super(`Procore ${endpoint} answered ${status} with an unusable body (${problem}): ${detail}.`);
  }
}
