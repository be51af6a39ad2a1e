import 'reflect-metadata';
import { Controller, Get, Module, UseGuards, type INestApplication } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ProcoreAuthGuard,
  ProcoreAuthModule,
  ProcoreToken,
  ProcoreTokenService,
  SkipProcoreAuth,
  procoreAuthEntities,
  type ProcoreAuthModuleOptions,
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

    @SkipProcoreAuth()
    @Get('health')
    health() {
      return { ok: true };
    }
  }
  return ProjectsController;
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
    controllers: [projectsController(params.fake)],
    providers: params.globalGuard ? [{ provide: APP_GUARD, useClass: ProcoreAuthGuard }] : [],
  })
  class AppModule {}

  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app =
    params.platform === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
  await app.init();
  if (params.platform === 'fastify') {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  }
  return { app, service: app.get(ProcoreTokenService), close: () => app.close() };
}
