import {
  createParamDecorator,
  Inject,
  Injectable,
  type ExecutionContext,
  type PipeTransform,
} from '@nestjs/common';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_AUTH_ROUTES } from '../procore-auth.constants.js';
import { ProcoreTokenService } from '../tokens/procore-token.service.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import { procoreUnauthorized, toProcoreHttpException } from './procore-http-errors.js';
import { resolveOwnerId, tokenResolvedByGuard } from './procore-request-owner.js';

/** Options of `@ProcoreToken()`. */
export interface ProcoreTokenOptions {
  /**
   * Yield a client-credentials (service account) token instead; needs no request owner. `true`:
   * the app's own credentials; a name: that account of the `serviceAccounts` option
   * (`@ProcoreToken({ serviceAccount: 'reports' })`). An unknown name is a
   * `ProcoreConfigurationError`, answered as a 500 (a server-side fix). Default `false`.
   */
  serviceAccount?: boolean | string;
}

interface ProcoreTokenRequest {
  request: unknown;
  options: ProcoreTokenOptions;
}

/** Resolves `@ProcoreToken()` parameters through `ProcoreTokenService`. Internal: use the decorator. */
@Injectable()
export class ProcoreTokenPipe implements PipeTransform<ProcoreTokenRequest, Promise<string>> {
  constructor(
    private readonly tokens: ProcoreTokenService,
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_AUTH_ROUTES) private readonly routes: ProcoreAuthRoutes,
  ) {}

  async transform({ request, options }: ProcoreTokenRequest): Promise<string> {
    try {
      const { serviceAccount } = options;
      if (typeof serviceAccount === 'string' || serviceAccount === true) {
        const name = serviceAccount === true ? undefined : serviceAccount;
        return await this.tokens.getClientCredentialsToken(name);
      }
      const ownerId = resolveOwnerId(this.options.ownerResolver, request);
      if (ownerId === undefined) throw procoreUnauthorized('no_owner', this.routes.authorizePath);
      return tokenResolvedByGuard(request, ownerId) ?? (await this.tokens.getAccessToken(ownerId));
    } catch (error) {
      throw toProcoreHttpException(error, this.routes.authorizePath);
    }
  }
}

const ProcoreTokenParam = createParamDecorator(
  (options: ProcoreTokenOptions | undefined, context: ExecutionContext): ProcoreTokenRequest => ({
    request: context.switchToHttp().getRequest<unknown>(),
    options: options ?? {},
  }),
);

/**
 * A valid Procore access token for the request's owner, as a handler parameter:
 * `list(@ProcoreToken() token: string)`. Works with or without `ProcoreAuthGuard` (and reuses the
 * guard's lookup when both are used); answers the same 401 bodies as the guard.
 * `@ProcoreToken({ serviceAccount: true })` yields the app's client-credentials token, and
 * `@ProcoreToken({ serviceAccount: 'reports' })` that of the named service account.
 */
export const ProcoreToken = (options?: ProcoreTokenOptions): ParameterDecorator =>
  ProcoreTokenParam(options, ProcoreTokenPipe);
