import 'reflect-metadata';
import { createServer } from 'node:net';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { applyEmbeddedDefaults, SampleStartupError } from './embedded-defaults.js';

/** Set when the database is the user's (DATABASE_URL), for the hint on a connection failure. */
let userDatabaseUrl: string | undefined;

async function bootstrap(): Promise<void> {
  const port = Number(process.env.PORT ?? 3000);
  userDatabaseUrl = process.env.DATABASE_URL;
  // Before anything starts: a port in use is the most common start-up failure.
  await assertPortFree(port);
  const defaults = await applyEmbeddedDefaults(port);
  // Nest's own logs wait until the app is up: a failure is reported once, by startupFailed().
  const app = await NestFactory.create(AppModule, {
    abortOnError: false,
    bufferLogs: true,
    autoFlushLogs: false,
  });
  app.flushLogs();
  await app.listen(port, '127.0.0.1');

  const base = `http://localhost:${port}`;
  const as = `-H 'x-user-id: alice'`;
  // curl's cookie jar stands in for the browser: the callback needs the cookie /authorize set.
  const jar = '-c procore-sample.cookies -b procore-sample.cookies';
  const banner = [
    '',
    `nestjs-procore-auth sample listening on ${base}`,
    ...defaults.notes.map((note) => `  ${note}`),
    '',
    "Try it (the x-user-id header is the sample's stand-in for your login):",
    "  # 1. start the connection: our route answers 302 to Procore's authorize URL",
    `  curl -s -o /dev/null -w '%{redirect_url}\\n' ${jar} ${as} ${base}/procore/oauth/authorize`,
    defaults.fakeProcore
      ? "  # 2. Procore (here the fake, which auto-approves) redirects to our callback\n  curl -s -o /dev/null -w '%{redirect_url}\\n' '<the URL printed by 1>'"
      : '  # 2. open the URL printed by 1 in a browser and approve; Procore redirects to the callback',
    '  # 3. the callback (in the same "browser": the cookie jar) stores the connection',
    `  curl -s ${jar} ${as} '<the URL printed by 2>'`,
    "  # then: Procore's /me, companies and a company's projects (all pages) as alice, the connection (no secrets), revoke",
    `  curl -s ${as} ${base}/me`,
    `  curl -s ${as} ${base}/companies`,
    `  curl -s ${as} ${base}/companies/1001/projects`,
    `  curl -s ${as} ${base}/status`,
    `  curl -s -X DELETE ${as} ${base}/connection`,
    `Or in a browser: ${base}/login/alice`,
    '',
  ];
  console.log(banner.join('\n'));

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await app.close();
    await defaults.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown());
  process.once('SIGTERM', () => void shutdown());
}

function assertPortFree(port: number): Promise<void> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      fail(
        error.code === 'EADDRINUSE'
          ? new SampleStartupError(
              `port ${port} of 127.0.0.1 is in use (another sample still running?): stop what listens there, or set PORT to a free port`,
            )
          : error,
      ),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => done()));
  });
}

const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  '3D000', // PostgreSQL: the database does not exist
]);

/** The server unreachable, or refusing the login (28xxx) or the database. */
function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (CONNECTION_ERROR_CODES.has(code) || code.startsWith('28'));
}

function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    return parsed.toString();
  } catch {
    return 'not a URL';
  }
}

/** "Invalid options:\n  - a\n  - b" (the package lists every problem) as "Invalid options: a; b". */
function oneLine(message: string): string {
  const [first, ...items] = message
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  return [first, items.map((item) => item.replace(/^- /, '')).join('; ')].filter(Boolean).join(' ');
}

/** One line on stderr, no stack trace, exit code 1 (the embedded server stops with this process). */
function startupFailed(error: unknown): never {
  // The sample's and the package's errors say what to do; a stack trace would bury that.
  let message = oneLine(error instanceof Error ? error.message : String(error));
  if (userDatabaseUrl && isConnectionFailure(error)) {
    message =
      `could not use DATABASE_URL (${withoutPassword(userDatabaseUrl)}): ${message}: ` +
      'check that the server runs and the URL is right, or unset DATABASE_URL to use the embedded PostgreSQL';
  }
  console.error(`The nestjs-procore-auth sample could not start: ${message}`);
  process.exit(1);
}

bootstrap().catch(startupFailed);
