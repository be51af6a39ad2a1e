import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import type {
  ProcoreAuthModuleOptions,
  ProcoreEnvironment,
} from '../interfaces/procore-auth-options.interface.js';
import { resolveProcoreAuthRoutes } from '../http/procore-auth-routes.js';
import { resolveProcoreAuthOptions } from './resolve-procore-auth-options.js';

/** Only the required options. */
function requiredOptions(
  overrides: Partial<ProcoreAuthModuleOptions> = {},
): ProcoreAuthModuleOptions {
  return {
    clientId: 'client-id',
    clientSecret: 'client-secret',
    redirectUri: 'https://app.example.com/procore/oauth/callback',
    encryptionKey: randomBytes(32).toString('base64'),
    ...overrides,
  };
}

/** The error `work` throws (fails the test when it throws nothing). */
function thrownBy(work: () => unknown): Error {
  try {
    work();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error, but nothing was thrown');
}

describe('resolveProcoreAuthOptions', () => {
  describe('defaults', () => {
    it('applies every documented default when only the required options are given', () => {
      const resolved = resolveProcoreAuthOptions(requiredOptions());

      expect(resolved).toMatchObject({
        environment: 'production',
        authBaseUrl: 'https://login.procore.com',
        apiBaseUrl: 'https://api.procore.com',
        previousEncryptionKeys: [],
        refreshSkewSeconds: 120,
        pkce: false,
        stateTtlSeconds: 600,
        http: { timeoutMs: 10_000 },
        scheduler: { enabled: true, intervalMs: 60_000, activeWithinDays: 7 },
        cache: { maxEntries: 10_000, ttlSeconds: 60 },
        dataSource: undefined,
      });
    });

    it('leaves the scheduler look-ahead unset so it is min(15 min, half the lifetime) per connection', () => {
      const resolved = resolveProcoreAuthOptions(requiredOptions());

      expect(resolved.scheduler.lookAheadSeconds).toBeUndefined();
    });

    it('gives the remaining tuning knobs their documented defaults', () => {
      const resolved = resolveProcoreAuthOptions(requiredOptions());

      expect(resolved).toMatchObject({
        http: {
          retries: 2,
          retryBaseDelayMs: 250,
          maxRetryAfterMs: 30_000,
          maxResponseBytes: 65_536,
        },
        scheduler: { batchSize: 100, concurrency: 4 },
        lockTimeoutMs: 15_000,
        touchIntervalSeconds: 300,
        maxPendingStatesPerOwner: 10,
        bindFlowToBrowser: true,
      });
    });

    it('finds the owner of a request in req.user.id by default', () => {
      const { ownerResolver } = resolveProcoreAuthOptions(requiredOptions());

      expect(ownerResolver({ user: { id: 'user-7' } })).toBe('user-7');
      expect(ownerResolver({ user: { id: 42 } })).toBe(42);
      expect(ownerResolver({ user: {} })).toBeUndefined();
      expect(ownerResolver({ user: { id: { nested: true } } })).toBeUndefined();
      expect(ownerResolver({})).toBeUndefined();
      expect(ownerResolver(undefined)).toBeUndefined();
    });

    it('keeps the defaults of a nested group when only some of its options are given', () => {
      const resolved = resolveProcoreAuthOptions(
        requiredOptions({
          scheduler: { enabled: false },
          http: { retries: 0 },
          cache: { maxEntries: 5 },
        }),
      );

      expect(resolved.scheduler).toMatchObject({
        enabled: false,
        intervalMs: 60_000,
      });
      expect(resolved.http).toMatchObject({ retries: 0, timeoutMs: 10_000 });
      expect(resolved.cache).toEqual({ maxEntries: 5, ttlSeconds: 60 });
    });

    it('keeps explicit values, including zeros and false', () => {
      const ownerResolver = () => 'owner';
      const resolved = resolveProcoreAuthOptions(
        requiredOptions({
          refreshSkewSeconds: 0,
          pkce: true,
          stateTtlSeconds: 60,
          ownerResolver,
          previousEncryptionKeys: [randomBytes(32).toString('base64')],
          http: { timeoutMs: 2_500 },
          scheduler: {
            enabled: true,
            intervalMs: 5_000,
            lookAheadSeconds: 300,
          },
          cache: { maxEntries: 0, ttlSeconds: 0 },
        }),
      );

      expect(resolved).toMatchObject({
        refreshSkewSeconds: 0,
        pkce: true,
        stateTtlSeconds: 60,
        http: { timeoutMs: 2_500 },
        scheduler: { intervalMs: 5_000, lookAheadSeconds: 300 },
        cache: { maxEntries: 0, ttlSeconds: 0 },
      });
      expect(resolved.ownerResolver).toBe(ownerResolver);
      expect(resolved.previousEncryptionKeys).toHaveLength(1);
    });

    it('does not modify the options object it was given', () => {
      const raw = requiredOptions({ scheduler: { enabled: false } });
      const snapshot = structuredClone(raw);

      resolveProcoreAuthOptions(raw);

      expect(raw).toEqual(snapshot);
    });
  });

  describe('hosts', () => {
    it.each<[ProcoreEnvironment, string, string]>([
      ['production', 'https://login.procore.com', 'https://api.procore.com'],
      ['sandbox', 'https://login-sandbox.procore.com', 'https://sandbox.procore.com'],
      [
        'monthly-sandbox',
        'https://login-sandbox-monthly.procore.com',
        'https://api-monthly.procore.com',
      ],
      ['federal', 'https://login.procoregov.com', 'https://api.procoregov.com'],
    ])('uses the %s preset hosts', (environment, authBaseUrl, apiBaseUrl) => {
      const resolved = resolveProcoreAuthOptions(requiredOptions({ environment }));

      expect(resolved).toMatchObject({ environment, authBaseUrl, apiBaseUrl });
    });

    it('lets explicit base URLs override the preset hosts', () => {
      const resolved = resolveProcoreAuthOptions(
        requiredOptions({
          environment: 'sandbox',
          authBaseUrl: 'https://login.proxy.example.com',
          apiBaseUrl: 'https://api.proxy.example.com',
        }),
      );

      expect(resolved).toMatchObject({
        environment: 'sandbox',
        authBaseUrl: 'https://login.proxy.example.com',
        apiBaseUrl: 'https://api.proxy.example.com',
      });
    });

    it('overrides one host and keeps the preset for the other', () => {
      const resolved = resolveProcoreAuthOptions(
        requiredOptions({
          environment: 'federal',
          authBaseUrl: 'https://login.proxy.example.com',
        }),
      );

      expect(resolved.authBaseUrl).toBe('https://login.proxy.example.com');
      expect(resolved.apiBaseUrl).toBe('https://api.procoregov.com');
    });

    it.each([
      'http://127.0.0.1:4010',
      'http://127.0.0.2:4010',
      'http://localhost:4010',
      'http://[::1]:4010',
    ])('allows plain http on the loopback host %s', (url) => {
      const resolved = resolveProcoreAuthOptions(
        requiredOptions({
          authBaseUrl: url,
          apiBaseUrl: url,
          redirectUri: `${url}/procore/oauth/callback`,
        }),
      );

      expect(resolved.authBaseUrl).toBe(url);
      expect(resolved.apiBaseUrl).toBe(url);
      expect(resolved.redirectUri).toBe(`${url}/procore/oauth/callback`);
    });

    it.each([
      ['authBaseUrl', 'PROCORE_AUTH_BASE_URL', { authBaseUrl: 'http://login.example.com' }],
      ['apiBaseUrl', 'PROCORE_API_BASE_URL', { apiBaseUrl: 'http://api.example.com' }],
      [
        'redirectUri',
        'PROCORE_REDIRECT_URI',
        { redirectUri: 'http://app.example.com/procore/oauth/callback' },
      ],
    ])(
      'rejects plain http for %s on a non-loopback host, naming %s',
      (option, envName, overrides) => {
        const error = thrownBy(() => resolveProcoreAuthOptions(requiredOptions(overrides)));

        expect(error).toBeInstanceOf(ProcoreConfigurationError);
        expect(error.message).toContain(option);
        expect(error.message).toContain(envName);
        expect(error.message).toMatch(/https/);
      },
    );

    it.each([
      'http://127.evil.example.com',
      'http://127.0.0.1.nip.io',
      'http://localhost.evil.example',
    ])('rejects plain http on %s, a host name that only looks like loopback', (url) => {
      expect(() => resolveProcoreAuthOptions(requiredOptions({ authBaseUrl: url }))).toThrow(
        ProcoreConfigurationError,
      );
    });

    it('lists an http problem together with the other problems in one error', () => {
      const error = thrownBy(() =>
        resolveProcoreAuthOptions(
          requiredOptions({ clientId: '', authBaseUrl: 'http://login.example.com' }),
        ),
      );
      expect(error.message).toContain('PROCORE_CLIENT_ID');
      expect(error.message).toContain('PROCORE_AUTH_BASE_URL');
    });

    it('removes trailing slashes from base URLs', () => {
      const resolved = resolveProcoreAuthOptions(
        requiredOptions({
          authBaseUrl: 'https://login.proxy.example.com/',
          apiBaseUrl: 'https://api.proxy.example.com/procore//',
        }),
      );

      expect(resolved.authBaseUrl).toBe('https://login.proxy.example.com');
      expect(resolved.apiBaseUrl).toBe('https://api.proxy.example.com/procore');
    });
  });

  // The routes are a module-level setting (Nest builds its route table before async options
  // resolve), so their defaults are applied by resolveProcoreAuthRoutes.
  describe('routes', () => {
    it("mounts the OAuth routes under 'procore/oauth' by default", () => {
      expect(resolveProcoreAuthRoutes(undefined)).toEqual({
        enabled: true,
        path: 'procore/oauth',
        authorizePath: '/procore/oauth/authorize',
      });
      expect(resolveProcoreAuthRoutes({})).toEqual(resolveProcoreAuthRoutes(undefined));
    });

    it('keeps the default path when only enabled is given', () => {
      expect(resolveProcoreAuthRoutes({ enabled: false })).toMatchObject({
        enabled: false,
        path: 'procore/oauth',
      });
    });

    it.each([
      ['/procore/oauth', 'procore/oauth'],
      ['integrations/procore/', 'integrations/procore'],
      ['//auth//', 'auth'],
    ])('normalizes the path %p to %p', (path, expected) => {
      const routes = resolveProcoreAuthRoutes({ path });

      expect(routes.path).toBe(expected);
      expect(routes.authorizePath).toBe(`/${expected}/authorize`);
    });

    it('rejects a path with characters a route cannot hold', () => {
      expect(() => resolveProcoreAuthRoutes({ path: 'procore oauth?' })).toThrow(
        ProcoreConfigurationError,
      );
    });
  });

  describe('timing options checked against each other', () => {
    it('defaults are consistent: a lock waiter and the shutdown drain outlast one Procore call', () => {
      const resolved = resolveProcoreAuthOptions(requiredOptions());
      expect(resolved).toMatchObject({ lockTimeoutMs: 15_000, shutdownTimeoutMs: 15_000 });
      expect(resolved.http.timeoutMs).toBe(10_000);
    });

    it.each<[string, Partial<ProcoreAuthModuleOptions>]>([
      ['lockTimeoutMs', { lockTimeoutMs: 10_500 }],
      ['shutdownTimeoutMs', { shutdownTimeoutMs: 5_000 }],
      ['lockTimeoutMs', { http: { timeoutMs: 30_000 } }],
    ])('stops bootstrap when %s cannot outlast http.timeoutMs (%j)', (name, overrides) => {
      const error = thrownBy(() => resolveProcoreAuthOptions(requiredOptions(overrides)));
      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain(`${name} (`);
      expect(error.message).toContain('must be at least http.timeoutMs + 1000 ms');
    });

    it('accepts a lower http.timeoutMs with lower lock and shutdown timeouts', () => {
      const resolved = resolveProcoreAuthOptions(
        requiredOptions({
          http: { timeoutMs: 500 },
          lockTimeoutMs: 1_500,
          shutdownTimeoutMs: 1_500,
        }),
      );
      expect(resolved).toMatchObject({ lockTimeoutMs: 1_500, shutdownTimeoutMs: 1_500 });
    });
  });

  describe('validation', () => {
    it('names the option and its env variable for a missing required value', () => {
      const error = thrownBy(() =>
        resolveProcoreAuthOptions(requiredOptions({ clientId: undefined as unknown as string })),
      );

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toMatch(/clientId is missing/);
      expect(error.message).toContain('PROCORE_CLIENT_ID');
    });

    it('rejects an unknown environment, naming PROCORE_ENVIRONMENT', () => {
      const error = thrownBy(() =>
        resolveProcoreAuthOptions(
          requiredOptions({ environment: 'staging' as ProcoreEnvironment }),
        ),
      );

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('environment');
      expect(error.message).toContain('PROCORE_ENVIRONMENT');
    });

    it('rejects an ownerResolver that is not a function', () => {
      const error = thrownBy(() =>
        resolveProcoreAuthOptions(
          requiredOptions({
            ownerResolver: 'user.id' as unknown as ProcoreAuthModuleOptions['ownerResolver'],
          }),
        ),
      );

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('ownerResolver');
    });

    it('names the nested path of an invalid nested option', () => {
      const error = thrownBy(() =>
        resolveProcoreAuthOptions(requiredOptions({ http: { timeoutMs: 0 } })),
      );

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('http.timeoutMs');
    });

    it('lists every problem in one error and echoes no secret', () => {
      const clientSecret = 'do-not-echo-this-client-secret';
      const encryptionKey = randomBytes(16).toString('base64');

      const error = thrownBy(() =>
        resolveProcoreAuthOptions(
          requiredOptions({
            clientId: '',
            clientSecret,
            encryptionKey,
            redirectUri: 'not a url',
          }),
        ),
      );

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('PROCORE_CLIENT_ID');
      expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_KEY');
      expect(error.message).toContain('PROCORE_REDIRECT_URI');
      expect(error.message).not.toContain(clientSecret);
      expect(error.message).not.toContain(encryptionKey);
    });
  });
});
