import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import {
  RateLimitGovernor,
  RateLimitWaitExceeded,
  readRateLimit,
  readRetryAfter,
  type ProcoreRateLimitState,
} from './rate-limit.governor.js';

/** Time is the subject here: fake timers move it. */
describe('RateLimitGovernor', () => {
  const start = Date.UTC(2026, 11, 2, 12, 0, 0);
  beforeEach(() => {
    jest.useFakeTimers({ now: start, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  const state = (remaining: number, resetInMs: number): ProcoreRateLimitState => ({
    limit: 50,
    remaining,
    resetAt: new Date(Date.now() + resetInMs),
  });
  const far = () => Date.now() + 3_600_000;

  /** Settles microtasks so waiters that can proceed do. */
  async function flush(): Promise<void> {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }

  it('with an unknown budget sends one call first; the others wait for its answer, at most 250 ms', async () => {
    const governor = new RateLimitGovernor();
    await governor.acquire('a', far());
    const sent: number[] = [];
    const second = governor.acquire('a', far()).then(() => sent.push(Date.now() - start));
    const third = governor.acquire('a', far()).then(() => sent.push(Date.now() - start));
    await jest.advanceTimersByTimeAsync(249);
    expect(sent).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    await Promise.all([second, third]);
    // The slow first call did not hold the holder longer: nothing says the budget is spent.
    expect(sent).toEqual([250, 250]);
  });

  it('an answer with the budget releases the waiting callers at once', async () => {
    const governor = new RateLimitGovernor();
    await governor.acquire('a', far());
    let second = false;
    const waiting = governor.acquire('a', far()).then(() => (second = true));
    await flush();
    expect(second).toBe(false);
    governor.release('a', state(10, 10_000), undefined);
    await waiting;
    expect(second).toBe(true);
  });

  it('counts calls in flight against the remaining budget: never more in flight than remain', async () => {
    const governor = new RateLimitGovernor();
    await governor.acquire('a', far());
    governor.release('a', state(3, 10_000), undefined);
    for (let i = 0; i < 3; i++) await governor.acquire('a', far());
    let fourth = false;
    const waiting = governor.acquire('a', far()).then(() => (fourth = true));
    // Each answer reports one fewer: the calls still in flight will take the rest.
    for (const remaining of [2, 1, 0]) {
      governor.release('a', state(remaining, 10_000 - (Date.now() - start)), undefined);
      await flush();
      expect(fourth).toBe(false);
    }
    await jest.advanceTimersByTimeAsync(10_000);
    await waiting;
    expect(fourth).toBe(true);
  });

  it('holds calls until the window resets when the budget is spent, then sends one first', async () => {
    const governor = new RateLimitGovernor();
    await governor.acquire('a', far());
    governor.release('a', state(0, 10_000), undefined);
    const sent: number[] = [];
    const first = governor.acquire('a', far()).then(() => sent.push(Date.now() - start));
    const second = governor.acquire('a', far()).then(() => sent.push(Date.now() - start));
    await jest.advanceTimersByTimeAsync(9_999);
    expect(sent).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    await first;
    // The new window's budget is unknown: the second waits for the first answer.
    expect(sent).toEqual([10_000]);
    governor.release('a', state(49, 10_000), undefined);
    await second;
    expect(sent).toEqual([10_000, 10_000]);
  });

  it('a 429 holds the holder until Retry-After; a caller whose deadline is earlier fails at once', async () => {
    const governor = new RateLimitGovernor();
    await governor.acquire('a', far());
    const retryAt = Date.now() + 30_000;
    governor.release('a', state(0, 60_000), { retryAt });
    await expect(governor.acquire('a', Date.now() + 5_000)).rejects.toEqual(
      new RateLimitWaitExceeded(retryAt),
    );
    expect(governor.heldUntil('a')).toBe(retryAt);
    expect(governor.heldUntil('b')).toBeUndefined();
    // Other holders are not affected.
    await governor.acquire('b', Date.now());
  });

  it('a call answered 429 keeps its place: after the reset it goes before callers that came later', async () => {
    const governor = new RateLimitGovernor();
    const first = {};
    await governor.acquire('a', far(), undefined, first);
    const order: string[] = [];
    const later = ['b', 'c'].map((name) =>
      governor.acquire('a', far()).then(() => order.push(name)),
    );
    await flush();
    governor.release('a', undefined, { retryAt: Date.now() + 5_000 });
    // The 429'd call waits again, with the place it had.
    const retried = governor.acquire('a', far(), undefined, first).then(() => order.push('a'));
    await jest.advanceTimersByTimeAsync(5_000);
    expect(order).toEqual(['a']); // one call first after the reset: the oldest
    governor.release('a', state(10, 10_000), undefined);
    await Promise.all([retried, ...later]);
    expect(order).toEqual(['a', 'b', 'c']);
  });

  it('within one window an answer never raises the budget another answer lowered', async () => {
    const governor = new RateLimitGovernor();
    await governor.acquire('a', far());
    governor.release('a', state(5, 10_000), undefined);
    await governor.acquire('a', far());
    await governor.acquire('a', far());
    governor.release('a', state(0, 10_000), undefined); // answered later, sent later
    governor.release('a', state(3, 10_000), undefined); // sent earlier, answered last
    await expect(governor.acquire('a', Date.now() + 1_000)).rejects.toBeInstanceOf(
      RateLimitWaitExceeded,
    );
  });
});

describe('rate-limit headers', () => {
  it('reads X-Rate-Limit-* and corrects Reset for a skewed server clock', () => {
    const now = Date.UTC(2026, 11, 2, 12, 0, 0);
    const serverNow = now - 60_000; // Procore's clock one minute behind ours
    const parsed = readRateLimit(
      {
        'x-rate-limit-limit': '3600',
        'x-rate-limit-remaining': '12',
        'x-rate-limit-reset': String(Math.floor(serverNow / 1000) + 30),
        date: new Date(serverNow).toUTCString(),
      },
      now,
    );
    expect(parsed).toEqual({ limit: 3600, remaining: 12, resetAt: new Date(now + 30_000) });
    expect(readRateLimit({}, now)).toEqual({
      limit: undefined,
      remaining: undefined,
      resetAt: undefined,
    });
  });

  it('reads Retry-After in seconds and as an HTTP date', () => {
    const now = Date.UTC(2026, 11, 2, 12, 0, 0);
    expect(readRetryAfter('5', now)).toBe(now + 5_000);
    expect(readRetryAfter(new Date(now + 7_000).toUTCString(), now)).toBe(now + 7_000);
    expect(readRetryAfter('soon', now)).toBeUndefined();
    expect(readRetryAfter(undefined, now)).toBeUndefined();
  });
});
