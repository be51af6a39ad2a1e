import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ProcoreOAuthStateError } from '../errors/procore-oauth-state.error.js';
import { assertSafeReturnTo } from './return-to.js';

const ORIGIN = 'https://app.example';

function refused(returnTo: string): boolean {
  try {
    assertSafeReturnTo(returnTo);
    return false;
  } catch (error) {
    expect(error).toBeInstanceOf(ProcoreOAuthStateError);
    expect(error).toMatchObject({ problem: 'invalid_return_to' });
    return true;
  }
}

/** Where a browser lands when it follows `Location: <value>` from a page of ORIGIN. */
function landing(location: string): URL {
  return new URL(location, `${ORIGIN}/procore/oauth/callback`);
}

describe('assertSafeReturnTo', () => {
  it('keeps a plain same-origin path as it is', () => {
    for (const path of ['/', '/projects', '/projects?tab=1&x=y', '/a/b#section', '/%C4%81'])
      expect(assertSafeReturnTo(path)).toBe(path);
  });

  it('percent-encodes what a Location header cannot carry (non-ASCII, spaces, quotes)', () => {
    expect(assertSafeReturnTo('/ā')).toBe('/%C4%81');
    expect(assertSafeReturnTo('/projects/ā?name=ā b#ā')).toBe(
      '/projects/%C4%81?name=%C4%81%20b#%C4%81',
    );
    expect(assertSafeReturnTo('/a"b')).toBe('/a%22b');
  });

  it.each([
    'https://evil.example/x',
    'http:/evil.example',
    'javascript:alert(1)',
    'evil.example',
    '',
    '//evil.example',
    '///evil.example',
    '/\\evil.example',
    '\\\\evil.example',
    '/x\\y',
    '/..//evil.example',
    '/.//evil.example',
    '/%2e%2e//evil.example',
    '/%2F%2Fevil.example',
    '/%2fevil.example',
    '/%5Cevil.example',
    '/%5c%5cevil.example',
    '/\t/evil.example',
    '/\n/evil.example',
    '/x\r\nSet-Cookie: a=b',
    '/x\u0000',
    '/x\u007f',
    '/x\u0085',
    ` /x`,
  ])('refuses %j', (returnTo) => {
    expect(refused(returnTo)).toBe(true);
  });

  it('refuses a path longer than 2048 characters, before or after encoding', () => {
    expect(refused(`/${'a'.repeat(2048)}`)).toBe(true);
    expect(refused(`/${'ā'.repeat(400)}`)).toBe(true);
    expect(refused(`/${'a'.repeat(2046)}`)).toBe(false);
  });

  it('returns a value that is printable ASCII, lands on the same origin, and is stable', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (tail) => {
        const input = `/${tail}`;
        let safe: string;
        try {
          safe = assertSafeReturnTo(input);
        } catch {
          return; // refusing is always safe
        }
        expect(safe).toMatch(/^\/[\u0021-\u007e]*$/);
        expect(safe.startsWith('//')).toBe(false);
        expect(landing(safe).origin).toBe(ORIGIN);
        // A browser (or proxy) decoding the path once still stays on the same origin.
        expect(landing(safe.replace(/%2f/gi, '/').replace(/%5c/gi, '\\')).origin).toBe(ORIGIN);
        expect(assertSafeReturnTo(safe)).toBe(safe);
      }),
      { numRuns: 2000 },
    );
  });

  it('never accepts a value that resolves to another origin', () => {
    const piece = fc.constantFrom(
      '/',
      '\\',
      '.',
      '%2F',
      '%2f',
      '%5C',
      '%2e',
      ':',
      '@',
      'evil',
      '?',
      '#',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
        const input = pieces.join('');
        let safe: string;
        try {
          safe = assertSafeReturnTo(input);
        } catch {
          return;
        }
        expect(landing(safe).origin).toBe(ORIGIN);
        expect(landing(input).origin).toBe(ORIGIN);
      }),
      { numRuns: 2000 },
    );
  });
});
