import type { ProcoreOwnerResolver } from '../interfaces/procore-auth-options.interface.js';

/** Where the guard leaves the token it resolved, so `@ProcoreToken()` does not look it up again. */
export const PROCORE_REQUEST_TOKEN = Symbol('procore.access-token');

/** The request's owner id as a string, or undefined when the resolver finds none. */
export function resolveOwnerId(
  resolver: ProcoreOwnerResolver,
  request: unknown,
): string | undefined {
  const owner = resolver(request);
  if (owner === undefined || owner === null || owner === '') return undefined;
  // NaN, Infinity or 2^53+ would become the owner "NaN" or a rounded id: treat as no owner.
  if (typeof owner === 'number' && !Number.isSafeInteger(owner)) return undefined;
  return String(owner);
}

/** The token the guard resolved for this request and owner, if any. */
export function tokenResolvedByGuard(request: unknown, ownerId: string): string | undefined {
  const entry = (request as Record<symbol, { ownerId: string; token: string } | undefined>)[
    PROCORE_REQUEST_TOKEN
  ];
  return entry?.ownerId === ownerId ? entry.token : undefined;
}

export function rememberToken(request: unknown, ownerId: string, token: string): void {
  (request as Record<symbol, unknown>)[PROCORE_REQUEST_TOKEN] = { ownerId, token };
}
