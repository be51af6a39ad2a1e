import {
  createParamDecorator,
  Inject,
  Injectable,
  Optional,
  type ExecutionContext,
  type OnModuleDestroy,
  type OnModuleInit,
  type PipeTransform,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { PROCORE_AUTH_ROUTES } from '../procore-auth.constants.js';
import { ProcoreTokenService } from '../tokens/procore-token.service.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import { procoreRequestOf, procoreRequestOrFirstArgument } from './procore-execution-context.js';
import { toProcoreHttpException } from './procore-http-errors.js';
import { ProcoreParamResolvers } from './procore-param-resolvers.js';
import { ProcoreRequestTokens } from './procore-request-tokens.js';

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

const tokenResolvers = new ProcoreParamResolvers<ProcoreTokenPipe>('@ProcoreToken()');

/**
 * Resolves `@ProcoreToken()` parameters through `ProcoreTokenService`. Internal: use the decorator
 * (which calls `resolve()` from its parameter factory, not as a pipe: see `ProcoreParamResolvers`).
 */
@Injectable()
export class ProcoreTokenPipe
  implements PipeTransform<ProcoreTokenRequest, Promise<string>>, OnModuleInit, OnModuleDestroy
{
  constructor(
    private readonly tokens: ProcoreTokenService,
    private readonly requestTokens: ProcoreRequestTokens,
    @Inject(PROCORE_AUTH_ROUTES) private readonly routes: ProcoreAuthRoutes,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
  ) {}

  onModuleInit(): void {
    tokenResolvers.register(this, this.adapterHost);
  }

  onModuleDestroy(): void {
    tokenResolvers.unregister(this);
  }

  async transform(input: ProcoreTokenRequest): Promise<string> {
    return this.resolve(input);
  }

  /**
   * The token: a string on a cache hit (or when the guard resolved it), else a promise. Errors
   * are thrown or rejected as the HTTP exceptions the routes answer.
   */
  resolve({ request, options }: ProcoreTokenRequest): string | Promise<string> {
    try {
      const { serviceAccount } = options;
      if (typeof serviceAccount === 'string' || serviceAccount === true) {
        const name = serviceAccount === true ? undefined : serviceAccount;
        return this.later(this.tokens.getClientCredentialsToken(name));
      }
      const resolved = this.requestTokens.resolve(request);
      return resolved instanceof Promise
        ? this.later(resolved.then((known) => known.token))
        : resolved.token;
    } catch (error) {
      throw toProcoreHttpException(error, this.routes.authorizePath);
    }
  }

  private async later(token: Promise<string>): Promise<string> {
    try {
      return await token;
    } catch (error) {
      throw toProcoreHttpException(error, this.routes.authorizePath);
    }
  }
}

const ProcoreTokenParam = createParamDecorator(
  (
    options: ProcoreTokenOptions | undefined,
    context: ExecutionContext,
  ): string | Promise<string> => {
    // A service-account token needs no request owner: usable in any context.
    const request = options?.serviceAccount
      ? procoreRequestOrFirstArgument(context, '@ProcoreToken()')
      : procoreRequestOf(context, '@ProcoreToken()');
    return tokenResolvers.find(request).resolve({ request, options: options ?? {} });
  },
);

/**
 * A valid Procore access token for the request's owner, as a handler parameter:
 * `list(@ProcoreToken() token: string)`. Works with or without `ProcoreAuthGuard` (and reuses the
 * guard's owner and lookup when both are used); answers the same 401 bodies as the guard. Works in
 * GraphQL resolvers too (the request of the GraphQL context), where a 401 becomes a GraphQL error
 * carrying the same body (`extensions.originalError.reason` with `@nestjs/apollo`).
 * `@ProcoreToken({ serviceAccount: true })` yields the app's client-credentials token, and
 * `@ProcoreToken({ serviceAccount: 'reports' })` that of the named service account.
 * @publicApi
 */
export const ProcoreToken = (options?: ProcoreTokenOptions): ParameterDecorator =>
  ProcoreTokenParam(options);
