import { Inject, Injectable } from '@nestjs/common';
import { PROCORE_AUTH_ROUTES } from '../procore-auth.constants.js';
import { ProcoreTokenService } from '../tokens/procore-token.service.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import { procoreUnauthorized } from './procore-http-errors.js';
import { ProcoreRequestOwnerResolver } from './procore-request-owner.resolver.js';
import {
  rememberToken,
  resolvedToken,
  type ResolvedRequestToken,
} from './procore-request-owner.js';

/**
 * The owner and access token of a request, for `@ProcoreToken()` and `@ProcoreApi()`: what the
 * guard resolved when it ran on this request (so a subclassed guard and the decorators agree),
 * else the owner resolver's answer and one token lookup, remembered for the next parameter.
 * Internal.
 */
@Injectable()
export class ProcoreRequestTokens {
  constructor(
    private readonly owners: ProcoreRequestOwnerResolver,
    private readonly tokens: ProcoreTokenService,
    @Inject(PROCORE_AUTH_ROUTES) private readonly routes: ProcoreAuthRoutes,
  ) {}

  /**
   * Throws the 401 `no_owner` answer when the request has no owner; library errors of the token
   * lookup (not connected, reauthorization required...) are left to the caller to map.
   */
  async forRequest(request: unknown): Promise<ResolvedRequestToken> {
    return this.resolve(request);
  }

  /**
   * `forRequest()` without a promise when none is needed: the guard's answer or a cache hit is
   * returned as it is (the hot path of `@ProcoreToken()` and `@ProcoreApi()`), a lookup as a
   * promise. Throws (synchronously) the 401 `no_owner` answer, like `forRequest()` rejects.
   */
  resolve(request: unknown): ResolvedRequestToken | Promise<ResolvedRequestToken> {
    const known = resolvedToken(request);
    if (known) return known;
    const ownerId = this.owners.resolve(request);
    if (ownerId === undefined) throw procoreUnauthorized('no_owner', this.routes.authorizePath);
    const cached = this.tokens.cachedAccessToken(ownerId);
    // Not remembered: another parameter of this request finds it in the cache just as fast.
    if (cached !== undefined) return { ownerId, token: cached };
    return this.lookUp(request, ownerId);
  }

  private async lookUp(request: unknown, ownerId: string): Promise<ResolvedRequestToken> {
    const token = await this.tokens.getAccessToken(ownerId);
    return rememberToken(request, ownerId, token);
  }
}
