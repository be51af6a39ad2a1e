/**
 * Where the guard leaves the owner and token it resolved, so `@ProcoreToken()` and `@ProcoreApi()`
 * use the same owner (even a subclassed guard's) and do not look the token up again.
 *
 * A WeakMap rather than a property of the request: adding a property to an Express or Fastify
 * request object changes its hidden class on every request (and a lookup of a property it does
 * not have walks its whole prototype chain), which cost more than the token lookup itself.
 */
const resolvedTokens = new WeakMap<object, ResolvedRequestToken>();

/** The owner and token resolved earlier in this request (by the guard or a decorator). */
export interface ResolvedRequestToken {
  ownerId: string;
  token: string;
}

export function resolvedToken(request: unknown): ResolvedRequestToken | undefined {
  if (!request || typeof request !== 'object') return undefined;
  return resolvedTokens.get(request);
}

/** Remembers the owner and token for the request (when it is an object) and returns them. */
export function rememberToken(
  request: unknown,
  ownerId: string,
  token: string,
): ResolvedRequestToken {
  const resolved = { ownerId, token };
  if (request && typeof request === 'object') resolvedTokens.set(request, resolved);
  return resolved;
}
