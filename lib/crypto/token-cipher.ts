import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { ProcoreTokenDecryptionError } from '../errors/procore-token-decryption.error.js';

const ALGORITHM = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const ENVELOPE_VERSION = 'v1';

interface KeyringKey {
  id: string;
  key: Buffer;
}

/**
 * Parses `keyId:base64` or plain `base64` (32 bytes). A key without an id gets a stable id derived
 * from the key itself, so the same key always has the same id wherever it is configured.
 */
export function parseEncryptionKey(value: string, option: string): KeyringKey {
  const separator = value.lastIndexOf(':');
  const encoded = separator >= 0 ? value.slice(separator + 1) : value;
  const key = Buffer.from(encoded.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32) {
    throw new ProcoreConfigurationError(
      `${option} must be 32 random bytes in base64 (got ${key.length} bytes): generate one with "openssl rand -base64 32".`,
    );
  }
  const id =
    separator >= 0
      ? value.slice(0, separator)
      : createHash('sha256').update(key).digest('hex').slice(0, 8);
  // The id is part of the stored envelope (`v1.<keyId>...`), so it must not contain its separators.
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) {
    throw new ProcoreConfigurationError(
      `${option} has an invalid key id: use 1-32 letters, digits, "_" or "-" before the ":".`,
    );
  }
  return { id, key };
}

/**
 * AES-256-GCM encryption of stored tokens with a keyring: the current key encrypts, every key
 * (current and previous) decrypts. Each value is stored as `v1.<keyId>.<iv>.<ciphertext>.<tag>`
 * (base64url), so it names the key that wrote it. The associated data binds a value to its owner
 * and field: a ciphertext copied to another row, or from the access to the refresh column, fails
 * authentication instead of decrypting.
 */
export class TokenCipher {
  private readonly current: KeyringKey;
  private readonly keys = new Map<string, Buffer>();

  constructor(currentKey: string, previousKeys: readonly string[] = []) {
    this.current = parseEncryptionKey(currentKey, 'encryptionKey (PROCORE_TOKEN_ENCRYPTION_KEY)');
    this.keys.set(this.current.id, this.current.key);
    const option = 'previousEncryptionKeys (PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS)';
    for (const value of previousKeys) this.addKey(parseEncryptionKey(value, option));
  }

  /**
   * Adds a decrypt-only key. The same key listed twice is harmless; one id for two different keys
   * is refused, since values written with one would fail authentication with the other and look
   * tampered with.
   */
  private addKey({ id, key }: KeyringKey): void {
    const known = this.keys.get(id);
    if (known && !known.equals(key)) {
      throw new ProcoreConfigurationError(
        `Two different encryption keys share the key id "${id}" among encryptionKey (PROCORE_TOKEN_ENCRYPTION_KEY) and previousEncryptionKeys (PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS): give each key its own id ("keyId:base64") or remove the wrong one.`,
      );
    }
    this.keys.set(id, key);
  }

  /** Id of the key new values are written with. */
  get currentKeyId(): string {
    return this.current.id;
  }

  /**
   * A 32-byte key for another use of the current key (HKDF-SHA256, `purpose` as the info), so
   * the encryption key itself is never used for two things. It changes when the current key does.
   */
  deriveKey(purpose: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.current.key, 'nestjs-procore-auth', purpose, 32));
  }

  encrypt(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.current.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [
      ENVELOPE_VERSION,
      this.current.id,
      iv.toString('base64url'),
      ciphertext.toString('base64url'),
      cipher.getAuthTag().toString('base64url'),
    ].join('.');
  }

  decrypt(envelope: string, context: string): string {
    const parts = envelope.split('.');
    if (parts.length !== 5 || parts[0] !== ENVELOPE_VERSION) {
      throw new ProcoreTokenDecryptionError(
        'A stored Procore token is not in the expected encrypted format.',
      );
    }
    const [, keyId, iv, ciphertext, tag] = parts;
    const key = this.keys.get(keyId);
    if (!key) {
      throw new ProcoreTokenDecryptionError(
        `A stored Procore token was encrypted with key "${keyId}", which is not configured: add it to PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS (previousEncryptionKeys).`,
      );
    }
    try {
      const decipher = createDecipheriv(ALGORITHM, key, Buffer.from(iv, 'base64url'), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([
        decipher.update(Buffer.from(ciphertext, 'base64url')),
        decipher.final(),
      ]).toString('utf8');
    } catch (error) {
      throw new ProcoreTokenDecryptionError(
        `A stored Procore token failed authentication with key "${keyId}": it was altered or belongs to another owner.`,
        { cause: error },
      );
    }
  }

  /** Key id an envelope was written with (for the re-encryption job). */
  static keyIdOf(envelope: string): string | undefined {
    return envelope.split('.')[1];
  }
}
