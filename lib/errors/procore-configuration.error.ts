import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * The module is misconfigured: a missing or invalid option at bootstrap, or Procore rejected
 * the app's client credentials (`invalid_client`). Connections are never marked because of it:
 * the fix is in the app's configuration, not in the user's grant.
 * @publicApi
 */
export class ProcoreConfigurationError extends ProcoreAuthError {
  readonly code = 'configuration_error';
}
