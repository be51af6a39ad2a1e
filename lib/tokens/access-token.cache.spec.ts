import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { AccessTokenCache } from './access-token.cache.js';

const inMinutes = (minutes: number) => new Date(Date.now() + minutes * 60_000);
const SKEW_MS = 120_000;

/** A clock the test moves by hand: time is the subject here. */
function manualClock() {
  let now = 1_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('AccessTokenCache', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('serves a token while more than the refresh skew remains, and drops it once within the skew', () => {
    const cache = new AccessTokenCache(10, 60);
    cache.set('fresh', 'token-a', inMinutes(30));
    cache.set('nearly-expired', 'token-b', inMinutes(1));

    expect(cache.get('fresh', SKEW_MS)).toBe('token-a');
    expect(cache.get('nearly-expired', SKEW_MS)).toBeUndefined();
    expect(cache.size).toBe(1);
  });

  it('keeps at most maxEntries owners, evicting the least recently used', () => {
    const cache = new AccessTokenCache(2, 60);
    cache.set('a', 'token-a', inMinutes(30));
    cache.set('b', 'token-b', inMinutes(30));
    cache.get('a', SKEW_MS); // a is now more recent than b
    cache.set('c', 'token-c', inMinutes(30));

    expect(cache.get('a', SKEW_MS)).toBe('token-a');
    expect(cache.get('b', SKEW_MS)).toBeUndefined();
    expect(cache.get('c', SKEW_MS)).toBe('token-c');
  });

  it('forgets an entry after ttlSeconds even when the token is still valid (bounds how long a revoke elsewhere goes unseen)', () => {
    const clock = manualClock();
    const cache = new AccessTokenCache(10, 60, clock);
    cache.set('owner', 'token', inMinutes(60));

    clock.advance(59_000);
    expect(cache.get('owner', SKEW_MS)).toBe('token');
    clock.advance(2_000);
    expect(cache.get('owner', SKEW_MS)).toBeUndefined();
  });

  it('is disabled by maxEntries 0', () => {
    const cache = new AccessTokenCache(0, 60);
    cache.set('owner', 'token', inMinutes(60));
    expect(cache.get('owner', SKEW_MS)).toBeUndefined();
  });

  it('judges expiry on the wall clock: a token is not served once the clock passes its expiry minus the skew, even inside ttlSeconds', () => {
    const clock = manualClock();
    const cache = new AccessTokenCache(10, 60, clock);
    const expiresAt = inMinutes(10);
    cache.set('owner', 'token', expiresAt);
    expect(cache.get('owner', SKEW_MS)).toBe('token');

    jest.spyOn(Date, 'now').mockReturnValue(expiresAt.getTime() - SKEW_MS + 1);
    expect(cache.get('owner', SKEW_MS)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('never serves a token that has already expired (or has no valid expiry)', () => {
    const cache = new AccessTokenCache(10, 60);
    cache.set('owner', 'token', new Date(Date.now() - 1_000));
    expect(cache.get('owner', 0)).toBeUndefined();
    cache.set('owner', 'token', new Date(Number.NaN));
    expect(cache.get('owner', 0)).toBeUndefined();
  });

  it('hands back exactly the token it was given, whatever its length and characters', () => {
    const cache = new AccessTokenCache(10, 60);
    const tokens = ['', 'a', 'x'.repeat(337), 'y'.repeat(4096), 'tökén-ünicode-€-😀'];
    for (const token of tokens) {
      cache.set('owner', token, inMinutes(30));
      expect(cache.get('owner', SKEW_MS)).toBe(token);
    }
  });

  it("replaces an owner's token, expiry and age on set", () => {
    const clock = manualClock();
    const cache = new AccessTokenCache(10, 60, clock);
    cache.set('owner', 'old', inMinutes(1));
    clock.advance(50_000);
    cache.set('owner', 'new', inMinutes(30));
    clock.advance(50_000); // 100 s after the first set, 50 s after the second
    expect(cache.get('owner', SKEW_MS)).toBe('new');
    expect(cache.size).toBe(1);
  });

  it('drops an owner on delete (revoke, reauthorization)', () => {
    const cache = new AccessTokenCache(10, 60);
    cache.set('owner', 'token', inMinutes(60));
    cache.delete('owner');
    expect(cache.get('owner', SKEW_MS)).toBeUndefined();
  });
});
