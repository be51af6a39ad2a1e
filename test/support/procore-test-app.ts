import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import type { INestApplication, LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  ProcoreAuthModule,
  ProcoreAuthEvents,
  ProcoreTokenService,
  procoreAuthEntities,
  procoreAuthMigrations,
  type ProcoreAuthEvent,
  type ProcoreAuthModuleOptions,
} from 'nestjs-procore-auth';
import {
  connectWithFakeProcore,
  fakeProcoreAuthOptions,
  type FakeProcoreServer,
} from 'nestjs-procore-auth/testing';
import { registerEncryptionKey, secretScanLogger } from './secret-scan.js';

/** A fresh 32-byte key in base64 (optionally with a key id), registered with the secret check. */
export function generateKey(keyId?: string): string {
  const key = randomBytes(32).toString('base64');
  registerEncryptionKey(key, `encryption key (generateKey(${keyId ?? ''}))`);
  return keyId ? `${keyId}:${key}` : key;
}

/** Collects every line the app logs, so a suite can assert that no secret ever appears. */
export class RecordingLogger implements LoggerService {
  readonly lines: string[] = [];
  private push(level: string, message: unknown, rest: unknown[]): void {
    this.lines.push(
      [level, message, ...rest]
        .map((part) => (part instanceof Error ? `${part.message} ${part.stack}` : String(part)))
        .join(' '),
    );
  }
  log(message: unknown, ...rest: unknown[]) {
    this.push('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]) {
    this.push('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]) {
    this.push('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]) {
    this.push('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]) {
    this.push('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]) {
    this.push('fatal', message, rest);
  }
}

/** The key every test app uses unless a test rotates keys: instances of one suite share it, as deployments do. */
export const TEST_ENCRYPTION_KEY = generateKey('test-key');

/** Options pointing the module at the fake Procore server (the package's own testing helper). */
export function fakeProcoreOptions(
  fake: FakeProcoreServer,
  overrides: Partial<ProcoreAuthModuleOptions> = {},
): ProcoreAuthModuleOptions {
  return fakeProcoreAuthOptions(fake, {
    redirectUri: 'http://127.0.0.1:3000/procore/oauth/callback',
    encryptionKey: TEST_ENCRYPTION_KEY,
    http: { retryBaseDelayMs: 5 },
    ...overrides,
  });
}

/** Runs the package's migrations once on a suite's database. */
export async function migrate(databaseUrl: string): Promise<void> {
  const dataSource = new DataSource({
    type: 'postgres',
    url: databaseUrl,
    entities: procoreAuthEntities,
    migrations: procoreAuthMigrations,
  });
  await dataSource.initialize();
  await dataSource.runMigrations();
  await dataSource.destroy();
}

export interface ProcoreTestApp {
  app: INestApplication;
  service: ProcoreTokenService;
  dataSource: DataSource;
  events: ProcoreAuthEvent[];
  close(): Promise<void>;
}

/**
 * Boots a real Nest application the way a user wires it: TypeOrmModule on the suite's database
 * plus ProcoreAuthModule.forRoot(). Each call is a separate instance with its own pool, so several
 * of them stand for several app instances sharing one database.
 */
export async function createProcoreTestApp(params: {
  databaseUrl: string;
  options: ProcoreAuthModuleOptions;
  logger?: LoggerService;
  poolSize?: number;
}): Promise<ProcoreTestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: params.databaseUrl,
        entities: procoreAuthEntities,
        poolSize: params.poolSize ?? 10,
        // A test app whose bootstrap fails (bad options) must not leave TypeORM retrying in the
        // background past the suite's teardown (its database is dropped then).
        retryAttempts: 0,
      }),
      ProcoreAuthModule.forRoot(params.options),
    ],
  }).compile();
  // Logs are recorded (and not printed) for the secret check; see secret-scan.setup.ts.
  const app = moduleRef.createNestApplication({ logger: params.logger ?? secretScanLogger });
  await app.init();
  const events: ProcoreAuthEvent[] = [];
  app.get(ProcoreAuthEvents).events$.subscribe((event) => events.push(event));
  return {
    app,
    service: app.get(ProcoreTokenService),
    dataSource: app.get<DataSource>(getDataSourceToken()),
    events,
    close: () => app.close(),
  };
}

/** Connects an owner through the real authorization-code flow against the fake. */
export async function connectOwner(service: ProcoreTokenService, ownerId: string): Promise<void> {
  await connectWithFakeProcore(service, ownerId);
}

/**
 * Makes time pass for a stored connection: its access token is expired in the database (as it
 * would be hours later) and the fake's clock moves past the token's lifetime.
 */
export async function expireStoredToken(
  dataSource: DataSource,
  fake: FakeProcoreServer,
  ownerIds: string | string[],
): Promise<void> {
  fake.advanceClock(fake.accessTokenTtlSeconds + 60);
  await dataSource.query(
    `UPDATE procore_oauth_tokens SET expires_at = now() - interval '1 minute' WHERE owner_id = ANY($1)`,
    [Array.isArray(ownerIds) ? ownerIds : [ownerIds]],
  );
}

/** The raw row, as stored. */
export async function rawRow(
  dataSource: DataSource,
  ownerId: string,
): Promise<Record<string, unknown>> {
  const [row] = (await dataSource.query('SELECT * FROM procore_oauth_tokens WHERE owner_id = $1', [
    ownerId,
  ])) as Record<string, unknown>[];
  return row;
}
