import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// The few primitives the fake's tokens, codes and secrets are made and checked with.

/** Length of the fake's HS256 signing secret, in bytes. */
export const JWT_SECRET_BYTES = 32;

export function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

export function hmacSha256(secret: Buffer, data: string): string {
  return createHmac('sha256', secret).update(data).digest('base64url');
}

export function pkceChallengeOf(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

/** Compares secrets without leaking, through timing, how much of them matched. */
export function constantTimeEqual(a: string, b: string): boolean {
  // Hashing first gives equal lengths, which timingSafeEqual requires.
  const digestA = createHash('sha256').update(a).digest();
  const digestB = createHash('sha256').update(b).digest();
  return timingSafeEqual(digestA, digestB);
}

export function epochSeconds(epochMs: number): number {
  return Math.floor(epochMs / 1000);
}
