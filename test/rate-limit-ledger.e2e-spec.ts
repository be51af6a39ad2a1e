import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { RateLimitLedger } from '../lib/api/rate-limit.ledger.js';
import { procoreAuthEntities } from '../lib/storage/index.js';
import { migrate } from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * The shared rate-limit budget in PostgreSQL, as three app instances use it: each instance is its
 * own DataSource (its own pool) and its own ledger (its own instance id), all on one holder's row.
 */
describe('RateLimitLedger (procore_rate_limits)', () => {
  let database: TestDatabase;
  const dataSources: DataSource[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('rate_ledger');
    await migrate(database.url);
  });

  afterAll(async () => {
    await Promise.all(dataSources.map((dataSource) => dataSource.destroy()));
    await database?.drop();
  });

  async function instances(count: number): Promise<RateLimitLedger[]> {
    return Promise.all(
      Array.from({ length: count }, async () => {
        const dataSource = new DataSource({
          type: 'postgres',
          url: database.url,
          entities: procoreAuthEntities,
          extra: { max: 4 },
        });
        await dataSource.initialize();
        dataSources.push(dataSource);
        return new RateLimitLedger(() => dataSource);
      }),
    );
  }

  it('shares a window between instances by their waiting callers, even when one asks much faster', async () => {
    const [fast, slow1, slow2] = await instances(3);
    const holder = 'owner\u001ffairness';
    const resetAt = Date.now() + 60_000;
    await fast.observe(holder, 60, resetAt);
    const granted = { fast: 0, slow1: 0, slow2: 0 };
    // Every instance has 30 callers waiting. The slow ones announce themselves, then ask once
    // every few ms; the fast one asks in a tight loop, 8 reservations at a time.
    await Promise.all([slow1.reserve(holder, 0, 30), slow2.reserve(holder, 0, 30)]);
    const ask = async (ledger: RateLimitLedger, name: keyof typeof granted, pauseMs: number) => {
      for (;;) {
        const grant = await ledger.reserve(holder, 1, 30);
        if (!grant) throw new Error('the window is known: a reservation must find it');
        granted[name] += grant.granted;
        if (grant.granted === 0 && !grant.capped) return; // the window is spent
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    };
    await Promise.all([
      ...Array.from({ length: 8 }, () => ask(fast, 'fast', 0)),
      ask(slow1, 'slow1', 5),
      ask(slow2, 'slow2', 5),
    ]);

    // 60 calls, 3 instances with equal demand: 20 each, never more. Without shares the fast one
    // took nearly all of them.
    expect(granted).toEqual({ fast: 20, slow1: 20, slow2: 20 });
    const [{ remaining }] = await dataSources[0].query(
      `SELECT remaining FROM procore_rate_limits WHERE holder_key = $1`,
      [holder],
    );
    expect(remaining).toBe(0);
  });

  it('a reservation while another instance finds out the window records the demand and grants nothing', async () => {
    const [prober, other] = await instances(2);
    const holder = 'owner\u001fprobe';
    expect(await prober.claimProbe(holder, 5_000)).toBe(true);
    expect(await other.claimProbe(holder, 5_000)).toBe(false);
    expect(await other.reserve(holder, 5, 7)).toMatchObject({ granted: 0, probing: true });
    const [{ shares }] = await dataSources[0].query(
      `SELECT shares FROM procore_rate_limits WHERE holder_key = $1`,
      [holder],
    );
    expect(Object.values(shares as Record<string, { w: number }>)).toEqual([
      expect.objectContaining({ w: 7, g: 0 }),
    ]);
  });
});
