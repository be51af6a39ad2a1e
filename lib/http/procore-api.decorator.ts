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
import type { ProcoreCompanyId } from '../api/company-id.js';
import { ProcoreClient } from '../api/procore.client.js';
import type { ProcoreScopedClient } from '../api/procore-scoped-client.js';
import { PROCORE_AUTH_ROUTES } from '../procore-auth.constants.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import { procoreRequestOf, procoreRequestOrFirstArgument } from './procore-execution-context.js';
import { toProcoreHttpException } from './procore-http-errors.js';
import { ProcoreParamResolvers } from './procore-param-resolvers.js';
import type { ResolvedRequestToken } from './procore-request-owner.js';
import { ProcoreRequestTokens } from './procore-request-tokens.js';

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

const apiResolvers = new ProcoreParamResolvers<ProcoreApiPipe>('@ProcoreApi()');

/**
 * Resolves `@ProcoreApi()` parameters. Internal: use the decorator (which calls `resolve()` from
 * its parameter factory, not as a pipe: see `ProcoreParamResolvers`).
 */
@Injectable()
export class ProcoreApiPipe
  implements
    PipeTransform<ProcoreApiRequest, Promise<ProcoreScopedClient>>,
    OnModuleInit,
    OnModuleDestroy
{
  constructor(
    private readonly client: ProcoreClient,
    private readonly requestTokens: ProcoreRequestTokens,
    @Inject(PROCORE_AUTH_ROUTES) private readonly routes: ProcoreAuthRoutes,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
  ) {}

  onModuleInit(): void {
    apiResolvers.register(this, this.adapterHost);
  }

  onModuleDestroy(): void {
    apiResolvers.unregister(this);
  }

  async transform(input: ProcoreApiRequest): Promise<ProcoreScopedClient> {
    return this.resolve(input);
  }

  /**
   * The client: returned as it is when the owner's token is cached (or the guard resolved it),
   * else a promise. Errors are thrown or rejected as the HTTP exceptions the routes answer.
   */
  resolve({
    request,
    options,
  }: ProcoreApiRequest): ProcoreScopedClient | Promise<ProcoreScopedClient> {
    try {
      const companyId = options.companyId?.(request) ?? undefined;
      if (options.serviceAccount) {
        const name = options.serviceAccount === true ? undefined : options.serviceAccount;
        return this.client.forServiceAccount(name, { companyId });
      }
      // The token is looked up now, so a user without a usable connection gets the same 401 as
      // @ProcoreToken() before the handler runs (a cache hit: no database round trip, and the
      // client reuses it).
      const resolved = this.requestTokens.resolve(request);
      return resolved instanceof Promise
        ? this.later(resolved, companyId)
        : this.client.forOwner(resolved.ownerId, { companyId });
    } catch (error) {
      throw toProcoreHttpException(error, this.routes.authorizePath);
    }
  }

  private async later(
    resolved: Promise<ResolvedRequestToken>,
    companyId: ProcoreCompanyId | undefined,
  ): Promise<ProcoreScopedClient> {
    try {
      const { ownerId } = await resolved;
      return this.client.forOwner(ownerId, { companyId });
    } catch (error) {
      throw toProcoreHttpException(error, this.routes.authorizePath);
    }
  }
}

const ProcoreApiParam = createParamDecorator(
  (
    options: ProcoreApiParamOptions | undefined,
    context: ExecutionContext,
  ): ProcoreScopedClient | Promise<ProcoreScopedClient> => {
    // A service account's client needs no request owner: usable in any context (`companyId`
    // then receives the handler's first argument, e.g. a microservice message's data).
    const request = options?.serviceAccount
      ? procoreRequestOrFirstArgument(context, '@ProcoreApi()')
      : procoreRequestOf(context, '@ProcoreApi()');
    return apiResolvers.find(request).resolve({ request, options: options ?? {} });
  },
);

/**
 * A `ProcoreScopedClient` for the request's owner, as a handler parameter:
 * `me(@ProcoreApi() procore: ProcoreScopedClient) { return procore.get('/rest/v1.0/me'); }`.
 * Same owner resolution and 401 answers as `@ProcoreToken()`. `{ serviceAccount: true | 'name' }`
 * gives a service account's client; `{ companyId: (req) => req.params.companyId }` scopes it.
 * @publicApi
 */
export const ProcoreApi = (options?: ProcoreApiParamOptions): ParameterDecorator =>
  ProcoreApiParam(options);
