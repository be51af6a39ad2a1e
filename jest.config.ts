import type { Config } from 'jest';

/**
 * `npm test`: the NestJS 12 line, in native ESM mode (the @nestjs/* 12 packages are ESM-only):
 * `npm test` sets NODE_OPTIONS=--experimental-vm-modules.
 *
 * `npm run test:nest11` (PROCORE_TEST_NEST_LINE=11): the same suites the way a NestJS 11 app runs
 * them — CommonJS, the Nest 11 template's jest + ts-jest — with `@nestjs/*` 11 and TypeORM 0.3
 * from the second install in `compat/nest11/` (`npm ci --prefix compat/nest11` first).
 * Everything else (rxjs, reflect-metadata, class-validator, pg, graphql) is the repository's own
 * single copy. `.ci/run` runs both.
 */
const nest11 = process.env.PROCORE_TEST_NEST_LINE === '11';

const esmTransform: Config['transform'] = {
  '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
};

const commonJsTransform: Config['transform'] = {
  // Global setup and teardown also run in Node itself and may use import.meta (see the file).
  '/test/support/global-(setup|teardown)\\.ts$':
    '<rootDir>/compat/nest11/node-hook.transformer.mjs',
  '^.+\\.ts$': [
    'ts-jest',
    {
      // The options of tsconfig.json that shape emitted code, with CommonJS output.
      tsconfig: {
        module: 'commonjs',
        moduleResolution: 'bundler',
        target: 'es2022',
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        esModuleInterop: true,
        isolatedModules: true,
      },
    },
  ],
};

/** What both projects share: the transform, the module mapping and the suite-wide secret scan. */
const shared = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: nest11 ? [] : ['.ts'],
  moduleNameMapper: {
    ...(nest11 && {
      '^(@nestjs/[^/]+|typeorm)(/.*)?$': '<rootDir>/compat/nest11/node_modules/$1$2',
    }),
    '^nestjs-procore-auth$': '<rootDir>/lib/index.ts',
    '^nestjs-procore-auth/testing$': '<rootDir>/lib/testing/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: nest11 ? commonJsTransform : esmTransform,
  // Fails a test file whose logs, events, HTTP responses or errors printed a secret.
  setupFilesAfterEnv: ['<rootDir>/test/support/secret-scan.setup.ts'],
} satisfies Config;

/**
 * Two projects; `npm test` runs both (one result, one "N passed, N failed" count):
 * - `unit`: the `*.spec.ts` beside the code in `lib/`. No database: no global setup, so
 *   `npx jest --selectProjects unit` runs on a machine without PostgreSQL.
 * - `e2e`: `test/`, on a real PostgreSQL that global setup finds or starts (see the file).
 */
const config: Config = {
  testTimeout: 60_000,
  projects: [
    {
      ...shared,
      displayName: 'unit',
      roots: ['<rootDir>/lib'],
      testMatch: ['**/*.spec.ts'],
    },
    {
      ...shared,
      displayName: 'e2e',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
      // The sample's embedded PostgreSQL runner loads the ESM-only PostgreSQL binary packages with
      // import(), which Jest's CommonJS runtime cannot do; it is not the library, and `npm test` runs it.
      testPathIgnorePatterns: [
        '/node_modules/',
        ...(nest11 ? ['/test/embedded-postgres\\.e2e-spec\\.ts$'] : []),
      ],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
};

export default config;
