/**
 * Where the guard leaves the owner and token it resolved, so `@ProcoreToken()` and `@ProcoreApi()`
 * use the same owner (even a subclassed guard's) and do not look the token up again.
 */
export const PROCORE_REQUEST_TOKEN = Symbol('procore.access-token');

/** The owner and token resolved earlier in this request (by the guard or a decorator). */
export interface ResolvedRequestToken {
  ownerId: string;
  token: string;
}

export function resolvedToken(request: unknown): ResolvedRequestToken | undefined {
  if (!request || typeof request !== 'object') return undefined;
  return (request as Record<symbol, ResolvedRequestToken | undefined>)[PROCORE_REQUEST_TOKEN];
}

/** Remembers the owner and token on the request (when it is an object) and returns them. */
export function rememberToken(
  request: unknown,
  ownerId: string,
  token: string,
): ResolvedRequestToken {
  const resolved = { ownerId, token };
  if (request && typeof request === 'object') {
    (request as Record<symbol, unknown>)[PROCORE_REQUEST_TOKEN] = resolved;
  }
  return resolved;
}
