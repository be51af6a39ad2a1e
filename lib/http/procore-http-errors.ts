import { HttpException, HttpStatus } from '@nestjs/common';
import { ProcoreApiError } from '../errors/procore-api.error.js';
import { ProcoreAuthError } from '../errors/procore-auth.error.js';
import { ProcoreCompanyDisconnectedError } from '../errors/procore-company-disconnected.error.js';
import { ProcoreRateLimitedError } from '../errors/procore-rate-limited.error.js';
import { ProcoreInvalidCompanyIdError } from '../errors/procore-invalid-company-id.error.js';
import { ProcoreInvalidOwnerError } from '../errors/procore-invalid-owner.error.js';
import { ProcoreLockTimeoutError } from '../errors/procore-lock-timeout.error.js';
import { ProcoreShutdownError } from '../errors/procore-shutdown.error.js';
import { ProcoreStorageError } from '../errors/procore-storage.error.js';
import { ProcoreReauthorizationRequiredError } from '../errors/procore-reauthorization-required.error.js';
import { ProcoreTokenRefreshError } from '../errors/procore-token-refresh.error.js';
import { ProcoreTransientError } from '../errors/procore-transient.error.js';

/** `reason` of a 401 answered by the guard, the decorator or the OAuth routes. */
export type ProcoreUnauthorizedReason = 'not_connected' | 'reauthorization_required' | 'no_owner';

/** Body of a 401: tells the client why, and where to send the user to connect. */
export interface ProcoreUnauthorizedBody {
  statusCode: 401;
  reason: ProcoreUnauthorizedReason;
  message: string;
  authorizePath: string;
}

const MESSAGES: Record<ProcoreUnauthorizedReason, string> = {
  no_owner: 'No signed-in user on this request: authenticate before using Procore.',
  not_connected: 'Procore is not connected for this user: send them to authorizePath.',
  reauthorization_required:
    'Procore needs this user to authorize the app again: send them to authorizePath.',
};

export function procoreUnauthorized(
  reason: ProcoreUnauthorizedReason,
  authorizePath: string,
): HttpException {
  const body: ProcoreUnauthorizedBody = {
    statusCode: HttpStatus.UNAUTHORIZED,
    reason,
    message: MESSAGES[reason],
    authorizePath,
  };
  return new HttpException(body, HttpStatus.UNAUTHORIZED);
}

/**
 * Maps a library error to the HTTP answer a client can act on. Bodies carry a reason and a fixed
 * message, never the error's own message (which may name ids or hosts) nor anything secret.
 * Errors that are not the client's business (configuration) are rethrown for the app's filters.
 */
export function toProcoreHttpException(error: unknown, authorizePath: string): unknown {
  if (error instanceof ProcoreReauthorizationRequiredError) {
    return procoreUnauthorized(error.reason, authorizePath);
  }
  // The request resolved to an owner id that cannot be one (a control character, a lone
  // surrogate, too long): it has no usable owner, like a request without a user.
  if (error instanceof ProcoreInvalidOwnerError) {
    return procoreUnauthorized('no_owner', authorizePath);
  }
  // A company id taken from the request (`@ProcoreApi({ companyId })`) that is not one.
  if (error instanceof ProcoreInvalidCompanyIdError) {
    return new HttpException(
      {
        statusCode: HttpStatus.BAD_REQUEST,
        reason: 'invalid_company_id',
        message: 'The Procore company id must be a positive integer.',
      },
      HttpStatus.BAD_REQUEST,
    );
  }
  if (
    error instanceof ProcoreTokenRefreshError ||
    error instanceof ProcoreLockTimeoutError ||
    error instanceof ProcoreTransientError
  ) {
    return new HttpException(
      {
        statusCode: HttpStatus.SERVICE_UNAVAILABLE,
        reason: 'procore_unavailable',
        message: 'Procore could not be reached to refresh the access token: try again shortly.',
      },
      HttpStatus.SERVICE_UNAVAILABLE,
    );
  }
  // Errors of Procore API calls made in a handler (ProcoreExceptionFilter brings them here).
  if (error instanceof ProcoreRateLimitedError) {
    return new HttpException(
      {
        statusCode: HttpStatus.TOO_MANY_REQUESTS,
        reason: 'rate_limited',
        message: "Procore's rate limit for this user is spent: try again after retryAt.",
        retryAt: error.retryAt.toISOString(),
      },
      HttpStatus.TOO_MANY_REQUESTS,
      { cause: error },
    );
  }
  if (error instanceof ProcoreCompanyDisconnectedError) {
    return new HttpException(
      {
        statusCode: HttpStatus.FORBIDDEN,
        reason: 'company_disconnected',
        message:
          'This Procore company removed the app: an administrator of the company must install it again.',
      },
      HttpStatus.FORBIDDEN,
      { cause: error },
    );
  }
  if (error instanceof ProcoreApiError) {
    return new HttpException(
      {
        statusCode: HttpStatus.BAD_GATEWAY,
        reason: 'procore_error',
        message: 'Procore answered an error.',
        procoreStatus: error.status,
      },
      HttpStatus.BAD_GATEWAY,
      { cause: error },
    );
  }
  if (error instanceof ProcoreStorageError || error instanceof ProcoreShutdownError) {
    const shuttingDown = error instanceof ProcoreShutdownError;
    return new HttpException(
      {
        statusCode: HttpStatus.SERVICE_UNAVAILABLE,
        reason: shuttingDown ? 'shutting_down' : 'storage_unavailable',
        message: shuttingDown
          ? 'This server is shutting down: try again shortly.'
          : 'The Procore token store is unavailable: try again shortly.',
      },
      HttpStatus.SERVICE_UNAVAILABLE,
      { cause: error },
    );
  }
  if (error instanceof ProcoreAuthError) {
    // Keep the cause for logs, but answer a generic 500: the fix is on the server side.
    return new HttpException(
      {
        statusCode: HttpStatus.INTERNAL_SERVER_ERROR,
        reason: error.code,
        message: 'Procore authentication failed on the server.',
      },
      HttpStatus.INTERNAL_SERVER_ERROR,
      { cause: error },
    );
  }
  return error;
}
