import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { PROCORE_ENVIRONMENT_HOSTS, PROCORE_ENVIRONMENTS } from './procore-environments.js';
import { resolveProcoreAuthOptions } from './resolve-procore-auth-options.js';

const required = {
  clientId: 'client-id',
  clientSecret: 'client-secret',
  redirectUri: 'https://app.example.com/procore/oauth/callback',
  encryptionKey: randomBytes(32).toString('base64'),
};

describe('PROCORE_ENVIRONMENT_HOSTS (the one table of environments)', () => {
  it('lists production, sandbox, monthly-sandbox and federal, production first', () => {
    expect(PROCORE_ENVIRONMENTS).toEqual(['production', 'sandbox', 'monthly-sandbox', 'federal']);
  });

  it.each(PROCORE_ENVIRONMENTS)(
    'accepts %s as an option and resolves the hosts of its row',
    (environment) => {
      const resolved = resolveProcoreAuthOptions({ ...required, environment });

      expect(resolved.environment).toBe(environment);
      expect(resolved.authBaseUrl).toBe(PROCORE_ENVIRONMENT_HOSTS[environment].authBaseUrl);
      expect(resolved.apiBaseUrl).toBe(PROCORE_ENVIRONMENT_HOSTS[environment].apiBaseUrl);
    },
  );

  it('rejects a name that is not a row, listing every row in the message', () => {
    let thrown: unknown;
    try {
      resolveProcoreAuthOptions({ ...required, environment: 'toString' as 'production' });
    } catch (error) {
      thrown = error;
    }

    expect(thrown).toBeInstanceOf(ProcoreConfigurationError);
    for (const environment of PROCORE_ENVIRONMENTS) {
      expect((thrown as Error).message).toContain(environment);
    }
  });
});
