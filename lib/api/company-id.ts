import { ProcoreInvalidCompanyIdError } from '../errors/procore-invalid-company-id.error.js';

/** A Procore company id. Ids may exceed 2^53: strings and bigints are exact, numbers must be safe integers. */
export type ProcoreCompanyId = string | bigint | number;

/** Decimal digits without a sign or leading zeros, at most 20 digits (a 64-bit id). */
const POSITIVE_INTEGER = /^[1-9][0-9]{0,19}$/;

/** The exact decimal form of a company id, as sent in `Procore-Company-Id`; never rounded. */
export function normalizeCompanyId(value: ProcoreCompanyId): string {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    // 9007199254740993 as a number is already 9007199254740992: refuse rather than send the wrong company.
    throw new ProcoreInvalidCompanyIdError('is a number that is not a safe integer');
  }
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'bigint') {
    throw new ProcoreInvalidCompanyIdError(
      `must be a string, bigint or number, got ${typeof value}`,
    );
  }
  const text = String(value);
  if (!POSITIVE_INTEGER.test(text)) {
    throw new ProcoreInvalidCompanyIdError('is not a positive integer');
  }
  return text;
}
