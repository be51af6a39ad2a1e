import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ProcoreInvalidCompanyIdError } from '../errors/procore-invalid-company-id.error.js';
import { normalizeCompanyId } from './company-id.js';

describe('normalizeCompanyId', () => {
  it('keeps ids above 2^53 exact as strings and bigints', () => {
    expect(normalizeCompanyId('9007199254740993')).toBe('9007199254740993');
    expect(normalizeCompanyId(9007199254740993n)).toBe('9007199254740993');
    expect(normalizeCompanyId(18446744073709551615n)).toBe('18446744073709551615');
  });

  it('accepts safe-integer numbers and refuses numbers that may already be rounded', () => {
    expect(normalizeCompanyId(1001)).toBe('1001');
    // 2^53 + 1 written as a number literal is already 2^53: refused, never rounded silently.
    expect(() => normalizeCompanyId(2 ** 53 + 2)).toThrow(ProcoreInvalidCompanyIdError);
    expect(() => normalizeCompanyId(1.5)).toThrow(ProcoreInvalidCompanyIdError);
  });

  it.each(['', '0', '-1', '01', '1e3', ' 1', '1 ', '0x10', '123456789012345678901', 'abc'])(
    'refuses %j',
    (value) => {
      expect(() => normalizeCompanyId(value)).toThrow(ProcoreInvalidCompanyIdError);
    },
  );

  it('round-trips every positive integer up to 2^64 exactly (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }), (id) => {
        expect(normalizeCompanyId(id)).toBe(id.toString());
        expect(normalizeCompanyId(id.toString())).toBe(id.toString());
      }),
    );
  });

  it('never accepts a string that is not a canonical positive integer (property)', () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        const canonical = /^[1-9][0-9]{0,19}$/.test(value);
        if (canonical) expect(normalizeCompanyId(value)).toBe(value);
        else expect(() => normalizeCompanyId(value)).toThrow(ProcoreInvalidCompanyIdError);
      }),
    );
  });
});
