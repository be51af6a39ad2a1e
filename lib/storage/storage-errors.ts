import { ProcoreAuthError } from '../errors/procore-auth.error.js';
import { ProcoreStorageError } from '../errors/procore-storage.error.js';

/** The PostgreSQL SQLSTATE or Node error code of a storage failure, for messages and logs. */
export function storageErrorCode(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code) return code;
    current =
      (current as { driverError?: unknown; cause?: unknown }).driverError ??
      (current as { cause?: unknown }).cause;
  }
  // node-postgres' pool gives up on `connectionTimeoutMillis` with a bare Error.
  if (error instanceof Error && /timeout exceeded when trying to connect/.test(error.message)) {
    return 'pool_timeout';
  }
  return error instanceof Error ? error.name : 'unknown';
}

/**
 * TypeORM's `QueryFailedError` carries the statement's `parameters` (token ciphertexts, owner ids):
 * replaced before the error becomes a library error's `cause`, so inspecting it prints nothing
 * that records and entities deliberately redact.
 */
export function redactDriverError<T>(error: T): T {
  if (error && typeof error === 'object' && 'parameters' in error) {
    (error as { parameters: unknown }).parameters = ['[redacted]'];
  }
  return error;
}

/** Wraps anything that is not already a library error as a `ProcoreStorageError`. */
export function asProcoreError(
  error: unknown,
  ownerId: string | undefined,
  doing: string,
): ProcoreAuthError {
  if (error instanceof ProcoreAuthError) return error;
  return new ProcoreStorageError(
    ownerId,
    `The Procore token store failed while ${doing}${ownerId === undefined ? '' : ` (owner "${ownerId}")`}: ${storageErrorCode(error)}. Check the database connection; nothing was sent to Procore twice.`,
    { cause: redactDriverError(error) },
  );
}
