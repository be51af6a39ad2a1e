import {
  createParamDecorator,
  Inject,
  Injectable,
  type ExecutionContext,
  type PipeTransform,
} from '@nestjs/common';
import type { ProcoreCompanyId } from '../api/company-id.js';
import { ProcoreClient } from '../api/procore.client.js';
import type { ProcoreScopedClient } from '../api/procore-scoped-client.js';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_AUTH_ROUTES } from '../procore-auth.constants.js';
import { ProcoreTokenService } from '../tokens/procore-token.service.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import { procoreUnauthorized, toProcoreHttpException } from './procore-http-errors.js';
import { rememberToken, resolveOwnerId, tokenResolvedByGuard } from './procore-request-owner.js';

/** Options of `@ProcoreApi()`. */
export interface ProcoreApiParamOptions {
  /**
   * A service account's client instead of the request owner's: `true` for the app's own
   * credentials, or the name of an account in `serviceAccounts`. Needs no request owner.
   */
  serviceAccount?: boolean | string;
  /**
   * The company of the request, e.g. `(req) => req.params.companyId`. An invalid id answers 400;
   * `undefined`/`null` leaves the client without a company.
   */
  companyId?: (request: unknown) => ProcoreCompanyId | null | undefined;
}

interface ProcoreApiRequest {
  request: unknown;
  options: ProcoreApiParamOptions;
}

/** Resolves `@ProcoreApi()` parameters. Internal: use the decorator. */
@Injectable()
export class ProcoreApiPipe implements PipeTransform<
  ProcoreApiRequest,
  Promise<ProcoreScopedClient>
> {
  constructor(
    private readonly client: ProcoreClient,
    private readonly tokens: ProcoreTokenService,
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_AUTH_ROUTES) private readonly routes: ProcoreAuthRoutes,
  ) {}

  async transform({ request, options }: ProcoreApiRequest): Promise<ProcoreScopedClient> {
    try {
      const companyId = options.companyId?.(request) ?? undefined;
      if (options.serviceAccount) {
        const name = options.serviceAccount === true ? undefined : options.serviceAccount;
        return this.client.forServiceAccount(name, { companyId });
      }
      const ownerId = resolveOwnerId(this.options.ownerResolver, request);
      if (ownerId === undefined) throw procoreUnauthorized('no_owner', this.routes.authorizePath);
      // Checked now, so a user without a usable connection gets the same 401 as @ProcoreToken()
      // before the handler runs (a cache hit: no database round trip, and the client reuses it).
      if (tokenResolvedByGuard(request, ownerId) === undefined) {
        rememberToken(request, ownerId, await this.tokens.getAccessToken(ownerId));
      }
      return this.client.forOwner(ownerId, { companyId });
    } catch (error) {
      throw toProcoreHttpException(error, this.routes.authorizePath);
    }
  }
}

const ProcoreApiParam = createParamDecorator(
  (options: ProcoreApiParamOptions | undefined, context: ExecutionContext): ProcoreApiRequest => ({
    request: context.switchToHttp().getRequest<unknown>(),
    options: options ?? {},
  }),
);

/**
 * A `ProcoreScopedClient` for the request's owner, as a handler parameter:
 * `me(@ProcoreApi() procore: ProcoreScopedClient) { return procore.get('/rest/v1.0/me'); }`.
 * Same owner resolution and 401 answers as `@ProcoreToken()`. `{ serviceAccount: true | 'name' }`
 * gives a service account's client; `{ companyId: (req) => req.params.companyId }` scopes it.
 */
export const ProcoreApi = (options?: ProcoreApiParamOptions): ParameterDecorator =>
  ProcoreApiParam(options, ProcoreApiPipe);
