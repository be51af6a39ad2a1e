import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import {
  PROCORE_AUTH_OPTIONS,
  PROCORE_AUTH_ROUTES,
  SKIP_PROCORE_AUTH,
} from '../procore-auth.constants.js';
import { ProcoreTokenService } from '../tokens/procore-token.service.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import { procoreUnauthorized, toProcoreHttpException } from './procore-http-errors.js';
import { rememberToken, resolveOwnerId } from './procore-request-owner.js';

/**
 * Lets a request through only when its owner has a usable Procore connection; otherwise answers
 * 401 `{ statusCode, reason, message, authorizePath }` with reason `no_owner`, `not_connected` or
 * `reauthorization_required`. Use it per route, per controller or globally (`APP_GUARD`), with
 * `@SkipProcoreAuth()` for exceptions. The token it resolves is reused by `@ProcoreToken()`.
 *
 * Subclass it to change how the owner is found (`getOwnerId`) or what is answered (`throwFor`).
 */
@Injectable()
export class ProcoreAuthGuard implements CanActivate {
  constructor(
    protected readonly reflector: Reflector,
    protected readonly tokens: ProcoreTokenService,
    @Inject(PROCORE_AUTH_OPTIONS) protected readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_AUTH_ROUTES) protected readonly routes: ProcoreAuthRoutes,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http' || this.shouldSkip(context)) return true;
    const request = context.switchToHttp().getRequest<unknown>();
    const ownerId = this.getOwnerId(request);
    if (ownerId === undefined) throw procoreUnauthorized('no_owner', this.routes.authorizePath);
    try {
      rememberToken(request, ownerId, await this.tokens.getAccessToken(ownerId));
    } catch (error) {
      throw this.throwFor(error);
    }
    return true;
  }

  /** Whether `@SkipProcoreAuth()` is on the handler or its class. */
  protected shouldSkip(context: ExecutionContext): boolean {
    return (
      this.reflector.getAllAndOverride<boolean | undefined>(SKIP_PROCORE_AUTH, [
        context.getHandler(),
        context.getClass(),
      ]) === true
    );
  }

  /** The owner of the request; by default the `ownerResolver` option (`req.user.id`). */
  protected getOwnerId(request: unknown): string | undefined {
    return resolveOwnerId(this.options.ownerResolver, request);
  }

  /** The exception answered for a library error. */
  protected throwFor(error: unknown): unknown {
    return toProcoreHttpException(error, this.routes.authorizePath);
  }
}
