import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { decideShare, SHARE_LIVE_MS, type Shares } from './rate-limit.shares.js';

const RESET = 1_000_000;

/** Instances asking one call at a time, in the given order, from one window of `budget` calls. */
function drain(budget: number, demands: Record<string, number>, order: string[], now = 0) {
  let remaining = budget;
  let shares: Shares = {};
  const granted: Record<string, number> = Object.fromEntries(
    Object.keys(demands).map((id) => [id, 0]),
  );
  let capped = 0;
  for (const instance of order) {
    const decision = decideShare({
      instance,
      demand: demands[instance],
      want: 1,
      remaining,
      windowReset: RESET,
      shares,
      now,
    });
    remaining -= decision.granted;
    granted[instance] += decision.granted;
    if (decision.capped) capped++;
    shares = decision.shares;
  }
  return { granted, remaining, capped, shares };
}

describe('decideShare (how instances share a window)', () => {
  it('splits a window between instances in proportion to their waiting callers, whoever asks first', () => {
    // #0 asks first and most often: without shares it would take the whole window.
    const order = [...Array<string>(60).fill('a'), ...Array<string>(60).fill('b'), 'c', 'c'];
    // Everyone has said how many callers wait before the window is drained.
    const primed = ['b', 'c', ...order];
    const { granted, remaining } = drain(50, { a: 30, b: 30, c: 30 }, primed);
    expect(granted.a).toBe(17);
    expect(granted.b).toBe(17);
    expect(granted.c).toBe(3);
    expect(remaining).toBe(13);

    const uneven = drain(60, { a: 10, b: 50 }, [
      'b',
      ...Array<string>(200).fill('a'),
      ...Array<string>(200).fill('b'),
    ]);
    expect(uneven.granted).toEqual({ a: 10, b: 50 });
  });

  it('never grants more than the window has, and each instance gets its share ± 1 when all keep asking', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 2000 }),
        (budget, demandList, picks) => {
          const ids = demandList.map((_, i) => `i${i}`);
          const demands = Object.fromEntries(ids.map((id, i) => [id, demandList[i]]));
          // Each instance announces itself, then random asks, then everyone asks until drained.
          const order = [...ids, ...picks.map((p) => ids[p % ids.length])];
          for (let round = 0; round < budget + 1; round++) order.push(...ids);
          const { granted, remaining } = drain(budget, demands, order);
          const total = Object.values(granted).reduce((a, b) => a + b, 0);
          expect(total + remaining).toBe(budget);
          expect(remaining).toBe(0);
          const totalDemand = demandList.reduce((a, b) => a + b, 0);
          for (const [i, id] of ids.entries()) {
            const fair = (budget * demandList[i]) / totalDemand;
            expect(granted[id]).toBeLessThanOrEqual(Math.ceil(fair));
            expect(granted[id]).toBeGreaterThanOrEqual(Math.floor(fair) - ids.length);
          }
        },
      ),
    );
  });

  it('gives the share of an instance that stopped asking back to the others', () => {
    const first = drain(30, { a: 10, b: 10 }, ['a', 'b', ...Array<string>(40).fill('a')]);
    expect(first.granted.a).toBe(15);
    expect(first.capped).toBeGreaterThan(0);
    // b has not asked for SHARE_LIVE_MS: its share is a's to take.
    let shares = first.shares;
    let remaining = first.remaining;
    let more = 0;
    for (let i = 0; i < 20; i++) {
      const decision = decideShare({
        instance: 'a',
        demand: 10,
        want: 1,
        remaining,
        windowReset: RESET,
        shares,
        now: SHARE_LIVE_MS,
      });
      more += decision.granted;
      remaining -= decision.granted;
      shares = decision.shares;
    }
    expect(more).toBe(14);
    expect(remaining).toBe(0);
  });

  it('grants nothing for numbers that are not whole and finite, and never more than remains', () => {
    for (const odd of [NaN, Infinity, -Infinity, -5]) {
      const decision = decideShare({
        instance: 'a',
        demand: odd,
        want: odd,
        remaining: 3,
        windowReset: RESET,
        shares: {},
        now: 0,
      });
      expect(decision.granted).toBe(0);
    }
    const over = decideShare({
      instance: 'a',
      demand: 1,
      want: 10,
      remaining: NaN,
      windowReset: RESET,
      shares: {},
      now: 0,
    });
    expect(over.granted).toBe(0);
    expect(
      decideShare({
        instance: 'a',
        demand: 2.7,
        want: 2.9,
        remaining: 5.5,
        windowReset: RESET,
        shares: {},
        now: 0,
      }).granted,
    ).toBe(2);
  });

  it('counts grants per window: a new window starts every share afresh', () => {
    const first = drain(10, { a: 5 }, Array<string>(20).fill('a'));
    expect(first.granted.a).toBe(10);
    const next = decideShare({
      instance: 'a',
      demand: 5,
      want: 4,
      remaining: 10,
      windowReset: RESET + 10_000,
      shares: first.shares,
      now: 0,
    });
    expect(next.granted).toBe(4);
    expect(next.shares['a']).toMatchObject({ g: 4, r: RESET + 10_000 });
  });
});
