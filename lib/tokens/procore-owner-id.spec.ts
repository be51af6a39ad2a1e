import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ProcoreAuthError } from '../errors/procore-auth.error.js';
import { ProcoreInvalidOwnerError } from '../errors/procore-invalid-owner.error.js';
import { normalizeOwner, ownerLookupKey, type ProcoreOwnerId } from './procore-owner-id.js';

/** The error `work` throws (fails the test when it throws nothing). */
function thrownBy(work: () => unknown): Error {
  try {
    work();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error, but nothing was thrown');
}

/** Any UTF-16 code unit, lone surrogates included: what a JS string can hold. */
const codeUnit = fc.nat(0xffff).map((unit) => String.fromCharCode(unit));
const utf16String = (maxLength = 64) => fc.string({ unit: codeUnit, maxLength });
/** Well-formed text over all of Unicode (astral characters as surrogate pairs). */
const unicodeString = (maxLength = 64) => fc.string({ unit: 'binary', maxLength });
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((u) => String.fromCharCode(u));
const controlCharacter = fc
  .oneof(fc.integer({ min: 0x00, max: 0x1f }), fc.integer({ min: 0x7f, max: 0x9f }))
  .map((u) => String.fromCharCode(u));
/** A distinctive prefix, so "the message does not repeat the id" cannot pass by coincidence. */
const tag = fc.stringMatching(/^[A-Za-z0-9]{16}$/);

const isWellFormed = (value: string) =>
  (value as string & { isWellFormed(): boolean }).isWellFormed();
/** U+0000-U+001F, U+007F-U+009F, written out rather than with the implementation's regex. */
const isControl = (char: string) => {
  const code = char.charCodeAt(0);
  return code <= 0x1f || (code >= 0x7f && code <= 0x9f);
};
const hasControlCharacter = (value: string) => [...value].some(isControl);

describe('normalizeOwner', () => {
  describe('accepted ids', () => {
    it.each<[string, ProcoreOwnerId, string]>([
      ['a plain id', 'user-1', 'user-1'],
      ['an email', 'ada@example.com', 'ada@example.com'],
      ['spaces (no trimming)', '  spaced  ', '  spaced  '],
      ['non-ASCII and astral characters', 'jeton 令牌 🔑', 'jeton 令牌 🔑'],
      ['U+FFFD itself', 'user-\uFFFD', 'user-\uFFFD'],
      ['255 characters', 'x'.repeat(255), 'x'.repeat(255)],
      ['an integer', 42, '42'],
      ['zero', 0, '0'],
      ['a negative integer', -7, '-7'],
      ['the largest safe integer', Number.MAX_SAFE_INTEGER, '9007199254740991'],
    ])('keeps %s', (_name, input, stored) => {
      expect(normalizeOwner(input)).toBe(stored);
    });
  });

  describe('rejected ids (ProcoreInvalidOwnerError, never a TypeError or a database error)', () => {
    it.each<[string, unknown]>([
      ['an empty string', ''],
      ['256 characters', 'x'.repeat(256)],
      ['a lone high surrogate', 'user-\uD800'],
      ['a lone low surrogate', 'user-\uDC00'],
      ['a reversed surrogate pair', 'user-\uDE00\uD83D'],
      ['NUL', 'user\u0000admin'],
      ['a newline', 'user\nadmin'],
      ['DEL', 'user\u007F'],
      ['a C1 control (NEL)', 'user\u0085'],
      ['NaN', Number.NaN],
      ['Infinity', Number.POSITIVE_INFINITY],
      ['a fraction', 1.5],
      ['an integer beyond 2^53', 2 ** 60],
      ['null', null],
      ['undefined', undefined],
      ['an object', { id: 'user-1' }],
      ['a boolean', true],
      ['a bigint', 10n],
    ])('rejects %s', (_name, input) => {
      const error = thrownBy(() => normalizeOwner(input as ProcoreOwnerId));

      expect(error).toBeInstanceOf(ProcoreInvalidOwnerError);
      expect(error).toBeInstanceOf(ProcoreAuthError);
      expect((error as ProcoreInvalidOwnerError).code).toBe('invalid_owner');
      expect(error.message).toMatch(/^The Procore owner id .+: .+\.$/);
    });

    it('does not let a lone surrogate share the connection of its U+FFFD lookalike', () => {
      // PostgreSQL and the cipher's UTF-8 associated data turn '\uD800' into U+FFFD.
      expect(normalizeOwner('user-\uFFFD')).toBe('user-\uFFFD');
      expect(() => normalizeOwner('user-\uD800')).toThrow(ProcoreInvalidOwnerError);
      expect(() => normalizeOwner('user-\uDBFF')).toThrow(ProcoreInvalidOwnerError);
    });

    it('names the problem and the fix without repeating a huge or hostile id', () => {
      const huge = `secret-${'A'.repeat(10_000)}`;

      const error = thrownBy(() => normalizeOwner(huge));

      expect(error.message).toBe(
        "The Procore owner id must be 1 to 255 characters long: pass your user's stable id (for requests, the ownerResolver option returns it).",
      );
      expect(error.message).not.toContain('secret-');
    });
  });

  describe('properties', () => {
    it('either returns any string unchanged, well-formed and free of control characters, or throws ProcoreInvalidOwnerError', () => {
      fc.assert(
        fc.property(utf16String(), (input) => {
          let stored: string;
          try {
            stored = normalizeOwner(input);
          } catch (error) {
            expect(error).toBeInstanceOf(ProcoreInvalidOwnerError);
            return;
          }
          expect(stored).toBe(input);
          expect(isWellFormed(stored)).toBe(true);
          expect(hasControlCharacter(stored)).toBe(false);
          expect(Buffer.from(stored, 'utf8').toString('utf8')).toBe(stored);
        }),
      );
    });

    it('accepts every well-formed id of 1-255 characters without control characters', () => {
      const id = unicodeString()
        .map((value) => [...value].map((char) => (isControl(char) ? '_' : char)).join(''))
        .filter((value) => value.length > 0 && value.length <= 255);
      fc.assert(fc.property(id, (input) => expect(normalizeOwner(input)).toBe(input)));
    });

    it('rejects every string with a lone surrogate', () => {
      fc.assert(
        fc.property(unicodeString(), loneSurrogate, unicodeString(), (before, lone, after) => {
          expect(() => normalizeOwner(`${before}${lone}${after}`)).toThrow(
            ProcoreInvalidOwnerError,
          );
        }),
      );
    });

    it('rejects every string with a control character', () => {
      fc.assert(
        fc.property(unicodeString(), controlCharacter, unicodeString(), (before, c, after) => {
          expect(() => normalizeOwner(`${before}${c}${after}`)).toThrow(ProcoreInvalidOwnerError);
        }),
      );
    });

    it('never stores two distinct accepted ids as the same bytes', () => {
      // What the database and the cipher see is UTF-8: distinct ids must stay distinct there.
      const lookalike = fc.constantFrom('\uD800', '\uDBFF', '\uDFFF', '\uFFFD');
      const nearDuplicates = fc
        .tuple(unicodeString(8), lookalike, lookalike)
        .map(([base, x, y]): [string, string] => [`${base}${x}`, `${base}${y}`]);
      fc.assert(
        fc.property(
          fc.oneof(fc.tuple(utf16String(8), utf16String(8)), nearDuplicates),
          ([first, second]) => {
            const a = tryNormalize(first);
            const b = tryNormalize(second);
            fc.pre(a !== undefined && b !== undefined && first !== second);
            expect(Buffer.from(a!, 'utf8').equals(Buffer.from(b!, 'utf8'))).toBe(false);
          },
        ),
      );
    });

    it('stores an integer number as its decimal string and rejects every other number', () => {
      fc.assert(
        fc.property(fc.oneof(fc.double(), fc.integer()), (input) => {
          if (Number.isSafeInteger(input)) {
            expect(normalizeOwner(input)).toBe(String(input));
          } else {
            expect(() => normalizeOwner(input)).toThrow(ProcoreInvalidOwnerError);
          }
        }),
      );
    });

    it('rejects every value that is neither a string nor a number', () => {
      const other = fc
        .anything({ withBigInt: true, withMap: true, withSet: true, withDate: true })
        .filter((value) => typeof value !== 'string' && typeof value !== 'number');
      fc.assert(
        fc.property(other, (input) => {
          expect(() => normalizeOwner(input as ProcoreOwnerId)).toThrow(ProcoreInvalidOwnerError);
        }),
      );
    });

    it('never repeats the id in the error message', () => {
      const hostile = fc.oneof(
        fc.tuple(tag, loneSurrogate).map(([t, lone]) => `${t}${lone}`),
        fc.tuple(tag, controlCharacter, utf16String()).map(([t, c, rest]) => `${t}${c}${rest}`),
        fc.tuple(tag, fc.string({ minLength: 240, maxLength: 400 })).map(([t, s]) => `${t}${s}`),
      );
      fc.assert(
        fc.property(hostile, (input) => {
          const error = thrownBy(() => normalizeOwner(input));
          expect(error).toBeInstanceOf(ProcoreInvalidOwnerError);
          expect(error.message).not.toContain(input.slice(0, 16));
          expect(error.message).not.toContain(input);
        }),
      );
    });
  });

  describe('ownerLookupKey (the cache lookup before normalizeOwner)', () => {
    it('is the stored form of every id normalizeOwner accepts, so a cached id is found under it', () => {
      const id = fc.oneof(utf16String(300), fc.integer(), fc.double());
      fc.assert(
        fc.property(id, (input) => {
          const stored = tryNormalize(input);
          if (stored !== undefined) expect(ownerLookupKey(input)).toBe(stored);
        }),
      );
    });

    it('refuses, before any lookup, what cannot be an id: over-long strings and bad numbers', () => {
      expect(() => ownerLookupKey('x'.repeat(256))).toThrow(ProcoreInvalidOwnerError);
      expect(() => ownerLookupKey('x'.repeat(10_000_000))).toThrow(ProcoreInvalidOwnerError);
      expect(() => ownerLookupKey(1.5)).toThrow(ProcoreInvalidOwnerError);
      expect(ownerLookupKey(42)).toBe('42');
    });
  });
});

function tryNormalize(value: ProcoreOwnerId): string | undefined {
  try {
    return normalizeOwner(value);
  } catch {
    return undefined;
  }
}
