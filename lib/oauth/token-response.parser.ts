import { ProcoreInvalidResponseError } from '../errors/procore-invalid-response.error.js';
import type { ProcoreTokenResponse } from '../interfaces/procore-token-response.interface.js';

/** Shortest accepted `expires_in`: below a second the token is useless before it is stored. */
export const MIN_EXPIRES_IN_SECONDS = 1;
/**
 * Longest accepted `expires_in`: 30 days. Procore issues 5400 s and is shrinking it; anything
 * larger is a broken answer, would overflow the integer lifetime column (3e9) or make an invalid
 * date (1e13), and would keep a token cached long after Procore stopped accepting it.
 */
export const MAX_EXPIRES_IN_SECONDS = 30 * 24 * 60 * 60;
/** Earliest accepted `created_at`: 2000-01-01T00:00:00Z in Unix seconds (before OAuth 2.0 existed). */
export const MIN_CREATED_AT_SECONDS = 946_684_800;
/** How far `created_at` may be ahead of the local clock: one day of clock skew, no more. */
export const MAX_CREATED_AT_AHEAD_SECONDS = 24 * 60 * 60;

/**
 * Validates a token response object (from Procore's token endpoint or handed to `importTokens()`).
 * Nothing is stored unless this passes.
 *
 * - `expires_in`: a number, or a plain decimal string, of seconds from 1 to 30 days; rounded to
 *   whole seconds.
 * - `created_at` (optional; `null` counts as absent): Unix seconds, not before 2000-01-01 and at
 *   most one day ahead of the local clock. A value in milliseconds (`Date.now()`) or a non-number
 *   (even a numeric string) is rejected rather than ignored or converted: `importTokens()` derives
 *   the expiry from it, and a guess could serve an expired token as fresh.
 *
 * Violations throw `ProcoreInvalidResponseError` (`invalid_field`) naming the field and the
 * allowed range; no message repeats a value from the response.
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
  const expiresIn = numberOrDecimalString(expires_in);
  if (!(expiresIn >= MIN_EXPIRES_IN_SECONDS && expiresIn <= MAX_EXPIRES_IN_SECONDS)) {
    throw invalid(
      'invalid_field',
      `expires_in is not a number of seconds from ${MIN_EXPIRES_IN_SECONDS} to ${MAX_EXPIRES_IN_SECONDS} (30 days)`,
    );
  }
  if (created_at !== undefined && created_at !== null && !isCreatedAtInRange(created_at)) {
    throw invalid(
      'invalid_field',
      `created_at is not Unix seconds from ${MIN_CREATED_AT_SECONDS} (2000-01-01) to one day from now`,
    );
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
    expires_in: Math.round(expiresIn),
    refresh_token: typeof refresh_token === 'string' ? refresh_token : undefined,
    created_at: typeof created_at === 'number' ? created_at : undefined,
  };
}

/**
 * A number as is; a string only in plain decimal (`"5400"`, `"5400.5"`), since `Number()` would
 * also read `"0x10"`, `"1e9"` and `" "`; NaN for anything else (every range check fails on NaN).
 */
function numberOrDecimalString(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^[0-9]{1,10}(\.[0-9]{1,6})?$/.test(value)) return Number(value);
  return Number.NaN;
}

/** Unix seconds (a number, NaN excluded by the comparisons) in [2000-01-01, now + 1 day]. */
function isCreatedAtInRange(value: unknown): value is number {
  const latest = Date.now() / 1000 + MAX_CREATED_AT_AHEAD_SECONDS;
  return typeof value === 'number' && value >= MIN_CREATED_AT_SECONDS && value <= latest;
}
