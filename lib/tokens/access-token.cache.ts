import { LRUCache } from 'lru-cache';

interface CachedToken {
  token: string;
  /** Epoch ms the access token expires. */
  expiresAt: number;
}

/**
 * Bounded LRU cache of valid access tokens: the hot path serves from here with no database
 * round trip. An entry lives at most `ttlSeconds` (so a revoke on another instance is seen within
 * that time) and is never served once less than the refresh skew remains.
 */
export class AccessTokenCache {
  private readonly cache: LRUCache<string, CachedToken> | undefined;

  /** `clock` measures the entries' age (a monotonic clock by default; tests pass their own). */
  constructor(maxEntries: number, ttlSeconds: number, clock: { now(): number } = performance) {
    this.cache =
      maxEntries > 0 && ttlSeconds > 0
        ? new LRUCache({
            max: maxEntries,
            ttl: ttlSeconds * 1000,
            ttlAutopurge: false,
            // Read the clock on every get: cheap, and no debounce timer per call on the hot path.
            ttlResolution: 0,
            perf: clock,
          })
        : undefined;
  }

  /** The cached token when more than `skewMs` of it remains. */
  get(ownerId: string, skewMs: number): string | undefined {
    const entry = this.cache?.get(ownerId);
    if (!entry) return undefined;
    if (entry.expiresAt - Date.now() > skewMs) return entry.token;
    this.cache?.delete(ownerId);
    return undefined;
  }

  set(ownerId: string, token: string, expiresAt: Date): void {
    this.cache?.set(ownerId, { token, expiresAt: expiresAt.getTime() });
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
