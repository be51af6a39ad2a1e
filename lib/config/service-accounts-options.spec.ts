import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import type { ProcoreAuthModuleOptions } from '../interfaces/procore-auth-options.interface.js';
import { procoreServiceAccountEnv } from './procore-env.js';
import { procoreConfig } from './procore.config.js';
import { resolveProcoreAuthOptions } from './resolve-procore-auth-options.js';

function options(serviceAccounts: unknown): ProcoreAuthModuleOptions {
  return {
    clientId: 'client-id',
    clientSecret: 'client-secret',
    redirectUri: 'https://app.example.com/procore/oauth/callback',
    encryptionKey: randomBytes(32).toString('base64'),
    serviceAccounts: serviceAccounts as ProcoreAuthModuleOptions['serviceAccounts'],
  };
}

/** The configuration error resolving `serviceAccounts` throws. */
function problemWith(serviceAccounts: unknown): ProcoreConfigurationError {
  try {
    resolveProcoreAuthOptions(options(serviceAccounts));
  } catch (error) {
    expect(error).toBeInstanceOf(ProcoreConfigurationError);
    return error as ProcoreConfigurationError;
  }
  throw new Error('expected a configuration error, but the options resolved');
}

describe('serviceAccounts option', () => {
  it('defaults to no named accounts', () => {
    expect(resolveProcoreAuthOptions(options(undefined)).serviceAccounts).toEqual({});
  });

  it('keeps a copy of each account holding only its credentials', () => {
    const accounts = {
      reports: { clientId: 'reports-id', clientSecret: 'reports-secret', note: 'x' },
      'crm_sync-2': { clientId: 'crm-id', clientSecret: 'crm-secret' },
    };

    const resolved = resolveProcoreAuthOptions(options(accounts)).serviceAccounts;
    accounts.reports.clientSecret = 'changed later';

    expect(resolved).toEqual({
      reports: { clientId: 'reports-id', clientSecret: 'reports-secret' },
      'crm_sync-2': { clientId: 'crm-id', clientSecret: 'crm-secret' },
    });
  });

  it('names a missing secret and the env variable that sets it, for names with dashes too', () => {
    const error = problemWith({
      reports: { clientId: 'reports-id' },
      'crm-sync': { clientId: '', clientSecret: 'crm-secret-never-echoed' },
    });

    expect(error.message).toContain(
      'serviceAccounts.reports.clientSecret is missing: set PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_SECRET or pass serviceAccounts.reports.clientSecret to ProcoreAuthModule.forRoot()',
    );
    expect(error.message).toContain(
      'serviceAccounts.crm-sync.clientId is missing: set PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_ID',
    );
    expect(error.message).not.toContain('crm-secret-never-echoed');
    expect(error.message).not.toContain('reports-id');
  });

  it('refuses a value that is not a non-empty string without echoing it', () => {
    const error = problemWith({ reports: { clientId: 42, clientSecret: ['secret-in-array'] } });

    expect(error.message).toContain(
      'serviceAccounts.reports.clientId is invalid (must be a non-empty string)',
    );
    expect(error.message).toContain('serviceAccounts.reports.clientSecret is invalid');
    expect(error.message).not.toContain('42');
    expect(error.message).not.toContain('secret-in-array');
  });

  it.each(['reports.v2', 'has space', 'x'.repeat(65), 'émile'])(
    'refuses the name %j, naming PROCORE_SERVICE_ACCOUNTS',
    (name) => {
      const error = problemWith({ [name]: { clientId: 'id', clientSecret: 'secret-value' } });

      expect(error.message).toContain('serviceAccounts has an invalid name');
      expect(error.message).toContain('PROCORE_SERVICE_ACCOUNTS');
      expect(error.message).not.toContain('secret-value');
    },
  );

  it.each([null, 'reports', ['reports'], 3])('refuses serviceAccounts = %j', (value) => {
    expect(problemWith(value).message).toContain(
      'serviceAccounts is invalid (must be an object of { clientId, clientSecret } by name)',
    );
  });

  it('refuses an account that is not an object, naming its two variables', () => {
    expect(problemWith({ reports: 'reports-secret' }).message).toContain(
      'serviceAccounts.reports is invalid (must be { clientId, clientSecret }): set PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_ID and PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_SECRET',
    );
  });

  it('derives the env variable names from the name (upper case, "-" → "_")', () => {
    expect(procoreServiceAccountEnv('crm-sync_eu')).toEqual({
      clientId: 'PROCORE_SERVICE_ACCOUNT_CRM_SYNC_EU_CLIENT_ID',
      clientSecret: 'PROCORE_SERVICE_ACCOUNT_CRM_SYNC_EU_CLIENT_SECRET',
    });
  });
});

describe('procoreConfig: service accounts from env variables', () => {
  const names = [
    'PROCORE_SERVICE_ACCOUNTS',
    'PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_ID',
    'PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_SECRET',
    'PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_ID',
    'PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_SECRET',
  ];
  const saved = new Map(names.map((name) => [name, process.env[name]]));

  afterEach(() => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  function setEnv(values: Record<string, string | undefined>): void {
    for (const name of names) {
      if (values[name] === undefined) delete process.env[name];
      else process.env[name] = values[name];
    }
  }

  it('reads no accounts when PROCORE_SERVICE_ACCOUNTS is unset or blank', () => {
    setEnv({});
    expect(procoreConfig().serviceAccounts).toBeUndefined();
    setEnv({ PROCORE_SERVICE_ACCOUNTS: '  ' });
    expect(procoreConfig().serviceAccounts).toBeUndefined();
  });

  it("reads each listed name's two variables (names trimmed, empty entries skipped)", () => {
    setEnv({
      PROCORE_SERVICE_ACCOUNTS: ' reports , crm-sync ,',
      PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_ID: 'reports-id',
      PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_SECRET: 'reports-secret',
      PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_ID: 'crm-id',
      PROCORE_SERVICE_ACCOUNT_CRM_SYNC_CLIENT_SECRET: 'crm-secret',
    });

    expect(procoreConfig().serviceAccounts).toEqual({
      reports: { clientId: 'reports-id', clientSecret: 'reports-secret' },
      'crm-sync': { clientId: 'crm-id', clientSecret: 'crm-secret' },
    });
  });

  it('leaves missing variables undefined, so validation names them', () => {
    setEnv({
      PROCORE_SERVICE_ACCOUNTS: 'reports',
      PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_ID: 'reports-id',
    });

    const error = problemWith(procoreConfig().serviceAccounts);

    expect(error.message).toContain('PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_SECRET');
    expect(error.message).not.toContain('PROCORE_SERVICE_ACCOUNT_REPORTS_CLIENT_ID');
  });
});
