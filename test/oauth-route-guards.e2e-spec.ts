import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import {
  Controller,
  Get,
  Injectable,
  Module,
  UnauthorizedException,
  UseGuards,
  type CanActivate,
  type DynamicModule,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import {
  ProcoreAuthModule,
  ProcoreToken,
  procoreAuthEntities,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import type { Platform } from './support/procore-http-app.js';
import { fakeProcoreOptions, migrate } from './support/procore-test-app.js';
import { secretScanLogger } from './support/secret-scan.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

type AppRequest = { headers: Record<string, string | undefined>; user?: { id: string } };

/** The app's sessions: a signed-in browser carries `session=<id>`. */
@Injectable()
class Sessions {
  private readonly users = new Map([
    ['s-ada', 'ada'],
    ['s-grace', 'grace'],
  ]);
  userOf(cookieHeader: string | undefined): string | undefined {
    const session = /(?:^|;\s*)session=([^;]+)/.exec(cookieHeader ?? '')?.[1];
    return session === undefined ? undefined : this.users.get(session);
  }
}

@Module({ providers: [Sessions], exports: [Sessions] })
class SessionsModule {}

/**
 * A passport-style guard: authenticates the request from its session cookie and sets `req.user`,
 * or refuses with the app's own 401. It injects the app's `Sessions`.
 */
@Injectable()
class SessionGuard implements CanActivate {
  constructor(private readonly sessions: Sessions) {}
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<AppRequest>();
    const id = this.sessions.userOf(request.headers.cookie);
    if (!id) throw new UnauthorizedException('app: sign in first');
    request.user = { id };
    return true;
  }
}

/** Header authentication (an API for a single-page app): `Authorization: Bearer <user>`. */
class BearerGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<AppRequest>();
    const id = /^Bearer (\w+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (!id) throw new UnauthorizedException('app: bearer token required');
    request.user = { id };
    return true;
  }
}

/** A global guard (APP_GUARD) like an app's JWT/session guard: everything needs a session. */
@Injectable()
class GlobalSessionGuard extends SessionGuard {}

function projectsController(guard: new (...args: never[]) => CanActivate) {
  @Controller()
  class ProjectsController {
    @UseGuards(guard)
    @Get('projects')
    projects(@ProcoreToken() token: string) {
      return { hasToken: token.length > 0 };
    }
  }
  return ProjectsController;
}

describe.each<Platform>(['express', 'fastify'])(
  "the OAuth routes behind the app's guards on %s",
  (platform) => {
    let database: TestDatabase;
    let fake: FakeProcoreServer;
    let app: INestApplication | undefined;
    const options = (): ProcoreAuthModuleOptions => fakeProcoreOptions(fake);
    const server = () => app!.getHttpServer();

    beforeAll(async () => {
      database = await createTestDatabase(`route_guards_${platform}`);
      await migrate(database.url);
    });
    afterAll(() => database.drop());
    beforeEach(async () => {
      fake = await FakeProcoreServer.start();
    });
    afterEach(async () => {
      await app?.close();
      app = undefined;
      await fake.close();
    });

    async function startApp(
      imports: DynamicModule[],
      metadata: { controllers?: never[]; providers?: never[] } = {},
    ) {
      @Module({
        imports: [
          TypeOrmModule.forRoot({
            type: 'postgres',
            url: database.url,
            entities: procoreAuthEntities,
          }),
          SessionsModule,
          ...imports,
        ],
        ...metadata,
      })
      class AppModule {}
      const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
      app =
        platform === 'fastify'
          ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: secretScanLogger })
          : moduleRef.createNestApplication({ logger: secretScanLogger });
      await app.init();
      if (platform === 'fastify') {
        await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
      }
    }

    /** The fake's consent page for our authorize URL → the code and state it sends back. */
    async function approve(url: string) {
      const approved = await fetch(url, { redirect: 'manual' });
      const callback = new URL(approved.headers.get('location') as string);
      return { code: callback.searchParams.get('code'), state: callback.searchParams.get('state') };
    }

    // First in the file: the guarded routes are mounted before any app was created, i.e. before the
    // package documented its routes for Swagger (which it does once, while the first app is created).
    it("per-route guards keep the routes' OpenAPI description, even when mounted before it was written", async () => {
      const guardedModule = ProcoreAuthModule.forRoot({
        ...options(),
        routes: { guards: { authorize: [BearerGuard], callback: [BearerGuard] } },
      });
      const describeRoutes = () =>
        SwaggerModule.createDocument(app!, new DocumentBuilder().build()).paths;
      await startApp([ProcoreAuthModule.forRoot(options())]);
      const plain = describeRoutes();
      await app!.close();
      await startApp([guardedModule]);
      const guarded = describeRoutes();
      expect(plain['/procore/oauth/authorize']?.get?.responses).toBeDefined();
      expect(guarded['/procore/oauth/authorize']).toEqual(plain['/procore/oauth/authorize']);
      expect(guarded['/procore/oauth/callback']).toEqual(plain['/procore/oauth/callback']);
    });

    it('a global guard (APP_GUARD) protects the OAuth routes too, and signs in the owner they connect', async () => {
      await startApp([ProcoreAuthModule.forRoot({ ...options(), isGlobal: true })], {
        controllers: [projectsController(GlobalSessionGuard)] as never[],
        providers: [{ provide: APP_GUARD, useClass: GlobalSessionGuard }] as never[],
      });
      for (const path of ['/procore/oauth/authorize', '/procore/oauth/callback?code=c&state=s']) {
        const refused = await request(server()).get(path).expect(401);
        expect(refused.body).toMatchObject({ message: 'app: sign in first' });
      }

      const browser = request.agent(server());
      const start = await browser
        .get('/procore/oauth/authorize')
        .set('cookie', 'session=s-ada')
        .expect(302);
      const { code, state } = await approve(start.headers.location as string);
      // The browser comes back from Procore with its cookies: the session and the flow's binding.
      const cookies = [start.headers['set-cookie']].flat().map((c) => String(c).split(';')[0]);
      await request(server())
        .get('/procore/oauth/callback')
        .query({ code, state })
        .set('cookie', [...cookies, 'session=s-ada'].join('; '))
        .expect(200)
        .expect((res) => expect(res.body).toMatchObject({ connected: true, ownerId: 'ada' }));
      await request(server())
        .get('/projects')
        .set('cookie', 'session=s-ada')
        .expect(200, { hasToken: true });
    });

    it('routes.guards puts a passport-style guard (a class with dependencies) on both routes', async () => {
      await startApp(
        [
          ProcoreAuthModule.forRootAsync({
            isGlobal: true,
            imports: [SessionsModule],
            useFactory: options,
            routes: { guards: [SessionGuard] },
          }),
        ],
        { controllers: [projectsController(SessionGuard)] as never[] },
      );
      for (const path of ['/procore/oauth/authorize', '/procore/oauth/callback?code=c&state=s']) {
        const refused = await request(server()).get(path).expect(401);
        expect(refused.body).toMatchObject({ message: 'app: sign in first' });
      }
      const start = await request(server())
        .get('/procore/oauth/authorize')
        .set('cookie', 'session=s-grace')
        .expect(302);
      const { code, state } = await approve(start.headers.location as string);
      const binding = String([start.headers['set-cookie']].flat()[0]).split(';')[0];
      await request(server())
        .get('/procore/oauth/callback')
        .query({ code, state })
        .set('cookie', `${binding}; session=s-grace`)
        .expect(200)
        .expect((res) => expect(res.body).toMatchObject({ connected: true, ownerId: 'grace' }));
      await request(server())
        .get('/projects')
        .set('cookie', 'session=s-grace')
        .expect(200, { hasToken: true });
    });

    it('routes.guards takes guard instances', async () => {
      await startApp([
        ProcoreAuthModule.forRoot({
          ...options(),
          isGlobal: true,
          routes: { guards: [new SessionGuard(new Sessions())] },
        }),
      ]);
      await request(server()).get('/procore/oauth/authorize').expect(401);
      await request(server())
        .get('/procore/oauth/authorize')
        .set('cookie', 'session=s-ada')
        .expect(302);
    });

    it('header-authenticated API: a guard on authorize only, a JSON answer for the script, and a callback the browser completes with its cookie', async () => {
      await startApp(
        [
          ProcoreAuthModule.forRoot({
            ...options(),
            isGlobal: true,
            routes: { guards: { authorize: [BearerGuard] } },
          }),
        ],
        { controllers: [projectsController(BearerGuard)] as never[] },
      );
      const refused = await request(server())
        .get('/procore/oauth/authorize')
        .set('accept', 'application/json')
        .expect(401);
      expect(refused.body).toMatchObject({ message: 'app: bearer token required' });

      // The single-page app asks with its bearer token and gets the URL (and the browser its cookie).
      const started = await request(server())
        .get('/procore/oauth/authorize')
        .query({ returnTo: '/settings' })
        .set('authorization', 'Bearer ada')
        .set('accept', 'application/json')
        .expect(200);
      expect(started.body).toEqual({
        url: expect.stringContaining(`${fake.url}/oauth/authorize?`),
      });
      const binding = String([started.headers['set-cookie']].flat()[0]).split(';')[0];

      // The browser navigates to Procore and back: cookies, no Authorization header.
      const { code, state } = await approve(started.body.url as string);
      await request(server())
        .get('/procore/oauth/callback')
        .query({ code, state })
        .set('cookie', binding)
        .expect(302)
        .expect('location', '/settings');
      await request(server())
        .get('/projects')
        .set('authorization', 'Bearer ada')
        .expect(200, { hasToken: true });
    });

    it('refuses a routes.guards it cannot read instead of leaving the routes unguarded', () => {
      for (const guards of [
        SessionGuard,
        { authorize: SessionGuard },
        { authorise: [SessionGuard] },
        [{ allow: true }],
      ]) {
        expect(() =>
          ProcoreAuthModule.forRoot({ ...options(), routes: { guards: guards as never } }),
        ).toThrow(/routes\.guards is invalid/);
      }
    });

    it("guards of one registration do not leak into another app's routes", async () => {
      await startApp([
        ProcoreAuthModule.forRoot({
          ...options(),
          routes: { guards: { authorize: [BearerGuard], callback: [BearerGuard] } },
        }),
      ]);
      await request(server()).get('/procore/oauth/authorize').expect(401);
      await app!.close();
      await startApp([ProcoreAuthModule.forRoot(options())]);
      // No guard of the app's: Procore's own answer for a request without a user.
      const open = await request(server()).get('/procore/oauth/authorize').expect(401);
      expect(open.body).toMatchObject({ reason: 'no_owner' });
    });
  },
);
