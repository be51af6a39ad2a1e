/** Injection token of the resolved options (every default applied). */
export const PROCORE_AUTH_OPTIONS = Symbol('PROCORE_AUTH_OPTIONS');
/** Injection token of the `TokenCipher` keyring. */
export const PROCORE_TOKEN_CIPHER = Symbol('PROCORE_TOKEN_CIPHER');
