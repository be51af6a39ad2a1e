import type { HttpAdapterHost } from '@nestjs/core';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';

/**
 * Finds, from a request, the provider of ITS app that resolves a parameter decorator
 * (`@ProcoreToken()`, `@ProcoreApi()`). Internal.
 *
 * Why not a pipe: Nest runs a parameter's pipes through several async functions and a
 * `Promise.all()` on every request (~17 µs of a ~60 µs route on the benchmark machine), while a
 * custom parameter factory that returns a value is used as it is. A factory has no dependency
 * injection, so each app's provider registers itself on the app's HTTP server instance (the
 * Express app, which Express requests reach as `req.app`; the Fastify instance, `request.server`,
 * whose child instances inherit it). A process with a single app (the usual case) uses that app's
 * provider without reading the request at all, so it also works when the request leads to no
 * server instance (a GraphQL context built by hand, another adapter).
 */
export class ProcoreParamResolvers<T extends object> {
  private readonly key: symbol;
  private readonly live = new Set<T>();
  /**
   * The resolver when one app is live and no other has been since the process had none (the
   * usual case), used without reading the request. Once two apps have been live together, every
   * request is matched to its own app, even after one of them closes: a closing app still
   * answers requests while its shutdown hooks run, and they must not reach the other app.
   */
  private only: T | undefined;
  private shared = false;

  constructor(private readonly decorator: string) {
    this.key = Symbol(`procore.${decorator}`);
  }

  /** Called by the provider when its module initialises. */
  register(resolver: T, adapterHost: HttpAdapterHost | undefined): void {
    this.live.add(resolver);
    if (this.live.size > 1) this.shared = true;
    this.only = this.onlyLive();
    const server = adapterHost?.httpAdapter?.getInstance<unknown>();
    if (isObject(server)) (server as Record<symbol, T>)[this.key] = resolver;
  }

  /** Called by the provider when its module is destroyed (app.close()). */
  unregister(resolver: T): void {
    this.live.delete(resolver);
    if (this.live.size === 0) this.shared = false;
    this.only = this.onlyLive();
  }

  /**
   * The resolver of the request's app. With a single app in the process it is that app's, without
   * looking at the request: reading `req.app` from an Express request (whose prototype Express
   * swaps on every request) cost more than the rest of a cache hit.
   */
  find(request: unknown): T {
    if (this.only) return this.only;
    const server = serverOf(request);
    const resolver = server ? (server as Record<symbol, T | undefined>)[this.key] : undefined;
    if (resolver) return resolver;
    // A request that leads to no server instance (a GraphQL context built by hand, another
    // adapter): the only live app, if there is one.
    const single = this.single();
    if (single) return single;
    throw new ProcoreConfigurationError(
      this.live.size === 0
        ? `${this.decorator} is used, but ProcoreAuthModule is not initialised in this application: import ProcoreAuthModule.forRoot() (or forRootAsync()) in the application's module.`
        : `${this.decorator} could not tell which of ${this.live.size} applications in this process the request belongs to (its request leads to no Express app or Fastify instance): resolve the token with ProcoreTokenService in the handler instead.`,
    );
  }

  private onlyLive(): T | undefined {
    return this.shared ? undefined : this.single();
  }

  private single(): T | undefined {
    return this.live.size === 1 ? (this.live.values().next().value as T) : undefined;
  }
}

/** The Express app (`req.app`) or Fastify instance (`request.server`) a request came through. */
function serverOf(request: unknown): object | undefined {
  if (!isObject(request)) return undefined;
  // `app` first, and `server` only when it is missing: a property an Express request lacks is
  // looked up along its whole prototype chain.
  const app = (request as { app?: unknown }).app;
  if (isObject(app)) return app;
  const server = (request as { server?: unknown }).server;
  return isObject(server) ? server : undefined;
}

function isObject(value: unknown): value is object {
  return (typeof value === 'object' || typeof value === 'function') && value !== null;
}
