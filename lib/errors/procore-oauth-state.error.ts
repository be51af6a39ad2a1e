import { ProcoreAuthError } from './procore-auth.error.js';

/** Why an OAuth callback was refused. Nothing is stored or overwritten when this is thrown. */
export type ProcoreOAuthStateProblem =
  | 'missing_state'
  | 'unknown_state'
  | 'expired_state'
  | 'owner_mismatch'
  | 'missing_code'
  | 'access_denied'
  | 'invalid_return_to';

/**
 * A bad authorization callback: missing, unknown, reused, expired or foreign `state`, no `code`, or a denial.
 * @publicApi
 */
export class ProcoreOAuthStateError extends ProcoreAuthError {
  readonly code = 'invalid_callback';

  constructor(
    readonly problem: ProcoreOAuthStateProblem,
    message: string,
  ) {
    super(message);
  }
}
