import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * A company id that is not a positive integer (Procore company ids may exceed 2^53: pass them as
 * strings or bigints; a `number` must be a safe integer, or it may already have been rounded).
 * @publicApi
 */
export class ProcoreInvalidCompanyIdError extends ProcoreAuthError {
  readonly code = 'invalid_company_id';

  constructor(problem: string) {
    super(
      `The Procore company id ${problem}: pass a positive integer as a string, bigint or safe-integer number.`,
    );
  }
}
