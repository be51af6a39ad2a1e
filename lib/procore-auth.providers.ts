import type { Provider } from '@nestjs/common';
import { APP_FILTER, ModuleRef } from '@nestjs/core';
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
import { ProcoreApiTransport } from './api/procore-api.transport.js';
import { ProcoreEventEmitterBridge } from './events/procore-event-emitter.bridge.js';
import { ProcoreHealthIndicator } from './health/procore-health.indicator.js';
import { ProcoreStartupLogger } from './logging/procore-startup.logger.js';
import { ProcoreMetrics } from './metrics/procore-metrics.js';
import { ProcoreClient } from './api/procore.client.js';
import { ProcoreOAuthClient } from './oauth/procore-oauth.client.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_TOKEN_CIPHER } from './procore-auth.constants.js';
import { PROCORE_AUTH_MODULE_OPTIONS } from './procore-auth.module-definition.js';
import { ProcoreInFlightOperations } from './refresh/in-flight-operations.js';
import { ProcoreTokenRefresher } from './refresh/procore-token.refresher.js';
import { TokenRefreshScheduler } from './refresh/token-refresh.scheduler.js';
import { dataSourceResolver } from './storage/data-source.resolver.js';
import { ProcoreOAuthStateStore } from './storage/procore-oauth-state.store.js';
import { ProcoreTokenStore } from './storage/procore-token.store.js';
import { TypeOrmProcoreOAuthStateStore } from './storage/typeorm-procore-oauth-state.store.js';
import { TypeOrmProcoreTokenStore } from './storage/typeorm-procore-token.store.js';
import { ProcoreServiceAccounts } from './tokens/procore-service-accounts.js';
import { ProcoreTokenService } from './tokens/procore-token.service.js';

/** Every provider of the module; defaults and validation happen once, in `resolveProcoreAuthOptions`. */
export const procoreAuthProviders: Provider[] = [
  {
    provide: PROCORE_AUTH_OPTIONS,
    useFactory: (raw: ProcoreAuthModuleOptions) => resolveProcoreAuthOptions(raw),
    inject: [PROCORE_AUTH_MODULE_OPTIONS],
  },
  {
    provide: PROCORE_TOKEN_CIPHER,
    useFactory: (options: ResolvedProcoreAuthOptions) =>
      new TokenCipher(options.encryptionKey, options.previousEncryptionKeys),
    inject: [PROCORE_AUTH_OPTIONS],
  },
  {
    provide: ProcoreTokenStore,
    useFactory: (options: ResolvedProcoreAuthOptions, moduleRef: ModuleRef) =>
      new TypeOrmProcoreTokenStore(dataSourceResolver(options.dataSource, moduleRef)),
    inject: [PROCORE_AUTH_OPTIONS, ModuleRef],
  },
  {
    provide: ProcoreOAuthStateStore,
    useFactory: (options: ResolvedProcoreAuthOptions, moduleRef: ModuleRef) =>
      new TypeOrmProcoreOAuthStateStore(
        dataSourceResolver(options.dataSource, moduleRef),
        options.maxPendingStatesPerOwner,
      ),
    inject: [PROCORE_AUTH_OPTIONS, ModuleRef],
  },
  ProcoreAuthEvents,
  ProcoreEventEmitterBridge,
  ProcoreHealthIndicator,
  ProcoreMetrics,
  ProcoreStartupLogger,
  ProcoreOAuthClient,
  ProcoreInFlightOperations,
  ProcoreTokenRefresher,
  ProcoreServiceAccounts,
  ProcoreTokenService,
  ProcoreKeyRotationService,
  ProcoreTokenPipe,
  ProcoreApiTransport,
  ProcoreClient,
  ProcoreApiPipe,
  { provide: APP_FILTER, useClass: ProcoreExceptionFilter },
  TokenRefreshScheduler,
];
