import { ProcoreOAuthStateError } from '../errors/procore-oauth-state.error.js';

/**
 * Accepts only a same-origin absolute path (`/projects?id=1`): no scheme, no host, no
 * protocol-relative `//evil.example` or `/\evil.example` tricks, no control characters.
 */
export function assertSafeReturnTo(returnTo: string): string {
  const safe =
    returnTo.length <= 2048 &&
    returnTo.startsWith('/') &&
    !returnTo.startsWith('//') &&
    !returnTo.startsWith('/\\') &&
    // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
    !/[\u0000-\u001f\u007f]/.test(returnTo) &&
    !/\\/.test(returnTo);
  if (!safe) {
    throw new ProcoreOAuthStateError(
      'invalid_return_to',
      'returnTo must be a path on this site (starting with a single "/"), not an absolute or foreign URL.',
    );
  }
  return returnTo;
}
