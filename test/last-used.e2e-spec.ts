import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { ProcoreTokenStore } from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  connectOwner,
  createProcoreTestApp,
  fakeProcoreOptions,
  migrate,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { until } from './support/fault-harness.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * "Last used" decides which connections the scheduler keeps fresh (activeWithinDays), so a use
 * served from the cache must reach the database: at most once per touchIntervalSeconds, however
 * the token got into the cache.
 */
describe('recording "last used" from cache hits', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let procore: ProcoreTestApp;

  beforeAll(async () => {
    database = await createTestDatabase('last_used');
    await migrate(database.url);
  });
  afterAll(() => database.drop());
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    procore = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake, { scheduler: { enabled: false } }),
    });
  });
  afterEach(async () => {
    await procore.close();
    await fake.close();
  });

  const lastUsedDaysAgo = async (ownerId: string) => {
    const [row] = (await procore.dataSource.query(
      `SELECT extract(epoch FROM now() - last_used_at) / 86400 AS days
         FROM procore_oauth_tokens WHERE owner_id = $1`,
      [ownerId],
    )) as { days: string }[];
    return Number(row.days);
  };

  it('records a use served from a cache entry that a refresh (not a use) put there, once for 200 hits', async () => {
    const ownerId = 'last-used-1';
    await connectOwner(procore.service, ownerId);
    await procore.dataSource.query(
      `UPDATE procore_oauth_tokens SET last_used_at = now() - interval '8 days' WHERE owner_id = $1`,
      [ownerId],
    );
    // The scheduler's path: a refresh caches the new token without recording a use.
    await procore.service.refresh(ownerId);
    expect(await lastUsedDaysAgo(ownerId)).toBeGreaterThan(7);

    const touch = jest.spyOn(procore.app.get(ProcoreTokenStore), 'touch');
    const tokens = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const token = procore.service.cachedAccessToken(ownerId);
      if (token !== undefined) tokens.add(token);
    }
    expect(tokens.size).toBe(1);
    // Written off the hot path, on a timer: wait for that write to settle.
    await until(() => touch.mock.results.length > 0, 'the last-used write');
    await touch.mock.results[0]?.value;
    expect(touch).toHaveBeenCalledTimes(1);
    expect(touch.mock.calls[0]?.[0]).toEqual([ownerId]);
    expect(await lastUsedDaysAgo(ownerId)).toBeLessThan(0.01);
  });
});
