import type { FactoryProvider, INestApplicationContext, Provider } from '@nestjs/common';
import type { TestingModuleBuilder } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import type { ProcoreAuthModuleOptions } from '../interfaces/procore-auth-options.interface.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';
import { PROCORE_AUTH_MODULE_OPTIONS } from '../procore-auth.module-definition.js';
import { procoreAuthProviders } from '../procore-auth.providers.js';
import { procoreAuthEntities } from '../storage/index.js';
import { ProcoreTokenEntity } from '../storage/procore-token.entity.js';
import { ProcoreTokenService } from '../tokens/procore-token.service.js';
import { reportFakeProcoreSecret } from './fake-procore-secrets.js';
import type { FakeProcoreServer } from './fake-procore.server.js';
import { fakeProcoreAuthOptions } from './procore-testing.helpers.js';

/**
 * A fixed AES-256 key (`keyId:base64`) for tests only: every app and every run of a test suite
 * encrypts with the same key, so rows written by one app instance (or a fixture) decrypt in
 * another. It is published with the package, so anyone can read it: never put it in a real
 * deployment. `overrideProcoreAuthOptions` uses it by default, and refuses to run when
 * `NODE_ENV=production`.
 * @publicApi
 */
export const PROCORE_TEST_ENCRYPTION_KEY =
  'procore-test-only:bmVzdGpzLXByb2NvcmUtYXV0aCB0ZXN0IGtleSAzMmI=';

/**
 * Points the `ProcoreAuthModule` of the app under test at a fake Procore server, however the app
 * registers it (`forRoot` or `forRootAsync` with `procoreConfig` / `ConfigService`), without
 * changing the app module:
 *
 * ```ts
 * const moduleRef = await overrideProcoreAuthOptions(
 *   Test.createTestingModule({ imports: [AppModule] }),
 *   fake,
 * ).compile();
 * ```
 *
 * The app's own options are kept (its `ownerResolver`, `dataSource`, `cache`, ...); laid over them:
 * the fake's client id and secret, its URL as login and API host, a loopback `redirectUri`,
 * `PROCORE_TEST_ENCRYPTION_KEY` and the scheduler off (tests decide when refreshes happen), then
 * `overrides`. The app's options factory still runs, so it must not throw when the Procore env
 * variables are missing (`procoreConfig` does not). Module-level settings (`storage`, `routes`,
 * `isGlobal`) are the app's. Returns the builder, for chaining. Throws when
 * `NODE_ENV=production`.
 * @publicApi
 */
export function overrideProcoreAuthOptions(
  builder: TestingModuleBuilder,
  fake: FakeProcoreServer,
  overrides: Partial<ProcoreAuthModuleOptions> = {},
): TestingModuleBuilder {
  if (process.env.NODE_ENV === 'production') {
    throw new Error(
      'overrideProcoreAuthOptions() is a test helper and refuses to run with NODE_ENV=production: it sets a published encryption key.',
    );
  }
  reportFakeProcoreSecret(PROCORE_TEST_ENCRYPTION_KEY.split(':')[1] as string, 'encryption-key');
  const testOptions = fakeProcoreAuthOptions(fake, {
    encryptionKey: PROCORE_TEST_ENCRYPTION_KEY,
    ...overrides,
  });
  // The module's own options provider resolves the raw options (defaults, validation, store
  // adjustments): wrap it, so the overridden options go through exactly the same path.
  const resolve = resolvedOptionsProvider();
  const [, ...rest] = resolve.inject ?? [];
  return builder.overrideProvider(PROCORE_AUTH_OPTIONS).useFactory({
    inject: [PROCORE_AUTH_MODULE_OPTIONS, ...rest],
    factory: (raw: ProcoreAuthModuleOptions, ...deps: unknown[]) =>
      resolve.useFactory({ ...raw, ...testOptions }, ...deps) as ResolvedProcoreAuthOptions,
  });
}

function resolvedOptionsProvider(): FactoryProvider {
  const provider = procoreAuthProviders.find(
    (candidate: Provider): candidate is FactoryProvider =>
      typeof candidate === 'object' &&
      'provide' in candidate &&
      candidate.provide === PROCORE_AUTH_OPTIONS &&
      'useFactory' in candidate,
  );
  if (!provider || provider.inject?.[0] !== PROCORE_AUTH_MODULE_OPTIONS) {
    throw new Error(
      'nestjs-procore-auth: the options provider changed; update overrideProcoreAuthOptions().',
    );
  }
  return provider;
}

/**
 * Empties the package's tables (`procore_oauth_tokens`, `procore_oauth_states`,
 * `procore_rate_limits`) between tests, in the schema the DataSource maps them to (its `schema`
 * option, or the entities' own). Give the DataSource, or the app: with the app, the module's
 * DataSource (its `dataSource` option) is used, and the access tokens this app instance caches
 * for the deleted connections are dropped too, so the next request sees the reset. Tables whose
 * entity the DataSource does not list are skipped. PostgreSQL only.
 * @publicApi
 */
export async function resetProcoreTables(
  target: DataSource | INestApplicationContext,
): Promise<void> {
  if (!isApp(target)) {
    await truncate(target);
    return;
  }
  const options = target.get<ResolvedProcoreAuthOptions>(PROCORE_AUTH_OPTIONS, { strict: false });
  const dataSource = moduleDataSource(target, options.dataSource);
  const owners = await connectedOwners(dataSource);
  await truncate(dataSource);
  const service = target.get(ProcoreTokenService, { strict: false });
  for (const owner of owners) service.evict(owner);
}

function moduleDataSource(
  app: INestApplicationContext,
  dataSource: ResolvedProcoreAuthOptions['dataSource'],
): DataSource {
  if (typeof dataSource === 'object') return dataSource;
  try {
    return app.get<DataSource>(getDataSourceToken(dataSource), { strict: false });
  } catch (error) {
    throw new Error(
      `resetProcoreTables() found no TypeORM DataSource ${
        dataSource ? `named "${dataSource}"` : '(the default one)'
      } in this app: with your own stores (storage setting) there are no tables to reset; give each test new store instances (or a new app) instead.`,
      { cause: error },
    );
  }
}

function isApp(target: DataSource | INestApplicationContext): target is INestApplicationContext {
  return typeof (target as INestApplicationContext).select === 'function';
}

async function connectedOwners(dataSource: DataSource): Promise<string[]> {
  if (!dataSource.hasMetadata(ProcoreTokenEntity)) return [];
  const rows = await dataSource
    .getRepository(ProcoreTokenEntity)
    .find({ select: { ownerId: true } });
  return rows.map((row) => row.ownerId);
}

async function truncate(dataSource: DataSource): Promise<void> {
  const tables = procoreAuthEntities
    .filter((entity) => dataSource.hasMetadata(entity))
    .map((entity) => {
      const metadata = dataSource.getMetadata(entity);
      const escape = (name: string) => dataSource.driver.escape(name);
      return metadata.schema
        ? `${escape(metadata.schema)}.${escape(metadata.tableName)}`
        : escape(metadata.tableName);
    });
  if (tables.length === 0) return;
  await dataSource.query(`TRUNCATE TABLE ${tables.join(', ')}`);
}
