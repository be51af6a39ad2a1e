import { afterAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import {
  createTestDatabase,
  getAdminUrl,
  testDatabaseName,
  type TestDatabase,
} from './test-database.js';

async function query<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  values: unknown[] = [],
) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

async function databaseExists(adminUrl: string, name: string): Promise<boolean> {
  const rows = await query(adminUrl, 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return rows.length === 1;
}

describe('createTestDatabase', () => {
  const created: TestDatabase[] = [];
  afterAll(async () => {
    await Promise.all(created.map((db) => db.drop()));
  });

  it('creates two distinct, independently usable databases', async () => {
    const first = await createTestDatabase('test-database spec');
    const second = await createTestDatabase('test-database spec');
    created.push(first, second);

    expect(first.name).not.toBe(second.name);
    expect(first.url).not.toBe(second.url);

    await query(first.url, 'CREATE TABLE marker (value text)');
    await query(first.url, "INSERT INTO marker VALUES ('first')");
    const [current] = await query<{ db: string }>(first.url, 'SELECT current_database() AS db');
    expect(current.db).toBe(first.name);
    expect(await query(first.url, 'SELECT value FROM marker')).toEqual([{ value: 'first' }]);

    // The second database does not see the first one's table.
    const tables = await query(second.url, "SELECT 1 FROM pg_tables WHERE tablename = 'marker'");
    expect(tables).toEqual([]);
  });

  it('drop() removes the database even while a connection is still open', async () => {
    const db = await createTestDatabase('dropped');
    const adminUrl = await getAdminUrl();
    expect(await databaseExists(adminUrl, db.name)).toBe(true);

    const leftover = new pg.Client({ connectionString: db.url });
    leftover.on('error', () => undefined); // terminated by DROP ... WITH (FORCE)
    await leftover.connect();

    await db.drop();
    expect(await databaseExists(adminUrl, db.name)).toBe(false);
    await leftover.end().catch(() => undefined);

    await expect(db.drop()).resolves.toBeUndefined();
  });
});

describe('testDatabaseName', () => {
  it('is a lowercase identifier of at most 63 characters', () => {
    const name = testDatabaseName('A Very/Long Label! '.repeat(10));
    expect(name).toMatch(/^pa_[a-z0-9_]+_\d+_[0-9a-f]{8}$/);
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toContain(`_${process.pid}_`);
  });

  it('falls back to a placeholder label when nothing usable remains', () => {
    expect(testDatabaseName('!!!')).toMatch(/^pa_db_\d+_[0-9a-f]{8}$/);
  });
});
