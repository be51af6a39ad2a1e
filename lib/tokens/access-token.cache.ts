import { LRUCache } from 'lru-cache';

/** Characters of one packed number: 6 × 8 bits, exact for any millisecond time below 2^48. */
const NUMBER_CHARS = 6;
/** The header in front of the token: its expiry (wall clock), then the entry's deadline (`clock`). */
const HEADER_CHARS = 2 * NUMBER_CHARS;
const ASCII = /^\p{ASCII}*$/u;

/**
 * Bounded LRU cache of valid access tokens: the hot path serves from here with no database
 * round trip. An entry lives at most `ttlSeconds` (so a revoke on another instance is seen within
 * that time) and is never served once less than the refresh skew remains.
 *
 * Memory: each entry is ONE string, the token behind a 12-character header holding the token's
 * expiry and the entry's deadline, so it weighs what the token alone does (within the 8-byte
 * alignment of V8 strings): no wrapper object, no boxed number, and no per-entry TTL arrays in
 * the LRU (its own TTL tracking is not used). Beyond the token and owner id strings, an entry
 * costs ~45 bytes, plus ~28 bytes per slot of `maxEntries` that the LRU allocates up front
 * (bench/cache-and-queries.ts: 100,000 owners with 337-character tokens in 46.6 MiB).
 */
export class AccessTokenCache {
  private readonly cache: LRUCache<string, string> | undefined;
  private readonly ttlMs: number;

  /** `clock` measures the entries' age (a monotonic clock by default; tests pass their own). */
  constructor(
    maxEntries: number,
    ttlSeconds: number,
    private readonly clock: { now(): number } = performance,
  ) {
    this.ttlMs = ttlSeconds * 1000;
    this.cache = maxEntries > 0 && ttlSeconds > 0 ? new LRUCache({ max: maxEntries }) : undefined;
  }

  /** The cached token when more than `skewMs` of it remains. */
  get(ownerId: string, skewMs: number): string | undefined {
    const entry = this.cache?.get(ownerId);
    if (entry === undefined) return undefined;
    const expiresAt = readNumber(entry, 0);
    const deadline = readNumber(entry, NUMBER_CHARS);
    if (this.clock.now() <= deadline && expiresAt - Date.now() > skewMs) {
      return entry.slice(HEADER_CHARS);
    }
    this.cache?.delete(ownerId);
    return undefined;
  }

  set(ownerId: string, token: string, expiresAt: Date): void {
    if (!this.cache) return;
    const expiry = expiresAt.getTime();
    const deadline = Math.floor(this.clock.now()) + this.ttlMs;
    if (!(expiry > 0) || !(deadline >= 0)) {
      this.cache.delete(ownerId);
      return;
    }
    this.cache.set(ownerId, packed(writeNumber(expiry) + writeNumber(deadline), token));
  }

  delete(ownerId: string): void {
    this.cache?.delete(ownerId);
  }

  clear(): void {
    this.cache?.clear();
  }

  get size(): number {
    return this.cache?.size ?? 0;
  }
}

/** `header + token` as one flat string (a concatenation alone would keep both parts alive). */
function packed(header: string, token: string): string {
  const joined = header + token;
  // Access tokens are ASCII; anything else is kept as it is (correct, only a little larger).
  return ASCII.test(token) ? Buffer.from(joined, 'latin1').toString('latin1') : joined;
}

function writeNumber(value: number): string {
  const codes: number[] = [];
  let rest = Math.min(Math.floor(value), 2 ** (8 * NUMBER_CHARS) - 1);
  for (let i = 0; i < NUMBER_CHARS; i++) {
    codes.unshift(rest % 256);
    rest = Math.floor(rest / 256);
  }
  return String.fromCharCode(...codes);
}

function readNumber(entry: string, at: number): number {
  let value = 0;
  for (let i = at; i < at + NUMBER_CHARS; i++) value = value * 256 + entry.charCodeAt(i);
  return value;
}
