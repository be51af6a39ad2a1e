import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Injectable, type INestApplication } from '@nestjs/common';
import { EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ProcoreAuthEventType,
  ProcoreAuthModule,
  ProcoreTokenService,
  procoreAuthEntities,
  type ProcoreAuthEvent,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  RecordingLogger,
  connectOwner,
  fakeProcoreOptions,
  migrate,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** What an app writes to react to the package's events. */
@Injectable()
class ProcoreEventListener {
  readonly received: ProcoreAuthEvent[] = [];
  throwOnRefresh = false;

  @OnEvent('procore.token.refreshed')
  onRefreshed(event: ProcoreAuthEvent) {
    this.received.push(event);
    if (this.throwOnRefresh) throw new Error('listener failed');
  }

  @OnEvent(ProcoreAuthEventType.ReauthorizationRequired)
  onReauthorizationRequired(event: ProcoreAuthEvent) {
    this.received.push(event);
  }

  @OnEvent('procore.connection.connected')
  onConnected(event: ProcoreAuthEvent) {
    this.received.push(event);
  }
}

describe('events through @nestjs/event-emitter (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: INestApplication;
  let listener: ProcoreEventListener;
  let service: ProcoreTokenService;
  let logger: RecordingLogger;
  let owner = 0;
  const nextOwner = () => `events-user-${++owner}`;

  beforeAll(async () => {
    database = await createTestDatabase('events');
    await migrate(database.url);
  });
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    const moduleRef = await Test.createTestingModule({
      imports: [
        EventEmitterModule.forRoot(),
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: database.url,
          entities: procoreAuthEntities,
        }),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake)),
      ],
      providers: [ProcoreEventListener],
    }).compile();
    logger = new RecordingLogger();
    app = moduleRef.createNestApplication({ logger });
    await app.init();
    listener = app.get(ProcoreEventListener);
    service = app.get(ProcoreTokenService);
  });
  afterEach(async () => {
    await app.close();
    await fake.close();
  });
  afterAll(() => database.drop());

  it('delivers connected and token refreshed events to @OnEvent() listeners', async () => {
    const ownerId = nextOwner();
    await connectOwner(service, ownerId);
    await service.refresh(ownerId);

    expect(listener.received).toEqual([
      { type: 'procore.connection.connected', ownerId, at: expect.any(Date) },
      {
        type: 'procore.token.refreshed',
        ownerId,
        at: expect.any(Date),
        expiresAt: expect.any(Date),
        version: 2,
        trigger: 'manual',
      },
    ]);
  });

  it('delivers reauthorization required with its cause', async () => {
    const ownerId = nextOwner();
    await connectOwner(service, ownerId);
    fake.revokeToken(await service.getAccessToken(ownerId));

    await expect(service.refresh(ownerId)).rejects.toThrow();

    expect(listener.received.at(-1)).toEqual({
      type: 'procore.connection.reauthorization_required',
      ownerId,
      at: expect.any(Date),
      cause: 'invalid_grant',
    });
  });

  it('a listener that throws does not fail the refresh', async () => {
    const ownerId = nextOwner();
    await connectOwner(service, ownerId);
    listener.throwOnRefresh = true;

    await expect(service.refresh(ownerId)).resolves.toEqual(expect.any(String));
    expect(listener.received.at(-1)).toMatchObject({ type: 'procore.token.refreshed', ownerId });
    // @nestjs/event-emitter logs its listener's error itself.
    expect(logger.lines.filter((line) => line.startsWith('error listener failed'))).toHaveLength(1);
  });
});
