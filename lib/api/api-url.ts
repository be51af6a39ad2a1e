import { ProcoreUnsafeUrlError } from '../errors/procore-unsafe-url.error.js';

/** Query values the client accepts; arrays repeat the key, `undefined` and `null` are left out. */
export type ProcoreQueryValue =
  | string
  | number
  | bigint
  | boolean
  | null
  | undefined
  | readonly (string | number | bigint | boolean)[];

/**
 * The URL of an API call: a path on the configured API host (`/rest/v1.0/projects`), or an
 * absolute URL on that same origin (a `Link` header's target). Anything else — another host or
 * scheme, a protocol-relative `//host`, a backslash trick, a path that climbs out of the API
 * base path — is refused before a token is attached.
 */
export function resolveApiUrl(
  apiBase: URL,
  target: string,
  query?: Record<string, ProcoreQueryValue>,
): URL {
  const isPath = target.startsWith('/') && !target.startsWith('//') && !target.includes('\\');
  const isAbsolute = /^https?:\/\//i.test(target);
  if (!isPath && !isAbsolute) throw new ProcoreUnsafeUrlError(describe(target));
  // eslint-disable-next-line no-control-regex -- control characters never belong in a request line
  if (/[\u0000-\u001f\u007f]/.test(target)) throw new ProcoreUnsafeUrlError(describe(target));
  const basePath = apiBase.pathname.replace(/\/+$/, '');
  const url = isPath ? new URL(`${basePath}${target}`, apiBase.origin) : new URL(target);
  if (url.origin !== apiBase.origin || !url.pathname.startsWith(`${basePath}/`)) {
    throw new ProcoreUnsafeUrlError(describe(target));
  }
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null) continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      url.searchParams.append(key, String(item));
    }
  }
  return url;
}

/** A refused target for messages: its origin (or a short prefix), never a query string. */
function describe(target: string): string {
  try {
    const url = new URL(target);
    return `"${url.origin}"`;
  } catch {
    return `"${target.slice(0, 40).replace(/[?#].*$/, '')}"`;
  }
}
