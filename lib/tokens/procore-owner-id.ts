import { ProcoreInvalidOwnerError } from '../errors/procore-invalid-owner.error.js';

/** The owner of a connection: your user id. Numbers are stored as strings. */
export type ProcoreOwnerId = string | number;

/** Longest owner id, in UTF-16 code units: the `owner_id` column is varchar(255). */
const MAX_OWNER_LENGTH = 255;

/**
 * A lone UTF-16 surrogate: with the `u` flag a valid pair is one code point, so only unpaired
 * halves match. Same test as `String.prototype.isWellFormed()` (ES2024, beyond our `lib` setting).
 */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** C0 controls (NUL included), DEL and C1 controls (U+0000-U+001F, U+007F-U+009F). */
const CONTROL_CHARACTER = /\p{Control}/u;

/**
 * Validates an owner id and returns the string form it is stored, locked and encrypted under.
 * The id is used as is (no trimming or case folding), so two distinct accepted ids never map to
 * the same connection. Rejected ids throw `ProcoreInvalidOwnerError`, whose message never
 * contains the id.
 */
export function normalizeOwner(ownerId: ProcoreOwnerId): string {
  const value = ownerIdString(ownerId);
  if (value.length === 0 || value.length > MAX_OWNER_LENGTH) {
    throw invalidOwner(`must be 1 to ${MAX_OWNER_LENGTH} characters long`);
  }
  // A lone surrogate becomes U+FFFD in UTF-8 (the database, the cipher's associated data), so
  // 'a\uD800' and 'a\uFFFD' would share one row and one encryption binding.
  if (LONE_SURROGATE.test(value)) {
    throw invalidOwner('is not well-formed Unicode (it contains a lone UTF-16 surrogate)');
  }
  // NUL is refused by PostgreSQL; the others are invisible in logs and admin screens.
  if (CONTROL_CHARACTER.test(value)) {
    throw invalidOwner('contains a control character (U+0000-U+001F or U+007F-U+009F)');
  }
  return value;
}

/**
 * The key to look an owner up by in memory before `normalizeOwner()` has run (the hot path): a
 * string no longer than an id can be, as it is. Only normalized ids are ever stored under such
 * keys, so a string found there is a valid id; the caller runs `normalizeOwner()` on a miss.
 * Anything else (a number, an over-long string) is normalized, or refused, first.
 */
export function ownerLookupKey(ownerId: ProcoreOwnerId): string {
  return typeof ownerId === 'string' && ownerId.length <= MAX_OWNER_LENGTH
    ? ownerId
    : normalizeOwner(ownerId);
}

/** A string as given; an integer number in decimal (`42`, not `42.0`); anything else is refused. */
function ownerIdString(ownerId: unknown): string {
  if (typeof ownerId === 'string') return ownerId;
  if (typeof ownerId === 'number') {
    // Fractions, NaN and Infinity are not ids; a number beyond 2^53 has already lost digits.
    if (!Number.isSafeInteger(ownerId)) {
      throw invalidOwner(
        'is a number that is not a safe integer',
        'pass integer ids up to 2^53 as numbers, anything larger as a string',
      );
    }
    return String(ownerId);
  }
  throw invalidOwner(
    `must be a string or a number, got ${ownerId === null ? 'null' : typeof ownerId}`,
  );
}

/** The id itself is never part of the message: it may come from a request, huge or hostile. */
function invalidOwner(
  problem: string,
  fix = "pass your user's stable id (for requests, the ownerResolver option returns it)",
): ProcoreInvalidOwnerError {
  return new ProcoreInvalidOwnerError(`The Procore owner id ${problem}: ${fix}.`);
}
