import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import type { ProcoreAuthRoutes } from '../http/procore-auth-routes.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_AUTH_ROUTES } from '../procore-auth.constants.js';

/** Scheme and host of a configured URL: never its path, query or credentials. */
function hostOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'an invalid URL';
  }
}

/** The one line the module logs at start-up: what it talks to and what it runs. */
export function describeProcoreSetup(
  options: ResolvedProcoreAuthOptions,
  routes: ProcoreAuthRoutes,
): string {
  const mounted = routes.enabled
    ? `OAuth routes at /${routes.path ? `${routes.path}/` : ''}{authorize,callback}`
    : 'OAuth routes not mounted';
  const scheduler = options.scheduler.enabled
    ? `token refresh scheduler on (every ${Math.round(options.scheduler.intervalMs / 1000)} s)`
    : 'token refresh scheduler off';
  return `Procore auth ready: environment ${options.environment}, login host ${hostOf(options.authBaseUrl)}, API host ${hostOf(options.apiBaseUrl)}, ${mounted}, ${scheduler}.`;
}

/** Logs the start-up line once the app has bootstrapped (through the app's logger). */
@Injectable()
export class ProcoreStartupLogger implements OnApplicationBootstrap {
  private readonly logger = new Logger('ProcoreAuth');

  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_AUTH_ROUTES) private readonly routes: ProcoreAuthRoutes,
  ) {}

  onApplicationBootstrap(): void {
    this.logger.log(describeProcoreSetup(this.options, this.routes));
  }
}
