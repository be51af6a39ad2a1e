import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import {
  Inject,
  Injectable,
  Module,
  type DynamicModule,
  type INestApplication,
  type ModuleMetadata,
} from '@nestjs/common';
import { ConfigModule, type ConfigType } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  PROCORE_AUTH_OPTIONS,
  PROCORE_ENV_VARIABLES,
  ProcoreAuthModule,
  ProcoreConfigurationError,
  ProcoreTokenService,
  procoreAuthEntities,
  procoreConfig,
  type ProcoreAuthModuleOptions,
  type ProcoreAuthOptionsFactory,
  type ResolvedProcoreAuthOptions,
} from 'nestjs-procore-auth';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { fakeProcoreOptions, generateKey, migrate, rawRow } from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

type Imports = NonNullable<ModuleMetadata['imports']>;
type ProcoreEnvName = (typeof PROCORE_ENV_VARIABLES)[keyof typeof PROCORE_ENV_VARIABLES];

/** Provides the options a `useExisting` / `useClass` factory returns. */
const FACTORY_OPTIONS = Symbol('FACTORY_OPTIONS');

/** An options factory with a dependency of its own, the way an app's config service would be. */
@Injectable()
class InjectedOptionsFactory implements ProcoreAuthOptionsFactory {
  static created = 0;

  constructor(@Inject(FACTORY_OPTIONS) private readonly options: ProcoreAuthModuleOptions) {
    InjectedOptionsFactory.created += 1;
  }

  createProcoreAuthOptions(): ProcoreAuthModuleOptions {
    return this.options;
  }
}

/** The app's own module that owns the options factory (for `useExisting`). */
@Module({})
class OptionsModule {
  static register(options: ProcoreAuthModuleOptions): DynamicModule {
    return {
      module: OptionsModule,
      providers: [{ provide: FACTORY_OPTIONS, useValue: options }, InjectedOptionsFactory],
      exports: [FACTORY_OPTIONS, InjectedOptionsFactory],
    };
  }
}

/** A feature of the app that needs Procore tokens. Its module does not import ProcoreAuthModule. */
@Injectable()
class ProjectsService {
  constructor(readonly tokens: ProcoreTokenService) {}
}

@Module({ providers: [ProjectsService], exports: [ProjectsService] })
class ProjectsModule {}

describe('ProcoreAuthModule registration (real PostgreSQL, fake Procore)', () => {
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  /** The app under test; closed after each test, whether or not it booted. */
  let app: INestApplication | undefined;
  /** Closed after each test: DataSources a test created itself, and throw-away databases. */
  const cleanups: (() => Promise<unknown>)[] = [];
  const savedEnv = new Map<string, string | undefined>();
  let owner = 0;
  const nextOwner = () => `registration-user-${++owner}`;

  beforeAll(async () => {
    database = await createTestDatabase('registration');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
  });

  afterEach(async () => {
    await app?.close().catch(() => undefined);
    app = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    for (const [name, value] of savedEnv) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    savedEnv.clear();
  });

  afterAll(async () => {
    await fake?.close();
    await database?.drop();
  });

  /** Sets the PROCORE_* variables for one test (every other PROCORE_* variable unset); restored after it. */
  function setProcoreEnv(values: Partial<Record<ProcoreEnvName, string>>): void {
    for (const name of Object.values(PROCORE_ENV_VARIABLES)) {
      if (!savedEnv.has(name)) savedEnv.set(name, process.env[name]);
      const value = values[name];
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }

  /** The env a deployment pointing at the fake would have. */
  function fakeProcoreEnv(): Record<ProcoreEnvName, string> {
    return {
      PROCORE_CLIENT_ID: fake.clientId,
      PROCORE_CLIENT_SECRET: fake.clientSecret,
      PROCORE_REDIRECT_URI: 'http://127.0.0.1:3000/procore/oauth/callback',
      PROCORE_ENVIRONMENT: 'production',
      PROCORE_AUTH_BASE_URL: fake.url,
      PROCORE_API_BASE_URL: fake.url,
      PROCORE_TOKEN_ENCRYPTION_KEY: generateKey('env-key'),
      PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS: `${generateKey('old-1')},${generateKey('old-2')}`,
      // Empty reads as unset: no named service accounts (service-accounts.e2e-spec.ts sets them).
      PROCORE_SERVICE_ACCOUNTS: '',
    };
  }

  /** Compiles and initializes a real Nest application, the way main.ts would. */
  async function bootstrap(imports: Imports): Promise<INestApplication> {
    const moduleRef = await Test.createTestingModule({ imports }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    return app;
  }

  /** The app's default TypeORM DataSource on the suite's (migrated) database. */
  function defaultTypeOrm(extra: { autoLoadEntities?: boolean } = {}): DynamicModule {
    return TypeOrmModule.forRoot({
      type: 'postgres',
      url: database.url,
      ...(extra.autoLoadEntities ? { autoLoadEntities: true } : { entities: procoreAuthEntities }),
    });
  }

  /** The SPEC's ConfigModule wiring: procoreConfig reads process.env when the app compiles. */
  function configWiring(): Imports {
    return [
      ConfigModule.forRoot({ ignoreEnvFile: true, load: [] }),
      ProcoreAuthModule.forRootAsync({
        imports: [ConfigModule.forFeature(procoreConfig)],
        inject: [procoreConfig.KEY],
        useFactory: (cfg: ConfigType<typeof procoreConfig>) => ({
          ...cfg,
          scheduler: { enabled: false },
        }),
      }),
    ];
  }

  /** The module works end to end: a service-account token from Procore (the fake) that Procore accepts. */
  async function expectWorkingTokenService(service: ProcoreTokenService): Promise<void> {
    const token = await service.getClientCredentialsToken();
    expect(fake.isAccessTokenValid(token)).toBe(true);
  }

  /** A user connection written through the module lands in `dataSource`. */
  async function expectConnectionStoredIn(
    service: ProcoreTokenService,
    dataSource: DataSource,
  ): Promise<void> {
    const ownerId = nextOwner();
    await service.importTokens(ownerId, fake.issueTokens());
    expect(await service.getConnection(ownerId)).toMatchObject({
      ownerId,
      status: 'active',
    });
    expect(await rawRow(dataSource, ownerId)).toMatchObject({
      owner_id: ownerId,
      status: 'active',
    });
    expect(fake.isAccessTokenValid(await service.getAccessToken(ownerId))).toBe(true);
  }

  /** The error bootstrap fails with. */
  async function bootstrapError(imports: Imports): Promise<Error> {
    const error = await bootstrap(imports).then(
      () => undefined,
      (reason: unknown) => reason,
    );
    if (!(error instanceof Error))
      throw new Error('expected bootstrap to fail, but the app started');
    return error;
  }

  describe('registration paths', () => {
    it('boots with forRoot(options) and serves tokens', async () => {
      const booted = await bootstrap([
        defaultTypeOrm(),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake)),
      ]);

      const service = booted.get(ProcoreTokenService);
      await expectWorkingTokenService(service);
      await expectConnectionStoredIn(service, booted.get(DataSource));
    });

    it('boots with forRootAsync + ConfigModule.forFeature(procoreConfig), reading every PROCORE_* variable', async () => {
      const env = fakeProcoreEnv();
      setProcoreEnv(env);

      const booted = await bootstrap([defaultTypeOrm(), ...configWiring()]);

      const options = booted.get<ResolvedProcoreAuthOptions>(PROCORE_AUTH_OPTIONS);
      expect(options).toMatchObject({
        clientId: env.PROCORE_CLIENT_ID,
        redirectUri: env.PROCORE_REDIRECT_URI,
        environment: 'production',
        authBaseUrl: fake.url,
        apiBaseUrl: fake.url,
        encryptionKey: env.PROCORE_TOKEN_ENCRYPTION_KEY,
        previousEncryptionKeys: env.PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS.split(','),
        scheduler: { enabled: false },
      });
      await expectWorkingTokenService(booted.get(ProcoreTokenService));
    });

    it('boots with forRootAsync({ useClass }), calling createProcoreAuthOptions()', async () => {
      const options = fakeProcoreOptions(fake, { refreshSkewSeconds: 321 });
      @Injectable()
      class ProcoreOptionsFromClass implements ProcoreAuthOptionsFactory {
        createProcoreAuthOptions(): Promise<ProcoreAuthModuleOptions> {
          return Promise.resolve(options);
        }
      }

      const booted = await bootstrap([
        defaultTypeOrm(),
        ProcoreAuthModule.forRootAsync({ useClass: ProcoreOptionsFromClass }),
      ]);

      expect(booted.get<ResolvedProcoreAuthOptions>(PROCORE_AUTH_OPTIONS).refreshSkewSeconds).toBe(
        321,
      );
      await expectWorkingTokenService(booted.get(ProcoreTokenService));
    });

    it("boots with forRootAsync({ imports, useExisting }), reusing the app's own factory instance", async () => {
      InjectedOptionsFactory.created = 0;

      const booted = await bootstrap([
        defaultTypeOrm(),
        ProcoreAuthModule.forRootAsync({
          imports: [OptionsModule.register(fakeProcoreOptions(fake, { refreshSkewSeconds: 456 }))],
          useExisting: InjectedOptionsFactory,
        }),
      ]);

      expect(booted.get<ResolvedProcoreAuthOptions>(PROCORE_AUTH_OPTIONS).refreshSkewSeconds).toBe(
        456,
      );
      expect(InjectedOptionsFactory.created).toBe(1);
      await expectWorkingTokenService(booted.get(ProcoreTokenService));
    });

    it.each([
      [
        'forRoot',
        () =>
          ProcoreAuthModule.forRoot({
            ...fakeProcoreOptions(fake),
            isGlobal: true,
          }),
      ],
      [
        'forRootAsync',
        () =>
          ProcoreAuthModule.forRootAsync({
            isGlobal: true,
            useFactory: () => fakeProcoreOptions(fake),
          }),
      ],
    ])(
      'lets a feature module inject ProcoreTokenService without importing the module when %s has isGlobal: true',
      async (_path, register) => {
        const booted = await bootstrap([defaultTypeOrm(), register(), ProjectsModule]);

        const projects = booted.get(ProjectsService);
        expect(projects.tokens).toBe(booted.get(ProcoreTokenService));
        await expectWorkingTokenService(projects.tokens);
      },
    );

    it('keeps ProcoreTokenService private to importing modules without isGlobal', async () => {
      // No TypeORM here: resolution fails while compiling, before any storage is touched.
      const error = await bootstrapError([
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake)),
        ProjectsModule,
      ]);

      expect(error.message).toMatch(/ProjectsService/);
      expect(error.message).toMatch(/ProcoreTokenService/);
    });
  });

  describe('storage', () => {
    it('uses a DataSource instance given as the dataSource option, with no TypeOrmModule at all', async () => {
      const dataSource = new DataSource({
        type: 'postgres',
        url: database.url,
        entities: procoreAuthEntities,
      });
      await dataSource.initialize();
      cleanups.push(() => dataSource.destroy());

      const booted = await bootstrap([
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake, { dataSource })),
      ]);

      const service = booted.get(ProcoreTokenService);
      await expectWorkingTokenService(service);
      await expectConnectionStoredIn(service, dataSource);
    });

    it("uses the DataSource named by the dataSource option (TypeOrmModule.forRoot({ name: 'procore' }))", async () => {
      const booted = await bootstrap([
        TypeOrmModule.forRoot({
          name: 'procore',
          type: 'postgres',
          url: database.url,
          entities: procoreAuthEntities,
        }),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake, { dataSource: 'procore' })),
      ]);

      const service = booted.get(ProcoreTokenService);
      await expectWorkingTokenService(service);
      await expectConnectionStoredIn(
        service,
        booted.get<DataSource>(getDataSourceToken('procore')),
      );
    });

    it('uses the DataSource named in options returned by a forRootAsync factory', async () => {
      const booted = await bootstrap([
        defaultTypeOrm(),
        TypeOrmModule.forRoot({
          name: 'procore',
          type: 'postgres',
          url: database.url,
          entities: procoreAuthEntities,
        }),
        ProcoreAuthModule.forRootAsync({
          useFactory: () => fakeProcoreOptions(fake, { dataSource: 'procore' }),
        }),
      ]);

      await expectConnectionStoredIn(
        booted.get(ProcoreTokenService),
        booted.get<DataSource>(getDataSourceToken('procore')),
      );
    });

    it.each([
      ['forRoot', () => ProcoreAuthModule.forRoot(fakeProcoreOptions(fake))],
      [
        'forRootAsync',
        () =>
          ProcoreAuthModule.forRootAsync({
            useFactory: () => fakeProcoreOptions(fake),
          }),
      ],
    ])(
      'registers its entities with autoLoadEntities: true when registered with %s',
      async (_path, register) => {
        const booted = await bootstrap([defaultTypeOrm({ autoLoadEntities: true }), register()]);

        const dataSource = booted.get(DataSource);
        for (const entity of procoreAuthEntities) {
          expect(dataSource.hasMetadata(entity)).toBe(true);
        }
        await expectConnectionStoredIn(booted.get(ProcoreTokenService), dataSource);
      },
    );

    it('stops bootstrap on a database where the migration has not run, naming procoreAuthMigrations', async () => {
      const fresh = await createTestDatabase('registration_unmigrated');
      cleanups.push(() => fresh.drop());

      const error = await bootstrapError([
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: fresh.url,
          entities: procoreAuthEntities,
        }),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake)),
      ]);

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      // Which missing table is named first depends on the order Nest runs the init hooks.
      expect(error.message).toMatch(/procore_oauth_tokens|procore_oauth_states?|procore_rate_limits/);
      expect(error.message).toContain('procoreAuthMigrations');
    });

    it('stops bootstrap when the named DataSource does not exist, saying how to register it', async () => {
      const error = await bootstrapError([
        defaultTypeOrm(),
        ProcoreAuthModule.forRoot(fakeProcoreOptions(fake, { dataSource: 'missing' })),
      ]);

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('named "missing"');
      expect(error.message).toContain("TypeOrmModule.forRoot({ name: 'missing'");
    });

    it('stops bootstrap when there is no default DataSource and none was given', async () => {
      const error = await bootstrapError([ProcoreAuthModule.forRoot(fakeProcoreOptions(fake))]);

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toMatch(/no TypeORM DataSource \(the default one\)/);
    });
  });

  describe('bad configuration', () => {
    // The options are validated while the module compiles, before any storage is touched, so
    // these apps need no TypeORM DataSource.

    /** Values that must never appear in an error message. */
    function secretsOf(env: Partial<Record<ProcoreEnvName, string>>): string[] {
      return [env.PROCORE_CLIENT_SECRET, env.PROCORE_TOKEN_ENCRYPTION_KEY].filter(
        (value): value is string => !!value,
      );
    }

    function expectNoSecretIn(error: Error, secrets: string[]): void {
      for (const secret of secrets) {
        expect(error.message).not.toContain(secret);
        expect(String(error.stack)).not.toContain(secret);
      }
    }

    it('names clientId and PROCORE_CLIENT_ID when PROCORE_CLIENT_ID is missing', async () => {
      const env: Partial<Record<ProcoreEnvName, string>> = {
        ...fakeProcoreEnv(),
        PROCORE_CLIENT_ID: undefined,
      };
      setProcoreEnv(env);

      const error = await bootstrapError(configWiring());

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toMatch(/clientId is missing/);
      expect(error.message).toContain('PROCORE_CLIENT_ID');
      expectNoSecretIn(error, secretsOf(env));
    });

    it('rejects an encryption key of the wrong length, naming PROCORE_TOKEN_ENCRYPTION_KEY but not the key', async () => {
      const shortKey = Buffer.from('0123456789abcdef').toString('base64'); // 16 bytes
      const env = {
        ...fakeProcoreEnv(),
        PROCORE_TOKEN_ENCRYPTION_KEY: shortKey,
      };
      setProcoreEnv(env);

      const error = await bootstrapError(configWiring());

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('encryptionKey');
      expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_KEY');
      expectNoSecretIn(error, [...secretsOf(env), shortKey]);
    });

    it.each([31, 33])(
      'rejects a keyId:base64 key of %i bytes (base64 of the expected length) when the keyring is built',
      async (bytes) => {
        const material = randomBytes(bytes).toString('base64');

        const error = await bootstrapError([
          ProcoreAuthModule.forRoot(fakeProcoreOptions(fake, { encryptionKey: `k1:${material}` })),
        ]);

        expect(error).toBeInstanceOf(ProcoreConfigurationError);
        expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_KEY');
        expect(error.message).toContain(`got ${bytes} bytes`);
        expectNoSecretIn(error, [material]);
      },
    );

    it('rejects PROCORE_ENVIRONMENT=staging, naming the option, the variable and the allowed values', async () => {
      setProcoreEnv({ ...fakeProcoreEnv(), PROCORE_ENVIRONMENT: 'staging' });

      const error = await bootstrapError(configWiring());

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('environment');
      expect(error.message).toContain('PROCORE_ENVIRONMENT');
      expect(error.message).toMatch(/production.*sandbox.*monthly-sandbox.*federal/);
    });

    it('rejects an http:// auth base URL on a non-loopback host', async () => {
      setProcoreEnv({
        ...fakeProcoreEnv(),
        PROCORE_AUTH_BASE_URL: 'http://login.example.com',
      });

      const error = await bootstrapError(configWiring());

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('authBaseUrl');
      expect(error.message).toContain('PROCORE_AUTH_BASE_URL');
      expect(error.message).toMatch(/https/);
    });

    it('lists several problems in one error', async () => {
      const env: Partial<Record<ProcoreEnvName, string>> = {
        ...fakeProcoreEnv(),
        PROCORE_CLIENT_ID: undefined,
        PROCORE_REDIRECT_URI: undefined,
        PROCORE_ENVIRONMENT: 'staging',
        PROCORE_TOKEN_ENCRYPTION_KEY: 'too-short',
      };
      setProcoreEnv(env);

      const error = await bootstrapError(configWiring());

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      for (const envName of [
        'PROCORE_CLIENT_ID',
        'PROCORE_REDIRECT_URI',
        'PROCORE_ENVIRONMENT',
        'PROCORE_TOKEN_ENCRYPTION_KEY',
      ]) {
        expect(error.message).toContain(envName);
      }
      expect(error.message.match(/^ {2}- /gm)).toHaveLength(4);
      expectNoSecretIn(error, [...secretsOf(env), 'too-short']);
    });

    it('rejects options missing altogether (a factory that returns nothing)', async () => {
      const error = await bootstrapError([
        ProcoreAuthModule.forRootAsync({
          useFactory: () => undefined as unknown as ProcoreAuthModuleOptions,
        }),
      ]);

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toMatch(/options are missing/);
    });

    it('rejects bad options passed to forRoot() the same way, without echoing the client secret', async () => {
      const clientSecret = 'forRoot-client-secret-never-echoed';

      const error = await bootstrapError([
        ProcoreAuthModule.forRoot(
          fakeProcoreOptions(fake, {
            clientSecret,
            authBaseUrl: 'http://login.example.com',
          }),
        ),
      ]);

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('authBaseUrl');
      expectNoSecretIn(error, [clientSecret]);
    });
  });
});
