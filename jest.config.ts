import type { Config } from 'jest';

/**
 * Jest runs in native ESM mode (the @nestjs/* 12 packages are ESM-only):
 * `npm test` sets NODE_OPTIONS=--experimental-vm-modules.
 */
const config: Config = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  roots: ['<rootDir>/lib', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  moduleNameMapper: {
    '^nestjs-procore-auth$': '<rootDir>/lib/index.ts',
    '^nestjs-procore-auth/testing$': '<rootDir>/lib/testing/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  // Fails a test file whose logs, events, HTTP responses or errors printed a secret.
  setupFilesAfterEnv: ['<rootDir>/test/support/secret-scan.setup.ts'],
  testTimeout: 60_000,
};

export default config;
