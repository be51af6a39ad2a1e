import { Catch, Inject, type ArgumentsHost } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { ProcoreAuthError } from '../errors/procore-auth.error.js';
import { ProcoreRateLimitedError } from '../errors/procore-rate-limited.error.js';
import { PROCORE_AUTH_ROUTES } from '../procore-auth.constants.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import { toProcoreHttpException } from './procore-http-errors.js';

/**
 * Answers the package's errors thrown inside a handler — e.g. a `ProcoreScopedClient` call whose
 * refresh Procore refused — the way the guard and the decorators do: 401 with `reason` and
 * `authorizePath`, 400, 403, 429, 502, 503, or a generic 500 (each 5xx logged once with its
 * cause, never a secret: see `toProcoreHttpException`). Other errors are not touched. Registered
 * globally by the module (`APP_FILTER`); HTTP only.
 */
@Catch(ProcoreAuthError)
export class ProcoreExceptionFilter extends BaseExceptionFilter {
  @Inject(PROCORE_AUTH_ROUTES) private readonly routes!: ProcoreAuthRoutes;

  override catch(error: ProcoreAuthError, host: ArgumentsHost): void {
    // GraphQL, microservices: their own error handling applies.
    if (host.getType() !== 'http') throw error;
    const answer = toProcoreHttpException(error, this.routes.authorizePath);
    if (error instanceof ProcoreRateLimitedError) {
      const seconds = Math.max(1, Math.ceil((error.retryAt.getTime() - Date.now()) / 1000));
      this.httpAdapterHost?.httpAdapter.setHeader(
        host.switchToHttp().getResponse(),
        'Retry-After',
        String(seconds),
      );
    }
    super.catch(answer, host);
  }
}
