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
import { procoreRequestOf } from './procore-execution-context.js';
import { procoreUnauthorized, toProcoreHttpException } from './procore-http-errors.js';
import { rememberToken } from './procore-request-owner.js';
import { ProcoreRequestOwnerResolver } from './procore-request-owner.resolver.js';

/**
 * Lets a request through only when its owner has a usable Procore connection; otherwise answers
 * 401 `{ statusCode, reason, message, authorizePath }` with reason `no_owner`, `not_connected` or
 * `reauthorization_required`. Use it per route, per controller or globally (`APP_GUARD`), with
 * `@SkipProcoreAuth()` for exceptions. The owner and token it resolves are reused by
 * `@ProcoreToken()` and `@ProcoreApi()`.
 *
 * Works on HTTP handlers and GraphQL resolvers (the request of the GraphQL context). Any other
 * context (`rpc`, `ws`) is refused with a `ProcoreConfigurationError` unless `@SkipProcoreAuth()`
 * exempts it: it is never let through unchecked.
 *
 * The owner comes from `ProcoreRequestOwnerResolver` (the `ownerResolver` option), the one the
 * decorators and the OAuth routes use: change it there rather than in a subclass. Subclass to
 * change what is answered (`throwFor`).
 * @publicApi
 */
@Injectable()
export class ProcoreAuthGuard implements CanActivate {
  /** A property, so subclasses written against the four-argument constructor keep working. */
  @Inject(ProcoreRequestOwnerResolver) protected owners!: ProcoreRequestOwnerResolver;

  constructor(
    protected readonly reflector: Reflector,
    protected readonly tokens: ProcoreTokenService,
    @Inject(PROCORE_AUTH_OPTIONS) protected readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_AUTH_ROUTES) protected readonly routes: ProcoreAuthRoutes,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.shouldSkip(context)) return true;
    const request = procoreRequestOf(context, 'ProcoreAuthGuard');
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

  /**
   * The owner of the request: `ProcoreRequestOwnerResolver`'s answer (the `ownerResolver` option,
   * `req.user.id` by default). The decorators use whatever owner the guard settled on.
   */
  protected getOwnerId(request: unknown): string | undefined {
    // `owners` is injected as a property: a guard built by hand (`new ProcoreAuthGuard(...)`)
    // has none, and falls back to the same rule.
    this.owners ??= new ProcoreRequestOwnerResolver(this.options);
    return this.owners.resolve(request);
  }

  /** The exception answered for a library error. */
  protected throwFor(error: unknown): unknown {
    return toProcoreHttpException(error, this.routes.authorizePath);
  }
}
