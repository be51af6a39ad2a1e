import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { ProcoreReauthorizationRequiredError } from 'nestjs-procore-auth';
import { openRefreshToken } from '../lib/crypto/connection-secrets.js';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  TEST_ENCRYPTION_KEY,
  createProcoreTestApp,
  fakeProcoreOptions,
  migrate,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';
import { ProcoreTokenStore } from '../lib/storage/procore-token.store.js';
import { PROCORE_TOKEN_CIPHER } from '../lib/procore-auth.constants.js';
import type { TokenCipher } from '../lib/crypto/token-cipher.js';

/** Resolves once `condition()` holds, checking every few ms; fails after `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await delay(5);
  }
}

describe('an instance killed with SIGKILL in the middle of refreshes', () => {
  const CONNECTIONS = 120;
  const CONCURRENCY = 8;
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: ProcoreTestApp;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    database = await createTestDatabase('crash');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await app?.close();
    await fake.close();
    await database.drop();
  });

  it('loses at most the refreshes whose new tokens were issued but not committed, and says how many', async () => {
    app = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
    });
    const owners = Array.from({ length: CONNECTIONS }, (_, i) => `crash-${i}`);
    const imported = owners.map(() => fake.issueTokens());
    await Promise.all(owners.map((owner, i) => app.service.importTokens(owner, imported[i])));
    await app.dataSource.query(
      `UPDATE procore_oauth_tokens SET expires_at = now() + interval '5 minutes'`,
    );
    await app.close();
    fake.resetCounters();
    fake.tokenLatencyMs = 20;

    // A second app instance, in its own process, refreshing with 8 refreshes in flight.
    const options = fakeProcoreOptions(fake, {
      encryptionKey: TEST_ENCRYPTION_KEY,
      scheduler: { enabled: false, concurrency: CONCURRENCY, batchSize: 40 },
    });
    child = spawn(
      process.execPath,
      ['--import', './test/support/ts-loader.mjs', 'test/support/refresh-worker.ts'],
      {
        env: {
          ...process.env,
          NODE_OPTIONS: '',
          PROCORE_WORKER_CONFIG: JSON.stringify({ databaseUrl: database.url, options }),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = once(child, 'exit');
    await until(
      () => fake.counters.successfulRefreshes >= CONNECTIONS / 3,
      60_000,
      'the child to refresh a third',
    );
    child.kill('SIGKILL');
    await exited;

    // Restart, then compare the rotations Procore performed with those the database committed.
    fake.tokenLatencyMs = 0;
    const issued = fake.counters.successfulRefreshes;
    app = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
    });
    const [{ committed }] = (await app.dataSource.query(
      `SELECT count(*)::int AS committed FROM procore_oauth_tokens WHERE version > 1`,
    )) as { committed: number }[];
    const lostWindow = issued - committed;
    console.log(
      `SIGKILL during refreshes: Procore rotated ${issued} refresh tokens, ${committed} were committed; ` +
        `${lostWindow} connection(s) lost in the issued-but-not-committed window (at most ${CONCURRENCY} in flight).`,
    );
    expect(issued).toBeLessThan(CONNECTIONS);
    // At least one: the fake (in this process) holds each answer for 20 ms after rotating, and
    // `until` polls every 5 ms, so the kill lands before the answer of the refresh that crossed
    // the threshold was even sent. At most the refreshes in flight.
    expect(lostWindow).toBeGreaterThanOrEqual(1);
    expect(lostWindow).toBeLessThanOrEqual(CONCURRENCY);
    // The lost ones are exactly those whose imported refresh token Procore consumed while the
    // row still holds it (version 1).
    const versions = new Map(
      (
        (await app.dataSource.query(`SELECT owner_id, version FROM procore_oauth_tokens`)) as {
          owner_id: string;
          version: number;
        }[]
      ).map((row) => [row.owner_id, row.version]),
    );
    const consumedNotCommitted = owners.filter(
      (owner, i) =>
        versions.get(owner) === 1 && !fake.isRefreshTokenActive(imported[i].refresh_token),
    );
    expect(consumedNotCommitted).toHaveLength(lostWindow);

    // Every connection works, except exactly those lost in the window.
    await app.dataSource.query(
      `UPDATE procore_oauth_tokens SET expires_at = now() - interval '1 minute'`,
    );
    const results = await Promise.allSettled(
      owners.map((owner) => app.service.getAccessToken(owner)),
    );
    const working = results.filter(
      (r) => r.status === 'fulfilled' && fake.isAccessTokenValid(r.value),
    );
    const lost = results.filter((r) => r.status === 'rejected');
    expect(working.length + lost.length).toBe(CONNECTIONS);
    expect(lost).toHaveLength(lostWindow);
    expect(owners.filter((_, i) => results[i].status === 'rejected')).toEqual(consumedNotCommitted);
    for (const result of lost) {
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(
        ProcoreReauthorizationRequiredError,
      );
    }
    // Rows are consistent: no lock left behind, every row decrypts or is marked for reauthorization.
    const statuses = await app.dataSource.query(
      `SELECT status, count(*)::int AS n FROM procore_oauth_tokens GROUP BY status`,
    );
    expect(statuses).toEqual(
      expect.arrayContaining([{ status: 'active', n: CONNECTIONS - lostWindow }]),
    );
  });
});

describe('an instance stopped with SIGTERM while request-path refreshes wait on Procore', () => {
  const OWNERS = 8;
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: ProcoreTestApp | undefined;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    database = await createTestDatabase('sigterm');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await app?.close();
    await fake.close();
    await database.drop();
  });

  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

  it('commits every rotated token before it exits: none lost, none sent twice, every request answered', async () => {
    app = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
    });
    const owners = Array.from({ length: OWNERS }, (_, i) => `sigterm-${i}`);
    for (const owner of owners) await app.service.importTokens(owner, fake.issueTokens());
    await app.dataSource.query(
      `UPDATE procore_oauth_tokens SET expires_at = now() - interval '1 minute'`,
    );
    await app.close();
    app = undefined;
    fake.resetCounters();
    // The fake rotates each refresh token, then holds its answer: the worst moment to stop.
    const holds = owners.map(() => fake.hold({ grantType: 'refresh_token' }));

    const options = fakeProcoreOptions(fake, {
      encryptionKey: TEST_ENCRYPTION_KEY,
      scheduler: { enabled: false },
    });
    child = spawn(
      process.execPath,
      ['--import', './test/support/ts-loader.mjs', 'test/support/http-refresh-worker.ts'],
      {
        env: {
          ...process.env,
          NODE_OPTIONS: '',
          PROCORE_WORKER_CONFIG: JSON.stringify({ databaseUrl: database.url, options }),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const lines: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
    await until(() => lines.some((line) => line.startsWith('listening ')), 60_000, 'the child');
    const port = Number(lines.find((line) => line.startsWith('listening '))!.split(' ')[1]);

    // Eight requests of eight users, each refreshing through @ProcoreToken().
    const answers = owners.map((owner) =>
      fetch(`http://127.0.0.1:${port}/token`, { headers: { 'x-user-id': owner } }).then(
        async (response) => ({ status: response.status, body: (await response.json()) as unknown }),
        (error: unknown) => ({ status: 0, body: String(error) }),
      ),
    );
    await Promise.all(holds.map((hold) => hold.arrived));
    expect(fake.counters).toMatchObject({ refreshToken: OWNERS, successfulRefreshes: OWNERS });

    child.kill('SIGTERM');
    await until(() => lines.includes('sigterm'), 10_000, 'the child to receive SIGTERM');
    // The child is shutting down, but waits for the refreshes in flight.
    expect(child.exitCode).toBeNull();
    expect(child.signalCode).toBeNull();
    for (const hold of holds) hold.release();
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: null, signal: 'SIGTERM' });
    expect(lines).toContain(
      `log Finished ${OWNERS} Procore token operation(s) before shutting down.`,
    );
    expect(lines.filter((line) => /^(warn|error|fatal) /.test(line))).toEqual([]);

    // Every request was answered with the refreshed token.
    const answered = await Promise.all(answers);
    expect(answered.map((answer) => answer.status)).toEqual(owners.map(() => 200));

    // What Procore rotated is exactly what the database committed.
    const issued = fake.counters.successfulRefreshes;
    app = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
    });
    const [{ committed }] = (await app.dataSource.query(
      `SELECT count(*)::int AS committed FROM procore_oauth_tokens
        WHERE version = 2 AND status = 'active' AND last_error_code IS NULL`,
    )) as { committed: number }[];
    console.log(
      `SIGTERM during ${OWNERS} request-path refreshes: Procore rotated ${issued} refresh tokens, ` +
        `${committed} were committed, ${issued - committed} lost; ${answered.length} requests answered 200.`,
    );
    expect(issued).toBe(OWNERS);
    expect(committed).toBe(OWNERS);

    // A fresh instance serves every owner the token the child served, without refreshing, and
    // each stored refresh token is the live one at Procore.
    for (const [index, owner] of owners.entries()) {
      const token = await app.service.getAccessToken(owner);
      expect(fake.isAccessTokenValid(token)).toBe(true);
      expect(answered[index]!.body).toEqual({ sha256: sha256(token) });
      const record = await app.app.get(ProcoreTokenStore).find(owner);
      const refreshToken = openRefreshToken(
        app.app.get<TokenCipher>(PROCORE_TOKEN_CIPHER),
        record!,
      ) as string;
      expect(fake.isRefreshTokenActive(refreshToken)).toBe(true);
    }
    expect(fake.counters).toMatchObject({
      refreshToken: OWNERS,
      successfulRefreshes: OWNERS,
      rejectedRefreshTokens: 0,
    });
  });
});
