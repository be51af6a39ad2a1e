import { registerAs } from '@nestjs/config';
import type {
  ProcoreAuthModuleOptions,
  ProcoreEnvironment,
} from '../interfaces/procore-auth-options.interface.js';
import { PROCORE_ENV_VARIABLES as ENV } from './procore-env.js';

function env(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value ? value : undefined;
}

/**
 * `registerAs('procore', ...)`: the module options read from env variables. Use it with
 * `ConfigModule.forFeature(procoreConfig)` and `inject: [procoreConfig.KEY]`, and spread your own
 * options over it (`useFactory: (cfg) => ({ ...cfg, ownerResolver })`). Values are validated by
 * the module at bootstrap, so a missing variable stops the app with a message naming it.
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
}));
