import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import type { ProcoreRoutesOptions } from '../interfaces/procore-auth-options.interface.js';

/** The OAuth routes as mounted. */
export interface ProcoreAuthRoutes {
  enabled: boolean;
  /** Path prefix without slashes, e.g. `procore/oauth`. */
  path: string;
  /** Where a 401 tells clients to send the user, e.g. `/procore/oauth/authorize`. */
  authorizePath: string;
}

/** Applies the defaults of the `routes` module option (on, under `procore/oauth`). */
export function resolveProcoreAuthRoutes(
  routes: ProcoreRoutesOptions | undefined,
): ProcoreAuthRoutes {
  const path = (routes?.path ?? 'procore/oauth').replace(/^\/+|\/+$/g, '');
  if (!/^[A-Za-z0-9._~/-]*$/.test(path)) {
    throw new ProcoreConfigurationError(
      `routes.path "${path}" is invalid: use letters, digits and "/", e.g. "procore/oauth".`,
    );
  }
  const enabled = routes?.enabled ?? true;
  return {
    enabled,
    path,
    authorizePath: routes?.authorizePath ?? `/${path ? `${path}/` : ''}authorize`,
  };
}
