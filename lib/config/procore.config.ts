import { registerAs } from '@nestjs/config';
import type {
  ProcoreAuthModuleOptions,
  ProcoreEnvironment,
} from '../interfaces/procore-auth-options.interface.js';
import { PROCORE_ENV_VARIABLES as ENV, procoreServiceAccountEnv } from './procore-env.js';

function env(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value ? value : undefined;
}

/**
 * `PROCORE_SERVICE_ACCOUNTS=reports,crm` and, per name, `PROCORE_SERVICE_ACCOUNT_<NAME>_CLIENT_ID`
 * / `_CLIENT_SECRET`. A missing variable is left undefined: validation names it at bootstrap.
 */
function serviceAccountsFromEnv(): ProcoreAuthModuleOptions['serviceAccounts'] {
  const names = env(ENV.serviceAccounts)
    ?.split(',')
    .map((name) => name.trim());
  if (!names) return undefined;
  return Object.fromEntries(
    names.filter(Boolean).map((name) => {
      const variables = procoreServiceAccountEnv(name);
      return [
        name,
        {
          clientId: env(variables.clientId) as string,
          clientSecret: env(variables.clientSecret) as string,
        },
      ];
    }),
  );
}

/**
 * `registerAs('procore', ...)`: the module options read from env variables. Use it with
 * `ConfigModule.forFeature(procoreConfig)` and `inject: [procoreConfig.KEY]`, and spread your own
 * options over it (`useFactory: (cfg) => ({ ...cfg, ownerResolver })`). Values are validated by
 * the module at bootstrap, so a missing variable stops the app with a message naming it.
 * Named service accounts come from `PROCORE_SERVICE_ACCOUNTS` (comma-separated names) and, per
 * name, `PROCORE_SERVICE_ACCOUNT_<NAME>_CLIENT_ID` / `_CLIENT_SECRET` (`<NAME>`: the name
 * upper-cased, `-` → `_`).
 * @publicApi
 */
export const procoreConfig = registerAs('procore', (): ProcoreAuthModuleOptions => ({
  clientId: env(ENV.clientId) as string,
  clientSecret: env(ENV.clientSecret) as string,
  redirectUri: env(ENV.redirectUri) as string,
  environment: env(ENV.environment) as ProcoreEnvironment | undefined,
  authBaseUrl: env(ENV.authBaseUrl),
  apiBaseUrl: env(ENV.apiBaseUrl),
  encryptionKey: env(ENV.encryptionKey) as string,
  previousEncryptionKeys: env(ENV.previousEncryptionKeys)
    ?.split(',')
    .map((key) => key.trim())
    .filter(Boolean),
  serviceAccounts: serviceAccountsFromEnv(),
}));
