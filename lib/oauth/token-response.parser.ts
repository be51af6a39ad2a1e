import { ProcoreInvalidResponseError } from '../errors/procore-invalid-response.error.js';
import type { ProcoreTokenResponse } from '../interfaces/procore-token-response.interface.js';

/**
 * Validates a token response object (from Procore's token endpoint or handed to `importTokens()`).
 * Nothing is stored unless this passes.
 */
export function parseTokenResponse(
  value: unknown,
  source: string,
  status = 200,
): ProcoreTokenResponse {
  const invalid = (
    problem: 'missing_access_token' | 'invalid_field' | 'not_json',
    detail: string,
  ) => new ProcoreInvalidResponseError(source, status, problem, detail);
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid('not_json', 'the body is not a JSON object');
  }
  const { access_token, refresh_token, expires_in, token_type, created_at } = value as Record<
    string,
    unknown
  >;
  if (typeof access_token !== 'string' || access_token.length === 0) {
    throw invalid('missing_access_token', 'no access_token');
  }
  const expiresIn = typeof expires_in === 'string' ? Number(expires_in) : expires_in;
  if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
    throw invalid('invalid_field', 'expires_in is not a positive number');
  }
  if (
    refresh_token !== undefined &&
    refresh_token !== null &&
    (typeof refresh_token !== 'string' || !refresh_token)
  ) {
    throw invalid('invalid_field', 'refresh_token is not a non-empty string');
  }
  if (
    token_type !== undefined &&
    (typeof token_type !== 'string' || token_type.toLowerCase() !== 'bearer')
  ) {
    throw invalid('invalid_field', 'token_type is not "bearer"');
  }
  return {
    access_token,
    token_type: 'bearer',
    expires_in: expiresIn,
    refresh_token: typeof refresh_token === 'string' ? refresh_token : undefined,
    created_at:
      typeof created_at === 'number' && Number.isFinite(created_at) ? created_at : undefined,
  };
}
