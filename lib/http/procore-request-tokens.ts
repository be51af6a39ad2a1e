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
    const known = resolvedToken(request);
    if (known) return known;
    const ownerId = this.owners.resolve(request);
    if (ownerId === undefined) throw procoreUnauthorized('no_owner', this.routes.authorizePath);
    const token = await this.tokens.getAccessToken(ownerId);
    rememberToken(request, ownerId, token);
    return { ownerId, token };
  }
}
