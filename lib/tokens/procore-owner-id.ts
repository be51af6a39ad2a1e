/** The owner of a connection: your user id. Numbers are stored as strings. */
export type ProcoreOwnerId = string | number;

/** Validates an owner id and returns the string form it is stored and locked under. */
export function normalizeOwner(ownerId: ProcoreOwnerId): string {
  const value = String(ownerId);
  if (!value || value.length > 255) {
    throw new TypeError('ownerId must be a non-empty string or number of at most 255 characters.');
  }
  return value;
}
