/**
 * The env variables `procoreConfig` reads, keyed by the option they fill. The names are part of
 * the public contract; validation errors name them so a wrong deployment is easy to fix.
 * @publicApi
 */
export const PROCORE_ENV_VARIABLES = {
  clientId: 'PROCORE_CLIENT_ID',
  clientSecret: 'PROCORE_CLIENT_SECRET',
  redirectUri: 'PROCORE_REDIRECT_URI',
  environment: 'PROCORE_ENVIRONMENT',
  authBaseUrl: 'PROCORE_AUTH_BASE_URL',
  apiBaseUrl: 'PROCORE_API_BASE_URL',
  encryptionKey: 'PROCORE_TOKEN_ENCRYPTION_KEY',
  previousEncryptionKeys: 'PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS',
  /** Comma-separated service-account names; each reads the two variables of `procoreServiceAccountEnv()`. */
  serviceAccounts: 'PROCORE_SERVICE_ACCOUNTS',
} as const;

/**
 * The env variables of one named service account: `PROCORE_SERVICE_ACCOUNT_<NAME>_CLIENT_ID` and
 * `_CLIENT_SECRET`, where `<NAME>` is the name upper-cased with `-` turned into `_`
 * (`reports-eu` → `PROCORE_SERVICE_ACCOUNT_REPORTS_EU_CLIENT_ID`).
 */
export function procoreServiceAccountEnv(name: string): { clientId: string; clientSecret: string } {
  const prefix = `PROCORE_SERVICE_ACCOUNT_${name.toUpperCase().replace(/-/g, '_')}`;
  return { clientId: `${prefix}_CLIENT_ID`, clientSecret: `${prefix}_CLIENT_SECRET` };
}
