import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreTokenDecryptionError } from '../errors/procore-token-decryption.error.js';
import { PROCORE_AUTH_OPTIONS, PROCORE_TOKEN_CIPHER } from '../procore-auth.constants.js';
import { ProcoreTokenStore } from '../storage/procore-token.store.js';
import { openAccessToken, openRefreshToken, sealTokens } from './connection-secrets.js';
import type { TokenCipher } from './token-cipher.js';
import { asProcoreError } from '../storage/storage-errors.js';

/**
 * Re-encrypts stored tokens with the current key after a key rotation, so the previous key can be
 * retired. Run it from a one-off command or job (`app.get(ProcoreKeyRotationService).reencryptAll()`);
 * rows are rewritten one at a time under their row lock, so it is safe while the app serves traffic.
 * @publicApi
 */
@Injectable()
export class ProcoreKeyRotationService {
  private readonly logger = new Logger('ProcoreAuth');

  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    @Inject(PROCORE_TOKEN_CIPHER) private readonly cipher: TokenCipher,
    private readonly store: ProcoreTokenStore,
  ) {}

  /**
   * Rewrites every row not yet on the current key. Rows that no configured key can decrypt are
   * skipped and counted as `failed` (their owners will have to reconnect).
   */
  async reencryptAll(batchSize = 500): Promise<{ reencrypted: number; failed: number }> {
    let reencrypted = 0;
    let failed = 0;
    let after: string | undefined;
    for (;;) {
      const ownerIds = await this.store.findWithOtherKey(
        this.cipher.currentKeyId,
        after,
        batchSize,
      );
      if (ownerIds.length === 0) break;
      for (const ownerId of ownerIds) {
        try {
          await this.reencrypt(ownerId);
          reencrypted++;
        } catch (error) {
          if (!(error instanceof ProcoreTokenDecryptionError)) {
            throw asProcoreError(error, ownerId, 're-encrypting');
          }
          failed++;
        }
      }
      after = ownerIds[ownerIds.length - 1];
    }
    this.logger.log(
      `Re-encrypted ${reencrypted} Procore connection(s) with key "${this.cipher.currentKeyId}"` +
        (failed ? `; ${failed} could not be decrypted with any configured key.` : '.'),
    );
    return { reencrypted, failed };
  }

  private async reencrypt(ownerId: string): Promise<void> {
    await this.store.withLock(ownerId, this.options.lockTimeoutMs, async (record, writer) => {
      if (!record || record.keyId === this.cipher.currentKeyId) return;
      const accessToken = openAccessToken(this.cipher, record);
      const refreshToken = openRefreshToken(this.cipher, record);
      if (!accessToken) {
        // Revoked or reauthorization-required rows hold no secrets: only the key id is stale.
        await writer.update({ keyId: null });
        return;
      }
      // Same tokens, same version: only the encryption changes.
      await writer.update(sealTokens(this.cipher, ownerId, accessToken, refreshToken));
    });
  }
}
