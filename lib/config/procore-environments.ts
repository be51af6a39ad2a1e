/** The login host and the REST API host of one Procore environment. */
export interface ProcoreEnvironmentHosts {
  /** Login host: `/oauth/authorize`, `/oauth/token`, `/oauth/revoke` live under it. */
  readonly authBaseUrl: string;
  /** REST API host: `/rest/v1.0/...` lives under it. */
  readonly apiBaseUrl: string;
}

/**
 * Procore's environments and their preset hosts: the one table the environment type, the option's
 * validation (`environment` / `PROCORE_ENVIRONMENT`) and the host presets are derived from. Adding
 * an environment here adds it everywhere.
 * @publicApi
 */
export const PROCORE_ENVIRONMENT_HOSTS = {
  production: { authBaseUrl: 'https://login.procore.com', apiBaseUrl: 'https://api.procore.com' },
  sandbox: {
    authBaseUrl: 'https://login-sandbox.procore.com',
    apiBaseUrl: 'https://sandbox.procore.com',
  },
  'monthly-sandbox': {
    authBaseUrl: 'https://login-sandbox-monthly.procore.com',
    apiBaseUrl: 'https://api-monthly.procore.com',
  },
  federal: {
    authBaseUrl: 'https://login.procoregov.com',
    apiBaseUrl: 'https://api.procoregov.com',
  },
} as const satisfies Readonly<Record<string, ProcoreEnvironmentHosts>>;

/** Procore environments with preset hosts. Tokens never cross environments. @publicApi */
export type ProcoreEnvironment = keyof typeof PROCORE_ENVIRONMENT_HOSTS;

/** Every environment name, in the table's order (`production` first, the default). */
export const PROCORE_ENVIRONMENTS = Object.keys(PROCORE_ENVIRONMENT_HOSTS) as ProcoreEnvironment[];
