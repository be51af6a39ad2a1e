import type { Provider } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { ProcoreExceptionFilter } from './http/procore-exception.filter.js';
import {
  resolveProcoreAuthOptions,
  type ResolvedProcoreAuthOptions,
} from './config/resolve-procore-auth-options.js';
import { ProcoreKeyRotationService } from './crypto/procore-key-rotation.service.js';
import { TokenCipher } from './crypto/token-cipher.js';
import { ProcoreAuthEvents } from './events/procore-auth.events.js';
import type { ProcoreAuthModuleOptions } from './interfaces/procore-auth-options.interface.js';
import { ProcoreTokenPipe } from './http/procore-token.decorator.js';
import { ProcoreApiPipe } from './http/procore-api.decorator.js';
import { ProcoreRequestOwnerResolver } from './http/procore-request-owner.resolver.js';
import { ProcoreRequestTokens } from './http/procore-request-tokens.js';
import { ProcoreApiTransport } from './api/procore-api.transport.js';
import { ProcoreEventEmitterBridge } from './events/procore-event-emitter.bridge.js';
import { ProcoreHealthIndicator } from './health/procore-health.indicator.js';
import { ProcoreStartupLogger } from './logging/procore-startup.logger.js';
import { ProcoreMetrics } from './metrics/procore-metrics.js';
import { applyProcoreSwaggerDocs } from './swagger/procore-swagger.js';
import { ProcoreClient } from './api/procore.client.js';
import { ProcoreAuthorizationFlow } from './tokens/procore-authorization-flow.js';
import { ProcoreOAuthClient } from './oauth/procore-oauth.client.js';
import {
  PROCORE_AUTH_OPTIONS,
  PROCORE_SWAGGER_DOCS,
  PROCORE_TOKEN_CIPHER,
} from './procore-auth.constants.js';
import { PROCORE_AUTH_MODULE_OPTIONS } from './procore-auth.module-definition.js';
import { ProcoreInFlightOperations } from './refresh/in-flight-operations.js';
import { ProcoreTokenRefresher } from './refresh/procore-token.refresher.js';
import { TokenRefreshScheduler } from './refresh/token-refresh.scheduler.js';
import { PROCORE_CUSTOM_TOKEN_STORE } from './storage/procore-storage.providers.js';
import { ProcoreServiceAccounts } from './tokens/procore-service-accounts.js';
import { ProcoreTokenService } from './tokens/procore-token.service.js';
import { ProcoreUserTokens } from './tokens/procore-user-tokens.js';

/**
 * Every provider of the module but the stores (`procoreStorageProviders`, added with the module's
 * settings); defaults and validation happen once, in `resolveProcoreAuthOptions`.
 */
export const procoreAuthProviders: Provider[] = [
  {
    provide: PROCORE_AUTH_OPTIONS,
    // The shared rate-limit ledger lives in the TypeORM DataSource: an app that keeps its tokens
    // elsewhere may have none, so there each instance keeps its own view unless told otherwise.
    useFactory: (raw: ProcoreAuthModuleOptions, customTokenStore: boolean) =>
      resolveProcoreAuthOptions(
        customTokenStore && raw.api?.rateLimitCoordination === undefined
          ? { ...raw, api: { ...raw.api, rateLimitCoordination: 'instance' } }
          : raw,
      ),
    inject: [PROCORE_AUTH_MODULE_OPTIONS, PROCORE_CUSTOM_TOKEN_STORE],
  },
  {
    provide: PROCORE_TOKEN_CIPHER,
    useFactory: (options: ResolvedProcoreAuthOptions) =>
      new TokenCipher(options.encryptionKey, options.previousEncryptionKeys),
    inject: [PROCORE_AUTH_OPTIONS],
  },
  ProcoreAuthEvents,
  ProcoreEventEmitterBridge,
  ProcoreHealthIndicator,
  ProcoreMetrics,
  ProcoreStartupLogger,
  // Adds the OpenAPI description of the routes when @nestjs/swagger is installed (else nothing).
  { provide: PROCORE_SWAGGER_DOCS, useFactory: applyProcoreSwaggerDocs },
  ProcoreOAuthClient,
  ProcoreInFlightOperations,
  ProcoreTokenRefresher,
  ProcoreServiceAccounts,
  ProcoreUserTokens,
  ProcoreAuthorizationFlow,
  ProcoreTokenService,
  ProcoreKeyRotationService,
  ProcoreRequestOwnerResolver,
  ProcoreRequestTokens,
  ProcoreTokenPipe,
  ProcoreApiTransport,
  ProcoreClient,
  ProcoreApiPipe,
  { provide: APP_FILTER, useClass: ProcoreExceptionFilter },
  TokenRefreshScheduler,
];
