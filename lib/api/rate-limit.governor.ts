import type { RateLimitLedger } from './rate-limit.ledger.js';

/** What Procore said about a token holder's budget in one answer. */
export interface ProcoreRateLimitState {
  /** `X-Rate-Limit-Limit`: calls allowed in the window that is closer to running out. */
  limit: number | undefined;
  /** `X-Rate-Limit-Remaining`. */
  remaining: number | undefined;
  /** `X-Rate-Limit-Reset`, as a local instant (corrected by the answer's `Date`). */
  resetAt: Date | undefined;
}

interface Budget {
  remaining: number | undefined;
  /** Local epoch ms when the window resets; the budget is unknown after it. */
  resetAt: number;
  /** No call before this instant (a 429). */
  blockedUntil: number;
  /** Calls sent and not answered yet. */
  inFlight: number;
  /** The last known window ran out (a 429, or `remaining` 0): its reset is approached carefully. */
  exhausted: boolean;
  /** When the call that will tell an unknown budget was sent. */
  probeSentAt: number;
  /** Calls reserved from the shared ledger for the window `grantWindow`, not sent yet. */
  granted: number;
  grantWindow: number;
  reserving: Promise<void> | undefined;
  /** The ledger failed on the last try: this instance goes on alone. */
  ledgerDown: boolean;
  /** Answers seen (to correct the ledger now and then). */
  answers: number;
  /** Callers inside `acquire` (this instance's demand, for its share of the shared budget). */
  demand: number;
  /** Callers waiting, oldest first: a caller keeps its place when it has to wait again. */
  waiters: { ticket: number; done: () => void }[];
  nextTicket: number;
  timer: NodeJS.Timeout | undefined;
  timerAt: number;
}

/** How long callers wait for the answer of the call that tells an unknown budget, unless it ran out. */
const PROBE_WAIT_MS = 250;
/** How often an instance looks again while another instance's call finds out a new window. */
const PROBE_POLL_MS = 20;
/** How often an instance that has had its share of a window asks again (others may not use theirs). */
const SHARE_POLL_MS = 100;

/** Why a caller may not send now: wait until `until` (epoch ms), or for an answer (`until` undefined). */
type Verdict = { send: true } | { send: false; until: number | undefined };

/** Thrown by `acquire` when waiting would pass the caller's deadline. */
export class RateLimitWaitExceeded extends Error {
  constructor(readonly retryAt: number) {
    super('rate limit wait exceeded');
  }
}

/**
 * Procore's rate limit, as one instance learns it from the `X-Rate-Limit-*` headers of its own
 * answers: per token holder (an owner, or a service account and company). Procore asks apps to
 * stop calling until the reset rather than fire into 429s, so:
 *
 * - with the budget spent (remaining minus calls in flight reaches 0), or after a 429, further
 *   calls of that holder wait for the reset (or `Retry-After`) instead of being sent;
 * - when a window has reset and the new budget is not known yet, one call is sent first and the
 *   others wait for its answer (a reset must not release every waiter into a possibly smaller
 *   budget at once);
 * - a wait longer than the caller's deadline fails at once with `RateLimitWaitExceeded`.
 */
export class RateLimitGovernor {
  private readonly budgets = new Map<string, Budget>();

  constructor(
    /** The budget shared with the app's other instances; none: this instance's answers only. */
    private readonly ledger?: RateLimitLedger,
    /** A ledger failure (the database): the governor goes on with what this instance knows. */
    private readonly onLedgerError: (error: unknown) => void = () => undefined,
    private readonly maxHolders = 10_000,
  ) {}

  /**
   * Waits until a call of `holder` may be sent (then counts it in flight) or throws. `place` keeps
   * a caller's place in the line across its attempts: a call answered 429 waits again as the
   * oldest, not behind every caller that came after it.
   */
  async acquire(
    holder: string,
    deadline: number,
    signal?: AbortSignal,
    place: { ticket?: number } = {},
  ): Promise<void> {
    const budget = this.budget(holder);
    const ticket = (place.ticket ??= budget.nextTicket++);
    budget.demand++;
    try {
      await this.waitForTurn(holder, budget, ticket, deadline, signal);
    } finally {
      budget.demand--;
    }
  }

  private async waitForTurn(
    holder: string,
    budget: Budget,
    ticket: number,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const verdict = this.verdict(budget, Date.now());
      if (verdict.send) {
        // The shared budget is consulted once the window is known, or when a window that ran out
        // resets (so instances do not all rush into it); a holder never seen limited, or whose
        // answers carry no rate-limit headers, is not held back by it.
        const shared = this.ledger && (this.known(budget, Date.now()) || budget.exhausted);
        if (shared && !(await this.reserved(holder, budget))) {
          continue; // the shared budget is spent: check again (the verdict now waits)
        }
        budget.inFlight++;
        return;
      }
      if (verdict.until !== undefined && verdict.until > deadline) {
        throw new RateLimitWaitExceeded(verdict.until);
      }
      await this.wait(budget, verdict.until ?? deadline, ticket, signal);
      if (Date.now() > deadline && !this.verdict(budget, Date.now()).send) {
        throw new RateLimitWaitExceeded(verdict.until ?? deadline);
      }
    }
  }

  /** Whether the current window's budget is known (an answer of this window told it). */
  private known(budget: Budget, now: number): boolean {
    return budget.remaining !== undefined && budget.resetAt > now;
  }

  /**
   * Takes one call from this instance's share of the shared budget, reserving more from the
   * ledger when the share is empty (in chunks while the budget is large). False when the ledger
   * says the window is spent: the budget is marked so, and the caller waits for the reset.
   */
  private async reserved(holder: string, budget: Budget): Promise<boolean> {
    if (budget.granted > 0 && budget.grantWindow === budget.resetAt) {
      budget.granted--;
      return true;
    }
    budget.reserving ??= this.reserveChunk(holder, budget).finally(() => {
      budget.reserving = undefined;
    });
    await budget.reserving;
    if (budget.granted > 0 && budget.grantWindow === budget.resetAt) {
      budget.granted--;
      return true;
    }
    return budget.ledgerDown;
  }

  private async reserveChunk(holder: string, budget: Budget): Promise<void> {
    const remaining = budget.remaining ?? 0;
    // Near the end of a window, one call at a time, so no instance sits on calls others could send.
    const want = remaining < 200 ? 1 : Math.min(50, Math.floor(remaining / 20));
    try {
      const ledger = this.ledger as RateLimitLedger;
      let grant = await ledger.reserve(holder, want, budget.demand);
      if ((grant === undefined || grant.probing) && this.known(budget, Date.now())) {
        // This instance knows the window and the ledger not yet (its answer's write is on the
        // way): write it now, then reserve from it, so no call goes out unaccounted.
        await ledger.observe(holder, budget.remaining as number, budget.resetAt);
        grant = await ledger.reserve(holder, want, budget.demand);
      }
      if (grant === undefined) {
        // Nobody knows this window yet: one call, of one instance, goes to find out.
        if (await ledger.claimProbe(holder, PROBE_WAIT_MS)) {
          budget.ledgerDown = false;
          budget.granted = 1;
          budget.grantWindow = budget.resetAt;
          return;
        }
        grant = await ledger.reserve(holder, want, budget.demand);
      }
      budget.ledgerDown = false;
      if (grant === undefined) {
        budget.granted = 1;
        budget.grantWindow = budget.resetAt;
        return;
      }
      if (grant.probing) {
        // Another instance's call is finding out the window: wait for it (its claim is short).
        // Checked again every PROBE_POLL_MS, so all instances learn the new window about as soon
        // as the prober writes it and compete for it on equal terms.
        budget.blockedUntil = Math.max(
          budget.blockedUntil,
          Math.min(grant.resetAt ?? 0, Date.now() + PROBE_POLL_MS),
        );
        return;
      }
      if (!this.known(budget, Date.now()) && grant.resetAt !== undefined) {
        // Another instance learned the new window: adopt it instead of probing Procore.
        budget.resetAt = grant.resetAt;
        budget.remaining = grant.remaining;
        budget.exhausted = grant.remaining === 0;
      }
      if (grant.capped) {
        // The window has calls left, but this instance has had its share for now: the callers of
        // the others get theirs; ask again soon (a share nobody uses comes back).
        budget.blockedUntil = Math.max(budget.blockedUntil, Date.now() + SHARE_POLL_MS);
        return;
      }
      if (grant.granted > 0) {
        budget.granted = grant.granted;
        budget.grantWindow = budget.resetAt;
        return;
      }
      budget.remaining = 0;
      budget.exhausted = true;
      budget.resetAt = Math.max(budget.resetAt, grant.resetAt ?? 0);
    } catch (error) {
      budget.ledgerDown = true;
      this.onLedgerError(error);
    }
  }

  /** Records an answer of a call counted by `acquire` (or its failure: `state` undefined). */
  release(
    holder: string,
    state: ProcoreRateLimitState | undefined,
    rateLimited: { retryAt: number } | undefined,
  ): void {
    const budget = this.budget(holder);
    budget.inFlight = Math.max(0, budget.inFlight - 1);
    const now = Date.now();
    if (!rateLimited && state?.remaining !== undefined && state.resetAt !== undefined) {
      const resetAt = state.resetAt.getTime();
      // A new window replaces the old budget; within one window answers only ever lower it
      // (answers of calls sent earlier may arrive later and report more).
      const sameWindow = Math.abs(resetAt - budget.resetAt) < 1_000 && budget.resetAt > now;
      budget.remaining =
        sameWindow && budget.remaining !== undefined
          ? Math.min(budget.remaining, state.remaining)
          : state.remaining;
      if (!sameWindow) budget.granted = 0;
      budget.resetAt = resetAt;
      budget.exhausted = budget.remaining <= 0;
      this.share(holder, budget, !sameWindow, state.remaining, resetAt);
    }
    if (rateLimited) {
      budget.blockedUntil = Math.max(budget.blockedUntil, rateLimited.retryAt);
      // Procore says when to call again (Retry-After, else the reset): until then nothing is sent;
      // then one call finds out the budget.
      budget.remaining = 0;
      budget.resetAt = rateLimited.retryAt;
      budget.exhausted = true;
      budget.granted = 0;
      this.ledger?.rateLimited(holder, rateLimited.retryAt).catch((error: unknown) => {
        this.onLedgerError(error);
      });
    }
    this.wake(budget);
  }

  /**
   * Tells the ledger what an answer said: a new window, a 429, and every answer near the end of a
   * window (where precision matters); a large budget is corrected every 50th answer only, so the
   * hot path does not write on every call.
   */
  private share(
    holder: string,
    budget: Budget,
    changed: boolean,
    remaining: number,
    resetAt: number,
  ): void {
    if (!this.ledger) return;
    budget.answers++;
    if (!changed && remaining >= 200 && budget.answers % 50 !== 0) return;
    this.ledger.observe(holder, remaining, resetAt).catch((error: unknown) => {
      this.onLedgerError(error);
    });
  }

  /** Until when calls of `holder` are held, if they are (for `ProcoreRateLimitedError`). */
  heldUntil(holder: string): number | undefined {
    const budget = this.budgets.get(holder);
    if (!budget) return undefined;
    const verdict = this.verdict(budget, Date.now());
    return verdict.send ? undefined : verdict.until;
  }

  private verdict(budget: Budget, now: number): Verdict {
    if (budget.blockedUntil > now) return { send: false, until: budget.blockedUntil };
    if (budget.remaining === undefined || budget.resetAt <= now) {
      // Unknown budget (a first call, or a window that reset): one call goes first and the others
      // wait for its answer, which tells the budget, so a burst is not fired into 429s. After a
      // window that ran out they wait for that answer; otherwise at most PROBE_WAIT_MS, so one
      // slow call does not hold a holder with budget to spare.
      if (budget.inFlight === 0) {
        budget.probeSentAt = now;
        return { send: true };
      }
      if (budget.exhausted) return { send: false, until: undefined };
      const until = budget.probeSentAt + PROBE_WAIT_MS;
      return until <= now ? { send: true } : { send: false, until };
    }
    if (budget.remaining - budget.inFlight > 0) return { send: true };
    // Spent, counting calls in flight: wait for the reset, or for an answer that says otherwise.
    return { send: false, until: budget.inFlight > 0 ? undefined : budget.resetAt };
  }

  private wait(budget: Budget, until: number, ticket: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        ticket,
        done: () => {
          const index = budget.waiters.indexOf(entry);
          if (index >= 0) budget.waiters.splice(index, 1);
          signal?.removeEventListener('abort', entry.done);
          resolve();
        },
      };
      // In ticket order: woken together, the oldest callers try first (first come, first served).
      const at = budget.waiters.findIndex((waiter) => waiter.ticket > ticket);
      budget.waiters.splice(at < 0 ? budget.waiters.length : at, 0, entry);
      signal?.addEventListener('abort', entry.done, { once: true });
      this.schedule(budget, until);
    });
  }

  /** One timer per holder, at the earliest instant a waiter must re-check. */
  private schedule(budget: Budget, at: number): void {
    if (budget.timer && budget.timerAt <= at) return;
    if (budget.timer) clearTimeout(budget.timer);
    budget.timerAt = at;
    budget.timer = setTimeout(
      () => {
        budget.timer = undefined;
        this.wake(budget);
      },
      Math.max(0, at - Date.now()),
    );
    budget.timer.unref?.();
  }

  private wake(budget: Budget): void {
    for (const waiter of [...budget.waiters]) waiter.done();
  }

  private budget(holder: string): Budget {
    let budget = this.budgets.get(holder);
    if (!budget) {
      if (this.budgets.size >= this.maxHolders) this.evictIdle();
      budget = {
        remaining: undefined,
        resetAt: 0,
        blockedUntil: 0,
        inFlight: 0,
        exhausted: false,
        probeSentAt: 0,
        granted: 0,
        grantWindow: 0,
        reserving: undefined,
        ledgerDown: false,
        answers: 0,
        demand: 0,
        waiters: [],
        nextTicket: 0,
        timer: undefined,
        timerAt: 0,
      };
      this.budgets.set(holder, budget);
    }
    return budget;
  }

  /** Forgets holders with nothing in flight, nobody waiting and no live window. */
  private evictIdle(): void {
    const now = Date.now();
    for (const [holder, budget] of this.budgets) {
      if (budget.demand === 0 && budget.inFlight === 0 && budget.resetAt <= now) {
        this.budgets.delete(holder);
      }
    }
  }
}

/** Reads Procore's rate-limit headers; `Reset` is corrected for the clock difference `Date` shows. */
export function readRateLimit(
  headers: Record<string, string>,
  now = Date.now(),
): ProcoreRateLimitState {
  const number = (name: string) => {
    const value = Number(headers[name]);
    return headers[name] !== undefined && Number.isFinite(value) ? value : undefined;
  };
  const reset = number('x-rate-limit-reset');
  const serverNow = headers.date ? Date.parse(headers.date) : NaN;
  const skew = Number.isNaN(serverNow) ? 0 : now - serverNow;
  // `Date` has 1 s resolution: never read a reset as earlier than Procore meant.
  const correction = Math.abs(skew) > 2_000 ? skew : 0;
  return {
    limit: number('x-rate-limit-limit'),
    remaining: number('x-rate-limit-remaining'),
    resetAt: reset === undefined ? undefined : new Date(reset * 1000 + correction),
  };
}

/** `Retry-After` in seconds or as an HTTP date, as a local instant. */
export function readRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return now + Math.max(0, seconds) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(now, date);
}
