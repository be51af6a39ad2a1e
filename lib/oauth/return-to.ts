import { ProcoreOAuthStateError } from '../errors/procore-oauth-state.error.js';

const MAX_LENGTH = 2048;
/** Any origin would do: only whether parsing leaves it unchanged matters. */
const PROBE_ORIGIN = 'http://return-to.invalid';

function refuse(): never {
  throw new ProcoreOAuthStateError(
    'invalid_return_to',
    'returnTo must be a path on this site (starting with a single "/"), not an absolute or foreign URL.',
  );
}

/**
 * Accepts only a same-origin absolute path (`/projects?id=1`) and returns it in the form it is
 * stored and later sent in the callback's `Location` header: parsed by the WHATWG URL parser (as
 * a browser would), then percent-encoded, so it is pure printable ASCII (`/ā` → `/%C4%81`).
 *
 * Refused: anything that does not resolve to the same origin (schemes, `//evil.example`,
 * `/\evil.example`), control characters and backslashes anywhere, a path that normalises to
 * `//...` (`/..//evil.example`), and one that starts with an encoded slash or backslash
 * (`/%2F%2Fevil.example`), which some servers and proxies decode before redirecting.
 */
export function assertSafeReturnTo(returnTo: string): string {
  if (
    typeof returnTo !== 'string' ||
    returnTo.length > MAX_LENGTH ||
    !returnTo.startsWith('/') ||
    returnTo.includes('\\') ||
    // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
    /[\u0000-\u001f\u007f-\u009f]/.test(returnTo)
  ) {
    refuse();
  }
  const url = new URL(returnTo, PROBE_ORIGIN);
  if (url.origin !== PROBE_ORIGIN) refuse();
  const safe = `${url.pathname}${url.search}${url.hash}`;
  const decoded = safe.replace(/%2f/gi, '/').replace(/%5c/gi, '\\');
  if (
    safe.length > MAX_LENGTH ||
    !/^\/(?![/\\])/.test(decoded) ||
    !/^[\u0021-\u007e]+$/.test(safe)
  ) {
    refuse();
  }
  return safe;
}
