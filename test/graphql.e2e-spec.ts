import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Controller, Injectable, Module, UseGuards, type INestApplication } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { GraphQLModule, Query, Resolver } from '@nestjs/graphql';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import {
  ProcoreApi,
  ProcoreAuthGuard,
  ProcoreAuthModule,
  ProcoreConfigurationError,
  ProcoreToken,
  ProcoreTokenService,
  SkipProcoreAuth,
  procoreAuthEntities,
  ProcoreScopedClient,
} from 'nestjs-procore-auth';
import { FakeProcoreServer, connectWithFakeProcore } from 'nestjs-procore-auth/testing';
import { ownerFromHeader } from './support/procore-http-app.js';
import { fakeProcoreOptions, migrate } from './support/procore-test-app.js';
import { secretScanLogger } from './support/secret-scan.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** The Procore user id an access token was issued for (the fake's JWT `sub`). */
function subjectOf(token: string): string {
  const payload = Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8');
  return (JSON.parse(payload) as { sub: string }).sub;
}

type ExpressLike = {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
};
type ExpressResponse = {
  statusCode: number;
  setHeader(name: string, value: string): void;
  end(body?: string): void;
};

/**
 * Apollo on Express without `@as-integrations/express5` (not installed here): the same few lines
 * that integration runs, handing Apollo the Express request as the GraphQL context's `req`.
 */
@Injectable()
class ApolloExpressDriver extends ApolloDriver {
  override async registerExpress(options: ApolloDriverConfig): Promise<void> {
    const server = new ApolloServer(options as ConstructorParameters<typeof ApolloServer>[0]);
    await server.start();
    const context = options.context as (args: { req: unknown }) => Promise<object> | object;
    this.httpAdapterHost.httpAdapter.use(
      options.path ?? '/graphql',
      (req: ExpressLike, res: ExpressResponse) => {
        const headers = new HeaderMap();
        for (const [name, value] of Object.entries(req.headers)) {
          if (value !== undefined)
            headers.set(name, Array.isArray(value) ? value.join(', ') : value);
        }
        void server
          .executeHTTPGraphQLRequest({
            httpGraphQLRequest: {
              method: req.method.toUpperCase(),
              headers,
              search: new URL(req.url, 'http://localhost').search,
              body: req.body ?? {},
            },
            context: async () => context({ req }),
          })
          .then((result) => {
            for (const [name, value] of result.headers) res.setHeader(name, value);
            res.statusCode = result.status ?? 200;
            res.end(result.body.kind === 'complete' ? result.body.string : '');
          });
      },
    );
    this.apolloServer = server;
  }
}

@Resolver()
class ProjectsResolver {
  /** The guard and the decorator together. */
  @UseGuards(ProcoreAuthGuard)
  @Query(() => String)
  guardedSubject(@ProcoreToken() token: string): string {
    return subjectOf(token);
  }

  /** The decorator on its own. */
  @Query(() => String)
  subject(@ProcoreToken() token: string): string {
    return subjectOf(token);
  }

  @Query(() => String)
  async procoreLogin(@ProcoreApi() procore: ProcoreScopedClient): Promise<string> {
    return (await procore.get<{ login: string }>('/rest/v1.0/me')).login;
  }
}

/** Stands for a microservice / WebSocket handler class in the context tests. */
@Controller()
class MessagesHandler {
  handle(): void {}
  @SkipProcoreAuth()
  exempt(): void {}
}

describe('GraphQL resolvers', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: INestApplication;

  beforeAll(async () => {
    database = await createTestDatabase('graphql');
    await migrate(database.url);
  });
  afterAll(() => database.drop());
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    @Module({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: database.url,
          entities: procoreAuthEntities,
        }),
        ProcoreAuthModule.forRoot({
          ...fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
          isGlobal: true,
        }),
        GraphQLModule.forRoot<ApolloDriverConfig>({
          driver: ApolloExpressDriver,
          autoSchemaFile: true,
          context: ({ req }: { req: unknown }) => ({ req }),
        }),
      ],
      providers: [ProjectsResolver, ProcoreAuthGuard],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: secretScanLogger });
    await app.init();
  });
  afterEach(async () => {
    await app.close();
    await fake.close();
  });

  const query = (text: string, user?: string) => {
    const call = request(app.getHttpServer()).post('/graphql').send({ query: text });
    if (user) call.set('x-user-id', user);
    return call;
  };

  it('a connected user gets a token through @ProcoreToken(), with and without the guard, and a client through @ProcoreApi()', async () => {
    fake.user = { id: 777, login: 'ada@example.com', name: 'Ada' };
    await connectWithFakeProcore(app.get(ProcoreTokenService), 'ada');
    const response = await query('{ guardedSubject subject procoreLogin }', 'ada').expect(200);
    expect(response.body).toEqual({
      data: { guardedSubject: '777', subject: '777', procoreLogin: 'ada@example.com' },
    });
  });

  it('a user who is not connected gets a GraphQL error with the same reason as over HTTP', async () => {
    for (const field of ['guardedSubject', 'subject', 'procoreLogin']) {
      const response = await query(`{ ${field} }`, 'grace').expect(200);
      const [error] = (response.body as { errors: { extensions: Record<string, unknown> }[] })
        .errors;
      expect(error.extensions).toMatchObject({
        code: 'UNAUTHENTICATED',
        originalError: {
          statusCode: 401,
          reason: 'not_connected',
          authorizePath: '/procore/oauth/authorize',
        },
      });
    }
  });

  it('a request without a user gets reason no_owner', async () => {
    const response = await query('{ guardedSubject }').expect(200);
    expect(response.body.errors[0].extensions.originalError).toMatchObject({ reason: 'no_owner' });
  });

  describe('contexts the guard does not support', () => {
    const contextOf = (type: 'rpc' | 'ws', handler: 'handle' | 'exempt') => {
      const context = new ExecutionContextHost(
        [{ pattern: 'projects.sync' }, {}],
        MessagesHandler,
        MessagesHandler.prototype[handler],
      );
      context.setType(type);
      return context;
    };

    it.each(['rpc', 'ws'] as const)(
      'refuses a %s handler with a clear error instead of letting it through',
      async (type) => {
        const guard = app.get(ProcoreAuthGuard);
        const refusal = guard.canActivate(contextOf(type, 'handle'));
        await expect(refusal).rejects.toThrow(ProcoreConfigurationError);
        await expect(refusal).rejects.toThrow(
          `ProcoreAuthGuard supports HTTP handlers and GraphQL resolvers, not "${type}" handlers: exempt this handler with @SkipProcoreAuth()`,
        );
      },
    );

    it.each(['rpc', 'ws'] as const)(
      '@ProcoreToken() and @ProcoreApi() in a %s handler fail with a clear error',
      (type) => {
        class Handler {
          handle(@ProcoreToken() _token: string, @ProcoreApi() _procore: ProcoreScopedClient) {}
        }
        const params = Reflect.getMetadata(ROUTE_ARGS_METADATA, Handler, 'handle') as Record<
          string,
          { factory: (data: unknown, context: ExecutionContextHost) => unknown }
        >;
        const factories = Object.values(params).map((param) => param.factory);
        expect(factories).toHaveLength(2);
        for (const factory of factories) {
          expect(() => factory(undefined, contextOf(type, 'handle'))).toThrow(
            new RegExp(`supports HTTP handlers and GraphQL resolvers, not "${type}" handlers`),
          );
          expect(() => factory(undefined, contextOf(type, 'handle'))).toThrow(
            ProcoreConfigurationError,
          );
        }
      },
    );

    it.each(['rpc', 'ws'] as const)(
      'the service-account forms of both decorators need no owner: a %s handler gets past the request lookup',
      async (type) => {
        class Handler {
          handle(
            @ProcoreToken({ serviceAccount: true }) _token: string,
            @ProcoreApi({ serviceAccount: 'reports' }) _procore: ProcoreScopedClient,
          ) {}
        }
        const params = Reflect.getMetadata(ROUTE_ARGS_METADATA, Handler, 'handle') as Record<
          string,
          { factory: (data: unknown, context: ExecutionContextHost) => unknown; data: unknown }
        >;
        // The factories resolve the parameter themselves (no pipe): the app's client-credentials
        // token and the 'reports' account's client, without a request.
        const values = await Promise.all(
          Object.values(params).map(async (param) =>
            param.factory(param.data, contextOf(type, 'handle')),
          ),
        );
        expect(values).toHaveLength(2);
        expect(values.find((value) => typeof value === 'string')).toEqual(expect.any(String));
        expect(values.find((value) => typeof value === 'object')).toBeInstanceOf(
          ProcoreScopedClient,
        );
      },
    );

    it('lets a @SkipProcoreAuth() handler through', async () => {
      await expect(app.get(ProcoreAuthGuard).canActivate(contextOf('rpc', 'exempt'))).resolves.toBe(
        true,
      );
    });
  });
});
