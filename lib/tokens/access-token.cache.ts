import { LRUCache } from 'lru-cache';

/** Characters of one packed number: 4 × 8 bits, whole seconds since 1970 up to the year 2106. */
const NUMBER_CHARS = 4;
/** Where each number sits in the header in front of the token. */
const EXPIRY = 0;
const DEADLINE = NUMBER_CHARS;
const USE_RECORDED = 2 * NUMBER_CHARS;
const HEADER_CHARS = 3 * NUMBER_CHARS;
const MAX_SECONDS = 2 ** (8 * NUMBER_CHARS) - 1;
const ASCII = /^\p{ASCII}*$/u;

/** What the cache calls, at most once per `intervalMs` per owner, when it serves a token. */
export interface AccessTokenUseRecorder {
  intervalMs: number;
  record(ownerId: string): void;
}

/**
 * Bounded LRU cache of valid access tokens: the hot path serves from here with no database
 * round trip. An entry lives at most `ttlSeconds` (so a revoke on another instance is seen within
 * that time) and is never served once less than the refresh skew remains.
 *
 * Memory: each entry is ONE string, the token behind a 12-character header holding, in whole
 * seconds, the token's expiry, the entry's deadline and when a use of it was last recorded, so it
 * weighs what the token alone does (within the 8-byte alignment of V8 strings): no wrapper
 * object, no boxed number, and no per-entry TTL arrays in the LRU (its own TTL tracking is not
 * used). Beyond the token and owner id strings, an entry costs ~45 bytes, plus ~28 bytes per slot
 * of `maxEntries` that the LRU allocates up front (bench/cache-and-queries.ts).
 *
 * Speed: a hit reads the clock once (`Date.now()`) and touches that one string. The deadline is
 * on the wall clock too: an entry is served only while its deadline lies between now and now +
 * `ttlSeconds`, so a clock set back expires entries early instead of keeping them longer.
 * Seconds, not milliseconds: the expiry is rounded down and the deadline's start too, so a token
 * is never served later than it would be to the millisecond.
 */
export class AccessTokenCache {
  private readonly cache: LRUCache<string, string> | undefined;
  private readonly ttlMs: number;

  /** `clock` is the wall clock (`Date` by default; tests pass their own). */
  constructor(
    maxEntries: number,
    ttlSeconds: number,
    private readonly clock: { now(): number } = Date,
    private readonly uses?: AccessTokenUseRecorder,
  ) {
    this.ttlMs = ttlSeconds * 1000;
    this.cache = maxEntries > 0 && ttlSeconds > 0 ? new LRUCache({ max: maxEntries }) : undefined;
  }

  /** The cached token when more than `skewMs` of it remains. */
  get(ownerId: string, skewMs: number): string | undefined {
    const entry = this.cache?.get(ownerId);
    if (entry === undefined) return undefined;
    if (this.servable(entry, this.clock.now(), skewMs)) return entry.slice(HEADER_CHARS);
    this.cache?.delete(ownerId);
    return undefined;
  }

  /**
   * `get()` for a request that uses the token: also tells the use recorder, when no use of this
   * entry was recorded within its interval (so a hit costs no lookup of the recorder's own).
   */
  use(ownerId: string, skewMs: number): string | undefined {
    const entry = this.cache?.get(ownerId);
    if (entry === undefined) return undefined;
    const now = this.clock.now();
    if (!this.servable(entry, now, skewMs)) {
      this.cache?.delete(ownerId);
      return undefined;
    }
    if (this.uses && now - readSeconds(entry, USE_RECORDED) * 1000 >= this.uses.intervalMs) {
      this.uses.record(ownerId);
      this.cache?.set(ownerId, stamped(entry, now));
    }
    return entry.slice(HEADER_CHARS);
  }

  set(ownerId: string, token: string, expiresAt: Date): void {
    if (!this.cache) return;
    const expiry = Math.floor(expiresAt.getTime() / 1000);
    const start = Math.floor(this.clock.now() / 1000);
    if (!(expiry > 0) || !(start >= 0)) {
      this.cache.delete(ownerId);
      return;
    }
    // No use recorded yet (0): the first use of the entry is passed on to the recorder.
    const header = writeSeconds(expiry) + writeSeconds(start + this.ttlMs / 1000) + writeSeconds(0);
    this.cache.set(ownerId, packed(header, token));
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

  private servable(entry: string, now: number, skewMs: number): boolean {
    const deadlineLeft = readSeconds(entry, DEADLINE) * 1000 - now;
    return (
      deadlineLeft > 0 &&
      deadlineLeft <= this.ttlMs &&
      readSeconds(entry, EXPIRY) * 1000 - now > skewMs
    );
  }
}

/** The entry with its "use recorded" time set to `now`. */
function stamped(entry: string, now: number): string {
  const header =
    entry.slice(0, USE_RECORDED) + writeSeconds(Math.floor(now / 1000));
  return packed(header, entry.slice(HEADER_CHARS));
}

/** `header + token` as one flat string (a concatenation alone would keep both parts alive). */
function packed(header: string, token: string): string {
  const joined = header + token;
  // Access tokens are ASCII; anything else is kept as it is (correct, only a little larger).
  return ASCII.test(token) ? Buffer.from(joined, 'latin1').toString('latin1') : joined;
}

function writeSeconds(value: number): string {
  const codes: number[] = [];
  let rest = Math.min(Math.max(Math.floor(value), 0), MAX_SECONDS);
  for (let i = 0; i < NUMBER_CHARS; i++) {
    codes.unshift(rest % 256);
    rest = Math.floor(rest / 256);
  }
  return String.fromCharCode(...codes);
}

function readSeconds(entry: string, at: number): number {
  let value = 0;
  for (let i = at; i < at + NUMBER_CHARS; i++) value = value * 256 + entry.charCodeAt(i);
  return value;
}
