import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { ProcoreTokenStore, procoreAuthEntities } from 'nestjs-procore-auth';
import {
  InMemoryProcoreOAuthStateStore,
  InMemoryProcoreTokenStore,
  runProcoreOAuthStateStoreContract,
  runProcoreTokenStoreContract,
} from 'nestjs-procore-auth/testing';
import { TypeOrmProcoreTokenStore } from '../lib/storage/typeorm-procore-token.store.js';
import { TypeOrmProcoreOAuthStateStore } from '../lib/storage/typeorm-procore-oauth-state.store.js';
import { migrate } from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * The exported store contract, run against the default (TypeORM, PostgreSQL) stores — two
 * DataSources standing for two app instances — and against the in-memory stores of
 * `nestjs-procore-auth/testing`.
 */
describe('the TypeORM stores', () => {
  let database: TestDatabase;
  const dataSources: DataSource[] = [];
  let next = 0;
  /** Alternates between the two DataSources: consecutive stores are different instances. */
  const nextDataSource = () => dataSources[next++ % dataSources.length];

  beforeAll(async () => {
    database = await createTestDatabase('store_contract');
    await migrate(database.url);
    for (let i = 0; i < 2; i++) {
      const dataSource = new DataSource({
        type: 'postgres',
        url: database.url,
        entities: procoreAuthEntities,
        poolSize: 12,
      });
      dataSources.push(await dataSource.initialize());
    }
  });
  afterAll(async () => {
    for (const dataSource of dataSources) await dataSource.destroy();
    await database.drop();
  });

  runProcoreTokenStoreContract({
    name: 'TypeOrmProcoreTokenStore',
    createStore: () => {
      const dataSource = nextDataSource();
      return new TypeOrmProcoreTokenStore(() => dataSource);
    },
  });

  runProcoreOAuthStateStoreContract({
    name: 'TypeOrmProcoreOAuthStateStore',
    // The suite's own describe/it, passed explicitly (the globals are the default).
    describe,
    it,
    createStore: () => {
      const dataSource = nextDataSource();
      return new TypeOrmProcoreOAuthStateStore(() => dataSource, 4);
    },
    maxPendingStatesPerOwner: 4,
  });
});

describe('the in-memory stores', () => {
  const tokens = new InMemoryProcoreTokenStore();
  const states = new InMemoryProcoreOAuthStateStore(10);

  runProcoreTokenStoreContract({ name: 'InMemoryProcoreTokenStore', createStore: () => tokens });
  runProcoreOAuthStateStoreContract({
    name: 'InMemoryProcoreOAuthStateStore',
    createStore: () => states,
  });

  it('the in-memory token store is a ProcoreTokenStore', () => {
    if (!(tokens instanceof ProcoreTokenStore)) throw new Error('not a ProcoreTokenStore');
  });
});

describe('registering the contract', () => {
  it('without describe() and it() to register with, says what to pass', () => {
    expect(() =>
      runProcoreTokenStoreContract({
        createStore: () => new InMemoryProcoreTokenStore(),
        it: 'not a function' as never,
      }),
    ).toThrow(
      /needs describe\(\) and it\(\).*runProcoreTokenStoreContract\(\{ describe, it, createStore \}\)/,
    );
  });
});

/** A store that breaks one guarantee must fail the suite: the contract can tell. */
describe('a store that does not lock', () => {
  class UnlockedStore extends InMemoryProcoreTokenStore {
    override async withLock<T>(
      ownerId: string,
      _lockTimeoutMs: number,
      work: Parameters<ProcoreTokenStore['withLock']>[2],
    ): Promise<T> {
      const record = await this.find(ownerId);
      const patches: object[] = [];
      const result = await work(record, {
        update: (patch) => {
          patches.push(patch);
          return Promise.resolve();
        },
      });
      if (record)
        await this.updateIfVersion(
          ownerId,
          (await this.find(ownerId))!.version,
          Object.assign({}, ...patches),
        );
      return result as T;
    }
  }
  const failures: string[] = [];
  const passes: string[] = [];
  const store = new UnlockedStore();
  runProcoreTokenStoreContract({
    name: 'UnlockedStore (expected to fail)',
    createStore: () => store,
    lockTimeoutMs: 100,
    it: (name, test) =>
      it(name, async () => {
        await test().then(
          () => passes.push(name),
          () => failures.push(name),
        );
      }),
  });
  afterAll(() => {
    for (const expected of [
      'runs one work per owner at a time, across instances, each reading what the previous one wrote',
      'concurrent lockers refresh exactly once: the others see the rotated tokens',
    ]) {
      if (!failures.includes(expected)) {
        throw new Error(`The contract did not catch a store without locks: "${expected}" passed`);
      }
    }
  });
});
