/**
 * Injection token of the resolved options (every default applied).
 * @publicApi
 */
export const PROCORE_AUTH_OPTIONS = Symbol('PROCORE_AUTH_OPTIONS');
/** Injection token of the `TokenCipher` keyring. */
export const PROCORE_TOKEN_CIPHER = Symbol('PROCORE_TOKEN_CIPHER');
/**
 * Injection token of the resolved OAuth routes (`ProcoreAuthRoutes`).
 * @publicApi
 */
export const PROCORE_AUTH_ROUTES = Symbol('PROCORE_AUTH_ROUTES');
/** @internal Provider that documents the routes for `@nestjs/swagger` when it is installed. */
export const PROCORE_SWAGGER_DOCS = Symbol('PROCORE_SWAGGER_DOCS');
/** Metadata key set by `@SkipProcoreAuth()`. */
export const SKIP_PROCORE_AUTH = 'procore:skip-auth';
