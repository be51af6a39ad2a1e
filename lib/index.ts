// Public surface of nestjs-procore-auth. Anything not exported here is internal and may change
// (tests import internals from their lib/ paths). Public classes, functions and constants carry
// `@publicApi` in their doc comment, as Nest's own packages do.
import './package-build.js';
export { procoreConfig } from './config/procore.config.js';
export { PROCORE_ENV_VARIABLES } from './config/procore-env.js';
export {
  PROCORE_ENVIRONMENT_HOSTS,
  type ProcoreEnvironmentHosts,
} from './config/procore-environments.js';
export type { ResolvedProcoreAuthOptions } from './config/resolve-procore-auth-options.js';
export { ProcoreKeyRotationService } from './crypto/procore-key-rotation.service.js';
export * from './errors/index.js';
export {
  ProcoreAuthEvents,
  ProcoreAuthEventType,
  type ProcoreAuthEvent,
  type ProcoreApiHolder,
  type ProcoreRefreshTrigger,
} from './events/procore-auth.events.js';
export {
  ProcoreHealthIndicator,
  type ProcoreHealthCheckOptions,
  type ProcoreHealthIndicatorResult,
} from './health/procore-health.indicator.js';
export type * from './interfaces/procore-auth-options.interface.js';
export type * from './interfaces/procore-connection.interface.js';
export type * from './interfaces/procore-token-response.interface.js';
export type * from './interfaces/procore-storage-options.interface.js';
export { ProcoreAuthGuard } from './http/procore-auth.guard.js';
export { ProcoreRequestOwnerResolver } from './http/procore-request-owner.resolver.js';
export type { ProcoreAuthRoutes } from './http/procore-auth-routes.js';
export type {
  ProcoreBadRequestBody,
  ProcoreBadRequestReason,
  ProcoreErrorBody,
  ProcoreErrorReason,
  ProcoreUnauthorizedBody,
  ProcoreUnauthorizedReason,
} from './http/procore-http-errors.js';
export {
  ProcoreToken,
  /** @internal exported for the benchmarks only; use `@ProcoreToken()`. */
  ProcoreTokenPipe,
  type ProcoreTokenOptions,
} from './http/procore-token.decorator.js';
export { SkipProcoreAuth } from './http/skip-procore-auth.decorator.js';
export {
  ApiProcoreAuth,
  type ApiProcoreAuthOptions,
} from './swagger/api-procore-auth.decorator.js';
export {
  ProcoreApi,
  /** @internal exported for the benchmarks only; use `@ProcoreApi()`. */
  ProcoreApiPipe,
  type ProcoreApiParamOptions,
} from './http/procore-api.decorator.js';
export { ProcoreClient, type ProcoreClientScope } from './api/procore.client.js';
export {
  ProcoreScopedClient,
  type ProcorePaginateOptions,
  type ProcoreRequestOptions,
  type ProcoreResponse,
} from './api/procore-scoped-client.js';
export type { ProcoreCompanyId } from './api/company-id.js';
export type { ProcoreQueryValue } from './api/api-url.js';
export type { ProcoreRateLimitState } from './api/rate-limit.governor.js';
export { PROCORE_AUTH_OPTIONS, PROCORE_AUTH_ROUTES } from './procore-auth.constants.js';
export { ProcoreAuthModule } from './procore-auth.module.js';
export {
  PROCORE_AUTH_MODULE_OPTIONS,
  type ProcoreAuthModuleExtras,
} from './procore-auth.module-definition.js';
export {
  PROCORE_REFRESH_JOB,
  TokenRefreshScheduler,
  type ProcoreRefreshTickSummary,
} from './refresh/token-refresh.scheduler.js';
export { procoreAuthEntities, procoreAuthMigrations } from './storage/index.js';
export {
  ProcoreOAuthStateStore,
  type ConsumedState,
  type ProcoreOAuthStateRecord,
} from './storage/procore-oauth-state.store.js';
export {
  ProcoreTokenEntity,
  type ProcoreConnectionStatus,
} from './storage/procore-token.entity.js';
export {
  ProcoreTokenStore,
  type ClaimOptions,
  type LockedTokenWriter,
  type ProcoreTokenInsert,
  type ProcoreTokenPatch,
  type ProcoreTokenRecord,
  type ProcoreTokenUpsert,
} from './storage/procore-token.store.js';
export { ProcoreTokenService, type ProcoreOwnerId } from './tokens/procore-token.service.js';
