import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ConfigurableProcoreAuthModule,
  PROCORE_AUTH_ASYNC_OPTIONS_TYPE,
  PROCORE_AUTH_OPTIONS_TYPE,
} from './procore-auth.module-definition.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_TOKEN_CIPHER } from './procore-auth.constants.js';
import { ProcoreTokenPipe } from './http/procore-token.decorator.js';
import { ProcoreApiPipe } from './http/procore-api.decorator.js';
import { ProcoreRequestOwnerResolver } from './http/procore-request-owner.resolver.js';
import { ProcoreRequestTokens } from './http/procore-request-tokens.js';
import { ProcoreClient } from './api/procore.client.js';
import { TokenRefreshScheduler } from './refresh/token-refresh.scheduler.js';
import { procoreAuthProviders } from './procore-auth.providers.js';
import { ProcoreKeyRotationService } from './crypto/procore-key-rotation.service.js';
import { ProcoreAuthEvents } from './events/procore-auth.events.js';
import { ProcoreHealthIndicator } from './health/procore-health.indicator.js';
import { procoreAuthEntities } from './storage/index.js';
import { ProcoreTokenStore } from './storage/procore-token.store.js';
import type { ProcoreStorageOptions } from './interfaces/procore-storage-options.interface.js';
import { ProcoreTokenService } from './tokens/procore-token.service.js';

/** Lets `autoLoadEntities: true` pick up the entities on the given (or default) DataSource. */
function registerEntities(dataSource: unknown): void {
  // forFeature() records the entities for autoLoadEntities; its repository providers are not
  // imported, so the module also works with a DataSource that TypeOrmModule does not manage.
  TypeOrmModule.forFeature(
    procoreAuthEntities,
    typeof dataSource === 'string' ? dataSource : undefined,
  );
}

/**
 * Whether a TypeORM store is in use (so `autoLoadEntities` should see the entities). With both
 * stores replaced, an app that keeps `api.rateLimitCoordination: 'database'` lists
 * `procoreAuthEntities` on its DataSource itself.
 */
function usesTypeOrm(storage: ProcoreStorageOptions | undefined): boolean {
  return storage?.tokens === undefined || storage.states === undefined;
}

/**
 * Procore OAuth for a NestJS app. Register once, with `forRoot(options)` or
 * `forRootAsync({ imports, inject, useFactory | useClass | useExisting, isGlobal })`.
 */
@Module({
  providers: procoreAuthProviders,
  exports: [
    ProcoreTokenService,
    ProcoreKeyRotationService,
    ProcoreAuthEvents,
    ProcoreHealthIndicator,
    ProcoreTokenStore,
    ProcoreRequestOwnerResolver,
    ProcoreRequestTokens,
    ProcoreTokenPipe,
    ProcoreClient,
    ProcoreApiPipe,
    TokenRefreshScheduler,
    PROCORE_AUTH_OPTIONS,
    PROCORE_TOKEN_CIPHER,
  ],
})
/** @publicApi */
export class ProcoreAuthModule extends ConfigurableProcoreAuthModule {
  static override forRoot(options: typeof PROCORE_AUTH_OPTIONS_TYPE): DynamicModule {
    if (usesTypeOrm(options.storage)) registerEntities(options.dataSource);
    return super.forRoot(options);
  }

  static override forRootAsync(options: typeof PROCORE_AUTH_ASYNC_OPTIONS_TYPE): DynamicModule {
    if (usesTypeOrm(options.storage)) registerEntities(undefined);
    return super.forRootAsync(options);
  }
}
