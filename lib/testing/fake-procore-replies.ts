import type { IncomingMessage } from 'node:http';
import { json, parseJson, readBody, type FakeHttpReply, type FakeReply } from './fake-http.js';

// The login host's answers in OAuth's own terms (RFC 6749 error bodies, `no-store`), and the
// parameters of its form or JSON request bodies.

/** Access tokens the fake refuses, and why. */
export type AccessTokenProblem = 'invalid' | 'expired' | 'revoked';

const MAX_REQUEST_BODY_BYTES = 64 * 1024;

/** Doorkeeper's wording (Procore's login host runs Doorkeeper), so error messages look familiar. */
const INVALID_GRANT_DESCRIPTION =
  'The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.';
const INVALID_CLIENT_DESCRIPTION =
  'Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.';

export const NO_STORE: Readonly<Record<string, string>> = {
  'Cache-Control': 'no-store',
  Pragma: 'no-cache',
};

export function oauthError(
  status: number,
  error: string,
  description: string,
  headers: Record<string, string> = {},
): FakeHttpReply {
  return json(status, { error, error_description: description }, { ...NO_STORE, ...headers });
}

export function invalidGrant(): FakeHttpReply {
  return oauthError(400, 'invalid_grant', INVALID_GRANT_DESCRIPTION);
}

export function invalidClient(): FakeHttpReply {
  return oauthError(401, 'invalid_client', INVALID_CLIENT_DESCRIPTION);
}

const INVALID_TOKEN_DESCRIPTIONS: Readonly<Record<AccessTokenProblem, string>> = {
  invalid: 'The access token is invalid',
  expired: 'The access token expired',
  revoked: 'The access token was revoked',
};

export function invalidToken(problem: AccessTokenProblem): FakeHttpReply {
  return oauthError(401, 'invalid_token', INVALID_TOKEN_DESCRIPTIONS[problem], {
    'WWW-Authenticate': 'Bearer realm="Procore", error="invalid_token"',
  });
}

export function redirectTo(location: URL): FakeHttpReply {
  return {
    type: 'respond',
    status: 302,
    headers: { Location: location.toString(), ...NO_STORE },
    body: '',
  };
}

export function methodNotAllowed(allow: string): FakeHttpReply {
  return json(
    405,
    { error: 'method_not_allowed', error_description: `Use ${allow}.` },
    { Allow: allow },
  );
}

/**
 * The parameters of a form-urlencoded or JSON body, or the error reply for a body that is too
 * large or unreadable.
 */
export async function readParams(req: IncomingMessage): Promise<URLSearchParams | FakeReply> {
  const body = await readBody(req, MAX_REQUEST_BODY_BYTES);
  if (body === undefined) {
    return json(413, {
      error: 'payload_too_large',
      error_description: `Request bodies are limited to ${MAX_REQUEST_BODY_BYTES} bytes.`,
    });
  }
  const isJson = (req.headers['content-type'] ?? '').toLowerCase().includes('application/json');
  const params = isJson
    ? jsonParams(body.toString('utf8'))
    : new URLSearchParams(body.toString('utf8'));
  return params ?? oauthError(400, 'invalid_request', 'The request body is not a JSON object.');
}

function jsonParams(text: string): URLSearchParams | undefined {
  const value = parseJson(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const params = new URLSearchParams();
  for (const [key, field] of Object.entries(value)) {
    if (typeof field === 'string' || typeof field === 'number') params.set(key, String(field));
  }
  return params;
}
