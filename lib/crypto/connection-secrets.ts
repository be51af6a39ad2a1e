import type { ProcoreTokenRecord } from '../storage/procore-token.store.js';
import type { TokenCipher } from './token-cipher.js';

/** Associated data of a stored token: binds the ciphertext to its owner and to its column. */
function context(ownerId: string, field: 'access' | 'refresh'): string {
  return `procore-oauth-token:${field}:${ownerId}`;
}

/** Encrypted token columns of a row, ready for the store. */
export interface SealedTokens {
  accessToken: string;
  refreshToken: string | null;
  keyId: string;
}

/** Encrypts both tokens of an owner with the current key (they are always written together). */
export function sealTokens(
  cipher: TokenCipher,
  ownerId: string,
  accessToken: string,
  refreshToken: string | undefined,
): SealedTokens {
  return {
    accessToken: cipher.encrypt(accessToken, context(ownerId, 'access')),
    refreshToken: refreshToken ? cipher.encrypt(refreshToken, context(ownerId, 'refresh')) : null,
    keyId: cipher.currentKeyId,
  };
}

export function openAccessToken(
  cipher: TokenCipher,
  record: ProcoreTokenRecord,
): string | undefined {
  return record.accessToken
    ? cipher.decrypt(record.accessToken, context(record.ownerId, 'access'))
    : undefined;
}

export function openRefreshToken(
  cipher: TokenCipher,
  record: ProcoreTokenRecord,
): string | undefined {
  return record.refreshToken
    ? cipher.decrypt(record.refreshToken, context(record.ownerId, 'refresh'))
    : undefined;
}
