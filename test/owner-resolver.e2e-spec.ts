import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import {
  Controller,
  Get,
  Injectable,
  Module,
  UseGuards,
  type INestApplication,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import {
  ProcoreApi,
  ProcoreAuthGuard,
  ProcoreAuthModule,
  ProcoreRequestOwnerResolver,
  ProcoreToken,
  ProcoreTokenService,
  procoreAuthEntities,
  type ProcoreScopedClient,
} from 'nestjs-procore-auth';
import { FakeProcoreServer, connectWithFakeProcore } from 'nestjs-procore-auth/testing';
import { ownerFromHeader } from './support/procore-http-app.js';
import { fakeProcoreOptions, migrate } from './support/procore-test-app.js';
import { secretScanLogger } from './support/secret-scan.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** The Procore user id an access token was issued for (the fake's JWT `sub`). */
function subjectOf(token: string): string {
  const claims = JSON.parse(
    Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'),
  ) as {
    sub: string;
  };
  return claims.sub;
}

/** The app's own way of finding the user: a tenant header, not the `ownerResolver` option's. */
@Injectable()
class TenantOwnerResolver extends ProcoreRequestOwnerResolver {
  protected override findOwner(request: unknown): string | undefined {
    return (request as { headers: Record<string, string | undefined> }).headers['x-tenant-user'];
  }
}

/** A subclassed guard that decides the owner itself (here: always grace). */
@Injectable()
class GraceOnlyGuard extends ProcoreAuthGuard {
  protected override getOwnerId(): string {
    return 'grace';
  }
}

@Controller()
class OwnerController {
  @UseGuards(ProcoreAuthGuard)
  @Get('guarded')
  async guarded(@ProcoreToken() token: string, @ProcoreApi() procore: ProcoreScopedClient) {
    const me = await procore.get<{ id: number }>('/rest/v1.0/me');
    return { token: subjectOf(token), api: String(me.id) };
  }

  @Get('token')
  token(@ProcoreToken() token: string) {
    return { token: subjectOf(token) };
  }

  @Get('api')
  async api(@ProcoreApi() procore: ProcoreScopedClient) {
    return { api: String((await procore.get<{ id: number }>('/rest/v1.0/me')).id) };
  }

  @UseGuards(GraceOnlyGuard)
  @Get('subclassed')
  async subclassed(@ProcoreToken() token: string, @ProcoreApi() procore: ProcoreScopedClient) {
    const me = await procore.get<{ id: number }>('/rest/v1.0/me');
    return { token: subjectOf(token), api: String(me.id) };
  }
}

describe('one owner resolver for the guard, the decorators and the OAuth routes', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: INestApplication;
  let service: ProcoreTokenService;

  beforeAll(async () => {
    database = await createTestDatabase('owner_resolver');
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
        // The option says x-user-id; the overridden resolver says x-tenant-user: the override wins everywhere.
        ProcoreAuthModule.forRoot({
          ...fakeProcoreOptions(fake, { ownerResolver: ownerFromHeader }),
          isGlobal: true,
        }),
      ],
      controllers: [OwnerController],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] })
      .overrideProvider(ProcoreRequestOwnerResolver)
      .useClass(TenantOwnerResolver)
      .compile();
    app = moduleRef.createNestApplication({ logger: secretScanLogger });
    await app.init();
    service = app.get(ProcoreTokenService);
  });
  afterEach(async () => {
    await app.close();
    await fake.close();
  });

  const ada = { id: 101, login: 'ada@example.com', name: 'Ada' };
  const grace = { id: 202, login: 'grace@example.com', name: 'Grace' };
  const as = (path: string, headers: Record<string, string>) => {
    const call = request(app.getHttpServer()).get(path);
    for (const [name, value] of Object.entries(headers)) call.set(name, value);
    return call;
  };

  /** Connects `ada` through the mounted authorize route, as the resolver sees the request. */
  async function connectAdaThroughRoutes(): Promise<void> {
    fake.user = ada;
    const browser = request.agent(app.getHttpServer());
    const start = await browser
      .get('/procore/oauth/authorize')
      .set('x-tenant-user', 'ada')
      .set('x-user-id', 'grace')
      .expect(302);
    const approved = await fetch(start.headers.location as string, { redirect: 'manual' });
    const callback = new URL(approved.headers.get('location') as string);
    await browser
      .get('/procore/oauth/callback')
      .query({ code: callback.searchParams.get('code'), state: callback.searchParams.get('state') })
      .set('x-tenant-user', 'ada')
      .expect(200);
  }

  it('the authorize and callback routes connect the owner the resolver finds', async () => {
    await connectAdaThroughRoutes();
    expect(await service.getConnection('ada')).toMatchObject({ status: 'active' });
    expect(await service.getConnection('grace')).toBeNull();
  });

  it('the guard, @ProcoreToken() and @ProcoreApi() all serve the owner the resolver finds', async () => {
    await connectAdaThroughRoutes();
    fake.user = grace;
    await connectWithFakeProcore(service, 'grace');
    const headers = { 'x-tenant-user': 'ada', 'x-user-id': 'grace' };
    expect((await as('/guarded', headers).expect(200)).body).toEqual({ token: '101', api: '101' });
    expect((await as('/token', headers).expect(200)).body).toEqual({ token: '101' });
    expect((await as('/api', headers).expect(200)).body).toEqual({ api: '101' });
  });

  it('a request the resolver finds no owner in is refused alike by the guard, both decorators and the authorize route', async () => {
    const headers = { 'x-user-id': 'grace' };
    for (const path of ['/guarded', '/token', '/api', '/procore/oauth/authorize']) {
      const response = await as(path, headers).expect(401);
      expect(response.body).toMatchObject({ reason: 'no_owner' });
    }
  });

  it('the decorators use the owner a subclassed guard settled on', async () => {
    fake.user = grace;
    await connectWithFakeProcore(service, 'grace');
    fake.user = ada;
    await connectWithFakeProcore(service, 'ada');
    const response = await as('/subclassed', { 'x-tenant-user': 'ada' }).expect(200);
    expect(response.body).toEqual({ token: '202', api: '202' });
  });
});
