import {
  Controller,
  Get,
  HttpException,
  HttpStatus,
  Inject,
  Injectable,
  Query,
  Req,
  Res,
  UseGuards,
  type Type,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import type {
  ProcoreRouteGuard,
  ProcoreRoutesOptions,
} from '../interfaces/procore-auth-options.interface.js';
import {
  ProcoreOAuthStateError,
  type ProcoreOAuthStateProblem,
} from '../errors/procore-oauth-state.error.js';
import { ProcoreOAuthError } from '../errors/procore-oauth.error.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import {
  procoreBadRequest,
  procoreUnauthorized,
  toProcoreHttpException,
} from './procore-http-errors.js';
import { ProcoreRequestOwnerResolver } from './procore-request-owner.resolver.js';
import { SkipProcoreAuth } from './skip-procore-auth.decorator.js';
import {
  PROCORE_AUTH_OPTIONS,
  PROCORE_AUTH_ROUTES,
  PROCORE_TOKEN_CIPHER,
} from '../procore-auth.constants.js';
import { ProcoreTokenService } from '../tokens/procore-token.service.js';
import {
  BROWSER_BINDING_KEY_PURPOSE,
  OAuthBrowserBinding,
  browserBindingAttributes,
} from '../oauth/oauth-browser-binding.js';
import { assertSafeReturnTo } from '../oauth/return-to.js';

/** A query value as parsed by Express (simple or extended parser) or Fastify: any shape. */
type QueryValue = unknown;

type RouteProblem =
  ProcoreOAuthStateProblem | 'malformed_callback' | 'code_rejected' | 'browser_mismatch';

const MESSAGES: Record<RouteProblem, string> = {
  missing_state: 'The callback has no state: start the connection again.',
  unknown_state: 'The state is unknown or was already used: start the connection again.',
  expired_state: 'The state has expired: start the connection again.',
  owner_mismatch: 'The connection was started by another user: start it again while signed in.',
  missing_code: 'The callback has no authorization code: start the connection again.',
  access_denied: 'Procore did not authorize the app.',
  invalid_return_to: 'returnTo must be a path on this site, starting with a single "/".',
  malformed_callback: 'The callback parameters are malformed: start the connection again.',
  browser_mismatch:
    'The connection was started in another browser, or its cookie is missing: start the connection again in the same browser.',
  code_rejected:
    'Procore rejected the authorization code (expired or already used): start the connection again.',
};

function badRequest(reason: keyof typeof MESSAGES): HttpException {
  return procoreBadRequest(reason, MESSAGES[reason]);
}

/**
 * A single string query value. Anything else is malformed (`null`): repeated parameters
 * (`?state=a&state=b`) and, with Express's extended parser, objects (`?state[a]=x`).
 */
function single(value: QueryValue): string | undefined | null {
  if (value === undefined || value === '') return undefined;
  return typeof value === 'string' ? value : null;
}

/** Whether the client asked for JSON rather than a page (a script, not a browser navigation). */
function wantsJson(request: unknown): boolean {
  const accept = (request as { headers?: Record<string, unknown> }).headers?.accept;
  const value = Array.isArray(accept) ? accept.join(',') : typeof accept === 'string' ? accept : '';
  return /application\/json/i.test(value) && !/text\/html/i.test(value);
}

/** The stored `returnTo`, checked again before it goes into a `Location` header (`null`: do not redirect). */
function safeLocation(returnTo: string | null): string | null {
  if (!returnTo) return null;
  try {
    return assertSafeReturnTo(returnTo);
  } catch {
    return null;
  }
}

/**
 * The OAuth routes: `GET <path>/authorize` sends the signed-in user to Procore, `GET <path>/callback`
 * completes the connection. Mounted by the module (see the `routes` module option).
 */
@Injectable()
export class ProcoreOAuthController {
  private bindingOf: OAuthBrowserBinding | undefined;

  /** The owner of a request, as the guard and the decorators see it (a property: see the guard). */
  @Inject(ProcoreRequestOwnerResolver) protected readonly owners!: ProcoreRequestOwnerResolver;

  constructor(
    protected readonly tokens: ProcoreTokenService,
    @Inject(PROCORE_AUTH_OPTIONS) protected readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_AUTH_ROUTES) protected readonly routes: ProcoreAuthRoutes,
    protected readonly adapterHost: HttpAdapterHost,
    @Inject(PROCORE_TOKEN_CIPHER) protected readonly cipher: TokenCipher,
  ) {}

  /** The browser-binding cookies (`bindFlowToBrowser`), keyed from the current encryption key. */
  protected get browserBinding(): OAuthBrowserBinding {
    this.bindingOf ??= new OAuthBrowserBinding(
      this.cipher.deriveKey(BROWSER_BINDING_KEY_PURPOSE),
      browserBindingAttributes(this.options.redirectUri, this.options.stateTtlSeconds),
    );
    return this.bindingOf;
  }

  /**
   * 302 to Procore's authorize URL for the request's owner. `returnTo`: same-origin path to land
   * on afterwards. With `bindFlowToBrowser` (default) it also sets the flow's binding cookie.
   * Asked for JSON (`Accept: application/json` without `text/html`, as a single-page app's `fetch`
   * with its `Authorization` header would), it answers 200 `{ url }` instead, cookie included,
   * and the app sends the browser to `url` itself.
   */
  @Get('authorize')
  @SkipProcoreAuth()
  async authorize(
    @Req() request: unknown,
    @Res() response: unknown,
    @Query('returnTo') returnTo: QueryValue,
  ): Promise<void> {
    const ownerId = this.owners.resolve(request);
    if (ownerId === undefined) throw procoreUnauthorized('no_owner', this.routes.authorizePath);
    const target = single(returnTo);
    if (target === null) throw badRequest('invalid_return_to');
    try {
      const { url, state } = await this.tokens.getAuthorizationUrl(ownerId, { returnTo: target });
      const { httpAdapter } = this.adapterHost;
      if (this.options.bindFlowToBrowser) {
        httpAdapter.setHeader(response, 'Set-Cookie', this.browserBinding.issue(state));
      }
      httpAdapter.setHeader(response, 'Cache-Control', 'no-store');
      if (wantsJson(request)) httpAdapter.reply(response, { url }, HttpStatus.OK);
      else httpAdapter.redirect(response, HttpStatus.FOUND, url);
    } catch (error) {
      throw this.toHttp(error);
    }
  }

  /**
   * Procore redirects here. With `bindFlowToBrowser` (default), first requires the flow's binding
   * cookie (else 400 `browser_mismatch`, the state untouched) and clears it whatever the outcome.
   * Then verifies the one-time state (unexpired, and started by the same owner when the request
   * has one), stores the connection, and redirects to `returnTo` or answers
   * `{ connected: true, ... }`. Bad input answers 400 and stores nothing.
   */
  @Get('callback')
  @SkipProcoreAuth()
  async callback(
    @Req() request: unknown,
    @Res() response: unknown,
    @Query('code') code: QueryValue,
    @Query('state') state: QueryValue,
    @Query('error') error: QueryValue,
  ): Promise<void> {
    const params = { code: single(code), state: single(state), error: single(error) };
    if (params.code === null || params.state === null || params.error === null) {
      throw badRequest('malformed_callback');
    }
    const { httpAdapter } = this.adapterHost;
    if (this.options.bindFlowToBrowser && params.state) {
      const binding = this.browserBinding;
      httpAdapter.setHeader(response, 'Set-Cookie', binding.clear(params.state));
      const cookies = (request as { headers?: Record<string, unknown> }).headers?.cookie;
      if (!binding.verify(params.state, cookies)) throw badRequest('browser_mismatch');
    }
    try {
      const result = await this.tokens.handleCallback({
        ...params,
        ownerId: this.owners.resolve(request),
      });
      const location = safeLocation(result.returnTo);
      if (location) {
        httpAdapter.redirect(response, HttpStatus.FOUND, location);
        return;
      }
      const { ownerId, status, expiresAt, environment } = result.connection;
      httpAdapter.reply(
        response,
        { connected: true, ownerId, status, environment, expiresAt },
        HttpStatus.OK,
      );
    } catch (caught) {
      throw this.toHttp(caught);
    }
  }

  private toHttp(error: unknown): unknown {
    if (error instanceof ProcoreOAuthStateError) return badRequest(error.problem);
    if (error instanceof ProcoreOAuthError) return badRequest('code_rejected');
    return toProcoreHttpException(error, this.routes.authorizePath);
  }
}

/**
 * Gives the mounted class its own copy of a route method with `guards` (guards set on the base
 * method itself would leak into every other mounted copy). The copy inherits the base method's
 * metadata (path, verb, `@SkipProcoreAuth()`, documentation added later) through its prototype:
 * reflect-metadata looks a function's metadata up along that chain.
 */
function guardRoute(
  mounted: Type<ProcoreOAuthController>,
  name: 'authorize' | 'callback',
  guards: ProcoreRouteGuard[],
): void {
  const base = ProcoreOAuthController.prototype[name] as (...args: unknown[]) => unknown;
  const own = {
    [name](this: ProcoreOAuthController, ...args: unknown[]) {
      return base.apply(this, args);
    },
  }[name];
  Object.setPrototypeOf(own, base);
  const descriptor = { value: own, writable: true, configurable: true, enumerable: false };
  Object.defineProperty(mounted.prototype, name, descriptor);
  UseGuards(...guards)(mounted.prototype, name, descriptor);
}

/**
 * The controller mounted under the configured path (a subclass, so the base stays reusable), with
 * the app's guards (`routes.guards`).
 */
export function createProcoreOAuthController(
  path: string,
  guards: ProcoreRoutesOptions['guards'] = [],
): Type<ProcoreOAuthController> {
  @Controller(path)
  class MountedProcoreOAuthController extends ProcoreOAuthController {}
  if (Array.isArray(guards)) {
    if (guards.length > 0) UseGuards(...guards)(MountedProcoreOAuthController);
  } else {
    for (const name of ['authorize', 'callback'] as const) {
      const routeGuards = guards[name] ?? [];
      if (routeGuards.length > 0) guardRoute(MountedProcoreOAuthController, name, routeGuards);
    }
  }
  return MountedProcoreOAuthController;
}
