import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * The token store (PostgreSQL) failed: the connection was lost, a statement or transaction timed
 * out, the pool was exhausted. Never a verdict on the user's grant: the connection is not marked
 * because of it, and the call can be retried once the database answers again.
 * @publicApi
 */
export class ProcoreStorageError extends ProcoreAuthError {
  readonly code: string = 'storage_error';

  constructor(
    readonly ownerId: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Procore rotated an owner's refresh token but the new tokens could not be stored, even after
 * retrying in a fresh transaction. The old refresh token is consumed at Procore: unless the
 * database write is recovered, the owner will have to reconnect. Logged at error level and
 * emitted as a `refresh failed` event with code `refresh_persist_failed`.
 * @publicApi
 */
export class ProcoreTokenPersistError extends ProcoreStorageError {
  override readonly code: string = 'refresh_persist_failed';
}
