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
import { ProcoreClient } from './api/procore.client.js';
import { TokenRefreshScheduler } from './refresh/token-refresh.scheduler.js';
import { procoreAuthProviders } from './procore-auth.providers.js';
import { ProcoreKeyRotationService } from './crypto/procore-key-rotation.service.js';
import { ProcoreAuthEvents } from './events/procore-auth.events.js';
import { ProcoreHealthIndicator } from './health/procore-health.indicator.js';
import { procoreAuthEntities } from './storage/index.js';
import { ProcoreTokenStore } from './storage/procore-token.store.js';
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
    ProcoreTokenPipe,
    ProcoreClient,
    ProcoreApiPipe,
    TokenRefreshScheduler,
    PROCORE_AUTH_OPTIONS,
    PROCORE_TOKEN_CIPHER,
  ],
})
export class ProcoreAuthModule extends ConfigurableProcoreAuthModule {
  static override forRoot(options: typeof PROCORE_AUTH_OPTIONS_TYPE): DynamicModule {
    registerEntities(options.dataSource);
    return super.forRoot(options);
  }

  static override forRootAsync(options: typeof PROCORE_AUTH_ASYNC_OPTIONS_TYPE): DynamicModule {
    registerEntities(undefined);
    return super.forRootAsync(options);
  }
}
