import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * An owner id cannot be used: empty, longer than 255 characters, not a string or an integer, not
 * well-formed Unicode (a lone UTF-16 surrogate, which the database would store as U+FFFD and so
 * merge with another owner), or containing a control character. The message never repeats the
 * id: it may come from a request and be large or hostile. The HTTP layer answers it as 401
 * `no_owner`.
 * @publicApi
 */
export class ProcoreInvalidOwnerError extends ProcoreAuthError {
  readonly code = 'invalid_owner';
}
