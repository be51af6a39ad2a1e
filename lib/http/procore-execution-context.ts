import type { ExecutionContext } from '@nestjs/common';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';

/**
 * The request of an HTTP handler or a GraphQL resolver, as `ProcoreAuthGuard`, `@ProcoreToken()`
 * and `@ProcoreApi()` see it. GraphQL is read from the resolver's context argument (what
 * `GqlExecutionContext` would give) so `@nestjs/graphql` stays optional: `context.req` (Apollo on
 * Express and Fastify, Nest's default context), else `context.request`, else
 * `context.reply.request` (Mercurius).
 *
 * Any other context (microservices `rpc`, WebSockets `ws`) has no request these can find an owner
 * in: a clear `ProcoreConfigurationError` instead of letting it through.
 */
export function procoreRequestOf(context: ExecutionContext, user: string): unknown {
  return requestOf(context, user, true);
}

/**
 * Like `procoreRequestOf`, for what needs no owner (service-account tokens and clients): in any
 * other context, the handler's first argument (a microservice message's data, a WebSocket client).
 */
export function procoreRequestOrFirstArgument(context: ExecutionContext, user: string): unknown {
  return requestOf(context, user, false);
}

function requestOf(context: ExecutionContext, user: string, ownerNeeded: boolean): unknown {
  const type = context.getType<string>();
  // The request is the first argument (what `switchToHttp().getRequest()` returns, without its
  // per-call object: this runs on every request of a decorated route).
  if (type === 'http') return context.getArgByIndex<unknown>(0);
  if (type === 'graphql') {
    const gqlContext = context.getArgByIndex<Record<string, unknown> | undefined>(2);
    const request =
      gqlContext?.req ??
      gqlContext?.request ??
      (gqlContext?.reply as { request?: unknown } | undefined)?.request;
    if (request && typeof request === 'object') return request;
    if (!ownerNeeded) return undefined;
    throw new ProcoreConfigurationError(
      `${user} found no request in the GraphQL context: return it as "req" from the GraphQL module's context function, e.g. context: ({ req }) => ({ req }).`,
    );
  }
  if (!ownerNeeded) return context.getArgByIndex<unknown>(0);
  const fix =
    user === 'ProcoreAuthGuard'
      ? 'exempt this handler with @SkipProcoreAuth()'
      : 'remove it from this handler';
  throw new ProcoreConfigurationError(
    `${user} supports HTTP handlers and GraphQL resolvers, not "${type}" handlers: ${fix}, and pass the owner id to ProcoreTokenService or ProcoreClient yourself.`,
  );
}
