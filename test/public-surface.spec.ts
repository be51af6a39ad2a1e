import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as publicApi from 'nestjs-procore-auth';
import * as testingApi from 'nestjs-procore-auth/testing';

// The package's public surface is what lib/index.ts (and lib/testing/index.ts) export: a name added
// to or removed from it changes this list on purpose (README "Developing", CHANGELOG).

const PUBLIC_VALUES = [
  'ApiProcoreAuth',
  'PROCORE_AUTH_MODULE_OPTIONS',
  'PROCORE_AUTH_OPTIONS',
  'PROCORE_AUTH_ROUTES',
  'PROCORE_ENVIRONMENT_HOSTS',
  'PROCORE_ENV_VARIABLES',
  'PROCORE_REFRESH_JOB',
  'ProcoreApi',
  'ProcoreAuthEvents',
  'ProcoreAuthEventType',
  'ProcoreAuthGuard',
  'ProcoreAuthModule',
  'ProcoreClient',
  'ProcoreHealthIndicator',
  'ProcoreKeyRotationService',
  'ProcoreOAuthStateStore',
  'ProcoreRequestOwnerResolver',
  'ProcoreScopedClient',
  'ProcoreToken',
  'ProcoreTokenEntity',
  'ProcoreTokenService',
  'ProcoreTokenStore',
  'SkipProcoreAuth',
  'TokenRefreshScheduler',
  'procoreAuthEntities',
  'procoreAuthMigrations',
  'procoreConfig',
];

/**
 * Internal, but the benchmarks (bench/cache-and-queries.ts) reach them through the package name;
 * their doc comments say "Internal: use the decorator".
 */
const EXPORTED_FOR_BENCHMARKS = ['ProcoreApiPipe', 'ProcoreTokenPipe'];

/** Internals that were exported during development and are not part of 0.1.0 (CHANGELOG). */
const INTERNAL = [
  'ProcoreOAuthController',
  'ProcoreExceptionFilter',
  'ProcoreOAuthStateEntity',
  'TypeOrmProcoreTokenStore',
];

function nonErrorExports(module: Record<string, unknown>): string[] {
  return Object.keys(module)
    .filter((name) => !name.endsWith('Error'))
    .sort();
}

describe('public surface', () => {
  it('nestjs-procore-auth exports exactly the public classes, functions and constants (and its errors)', () => {
    expect(nonErrorExports(publicApi)).toEqual(
      [...PUBLIC_VALUES, ...EXPORTED_FOR_BENCHMARKS].sort(),
    );
  });

  it('does not export the internals that left the public surface', () => {
    for (const name of INTERNAL) expect(Object.keys(publicApi)).not.toContain(name);
  });

  it('every error it exports is a ProcoreAuthError', () => {
    const errors = Object.entries(publicApi).filter(([name]) => name.endsWith('Error'));

    expect(errors.length).toBeGreaterThan(10);
    for (const [name, value] of errors) {
      const isPackageError =
        value === publicApi.ProcoreAuthError ||
        (value as { prototype: unknown }).prototype instanceof publicApi.ProcoreAuthError;
      expect({ name, isPackageError }).toEqual({ name, isPackageError: true });
    }
  });

  it('marks the declaration of every runtime export of both entry points @publicApi', () => {
    const sources = listSources('lib').map((file) => readFileSync(file, 'utf8'));
    const unmarked = [...Object.keys(publicApi), ...Object.keys(testingApi)]
      .filter((name) => !EXPORTED_FOR_BENCHMARKS.includes(name))
      .filter((name) => {
        const declaration = new RegExp(
          `(^export (?:abstract )?(?:class|(?:async )?function|const) ${name}\\b|MODULE_OPTIONS_TOKEN: ${name},)`,
          'm',
        );
        const source = sources.find((text) => declaration.test(text));
        if (source === undefined) return true;
        const before = source.slice(0, source.search(declaration));
        // The doc comment right above the declaration (decorators may stand between them).
        return !before.slice(before.lastIndexOf('/**')).includes('@publicApi');
      });

    expect(unmarked).toEqual([]);
  });
});

function listSources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.spec.ts'))
    .map((file) => join(dir, file));
}
