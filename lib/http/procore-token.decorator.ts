import {
  createParamDecorator,
  Inject,
  Injectable,
  type ExecutionContext,
  type PipeTransform,
} from '@nestjs/common';
import { PROCORE_AUTH_ROUTES } from '../procore-auth.constants.js';
import { ProcoreTokenService } from '../tokens/procore-token.service.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import { procoreRequestOf, procoreRequestOrFirstArgument } from './procore-execution-context.js';
import { toProcoreHttpException } from './procore-http-errors.js';
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

/** Resolves `@ProcoreToken()` parameters through `ProcoreTokenService`. Internal: use the decorator. */
@Injectable()
export class ProcoreTokenPipe implements PipeTransform<ProcoreTokenRequest, Promise<string>> {
  constructor(
    private readonly tokens: ProcoreTokenService,
    private readonly requestTokens: ProcoreRequestTokens,
    @Inject(PROCORE_AUTH_ROUTES) private readonly routes: ProcoreAuthRoutes,
  ) {}

  async transform({ request, options }: ProcoreTokenRequest): Promise<string> {
    try {
      const { serviceAccount } = options;
      if (typeof serviceAccount === 'string' || serviceAccount === true) {
        const name = serviceAccount === true ? undefined : serviceAccount;
        return await this.tokens.getClientCredentialsToken(name);
      }
      return (await this.requestTokens.forRequest(request)).token;
    } catch (error) {
      throw toProcoreHttpException(error, this.routes.authorizePath);
    }
  }
}

const ProcoreTokenParam = createParamDecorator(
  (options: ProcoreTokenOptions | undefined, context: ExecutionContext): ProcoreTokenRequest => ({
    // A service-account token needs no request owner: usable in any context.
    request: options?.serviceAccount
      ? procoreRequestOrFirstArgument(context, '@ProcoreToken()')
      : procoreRequestOf(context, '@ProcoreToken()'),
    options: options ?? {},
  }),
);

/**
 * A valid Procore access token for the request's owner, as a handler parameter:
 * `list(@ProcoreToken() token: string)`. Works with or without `ProcoreAuthGuard` (and reuses the
 * guard's owner and lookup when both are used); answers the same 401 bodies as the guard. Works in
 * GraphQL resolvers too (the request of the GraphQL context), where a 401 becomes a GraphQL error
 * carrying the same body (`extensions.originalError.reason` with `@nestjs/apollo`).
 * `@ProcoreToken({ serviceAccount: true })` yields the app's client-credentials token, and
 * `@ProcoreToken({ serviceAccount: 'reports' })` that of the named service account.
 */
export const ProcoreToken = (options?: ProcoreTokenOptions): ParameterDecorator =>
  ProcoreTokenParam(options, ProcoreTokenPipe);
