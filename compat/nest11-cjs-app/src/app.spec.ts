// The app's own jest + ts-jest suite (CommonJS, the NestJS 11 template's setup, no
// transformIgnorePatterns): it loads nestjs-procore-auth and nestjs-procore-auth/testing.
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  ProcoreAuthError,
  ProcoreReauthorizationRequiredError,
  ProcoreTokenService,
} from 'nestjs-procore-auth';
import { FakeProcoreServer, connectWithFakeProcore } from 'nestjs-procore-auth/testing';
import request from 'supertest';
import { AppModule } from './app.module';
import { prepareEnvironment } from './procore-env';

describe('a NestJS 11 CommonJS app using nestjs-procore-auth', () => {
  let fake: FakeProcoreServer;
  let database: { drop(): Promise<void> };
  let app: INestApplication;

  beforeAll(async () => {
    fake = await FakeProcoreServer.start();
    database = await prepareEnvironment(fake, 'compat_nest11_jest');
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
    await fake?.close();
    await database?.drop();
  });

  it('loads the CommonJS build of both entry points', () => {
    expect(require.resolve('nestjs-procore-auth')).toMatch(/dist[\\/]cjs[\\/]index\.js$/);
    expect(require.resolve('nestjs-procore-auth/testing')).toMatch(
      /dist[\\/]cjs[\\/]testing[\\/]index\.js$/,
    );
  });

  it('serves a valid Procore token to a @ProcoreToken() route once the user connected', async () => {
    await connectWithFakeProcore(app.get(ProcoreTokenService), 'alice');

    const response = await request(app.getHttpServer()).get('/me').set('x-user-id', 'alice');

    expect(response.status).toBe(200);
    expect(response.body).toEqual(expect.objectContaining({ login: expect.any(String) }));
  });

  it('answers 401 not_connected for a user who never connected', async () => {
    const response = await request(app.getHttpServer()).get('/me').set('x-user-id', 'bob');

    expect(response.status).toBe(401);
    expect(response.body).toEqual(expect.objectContaining({ reason: 'not_connected' }));
  });

  it('throws errors the app can catch with the classes it imports', async () => {
    const error: unknown = await app
      .get(ProcoreTokenService)
      .getAccessToken('carol')
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ProcoreReauthorizationRequiredError);
    expect(error).toBeInstanceOf(ProcoreAuthError);
  });
});
