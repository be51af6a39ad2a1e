import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * The application is shutting down: no new refresh or revocation starts, and a retry that was
 * waiting gives up. Nothing was sent to Procore for it; another instance (or this one after the
 * restart) does the work on the next call.
 * @publicApi
 */
export class ProcoreShutdownError extends ProcoreAuthError {
  readonly code = 'shutting_down';

  constructor(doing: string) {
    super(`The application is shutting down: ${doing} was not started.`);
  }
}
