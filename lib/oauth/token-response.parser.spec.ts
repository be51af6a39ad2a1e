import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ProcoreInvalidResponseError } from '../errors/procore-invalid-response.error.js';
import {
  MAX_CREATED_AT_AHEAD_SECONDS,
  MAX_EXPIRES_IN_SECONDS,
  MIN_CREATED_AT_SECONDS,
  parseTokenResponse,
} from './token-response.parser.js';

/** The error `work` throws (fails the test when it throws nothing). */
function thrownBy(work: () => unknown): Error {
  try {
    work();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error, but nothing was thrown');
}

const ACCESS_TOKEN = 'eyJhbGciOiJIUzI1NiJ9.access-token-under-test.signature';
const REFRESH_TOKEN = 'refresh-token-under-test-0123456789';
const nowSeconds = () => Math.floor(Date.now() / 1000);

function response(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    access_token: ACCESS_TOKEN,
    token_type: 'bearer',
    expires_in: 5400,
    refresh_token: REFRESH_TOKEN,
    created_at: nowSeconds(),
    ...overrides,
  };
}

/** Parses and expects an `invalid_field` rejection that names `field` and leaks no token. */
function expectInvalidField(body: Record<string, unknown>, field: string): void {
  const error = thrownBy(() => parseTokenResponse(body, 'importTokens()'));
  expect(error).toBeInstanceOf(ProcoreInvalidResponseError);
  expect((error as ProcoreInvalidResponseError).problem).toBe('invalid_field');
  expect(error.message).toContain(field);
  expect(error.message).not.toContain(ACCESS_TOKEN);
  expect(error.message).not.toContain(REFRESH_TOKEN);
}

describe('parseTokenResponse', () => {
  it("accepts Procore's answer as it is today", () => {
    const createdAt = nowSeconds();

    expect(parseTokenResponse(response({ created_at: createdAt }), '/oauth/token')).toEqual({
      access_token: ACCESS_TOKEN,
      token_type: 'bearer',
      expires_in: 5400,
      refresh_token: REFRESH_TOKEN,
      created_at: createdAt,
    });
  });

  describe('expires_in', () => {
    it.each([
      ['1 second', 1, 1],
      ['30 days', MAX_EXPIRES_IN_SECONDS, MAX_EXPIRES_IN_SECONDS],
      ['a fraction, rounded to whole seconds', 899.6, 900],
      ['a decimal string', '5400', 5400],
      ['a decimal string with a fraction', '5400.4', 5400],
    ])('accepts %s', (_name, expiresIn, parsed) => {
      expect(parseTokenResponse(response({ expires_in: expiresIn }), 'x').expires_in).toBe(parsed);
    });

    it.each([
      ['3e9 (overflows the integer lifetime column)', 3e9],
      ['1e13 (an invalid Date)', 1e13],
      ['one second over 30 days', MAX_EXPIRES_IN_SECONDS + 1],
      ['zero', 0],
      ['below a second', 0.5],
      ['negative', -5400],
      ['NaN', Number.NaN],
      ['Infinity', Number.POSITIVE_INFINITY],
      ['missing', undefined],
      ['null', null],
      ['a boolean', true],
      ['an empty string', ''],
      ['a blank string', '  '],
      ['a hexadecimal string', '0x1518'],
      ['an exponent string', '3e9'],
      ['a huge decimal string', '3000000000'],
      ['a negative string', '-5400'],
      ['a string with units', '5400s'],
    ])('rejects %s as invalid_field, naming the allowed range', (_name, expiresIn) => {
      expectInvalidField(response({ expires_in: expiresIn }), 'expires_in');
      const error = thrownBy(() => parseTokenResponse(response({ expires_in: expiresIn }), 'x'));
      expect(error.message).toContain(`from 1 to ${MAX_EXPIRES_IN_SECONDS}`);
    });
  });

  describe('created_at', () => {
    it.each([
      ['absent', undefined, undefined],
      ['null (as absent)', null, undefined],
      ['2000-01-01', MIN_CREATED_AT_SECONDS, MIN_CREATED_AT_SECONDS],
      ['a minute ahead of the local clock', nowSeconds() + 60, nowSeconds() + 60],
    ])('accepts %s', (_name, createdAt, parsed) => {
      expect(parseTokenResponse(response({ created_at: createdAt }), 'x').created_at).toBe(parsed);
    });

    it.each([
      ['in milliseconds (Date.now())', Date.now()],
      ['before 2000', MIN_CREATED_AT_SECONDS - 1],
      [
        'more than a day ahead of the local clock',
        nowSeconds() + MAX_CREATED_AT_AHEAD_SECONDS + 60,
      ],
      ['zero', 0],
      ['negative', -1],
      ['NaN', Number.NaN],
      ['Infinity', Number.POSITIVE_INFINITY],
      ['a numeric string', String(nowSeconds())],
      ['an ISO date string', new Date().toISOString()],
      ['a boolean', true],
      ['an object', {}],
    ])('rejects %s as invalid_field', (_name, createdAt) => {
      expectInvalidField(response({ created_at: createdAt }), 'created_at');
    });
  });

  describe('properties', () => {
    const json = fc.jsonValue();
    /** Token-response-shaped objects whose fields are arbitrary, often plausible, JSON values. */
    const tokenResponseLike = fc.record(
      {
        access_token: fc.oneof(fc.string({ minLength: 1 }), json),
        token_type: fc.oneof(fc.constantFrom('bearer', 'Bearer', 'mac'), json),
        expires_in: fc.oneof(
          fc.double(),
          fc.integer(),
          fc.integer({ min: -10, max: MAX_EXPIRES_IN_SECONDS + 10 }),
          fc.integer({ min: 0, max: 10 ** 9 }).map(String),
          json,
        ),
        refresh_token: fc.oneof(fc.string(), json),
        created_at: fc.oneof(
          fc.double(),
          fc.integer({ min: nowSeconds() - 10 ** 9, max: nowSeconds() + 2 * 86_400 }),
          fc.constant(Date.now()),
          json,
        ),
      },
      { requiredKeys: [] },
    );
    const anyBody = fc.oneof(json, tokenResponseLike, fc.anything());

    it('throws nothing but ProcoreInvalidResponseError, whatever the body', () => {
      fc.assert(
        fc.property(anyBody, (body) => {
          try {
            parseTokenResponse(body, '/oauth/token');
          } catch (error) {
            expect(error).toBeInstanceOf(ProcoreInvalidResponseError);
          }
        }),
      );
    });

    it('accepts only whole expires_in seconds in range, created_at in range, and an expiry that is a valid Date', () => {
      fc.assert(
        fc.property(anyBody, (body) => {
          let parsed;
          try {
            parsed = parseTokenResponse(body, '/oauth/token');
          } catch {
            return;
          }
          expect(Number.isInteger(parsed.expires_in)).toBe(true);
          expect(parsed.expires_in).toBeGreaterThanOrEqual(1);
          expect(parsed.expires_in).toBeLessThanOrEqual(MAX_EXPIRES_IN_SECONDS);
          expect(typeof parsed.access_token).toBe('string');
          if (parsed.created_at === undefined) return;
          expect(parsed.created_at).toBeGreaterThanOrEqual(MIN_CREATED_AT_SECONDS);
          expect(parsed.created_at).toBeLessThanOrEqual(
            Date.now() / 1000 + MAX_CREATED_AT_AHEAD_SECONDS,
          );
          // importTokens() stores this; it must be a real date within a few weeks from now.
          const expiresAt = new Date(parsed.created_at * 1000 + parsed.expires_in * 1000);
          expect(Number.isNaN(expiresAt.getTime())).toBe(false);
          expect(expiresAt.getTime()).toBeLessThanOrEqual(
            Date.now() + (MAX_CREATED_AT_AHEAD_SECONDS + MAX_EXPIRES_IN_SECONDS) * 1000,
          );
        }),
      );
    });

    it('never puts the access or refresh token it was given in an error message', () => {
      const secret = fc.stringMatching(/^[A-Za-z0-9._-]{20,60}$/);
      fc.assert(
        fc.property(secret, secret, tokenResponseLike, (access, refresh, body) => {
          const withTokens = { ...body, access_token: access, refresh_token: refresh };
          try {
            parseTokenResponse(withTokens, '/oauth/token');
          } catch (error) {
            expect((error as Error).message).not.toContain(access);
            expect((error as Error).message).not.toContain(refresh);
          }
        }),
      );
    });
  });
});
