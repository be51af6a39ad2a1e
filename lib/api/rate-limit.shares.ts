/**
 * One instance's entry in a holder's shares (`procore_rate_limits.shares`, keyed by instance id).
 * Short keys: the map is rewritten on every reservation.
 */
export interface ShareEntry {
  /** Callers of this instance waiting to call for the holder (its demand), when last seen. */
  w: number;
  /** When the instance last reserved or asked (database clock, epoch ms). */
  s: number;
  /** Calls granted to it in the window `r`. */
  g: number;
  /** The window (its reset, epoch ms) that `g` counts in. */
  r: number;
}

export type Shares = Record<string, ShareEntry>;

/** An instance that has not asked for this long no longer holds a share (it stopped, or has no callers). */
export const SHARE_LIVE_MS = 2_000;
/** Entries unseen for this long are dropped from the map. */
const SHARE_FORGET_MS = 60_000;
/** Two resets this close are the same window (an answer may report a reset a second later). */
const SAME_WINDOW_MS = 1_000;

export interface ShareRequest {
  instance: string;
  /** Callers of this instance waiting for the holder, the one asking included (≥ 1). */
  demand: number;
  /** Calls wanted now. */
  want: number;
  /** The window's calls not yet reserved. */
  remaining: number;
  /** The window's reset (epoch ms). */
  windowReset: number;
  shares: Shares;
  /** The database's clock (epoch ms). */
  now: number;
}

export interface ShareDecision {
  granted: number;
  /** Calls left to this instance's share after this grant: 0 with `remaining` > 0 means "wait your turn". */
  capped: boolean;
  shares: Shares;
}

/**
 * How many calls of a window one instance may reserve now: the window's budget is split between
 * the instances that have callers waiting, in proportion to how many each has, so a caller's wait
 * does not depend on which instance it landed on. Without it the instance that learns a new window
 * first (or simply asks fastest) reserves most of it, and the callers of the others starve past
 * their wait limit (bench/api-rate-governor).
 *
 * Work-conserving: an instance's share is held only while it keeps asking (`SHARE_LIVE_MS`), so a
 * stopped instance or one whose callers are served gives its share back to the others.
 */
export function decideShare(request: ShareRequest): ShareDecision {
  const { instance, now, windowReset } = request;
  // Whatever arrives (a hand-edited row, a bug elsewhere), never a grant beyond the window.
  const whole = (value: number) => (Number.isFinite(value) ? Math.floor(value) : 0);
  const demand = Math.max(1, whole(request.demand));
  const want = Math.max(0, whole(request.want));
  const remaining = Math.max(0, whole(request.remaining));
  const sameWindow = (entry: ShareEntry) => Math.abs(entry.r - windowReset) < SAME_WINDOW_MS;
  const shares: Shares = {};
  for (const [id, entry] of Object.entries(request.shares)) {
    if (id !== instance && now - entry.s < SHARE_FORGET_MS) shares[id] = entry;
  }
  const previous = request.shares[instance];
  const mine: ShareEntry = {
    w: demand,
    s: now,
    g: previous && sameWindow(previous) ? previous.g : 0,
    r: windowReset,
  };
  // The window's whole budget: what is left, and what every instance has taken of it.
  let budget = remaining + mine.g;
  let totalDemand = demand;
  for (const entry of Object.values(shares)) {
    if (sameWindow(entry)) budget += entry.g;
    if (entry.w > 0 && now - entry.s < SHARE_LIVE_MS) totalDemand += entry.w;
  }
  const cap = Math.ceil((budget * demand) / totalDemand);
  const granted = Math.max(0, Math.min(want, remaining, cap - mine.g));
  mine.g += granted;
  shares[instance] = mine;
  return { granted, capped: granted === 0 && remaining > 0, shares };
}
