import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { procoreAuthEntities, procoreAuthMigrations } from 'nestjs-procore-auth';

/** The server the benchmarks use: `DATABASE_URL` when set, else the development/CI server. */
export const ADMIN_DATABASE_URL =
  process.env['DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/test';

/** A database that belongs to one benchmark run. */
export interface BenchDatabase {
  url: string;
  name: string;
  /** A small pool for the benchmark's own SQL (seeding, checks). */
  pool: pg.Pool;
  /** Closes the pool and drops the database (terminating leftover connections). */
  drop(): Promise<void>;
}

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The server's version string, e.g. `15.20`. */
export function serverVersion(): Promise<string> {
  return withAdmin(async (client) => {
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return rows[0].server_version;
  });
}

/**
 * Creates `bench_<name>_<random>`, runs the package's migrations on it (`procoreAuthMigrations`)
 * and returns its URL. Call drop() at the end (also on failure).
 */
export async function createBenchDatabase(label: string): Promise<BenchDatabase> {
  const name = `bench_${label.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  await withAdmin((client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`));
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  const database: BenchDatabase = {
    url: url.toString(),
    name,
    pool: new pg.Pool({ connectionString: url.toString(), max: 4 }),
    drop: async () => {
      await database.pool.end().catch(() => undefined);
      await withAdmin((client) =>
        client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`),
      );
    },
  };
  try {
    const dataSource = new DataSource({
      type: 'postgres',
      url: database.url,
      entities: procoreAuthEntities,
      migrations: procoreAuthMigrations,
    });
    await dataSource.initialize();
    await dataSource.runMigrations();
    await dataSource.destroy();
  } catch (error) {
    await database.drop();
    throw error;
  }
  return database;
}
