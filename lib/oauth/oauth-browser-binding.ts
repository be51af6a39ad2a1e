import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** HKDF `info` of the key that signs the binding cookies (see `TokenCipher.deriveKey`). */
export const BROWSER_BINDING_KEY_PURPOSE = 'nestjs-procore-auth/oauth-browser-binding/v1';

const COOKIE_PREFIX = 'procore_oauth_';

/** The attributes every binding cookie is written with. */
export interface BrowserBindingCookieAttributes {
  /** The callback's path: the browser sends the cookie there and nowhere else. */
  path: string;
  /** Set when the callback is served over https. */
  secure: boolean;
  /** The state's lifetime. */
  maxAgeSeconds: number;
}

/**
 * `Path`, `Secure` and `Max-Age` from the redirect URI and the state's lifetime. The path is the
 * callback's (it may differ from the mount path under a global prefix); a path a cookie cannot
 * carry falls back to `/`.
 */
export function browserBindingAttributes(
  redirectUri: string,
  stateTtlSeconds: number,
): BrowserBindingCookieAttributes {
  const url = new URL(redirectUri);
  const path = /^\/[\u0021-\u003a\u003c-\u007e]*$/.test(url.pathname) ? url.pathname : '/';
  return { path, secure: url.protocol === 'https:', maxAgeSeconds: stateTtlSeconds };
}

/** `name=value` pairs of a `Cookie` request header; a name sent twice keeps every value. */
export function parseCookieHeader(header: unknown): Map<string, string[]> {
  const cookies = new Map<string, string[]>();
  const text = Array.isArray(header) ? header.join(';') : typeof header === 'string' ? header : '';
  for (const pair of text.split(';')) {
    const separator = pair.indexOf('=');
    if (separator < 0) continue;
    const name = pair.slice(0, separator).trim();
    let value = pair.slice(separator + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
      value = value.slice(1, -1);
    if (name) cookies.set(name, [...(cookies.get(name) ?? []), value]);
  }
  return cookies;
}

/**
 * Ties an authorization flow to the browser that started it (RFC 9700 §4.7.1, CSRF): the mounted
 * `/authorize` route sets a cookie whose value is an HMAC-SHA256 of the `state`, and `/callback`
 * accepts the state only from a request carrying that cookie. One cookie per flow
 * (`procore_oauth_<first 16 hex digits of SHA-256(state)>`), so two tabs can connect at once.
 * Neither the state nor any key appears in the cookie.
 */
export class OAuthBrowserBinding {
  constructor(
    private readonly key: Buffer,
    private readonly attributes: BrowserBindingCookieAttributes,
  ) {}

  /** The flow's cookie name. */
  cookieName(state: string): string {
    return `${COOKIE_PREFIX}${createHash('sha256').update(state, 'utf8').digest('hex').slice(0, 16)}`;
  }

  /** `Set-Cookie` value binding `state` to the browser that receives it. */
  issue(state: string): string {
    return this.serialize(this.cookieName(state), this.sign(state), this.attributes.maxAgeSeconds);
  }

  /** `Set-Cookie` value deleting the flow's cookie. */
  clear(state: string): string {
    return this.serialize(this.cookieName(state), '', 0);
  }

  /** Whether the request's `Cookie` header carries this flow's cookie (compared in constant time). */
  verify(state: string, cookieHeader: unknown): boolean {
    const expected = Buffer.from(this.sign(state), 'utf8');
    const values = parseCookieHeader(cookieHeader).get(this.cookieName(state)) ?? [];
    return values.some((value) => {
      const actual = Buffer.from(value, 'utf8');
      return actual.length === expected.length && timingSafeEqual(actual, expected);
    });
  }

  private sign(state: string): string {
    return createHmac('sha256', this.key).update(state, 'utf8').digest('base64url');
  }

  private serialize(name: string, value: string, maxAgeSeconds: number): string {
    const { path, secure } = this.attributes;
    return [
      `${name}=${value}`,
      `Max-Age=${maxAgeSeconds}`,
      `Path=${path}`,
      'HttpOnly',
      'SameSite=Lax',
      ...(secure ? ['Secure'] : []),
    ].join('; ');
  }
}
