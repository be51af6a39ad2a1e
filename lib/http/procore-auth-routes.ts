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
  assertRouteGuards(routes?.guards);
  const enabled = routes?.enabled ?? true;
  return {
    enabled,
    path,
    authorizePath: routes?.authorizePath ?? `/${path ? `${path}/` : ''}authorize`,
  };
}

const isGuard = (guard: unknown): boolean =>
  typeof guard === 'function' ||
  (typeof guard === 'object' &&
    guard !== null &&
    typeof (guard as { canActivate?: unknown }).canActivate === 'function');

/**
 * A mistyped `routes.guards` must stop the app: read loosely, it would leave the routes unguarded
 * without a word.
 */
function assertRouteGuards(guards: unknown): void {
  if (guards === undefined) return;
  const lists: unknown[] = Array.isArray(guards)
    ? [guards]
    : typeof guards === 'object' &&
        guards !== null &&
        Object.keys(guards).every((key) => key === 'authorize' || key === 'callback')
      ? Object.values(guards)
      : [null];
  for (const list of lists) {
    if (list !== undefined && (!Array.isArray(list) || !list.every(isGuard))) {
      throw new ProcoreConfigurationError(
        'routes.guards is invalid: give an array of guards (classes or instances with canActivate) for both routes, or { authorize?: [...], callback?: [...] }.',
      );
    }
  }
}
