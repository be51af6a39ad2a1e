import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * A request or a `Link` header named a URL outside the configured Procore API host (or a path that
 * is not a plain absolute path). The bearer token is only ever sent to `apiBaseUrl`: nothing was sent.
 * @publicApi
 */
export class ProcoreUnsafeUrlError extends ProcoreAuthError {
  readonly code = 'unsafe_url';

  constructor(what: string) {
    super(
      `Refused to call ${what}: Procore API calls take a path on the configured API host (apiBaseUrl), e.g. "/rest/v1.0/projects".`,
    );
  }
}
