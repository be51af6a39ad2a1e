import 'reflect-metadata';
import { Controller, Get, Module, UseGuards, type INestApplication } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ProcoreAuthGuard,
  ProcoreApi,
  ProcoreAuthModule,
  ProcoreToken,
  ProcoreTokenService,
  SkipProcoreAuth,
  procoreAuthEntities,
  type ProcoreAuthModuleOptions,
  type ProcoreScopedClient,
} from 'nestjs-procore-auth';
import type { FakeProcoreServer } from 'nestjs-procore-auth/testing';

export type Platform = 'express' | 'fastify';

/** The sample's stand-in for authentication: the user id comes from a header. */
export const ownerFromHeader = (request: unknown) =>
  (request as { headers: Record<string, string | undefined> }).headers['x-user-id'];

/** Routes a user of the package would write, bound to one fake Procore server. */
function projectsController(fake: FakeProcoreServer) {
  @Controller()
  class ProjectsController {
    /** @ProcoreToken() on its own: no guard. */
    @Get('me')
    async me(@ProcoreToken() token: string) {
      const response = await fetch(`${fake.url}/rest/v1.0/me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return response.json();
    }

    /** Guard and decorator together. */
    @UseGuards(ProcoreAuthGuard)
    @Get('guarded')
    guarded(@ProcoreToken() token: string) {
      return { valid: fake.isAccessTokenValid(token) };
    }

    @Get('service')
    service(@ProcoreToken({ serviceAccount: true }) token: string) {
      return { valid: fake.isAccessTokenValid(token) };
    }

    /** A named service account (it must be configured in `serviceAccounts`). */
    @Get('service/reports')
    serviceReports(@ProcoreToken({ serviceAccount: 'reports' }) token: string) {
      const claims = token.split('.')[1] ?? '';
      const { aud } = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as {
        aud?: string;
      };
      return { valid: fake.isAccessTokenValid(token), clientId: aud };
    }

    @SkipProcoreAuth()
    @Get('health')
    health() {
      return { ok: true };
    }

    /** @ProcoreApi(): the request owner's API client. */
    @Get('api/me')
    apiMe(@ProcoreApi() procore: ProcoreScopedClient) {
      return procore.get('/rest/v1.0/me');
    }

    /** @ProcoreApi({ serviceAccount: true }): the app's own client-credentials client. */
    @Get('api/service/me')
    apiServiceMe(@ProcoreApi({ serviceAccount: true }) procore: ProcoreScopedClient) {
      return procore.get('/rest/v1.0/me');
    }

    /** The company from the path; every project through paginate(). */
    @Get('api/companies/:companyId/projects')
    async apiProjects(
      @ProcoreApi({
        companyId: (req) => (req as { params: Record<string, string> }).params.companyId,
      })
      procore: ProcoreScopedClient,
    ) {
      const projects: unknown[] = [];
      for await (const project of procore.paginate('/rest/v1.0/projects', { perPage: 2 })) {
        projects.push(project);
      }
      return { companyId: procore.companyId, projects };
    }
  }
  return ProjectsController;
}

/** `@SkipProcoreAuth()` on a whole controller: none of its routes is guarded. */
@SkipProcoreAuth()
@Controller('public')
class PublicController {
  @Get('status')
  status() {
    return { public: true };
  }
}

/**
 * A query parser that turns `a[b]=c` into objects and repeated keys into arrays, as Express's
 * `extended` parser (qs) does; for Fastify, whose default parser does neither.
 */
function extendedQuery(text: string): Record<string, unknown> {
  const query: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const nested = /^([^[\]]+)\[([^[\]]*)\]$/.exec(key);
    if (nested) {
      // As qs does when a key is both plain and nested (`a=x&a[b]=y`): the nested form wins.
      const existing = query[nested[1]];
      const object = (
        existing && typeof existing === 'object' && !Array.isArray(existing)
          ? existing
          : (query[nested[1]] = {})
      ) as Record<string, string>;
      object[nested[2]] = value;
    } else {
      query[key] = key in query ? [query[key], value].flat() : value;
    }
  }
  return query;
}

export interface HttpTestApp {
  app: INestApplication;
  service: ProcoreTokenService;
  close(): Promise<void>;
}

/** A real Nest HTTP app on Express or Fastify with the module, TypeORM and the routes above. */
export async function createHttpTestApp(params: {
  platform: Platform;
  databaseUrl: string;
  fake: FakeProcoreServer;
  options: ProcoreAuthModuleOptions;
  globalGuard?: boolean;
  /** Parse `?a[b]=c` into objects (Express: `app.set('query parser', 'extended')`). */
  extendedQueryParser?: boolean;
}): Promise<HttpTestApp> {
  @Module({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: params.databaseUrl,
        entities: procoreAuthEntities,
      }),
      ProcoreAuthModule.forRoot({ ...params.options, isGlobal: true }),
    ],
    controllers: [projectsController(params.fake), PublicController],
    providers: params.globalGuard ? [{ provide: APP_GUARD, useClass: ProcoreAuthGuard }] : [],
  })
  class AppModule {}

  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app =
    params.platform === 'fastify'
      ? moduleRef.createNestApplication(
          new FastifyAdapter(
            params.extendedQueryParser
              ? { routerOptions: { querystringParser: extendedQuery } }
              : undefined,
          ),
          { logger: false },
        )
      : moduleRef.createNestApplication({ logger: false });
  if (params.platform === 'express' && params.extendedQueryParser) {
    (app.getHttpAdapter().getInstance() as { set(name: string, value: unknown): void }).set(
      'query parser',
      'extended',
    );
  }
  await app.init();
  if (params.platform === 'fastify') {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  }
  return { app, service: app.get(ProcoreTokenService), close: () => app.close() };
}
