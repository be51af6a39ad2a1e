import { ProcoreAuthError } from './procore-auth.error.js';

/**
 * A stored token could not be decrypted: its key id is not in the keyring (add the old key to
 * `previousEncryptionKeys` / PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS), or the value was tampered
 * with or copied from another owner's row.
 * @publicApi
 */
export class ProcoreTokenDecryptionError extends ProcoreAuthError {
  readonly code = 'decryption_failed';
}
