import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { ProcoreConfigurationError } from '../errors/procore-configuration.error.js';
import { ProcoreTokenDecryptionError } from '../errors/procore-token-decryption.error.js';
import { TokenCipher } from './token-cipher.js';

/** The error `work` throws (fails the test when it throws nothing). */
function thrownBy(work: () => unknown): Error {
  try {
    work();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error, but nothing was thrown');
}

/** A fresh 32-byte key in base64, optionally `keyId:base64`. */
function generateKey(keyId?: string): string {
  const key = randomBytes(32).toString('base64');
  return keyId ? `${keyId}:${key}` : key;
}

const keyMaterial = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((bytes) => Buffer.from(bytes));
const keyId = fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/);
/** Any well-formed text, astral characters included (owner ids are well-formed by now). */
const text = fc.string({ unit: 'binary', maxLength: 200 });
const context = text.map((value) => `procore-token:${value}:access`);
/** Envelope parts that carry bytes: 2 iv, 3 ciphertext, 4 tag. */
const bytePart = fc.constantFrom(2, 3, 4);

/** Changes one byte of the envelope part at `index`: XOR with a non-zero mask (a bit flip or more). */
function tamper(envelope: string, index: number, position: number, mask: number): string {
  const parts = envelope.split('.');
  const bytes = Buffer.from(parts[index], 'base64url');
  bytes[position % bytes.length] ^= mask;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

describe('TokenCipher properties', () => {
  it('decrypts every plaintext it encrypted, for every context', () => {
    const cipher = new TokenCipher(generateKey('k'));
    fc.assert(
      fc.property(text, context, (plaintext, aad) => {
        expect(cipher.decrypt(cipher.encrypt(plaintext, aad), aad)).toBe(plaintext);
      }),
    );
  });

  it('refuses every envelope with one byte of its iv, ciphertext or tag changed', () => {
    const cipher = new TokenCipher(generateKey('k'));
    fc.assert(
      fc.property(
        text,
        context,
        bytePart,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (plaintext, aad, index, position, mask) => {
          const envelope = cipher.encrypt(plaintext, aad);
          // An empty plaintext has an empty ciphertext: nothing there to change.
          fc.pre(Buffer.from(envelope.split('.')[index], 'base64url').length > 0);
          const error = thrownBy(() =>
            cipher.decrypt(tamper(envelope, index, position, mask), aad),
          );
          expect(error).toBeInstanceOf(ProcoreTokenDecryptionError);
          expect(error.message).toMatch(/altered or belongs to another owner/);
        },
      ),
    );
  });

  it('refuses every single-bit flip of the iv, ciphertext or tag', () => {
    const cipher = new TokenCipher(generateKey('k'));
    fc.assert(
      fc.property(text, bytePart, fc.nat(), fc.nat(7), (plaintext, index, position, bit) => {
        const envelope = cipher.encrypt(`token:${plaintext}`, 'owner');
        expect(() => cipher.decrypt(tamper(envelope, index, position, 1 << bit), 'owner')).toThrow(
          ProcoreTokenDecryptionError,
        );
      }),
    );
  });

  it("refuses every value under another owner's context", () => {
    const cipher = new TokenCipher(generateKey('k'));
    fc.assert(
      fc.property(text, context, context, (plaintext, owner, other) => {
        fc.pre(owner !== other);
        expect(() => cipher.decrypt(cipher.encrypt(plaintext, owner), other)).toThrow(
          ProcoreTokenDecryptionError,
        );
      }),
    );
  });

  it('refuses a value whose key is missing from the keyring, naming the key id and where to add it', () => {
    fc.assert(
      fc.property(
        keyId,
        keyId,
        keyMaterial,
        keyMaterial,
        text,
        (writerId, readerId, a, b, plaintext) => {
          fc.pre(writerId !== readerId);
          const writerKey = `${writerId}:${a.toString('base64')}`;
          const readerKey = `${readerId}:${b.toString('base64')}`;
          const envelope = new TokenCipher(writerKey).encrypt(plaintext, 'owner');

          const error = thrownBy(() => new TokenCipher(readerKey).decrypt(envelope, 'owner'));

          expect(error).toBeInstanceOf(ProcoreTokenDecryptionError);
          expect(error.message).toContain(`"${writerId}", which is not configured`);
          expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS');
          expect(error.message).not.toContain(a.toString('base64'));
          expect(error.message).not.toContain(b.toString('base64'));
        },
      ),
    );
  });

  it('still decrypts values written with any previous key after rotation', () => {
    const keyring = fc.uniqueArray(fc.tuple(keyId, keyMaterial), {
      minLength: 2,
      maxLength: 6,
      selector: ([id]) => id,
    });
    fc.assert(
      fc.property(keyring, fc.nat(), text, (keys, pick, plaintext) => {
        const encoded = keys.map(([id, key]) => `${id}:${key.toString('base64')}`);
        const [current, ...previous] = encoded;
        const writer = encoded[pick % encoded.length];
        const envelope = new TokenCipher(writer).encrypt(plaintext, 'owner');

        const rotated = new TokenCipher(current, previous);

        expect(rotated.decrypt(envelope, 'owner')).toBe(plaintext);
        expect(TokenCipher.keyIdOf(rotated.encrypt(plaintext, 'owner'))).toBe(rotated.currentKeyId);
      }),
    );
  });

  it('refuses to build a keyring with two different keys under one id, and accepts the same key twice', () => {
    // `null`: the second entry repeats the first key's bytes (half of the runs).
    const otherKey = fc.option(keyMaterial, { freq: 2 });
    fc.assert(
      fc.property(keyId, keyMaterial, otherKey, fc.boolean(), (id, a, other, inCurrent) => {
        fc.pre(id !== 'current');
        const b = other ?? Buffer.from(a);
        const first = `${id}:${a.toString('base64')}`;
        const second = `${id}:${b.toString('base64')}`;
        const build = () =>
          inCurrent
            ? new TokenCipher(first, [second])
            : new TokenCipher(generateKey('current'), [first, second]);
        if (a.equals(b)) {
          expect(build).not.toThrow();
        } else {
          expect(build).toThrow(ProcoreConfigurationError);
        }
      }),
    );
  });
});

describe('TokenCipher duplicate key ids', () => {
  it('refuses a previous key with the id of the current key but other key bytes, naming the id and both variables', () => {
    const current = generateKey('2025');
    const impostor = generateKey('2025');

    const error = thrownBy(() => new TokenCipher(current, [impostor]));

    expect(error).toBeInstanceOf(ProcoreConfigurationError);
    expect(error.message).toContain('"2025"');
    expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_KEY');
    expect(error.message).toContain('PROCORE_TOKEN_ENCRYPTION_PREVIOUS_KEYS');
    for (const secret of [current, impostor, current.split(':')[1], impostor.split(':')[1]]) {
      expect(error.message).not.toContain(secret);
    }
  });

  it('refuses two previous keys with one id', () => {
    expect(
      () => new TokenCipher(generateKey('2026'), [generateKey('2024'), generateKey('2024')]),
    ).toThrow(ProcoreConfigurationError);
  });

  it('accepts the same key listed twice, in any spelling of its bytes, and decrypts with it', () => {
    const material = randomBytes(32);
    const key = `2025:${material.toString('base64')}`;
    const written = new TokenCipher(key).encrypt('token', 'owner');

    const cipher = new TokenCipher(key, [key, `2025:${material.toString('base64url')}`]);

    expect(cipher.currentKeyId).toBe('2025');
    expect(cipher.decrypt(written, 'owner')).toBe('token');
  });

  it('accepts a key without an id listed as current and previous (same derived id, same bytes)', () => {
    const key = generateKey();

    expect(() => new TokenCipher(key, [key])).not.toThrow();
  });
});
