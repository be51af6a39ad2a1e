import { HttpException, HttpStatus, Logger } from '@nestjs/common';
import { noteLogged, wasLogged } from '../logging/procore-error-log.js';
import { ProcoreApiError } from '../errors/procore-api.error.js';
import { ProcoreAuthError } from '../errors/procore-auth.error.js';
import { ProcoreCompanyDisconnectedError } from '../errors/procore-company-disconnected.error.js';
import { ProcoreRateLimitedError } from '../errors/procore-rate-limited.error.js';
import { ProcoreInvalidCompanyIdError } from '../errors/procore-invalid-company-id.error.js';
import { ProcoreInvalidOwnerError } from '../errors/procore-invalid-owner.error.js';
import type { ProcoreOAuthStateProblem } from '../errors/procore-oauth-state.error.js';
import { ProcoreLockTimeoutError } from '../errors/procore-lock-timeout.error.js';
import { ProcoreShutdownError } from '../errors/procore-shutdown.error.js';
import { ProcoreStorageError } from '../errors/procore-storage.error.js';
import { ProcoreReauthorizationRequiredError } from '../errors/procore-reauthorization-required.error.js';
import { ProcoreTokenRefreshError } from '../errors/procore-token-refresh.error.js';
import { ProcoreTransientError } from '../errors/procore-transient.error.js';

/** `reason` of a 401 answered by the guard, the decorator or the OAuth routes. */
export type ProcoreUnauthorizedReason = 'not_connected' | 'reauthorization_required' | 'no_owner';

/** `reason` of a 400: a bad OAuth callback or authorize request, or a company id that is not one. */
export type ProcoreBadRequestReason =
  | ProcoreOAuthStateProblem
  | 'malformed_callback'
  | 'code_rejected'
  | 'browser_mismatch'
  | 'invalid_company_id';

/**
 * Every `reason` the package answers. 500s carry the failing error's stable `code` (e.g.
 * `configuration_error`), hence the open `string` at the end.
 */
export type ProcoreErrorReason =
  | ProcoreBadRequestReason
  | ProcoreUnauthorizedReason
  | 'company_disconnected'
  | 'rate_limited'
  | 'procore_error'
  | 'procore_unavailable'
  | 'storage_unavailable'
  | 'shutting_down'
  | (string & {});

/**
 * The one shape of every error body the package answers (400, 401, 403, 429, 500, 502, 503),
 * Nest's own (`statusCode`, `error` = the HTTP status text, `message`) plus a machine-readable
 * `reason`. Clients branch on `reason`; `message` is a fixed sentence for people.
 */
export interface ProcoreErrorBody {
  statusCode: number;
  /** The HTTP status text, as Nest's built-in exceptions answer: `'Unauthorized'`, `'Bad Request'`... */
  error: string;
  reason: ProcoreErrorReason;
  message: string;
  /** 401: where to send the user to (re)connect Procore. */
  authorizePath?: string;
  /** 429: when Procore's rate limit allows calls again (ISO 8601). */
  retryAt?: string;
  /** 502: the status Procore answered. */
  procoreStatus?: number;
}

/** Body of a 401: tells the client why, and where to send the user to connect. */
export interface ProcoreUnauthorizedBody extends ProcoreErrorBody {
  statusCode: 401;
  error: 'Unauthorized';
  reason: ProcoreUnauthorizedReason;
  authorizePath: string;
}

/** Body of a 400. */
export interface ProcoreBadRequestBody extends ProcoreErrorBody {
  statusCode: 400;
  error: 'Bad Request';
  reason: ProcoreBadRequestReason;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** An `HttpException` whose body has the package's one error shape. */
export function procoreHttpError(
  status: number,
  reason: ProcoreErrorReason,
  message: string,
  extra: Pick<ProcoreErrorBody, 'authorizePath' | 'retryAt' | 'procoreStatus'> = {},
  cause?: unknown,
): HttpException {
  const body: ProcoreErrorBody = {
    statusCode: status,
    error: STATUS_TEXT[status] ?? 'Error',
    reason,
    message,
    ...extra,
  };
  return new HttpException(body, status, cause === undefined ? undefined : { cause });
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
  return procoreHttpError(HttpStatus.UNAUTHORIZED, reason, MESSAGES[reason], { authorizePath });
}

/** A 400 of the OAuth routes or of a request's company id. */
export function procoreBadRequest(reason: ProcoreBadRequestReason, message: string): HttpException {
  return procoreHttpError(HttpStatus.BAD_REQUEST, reason, message);
}

const logger = new Logger('ProcoreAuth');

/**
 * Maps a library error to the HTTP answer a client can act on. Bodies carry a reason and a fixed
 * message, never the error's own message (which may name ids or hosts) nor anything secret.
 * Errors that are not the library's are returned as they are, for the app's filters.
 *
 * A 5xx is logged here, once, with its cause (error name, code and the error's own message, which
 * never holds a secret), unless the failure was logged where it happened (a failed refresh).
 */
export function toProcoreHttpException(error: unknown, authorizePath: string): unknown {
  const answer = mapProcoreError(error, authorizePath);
  if (answer instanceof HttpException && answer.getStatus() >= 500 && !wasLogged(error)) {
    const { name, code, message } = error as ProcoreAuthError;
    const line = `${name} (${code}) answered ${answer.getStatus()}: ${message}`;
    if (answer.getStatus() === HttpStatus.SERVICE_UNAVAILABLE) logger.warn(line);
    else logger.error(line);
    noteLogged(error);
  }
  return answer;
}

function mapProcoreError(error: unknown, authorizePath: string): unknown {
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
    return procoreBadRequest(
      'invalid_company_id',
      'The Procore company id must be a positive integer.',
    );
  }
  if (
    error instanceof ProcoreTokenRefreshError ||
    error instanceof ProcoreLockTimeoutError ||
    error instanceof ProcoreTransientError
  ) {
    return procoreHttpError(
      HttpStatus.SERVICE_UNAVAILABLE,
      'procore_unavailable',
      'Procore could not be reached to refresh the access token: try again shortly.',
      {},
      error,
    );
  }
  // Errors of Procore API calls made in a handler (ProcoreExceptionFilter brings them here).
  if (error instanceof ProcoreRateLimitedError) {
    return procoreHttpError(
      HttpStatus.TOO_MANY_REQUESTS,
      'rate_limited',
      "Procore's rate limit for this user is spent: try again after retryAt.",
      { retryAt: error.retryAt.toISOString() },
      error,
    );
  }
  if (error instanceof ProcoreCompanyDisconnectedError) {
    return procoreHttpError(
      HttpStatus.FORBIDDEN,
      'company_disconnected',
      'This Procore company removed the app: an administrator of the company must install it again.',
      {},
      error,
    );
  }
  if (error instanceof ProcoreApiError) {
    return procoreHttpError(
      HttpStatus.BAD_GATEWAY,
      'procore_error',
      'Procore answered an error.',
      { procoreStatus: error.status },
      error,
    );
  }
  if (error instanceof ProcoreStorageError || error instanceof ProcoreShutdownError) {
    const shuttingDown = error instanceof ProcoreShutdownError;
    return procoreHttpError(
      HttpStatus.SERVICE_UNAVAILABLE,
      shuttingDown ? 'shutting_down' : 'storage_unavailable',
      shuttingDown
        ? 'This server is shutting down: try again shortly.'
        : 'The Procore token store is unavailable: try again shortly.',
      {},
      error,
    );
  }
  if (error instanceof ProcoreAuthError) {
    // Keep the cause for logs, but answer a generic 500: the fix is on the server side.
    return procoreHttpError(
      HttpStatus.INTERNAL_SERVER_ERROR,
      error.code,
      'Procore authentication failed on the server.',
      {},
      error,
    );
  }
  return error;
}
