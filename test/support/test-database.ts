import { afterAll } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  resolvePostgresServer,
  TEST_DATABASE_URL_ENV,
  type ResolvedPostgresServer,
} from './global-setup.js';

/** A database that belongs to one suite. */
export interface TestDatabase {
  /** Connection URL of the new database (same server and credentials as the admin URL). */
  url: string;
  /** The database name, `pa_<label>_<pid>_<hex>`. */
  name: string;
  /** Drops the database, terminating connections the suite left open. Safe to call twice. */
  drop(): Promise<void>;
}

/** PostgreSQL truncates identifiers longer than this. */
const MAX_IDENTIFIER_LENGTH = 63;

/** Set only when this test file had to resolve the server itself (no global setup). */
let fallbackServer: Promise<ResolvedPostgresServer> | undefined;
let fallbackStopped = false;

// An embedded server started as a fallback belongs to this test file: stop it when the file is
// done, or its child process would keep the Jest process alive. (This is why the module must be
// imported statically: Jest only accepts hooks while collecting tests.)
afterAll(async () => {
  const server = await fallbackServer?.catch(() => undefined);
  if (server?.embedded) {
    fallbackStopped = true;
    await server.embedded.stop();
  }
});

/**
 * Creates a fresh, uniquely named database for one suite (so suites can run in parallel and
 * re-run) and returns its URL; drop() removes it (terminating leftover connections).
 */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const adminUrl = await getAdminUrl();
  const name = testDatabaseName(label);
  await withClient(adminUrl, (client) =>
    client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`),
  );
  return {
    url: databaseUrl(adminUrl, name),
    name,
    drop: async () => {
      // The fallback server is gone with all its databases; nothing left to drop.
      if (fallbackStopped) return;
      await withClient(adminUrl, (client) =>
        client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`),
      );
    },
  };
}

/** `pa_<label sanitized>_<pid>_<random hex>`, lowercase, at most 63 characters. */
export function testDatabaseName(label: string): string {
  const suffix = `_${process.pid}_${randomBytes(4).toString('hex')}`;
  const room = MAX_IDENTIFIER_LENGTH - 'pa_'.length - suffix.length;
  const sanitized =
    label
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^_+|_+$/g, '')
      .slice(0, room)
      .replace(/_+$/, '') || 'db';
  return `pa_${sanitized}${suffix}`;
}

/**
 * The admin URL global setup chose. When a spec runs without global setup, the same rule is
 * applied here once per test file, and an embedded server started for it is stopped after the
 * file's tests.
 */
export async function getAdminUrl(): Promise<string> {
  const fromSetup = process.env[TEST_DATABASE_URL_ENV];
  if (fromSetup) return fromSetup;
  if (fallbackStopped) {
    throw new Error('createTestDatabase() was called after its fallback PostgreSQL was stopped');
  }
  fallbackServer ??= resolvePostgresServer();
  return (await fallbackServer).url;
}

function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withClient(
  url: string,
  work: (client: pg.Client) => Promise<unknown>,
): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await work(client);
  } finally {
    await client.end();
  }
}
