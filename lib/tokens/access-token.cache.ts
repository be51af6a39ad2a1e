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
 * Bounded in-memory cache of valid access tokens: the hot path serves from here with no database
 * round trip. An entry lives at most `ttlSeconds` (so a revoke on another instance is seen within
 * that time) and is never served once less than the refresh skew remains.
 *
 * Memory: each entry is ONE string, the token behind a 12-character header holding, in whole
 * seconds, the token's expiry, the entry's deadline and when a use of it was last recorded, so it
 * weighs what the token alone does (within the 8-byte alignment of V8 strings): no wrapper
 * object and no boxed number (bench/cache-and-queries.ts).
 *
 * Eviction: a `Map` in insertion order. Every entry lives the same `ttlSeconds`, so insertion
 * order is deadline order, and a full cache drops the entry that expires first. Unlike an LRU,
 * a hit moves nothing (no write on the hot path); a much-used owner dropped that way costs one
 * indexed read, which its entry's deadline would have cost within `ttlSeconds` anyway.
 *
 * Speed: a hit is one `Map` lookup, one clock read (`Date.now()`) and that one string. The
 * deadline is on the wall clock too: an entry is served only while its deadline lies between now
 * and now + `ttlSeconds`, so a clock set back expires entries early instead of keeping them longer.
 * Seconds, not milliseconds: the expiry is rounded down and the deadline's start too, so a token
 * is never served later than it would be to the millisecond.
 */
export class AccessTokenCache {
  private readonly entries = new Map<string, string>();
  private readonly ttlMs: number;
  private readonly enabled: boolean;

  /** `clock` is the wall clock (`Date` by default; tests pass their own). */
  constructor(
    private readonly maxEntries: number,
    ttlSeconds: number,
    private readonly clock: { now(): number } = Date,
    private readonly uses?: AccessTokenUseRecorder,
  ) {
    this.ttlMs = ttlSeconds * 1000;
    this.enabled = maxEntries > 0 && ttlSeconds > 0;
  }

  /** The cached token when more than `skewMs` of it remains. */
  get(ownerId: string, skewMs: number): string | undefined {
    return this.servable(ownerId, this.clock.now(), skewMs)?.slice(HEADER_CHARS);
  }

  /**
   * `get()` for a request that uses the token: also tells the use recorder, when no use of this
   * entry was recorded within its interval (so a hit costs no lookup of the recorder's own).
   */
  use(ownerId: string, skewMs: number): string | undefined {
    const now = this.clock.now();
    const entry = this.servable(ownerId, now, skewMs);
    if (entry === undefined) return undefined;
    if (this.uses && now - readSeconds(entry, USE_RECORDED) * 1000 >= this.uses.intervalMs) {
      this.uses.record(ownerId);
      // Same key: the entry keeps its place (and its deadline).
      this.entries.set(ownerId, stamped(entry, now));
    }
    return entry.slice(HEADER_CHARS);
  }

  set(ownerId: string, token: string, expiresAt: Date): void {
    // Deleted first, so the new entry goes last: insertion order stays deadline order.
    this.entries.delete(ownerId);
    if (!this.enabled) return;
    const expiry = Math.floor(expiresAt.getTime() / 1000);
    const start = Math.floor(this.clock.now() / 1000);
    if (!(expiry > 0) || !(start >= 0)) return;
    if (this.entries.size >= this.maxEntries) {
      const first = this.entries.keys().next();
      if (!first.done) this.entries.delete(first.value);
    }
    // No use recorded yet (0): the first use of the entry is passed on to the recorder.
    const header = writeSeconds(expiry) + writeSeconds(start + this.ttlMs / 1000) + writeSeconds(0);
    this.entries.set(ownerId, packed(header, token));
  }

  delete(ownerId: string): void {
    this.entries.delete(ownerId);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** The owner's entry if it may be served at `now`; an entry that may not is dropped. */
  private servable(ownerId: string, now: number, skewMs: number): string | undefined {
    const entry = this.entries.get(ownerId);
    if (entry === undefined) return undefined;
    const deadlineLeft = readSeconds(entry, DEADLINE) * 1000 - now;
    if (
      deadlineLeft > 0 &&
      deadlineLeft <= this.ttlMs &&
      readSeconds(entry, EXPIRY) * 1000 - now > skewMs
    ) {
      return entry;
    }
    this.entries.delete(ownerId);
    return undefined;
  }
}

/**
 * The entry with its "use passed on" time set to `now`, rounded UP to the second: the recorder
 * counts its interval to the millisecond, so a time rounded down would bring the next use to it
 * up to a second early, be turned away, and wait a whole interval more.
 */
function stamped(entry: string, now: number): string {
  const header = entry.slice(0, USE_RECORDED) + writeSeconds(Math.ceil(now / 1000));
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
