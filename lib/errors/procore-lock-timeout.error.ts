import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * Waiting for another caller's refresh of the same connection took longer than `lockTimeoutMs`.
 * Usually Procore is slow; the refresh itself is still done exactly once by whoever holds the lock.
 * @publicApi
 */
export class ProcoreLockTimeoutError extends ProcoreAuthError {
  readonly code = 'lock_timeout';

  constructor(ownerId: string, lockTimeoutMs: number, options?: { cause?: unknown }) {
    super(
      `Timed out after ${lockTimeoutMs} ms (lockTimeoutMs) waiting for the refresh of owner "${ownerId}" held by another caller.`,
      options,
    );
  }
}
