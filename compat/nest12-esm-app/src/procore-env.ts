import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { FakeProcoreServer } from 'nestjs-procore-auth/testing';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A fresh database on the admin server, and the PROCORE_* variables for the fake server. */
export async function prepareEnvironment(
  fake: FakeProcoreServer,
  name: string,
): Promise<{ drop(): Promise<void> }> {
  const database = `${name}_${process.pid}_${randomBytes(3).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${database}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  Object.assign(process.env, {
    DATABASE_URL: url.toString(),
    PROCORE_CLIENT_ID: fake.clientId,
    PROCORE_CLIENT_SECRET: fake.clientSecret,
    PROCORE_REDIRECT_URI: 'http://127.0.0.1/procore/oauth/callback',
    PROCORE_AUTH_BASE_URL: fake.url,
    PROCORE_API_BASE_URL: fake.url,
    PROCORE_TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  });
  return { drop: () => adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`) };
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
