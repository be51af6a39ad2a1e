import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Controller, Get } from '@nestjs/common';
import { ApiProcoreAuth, ProcoreHealthIndicator } from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  connectOwner,
  createProcoreTestApp,
  fakeProcoreOptions,
  migrate,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

// An app that installed none of the optional integrations: importing them fails, as it would.
const OPTIONAL_PEERS = [
  '@nestjs/swagger',
  '@opentelemetry/api',
  '@nestjs/event-emitter',
  '@nestjs/terminus',
];
for (const name of OPTIONAL_PEERS) {
  const missing = () => {
    throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
  };
  jest.unstable_mockModule(name, missing); // the ESM build's import()
  jest.doMock(name, missing); // the CommonJS build's require()
}

@ApiProcoreAuth()
@Controller('projects')
class ProjectsController {
  @ApiProcoreAuth({ apiCalls: true })
  @Get()
  list() {
    return [];
  }
}

describe('without @nestjs/swagger, @opentelemetry/api, @nestjs/event-emitter and @nestjs/terminus', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: ProcoreTestApp;

  beforeAll(async () => {
    database = await createTestDatabase('no_peers');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
    app = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
    });
  });
  afterAll(async () => {
    await app.close();
    await fake.close();
    await database.drop();
  });

  it('the optional peers really are missing here', async () => {
    for (const name of OPTIONAL_PEERS) await expect(import(name)).rejects.toThrow(name);
  });

  it('boots, connects, refreshes and serves tokens (metrics, events bridge and Swagger off)', async () => {
    expect(ProjectsController).toBeDefined();
    await connectOwner(app.service, 'no-peers-user');

    await expect(app.service.refresh('no-peers-user')).resolves.toEqual(expect.any(String));
    await expect(app.service.getAccessToken('no-peers-user')).resolves.toEqual(expect.any(String));
    expect(app.events.map((event) => event.type)).toEqual([
      'procore.connection.connected',
      'procore.token.refreshed',
    ]);
  });

  it('the health indicator works without terminus', async () => {
    await expect(app.app.get(ProcoreHealthIndicator).isHealthy()).resolves.toMatchObject({
      procore: { status: 'up', database: 'up', tokenEndpoint: 'up' },
    });
  });
});
