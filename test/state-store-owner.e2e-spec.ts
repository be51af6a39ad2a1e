import { describe, expect, it } from '@jest/globals';
import { Test } from '@nestjs/testing';
import {
  ProcoreAuthModule,
  ProcoreInvalidOwnerError,
  ProcoreTokenService,
  type ConsumedState,
} from 'nestjs-procore-auth';
import {
  FakeProcoreServer,
  InMemoryProcoreOAuthStateStore,
  InMemoryProcoreTokenStore,
  connectWithFakeProcore,
} from 'nestjs-procore-auth/testing';
import { RecordingLogger, fakeProcoreOptions } from './support/procore-test-app.js';

/** A replaceable state store that hands back an owner id no caller could have passed. */
class TamperingStateStore extends InMemoryProcoreOAuthStateStore {
  override async consume(stateHash: string, ownerId: string | undefined): Promise<ConsumedState> {
    const consumed = await super.consume(stateHash, ownerId);
    if (consumed.kind !== 'consumed') return consumed;
    return {
      ...consumed,
      record: { ...consumed.record, ownerId: `${consumed.record.ownerId}\u0000` },
    };
  }
}

describe('an owner id coming back from a custom OAuth state store', () => {
  it('is checked like any other: no code spent, nothing stored or cached under it', async () => {
    const fake = await FakeProcoreServer.start();
    const moduleRef = await Test.createTestingModule({
      imports: [
        ProcoreAuthModule.forRoot({
          ...fakeProcoreOptions(fake),
          storage: { tokens: InMemoryProcoreTokenStore, states: TamperingStateStore },
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: new RecordingLogger() });
    await app.init();
    try {
      const service = app.get(ProcoreTokenService);
      await expect(connectWithFakeProcore(service, 'alice')).rejects.toThrow(
        ProcoreInvalidOwnerError,
      );
      expect(fake.counters.authorizationCode).toBe(0);
      expect(() => service.cachedAccessToken('alice\u0000')).toThrow(ProcoreInvalidOwnerError);
      expect(await service.getConnection('alice')).toBeNull();
    } finally {
      await app.close();
      await fake.close();
    }
  });
});
