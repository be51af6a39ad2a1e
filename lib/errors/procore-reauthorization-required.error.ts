import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * Why an owner has no usable Procore connection.
 * - `not_connected`: the owner never connected, or revoked the connection.
 * - `reauthorization_required`: Procore rejected the stored grant (`invalid_grant`, a refresh
 *   response that was lost, or the user revoked the app in Procore); the user must connect again.
 */
export type ProcoreReauthorizationReason = 'not_connected' | 'reauthorization_required';

/**
 * Thrown by `ProcoreTokenService.getAccessToken()` and `refresh()` when the owner has to go
 * through the authorization flow (again) before a token can be had.
 * @publicApi
 */
export class ProcoreReauthorizationRequiredError extends ProcoreAuthError {
  readonly code = 'reauthorization_required';

  constructor(
    readonly ownerId: string,
    readonly reason: ProcoreReauthorizationReason,
    /** The recorded cause, e.g. `invalid_grant`, `refresh_response_lost`, `revoked`, `no_connection`. */
    readonly causeCode: string,
    options?: { cause?: unknown },
  ) {
    super(
      reason === 'not_connected'
        ? `Procore is not connected for owner "${ownerId}" (${causeCode}): send the user through the authorization flow.`
        : `Procore requires the user to authorize again for owner "${ownerId}" (${causeCode}): send the user through the authorization flow.`,
      options,
    );
  }
}
