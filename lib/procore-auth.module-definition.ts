import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { ProcoreAuthModuleOptions } from './interfaces/procore-auth-options.interface.js';

/** Module-level extras (not part of the options object). */
export interface ProcoreAuthModuleExtras {
  /** Register the module globally, so feature modules need not import it. Default `false`. */
  isGlobal?: boolean;
}

export const {
  ConfigurableModuleClass: ConfigurableProcoreAuthModule,
  /** Injection token of the raw options, as passed to forRoot() or returned by the factory. */
  MODULE_OPTIONS_TOKEN: PROCORE_AUTH_MODULE_OPTIONS,
  OPTIONS_TYPE: PROCORE_AUTH_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: PROCORE_AUTH_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<ProcoreAuthModuleOptions>({ moduleName: 'ProcoreAuth' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createProcoreAuthOptions')
  .setExtras<ProcoreAuthModuleExtras>({ isGlobal: false }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
  }))
  .build();
