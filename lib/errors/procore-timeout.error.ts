import { ProcoreTransientError } from './procore-transient.error.js';

/**
 * Procore did not answer within the configured `http.timeoutMs`. The request may have been processed.
 * @publicApi
 */
export class ProcoreTimeoutError extends ProcoreTransientError {
  override readonly code = 'timeout';

  constructor(endpoint: string, timeoutMs: number) {
    super(`Procore ${endpoint} did not answer within ${timeoutMs} ms (http.timeoutMs).`, true);
  }
}
