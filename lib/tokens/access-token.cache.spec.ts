import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { AccessTokenCache } from './access-token.cache.js';

const inMinutes = (minutes: number) => new Date(Date.now() + minutes * 60_000);
const SKEW_MS = 120_000;

/** A wall clock the test moves by hand (starting now, on a whole second): time is the subject. */
function manualClock() {
  let now = Math.floor(Date.now() / 1000) * 1000;
  return {
    now: () => now,
    advance: (ms: number) => (now += ms),
    inMinutes: (minutes: number) => new Date(now + minutes * 60_000),
  };
}

/** A use recorder that counts what reaches it. */
function countingRecorder(intervalMs: number) {
  const recorded: string[] = [];
  return { intervalMs, recorded, record: (ownerId: string) => recorded.push(ownerId) };
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

  it('keeps at most maxEntries owners, dropping the entry that expires first (the oldest set)', () => {
    const cache = new AccessTokenCache(2, 60);
    cache.set('a', 'token-a', inMinutes(30));
    cache.set('b', 'token-b', inMinutes(30));
    cache.set('a', 'token-a2', inMinutes(30)); // set again: a's entry is now the newest
    cache.set('c', 'token-c', inMinutes(30));

    expect(cache.size).toBe(2);
    expect(cache.get('b', SKEW_MS)).toBeUndefined();
    expect(cache.get('a', SKEW_MS)).toBe('token-a2');
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
    const cache = new AccessTokenCache(10, 3600);
    const expiresAt = inMinutes(10);
    cache.set('owner', 'token', expiresAt);
    expect(cache.get('owner', SKEW_MS)).toBe('token');

    jest.spyOn(Date, 'now').mockReturnValue(expiresAt.getTime() - SKEW_MS + 1);
    expect(cache.get('owner', SKEW_MS)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('never serves a token later than its expiry minus the skew, to the millisecond, though it keeps whole seconds', () => {
    const clock = manualClock();
    const cache = new AccessTokenCache(10, 600, clock);
    // An expiry 999 ms past a whole second: rounded down, never up.
    const expiresAt = new Date(clock.now() + 5 * 60_000 + 999);
    cache.set('owner', 'token', expiresAt);
    clock.advance(expiresAt.getTime() - SKEW_MS - clock.now() - 1_000);
    expect(cache.get('owner', SKEW_MS)).toBe('token');
    clock.advance(1_000);
    expect(cache.get('owner', SKEW_MS)).toBeUndefined();
  });

  it('expires entries early, never late, when the wall clock is set back', () => {
    const clock = manualClock();
    const cache = new AccessTokenCache(10, 60, clock);
    cache.set('owner', 'token', clock.inMinutes(60));
    clock.advance(-5_000);
    // Without the bound, the entry would live 65 s instead of 60.
    expect(cache.get('owner', SKEW_MS)).toBeUndefined();
  });

  it('passes the first use of an entry to the use recorder, then at most once per interval', () => {
    const clock = manualClock();
    const recorder = countingRecorder(30_000);
    const cache = new AccessTokenCache(10, 60, clock, recorder);
    cache.set('owner', 'token', clock.inMinutes(60));

    expect(cache.use('owner', SKEW_MS)).toBe('token');
    expect(cache.use('owner', SKEW_MS)).toBe('token');
    clock.advance(29_000);
    expect(cache.use('owner', SKEW_MS)).toBe('token');
    expect(recorder.recorded).toEqual(['owner']);

    clock.advance(1_000);
    expect(cache.use('owner', SKEW_MS)).toBe('token');
    expect(cache.use('owner', SKEW_MS)).toBe('token');
    expect(recorder.recorded).toEqual(['owner', 'owner']);
    // get() is not a use; a new token (set) is recorded again on its first use.
    cache.get('owner', SKEW_MS);
    cache.set('owner', 'token-2', clock.inMinutes(60));
    expect(cache.use('owner', SKEW_MS)).toBe('token-2');
    expect(recorder.recorded).toHaveLength(3);
  });

  it("passes uses on at the recorder's own pace when the entry outlives the interval (no second lost to rounding)", () => {
    const clock = manualClock();
    clock.advance(137); // not on a whole second
    const calls: number[] = [];
    let last: number | undefined;
    // The recorder throttles to the millisecond, as LastUsedRecorder does.
    const recorder = {
      intervalMs: 300_000,
      record: () => {
        if (last !== undefined && clock.now() - last < 300_000) return;
        last = clock.now();
        calls.push(last);
      },
    };
    const cache = new AccessTokenCache(10, 3600, clock, recorder);
    cache.set('owner', 'token', clock.inMinutes(120));
    for (let t = 0; t < 1_800_000; t += 137) {
      cache.use('owner', SKEW_MS);
      clock.advance(137);
    }
    const gaps = calls.slice(1).map((at, i) => at - calls[i]);
    expect(gaps.length).toBeGreaterThanOrEqual(4);
    for (const gap of gaps) expect(gap).toBeLessThan(302_000);
  });

  it('records every use with interval 0, and never one of a token it does not serve', () => {
    const clock = manualClock();
    const recorder = countingRecorder(0);
    const cache = new AccessTokenCache(10, 60, clock, recorder);
    cache.set('owner', 'token', clock.inMinutes(60));
    cache.set('expiring', 'token', clock.inMinutes(1));
    cache.use('owner', SKEW_MS);
    cache.use('owner', SKEW_MS);
    expect(cache.use('expiring', SKEW_MS)).toBeUndefined();
    expect(cache.use('unknown', SKEW_MS)).toBeUndefined();
    expect(recorder.recorded).toEqual(['owner', 'owner']);
  });

  it('neither moves an entry nor extends its deadline when it serves it or records its use', () => {
    const clock = manualClock();
    const cache = new AccessTokenCache(2, 60, clock, countingRecorder(0));
    cache.set('a', 'token-a', clock.inMinutes(30));
    clock.advance(30_000);
    cache.set('b', 'token-b', clock.inMinutes(30));
    expect(cache.use('a', SKEW_MS)).toBe('token-a');
    cache.set('c', 'token-c', clock.inMinutes(30));
    // a expired first, so it made room for c, used or not.
    expect(cache.get('a', SKEW_MS)).toBeUndefined();
    expect(cache.get('b', SKEW_MS)).toBe('token-b');

    cache.set('a', 'token-a', clock.inMinutes(30));
    clock.advance(59_000);
    expect(cache.use('a', SKEW_MS)).toBe('token-a');
    clock.advance(1_000); // 60 s after a was set: the uses did not extend its life
    expect(cache.use('a', SKEW_MS)).toBeUndefined();
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
    const tokens = [
      '',
      'a',
      'x'.repeat(337),
      'y'.repeat(4096),
      'tökén-ünicode-€-😀',
      '\u0000\u00ff',
      '\u0100\u00ff',
      'lone-\uD800',
    ];
    for (const token of tokens) {
      cache.set('owner', token, inMinutes(30));
      expect(cache.get('owner', SKEW_MS)).toBe(token);
      expect(cache.use('owner', SKEW_MS)).toBe(token);
    }
  });

  it("replaces an owner's token, expiry and age on set", () => {
    const clock = manualClock();
    const cache = new AccessTokenCache(10, 60, clock);
    cache.set('owner', 'old', clock.inMinutes(1));
    clock.advance(50_000);
    cache.set('owner', 'new', clock.inMinutes(30));
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
