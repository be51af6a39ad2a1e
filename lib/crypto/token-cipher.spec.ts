import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { ProcoreTokenDecryptionError } from '../errors/procore-token-decryption.error.js';
import { TokenCipher } from './token-cipher.js';

/** A fresh 32-byte key in base64, optionally `keyId:base64`. */
function generateKey(keyId?: string): string {
  const key = randomBytes(32).toString('base64');
  return keyId ? `${keyId}:${key}` : key;
}

/** Flips one bit of the envelope part at `index` (1 key id, 2 iv, 3 ciphertext, 4 tag). */
function tamper(envelope: string, index: number): string {
  const parts = envelope.split('.');
  const bytes = Buffer.from(parts[index], 'base64url');
  bytes[0] ^= 0x01;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

/** The error `work` throws (fails the test when it throws nothing). */
function thrownBy(work: () => unknown): Error {
  try {
    work();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error, but nothing was thrown');
}

const OWNER = 'procore-token:user-1:access';
const PLAINTEXT = 'eyJhbGciOiJIUzI1NiJ9.access-token-of-user-1.signature';

describe('TokenCipher', () => {
  it('decrypts what it encrypted for the same owner context', () => {
    const cipher = new TokenCipher(generateKey());

    expect(cipher.decrypt(cipher.encrypt(PLAINTEXT, OWNER), OWNER)).toBe(PLAINTEXT);
  });

  it('round-trips empty and non-ASCII values', () => {
    const cipher = new TokenCipher(generateKey());

    for (const value of ['', 'jeton àéî 令牌 🔑']) {
      expect(cipher.decrypt(cipher.encrypt(value, OWNER), OWNER)).toBe(value);
    }
  });

  it('produces a different ciphertext on every call (random IV) that contains no plaintext', () => {
    const cipher = new TokenCipher(generateKey());

    const envelopes = Array.from({ length: 20 }, () => cipher.encrypt(PLAINTEXT, OWNER));

    expect(new Set(envelopes).size).toBe(envelopes.length);
    expect(new Set(envelopes.map((envelope) => envelope.split('.')[2])).size).toBe(
      envelopes.length,
    );
    for (const envelope of envelopes) {
      expect(envelope).not.toContain(PLAINTEXT);
      expect(envelope).not.toContain('access-token-of-user-1');
      expect(envelope).not.toContain(Buffer.from(PLAINTEXT).toString('base64url'));
      expect(envelope).not.toContain(Buffer.from(PLAINTEXT).toString('base64'));
    }
  });

  it('writes v1.<keyId>.<iv>.<ciphertext>.<tag> in base64url, naming the current key', () => {
    const cipher = new TokenCipher(generateKey('k2025'));

    const envelope = cipher.encrypt(PLAINTEXT, OWNER);

    expect(envelope).toMatch(/^v1\.k2025\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const [, , iv, , tag] = envelope.split('.');
    expect(Buffer.from(iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(tag, 'base64url')).toHaveLength(16);
    expect(TokenCipher.keyIdOf(envelope)).toBe('k2025');
  });

  it('refuses a value bound to another owner (a ciphertext copied to another row)', () => {
    const cipher = new TokenCipher(generateKey());
    const envelope = cipher.encrypt(PLAINTEXT, 'procore-token:user-1:access');

    const error = thrownBy(() => cipher.decrypt(envelope, 'procore-token:user-2:access'));

    expect(error).toBeInstanceOf(ProcoreTokenDecryptionError);
    expect(error.message).toMatch(/altered or belongs to another owner/);
    expect(error.message).not.toContain(PLAINTEXT);
  });

  it('refuses a value moved from the access-token to the refresh-token field of the same owner', () => {
    const cipher = new TokenCipher(generateKey());
    const envelope = cipher.encrypt(PLAINTEXT, 'procore-token:user-1:access');

    expect(() => cipher.decrypt(envelope, 'procore-token:user-1:refresh')).toThrow(
      ProcoreTokenDecryptionError,
    );
  });

  it.each([
    ['iv', 2],
    ['ciphertext', 3],
    ['authentication tag', 4],
  ])('detects a tampered %s', (_part, index) => {
    const cipher = new TokenCipher(generateKey());
    const envelope = cipher.encrypt(PLAINTEXT, OWNER);

    expect(() => cipher.decrypt(tamper(envelope, index), OWNER)).toThrow(
      ProcoreTokenDecryptionError,
    );
  });

  it('detects a truncated authentication tag', () => {
    const cipher = new TokenCipher(generateKey());
    const parts = cipher.encrypt(PLAINTEXT, OWNER).split('.');
    parts[4] = parts[4].slice(0, 8);

    expect(() => cipher.decrypt(parts.join('.'), OWNER)).toThrow(ProcoreTokenDecryptionError);
  });

  it.each([
    ['a plaintext token', PLAINTEXT.replace(/\./g, '')],
    ['an unknown envelope version', 'v2.key.aaaa.bbbb.cccc'],
    ['too few parts', 'v1.key.aaaa'],
  ])('rejects %s as not being in the encrypted format', (_name, value) => {
    const cipher = new TokenCipher(generateKey());

    const error = thrownBy(() => cipher.decrypt(value, OWNER));

    expect(error).toBeInstanceOf(ProcoreTokenDecryptionError);
    expect(error.message).toMatch(/not in the expected encrypted format/);
  });

  describe('key rotation', () => {
    it('decrypts a value written with an old key once that key is among the previous keys', () => {
      const oldKey = generateKey('2024');
      const written = new TokenCipher(oldKey).encrypt(PLAINTEXT, OWNER);

      const rotated = new TokenCipher(generateKey('2025'), [oldKey]);

      expect(rotated.decrypt(written, OWNER)).toBe(PLAINTEXT);
    });

    it('writes new values with the current key, not a previous one', () => {
      const rotated = new TokenCipher(generateKey('2025'), [generateKey('2024')]);

      const envelope = rotated.encrypt(PLAINTEXT, OWNER);

      expect(rotated.currentKeyId).toBe('2025');
      expect(TokenCipher.keyIdOf(envelope)).toBe('2025');
    });

    it('names the missing key id and PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS when the old key is not configured', () => {
      const oldKey = generateKey('2024');
      const written = new TokenCipher(oldKey).encrypt(PLAINTEXT, OWNER);
      const newKey = generateKey('2025');

      const error = thrownBy(() => new TokenCipher(newKey).decrypt(written, OWNER));

      expect(error).toBeInstanceOf(ProcoreTokenDecryptionError);
      expect(error.message).toContain('"2024"');
      expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS');
      for (const secret of [
        oldKey,
        newKey,
        oldKey.split(':')[1],
        newKey.split(':')[1],
        PLAINTEXT,
      ]) {
        expect(error.message).not.toContain(secret);
      }
    });

    it('does not fall back to other keys when a value names a configured key but fails with it', () => {
      const key2024 = generateKey('2024');
      const written = new TokenCipher(key2024).encrypt(PLAINTEXT, OWNER);
      // Same id, different key material: the value must not decrypt under any configured key.
      const impostor = new TokenCipher(generateKey('2025'), [generateKey('2024')]);

      expect(() => impostor.decrypt(written, OWNER)).toThrow(ProcoreTokenDecryptionError);
    });
  });

  describe('key ids', () => {
    it('derives a stable id from a key given without one', () => {
      const key = generateKey();

      const first = new TokenCipher(key);
      const second = new TokenCipher(key);

      expect(first.currentKeyId).toMatch(/^[0-9a-f]{8}$/);
      expect(second.currentKeyId).toBe(first.currentKeyId);
      expect(new TokenCipher(generateKey()).currentKeyId).not.toBe(first.currentKeyId);
    });

    it('finds a previous key without an id by its derived id', () => {
      const oldKey = generateKey();
      const written = new TokenCipher(oldKey).encrypt(PLAINTEXT, OWNER);

      const rotated = new TokenCipher(generateKey(), [oldKey]);

      expect(rotated.decrypt(written, OWNER)).toBe(PLAINTEXT);
    });

    it('uses the id of a keyId:base64 key as given, for the same key material', () => {
      const material = randomBytes(32).toString('base64');
      const written = new TokenCipher(`primary:${material}`).encrypt(PLAINTEXT, OWNER);

      expect(TokenCipher.keyIdOf(written)).toBe('primary');
      expect(new TokenCipher(`primary:${material}`).decrypt(written, OWNER)).toBe(PLAINTEXT);
      // The id is part of the lookup: the bare key (derived id) does not claim "primary" values.
      expect(() => new TokenCipher(material).decrypt(written, OWNER)).toThrow(/"primary"/);
    });

    it('accepts base64url key material', () => {
      const material = randomBytes(32);
      const written = new TokenCipher(`k:${material.toString('base64')}`).encrypt(PLAINTEXT, OWNER);

      expect(new TokenCipher(`k:${material.toString('base64url')}`).decrypt(written, OWNER)).toBe(
        PLAINTEXT,
      );
    });
  });

  describe('key validation', () => {
    it('rejects a 16-byte current key with a ProcoreConfigurationError naming the option, not the key', () => {
      const shortKey = randomBytes(16).toString('base64');

      const error = thrownBy(() => new TokenCipher(shortKey));

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_KEY');
      expect(error.message).toContain('32');
      expect(error.message).toContain('16 bytes');
      expect(error.message).not.toContain(shortKey);
    });

    it('rejects a 16-byte key given as keyId:base64', () => {
      expect(() => new TokenCipher(`short:${randomBytes(16).toString('base64')}`)).toThrow(
        ProcoreConfigurationError,
      );
    });

    it('rejects a short previous key, naming PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS', () => {
      const shortKey = randomBytes(16).toString('base64');

      const error = thrownBy(() => new TokenCipher(generateKey(), [shortKey]));

      expect(error).toBeInstanceOf(ProcoreConfigurationError);
      expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS');
      expect(error.message).not.toContain(shortKey);
    });

    it.each(['2024.01', 'a b', 'x'.repeat(33)])(
      'rejects the key id %s, which cannot be stored in the envelope',
      (keyId) => {
        const key = `${keyId}:${randomBytes(32).toString('base64')}`;
        expect(() => new TokenCipher(key)).toThrow(ProcoreConfigurationError);
      },
    );
  });
});
