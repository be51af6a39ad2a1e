import { ConfigurableModuleBuilder } from '@nestjs/common';
import { resolveProcoreAuthRoutes } from './http/procore-auth-routes.js';
import type {
  ProcoreAuthModuleOptions,
  ProcoreRoutesOptions,
} from './interfaces/procore-auth-options.interface.js';
import type { ProcoreStorageOptions } from './interfaces/procore-storage-options.interface.js';
import { createProcoreOAuthController } from './http/procore-oauth.controller.js';
import { PROCORE_AUTH_ROUTES } from './procore-auth.constants.js';
import { procoreStorageProviders } from './storage/procore-storage.providers.js';

/**
 * Module-level settings, given next to the options in `forRoot({ ... })` and next to
 * `useFactory` in `forRootAsync({ ... })`: Nest needs them before async options resolve.
 */
export interface ProcoreAuthModuleExtras {
  /** Register the module globally, so feature modules need not import it. Default `false`. */
  isGlobal?: boolean;
  /** The OAuth routes. Default: mounted under `procore/oauth`. */
  routes?: ProcoreRoutesOptions;
  /**
   * The token and state stores, as instances or classes (`ProcoreStorageOptions`). Default: the
   * TypeORM stores on the `dataSource` option.
   */
  storage?: ProcoreStorageOptions;
}

export const {
  ConfigurableModuleClass: ConfigurableProcoreAuthModule,
  /**
   * Injection token of the raw options, as passed to forRoot() or returned by the factory.
   * @publicApi
   */
  MODULE_OPTIONS_TOKEN: PROCORE_AUTH_MODULE_OPTIONS,
  OPTIONS_TYPE: PROCORE_AUTH_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: PROCORE_AUTH_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<ProcoreAuthModuleOptions>({ moduleName: 'ProcoreAuth' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createProcoreAuthOptions')
  .setExtras<ProcoreAuthModuleExtras>(
    { isGlobal: false, routes: undefined, storage: undefined },
    (definition, extras) => {
      const routes = resolveProcoreAuthRoutes(extras.routes);
      return {
        ...definition,
        global: extras.isGlobal,
        controllers: routes.enabled
          ? [createProcoreOAuthController(routes.path, extras.routes?.guards)]
          : [],
        providers: [
          ...(definition.providers ?? []),
          ...procoreStorageProviders(extras.storage),
          { provide: PROCORE_AUTH_ROUTES, useValue: routes },
        ],
        exports: [...(definition.exports ?? []), PROCORE_AUTH_ROUTES],
      };
    },
  )
  .build();
