import { describe, expect, it } from '@jest/globals';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import type { ProcoreTokenService } from '../tokens/procore-token.service.js';
import type { ProcoreAuthRoutes } from './procore-auth-routes.js';
import { ProcoreAuthGuard } from './procore-auth.guard.js';
import { procoreRequestOf, procoreRequestOrFirstArgument } from './procore-execution-context.js';

/** A resolver call as `@nestjs/graphql` hands it over: (root, args, context, info). */
function graphqlCall(context: unknown): ExecutionContextHost {
  const host = new ExecutionContextHost([{}, {}, context, {}], class Resolver {}, () => undefined);
  host.setType('graphql');
  return host;
}

describe('the request of a GraphQL resolver whose context has none', () => {
  const contexts: [string, unknown][] = [
    ['an empty context', {}],
    ['no context at all', undefined],
    ['a req that is not an object', { req: 'ada' }],
  ];

  it.each(contexts)('refuses %s where an owner is needed, naming the fix', (_, context) => {
    expect(() => procoreRequestOf(graphqlCall(context), '@ProcoreToken()')).toThrow(
      ProcoreConfigurationError,
    );
    expect(() => procoreRequestOf(graphqlCall(context), '@ProcoreToken()')).toThrow(
      /context: \(\{ req \}\) => \(\{ req \}\)/,
    );
  });

  it.each(contexts)(
    'has no request for a service account with %s (no owner needed)',
    (_, context) => {
      expect(
        procoreRequestOrFirstArgument(graphqlCall(context), '@ProcoreToken()'),
      ).toBeUndefined();
    },
  );

  it('ProcoreAuthGuard refuses the resolver instead of letting it through, and asks no token', async () => {
    let asked = 0;
    const tokens = {
      getAccessToken: () => {
        asked += 1;
        return Promise.resolve('token');
      },
    } as unknown as ProcoreTokenService;
    const options = { ownerResolver: () => 'ada' } as unknown as ResolvedProcoreAuthOptions;
    const routes = { authorizePath: '/procore/oauth/authorize' } as ProcoreAuthRoutes;
    const guard = new ProcoreAuthGuard(new Reflector(), tokens, options, routes);

    await expect(guard.canActivate(graphqlCall({}))).rejects.toThrow(ProcoreConfigurationError);
    expect(asked).toBe(0);
  });
});
