import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { ProcoreRateLimitEntity } from '../storage/procore-rate-limit.entity.js';
import { decideShare, type Shares } from './rate-limit.shares.js';
import { quoteTablePath } from '../storage/quote-table-path.js';

/** What a reservation got: calls granted now, and the window they belong to. */
export interface LedgerGrant {
  /** Calls this instance may send now (0: the window is spent, or unknown). */
  granted: number;
  /** The window's reset (epoch ms), when the ledger knows the window. */
  resetAt: number | undefined;
  /** Another instance's call is finding out the window (`resetAt`: when that claim lapses). */
  probing: boolean;
  /** The window has calls left, but this instance has had its share of them for now. */
  capped: boolean;
  /** The window's calls not yet reserved, before this grant. */
  remaining: number;
}

/**
 * Procore's rate-limit budget shared by the app's instances, in PostgreSQL (`procore_rate_limits`,
 * the database the package already uses: no new infrastructure). Each instance reserves calls
 * from a holder's row before sending them — in chunks while the budget is large, one at a time
 * near its end — and every answer's `X-Rate-Limit-*` headers correct the row. Without it each
 * instance would spend the whole budget its own answers report, and N instances would fire N
 * times the budget into 429s at every reset (measured in bench/api-rate-governor).
 */
export class RateLimitLedger {
  /** This instance's key in the holders' shares. */
  private readonly instance = randomUUID();

  constructor(private readonly resolveDataSource: () => DataSource) {}

  /**
   * Reserves up to `want` calls of the holder's current window for this instance, within its fair
   * share (`decideShare`: split by the callers each instance has waiting). One short transaction
   * holding the row lock: read, decide, write.
   */
  async reserve(holderKey: string, want: number, demand = 1): Promise<LedgerGrant | undefined> {
    const table = this.table;
    return this.dataSource.transaction(async (manager) => {
      const rows = (await manager.query(
        `SELECT remaining, shares, extract(epoch FROM window_reset) * 1000 AS reset,
                extract(epoch FROM now()) * 1000 AS now
           FROM ${table} WHERE holder_key = $1 AND window_reset > now() FOR UPDATE`,
        [holderKey],
      )) as { remaining: number; shares: Shares | null; reset: string; now: string }[];
      const row = rows[0];
      // No row, or its window is over: the budget is unknown until an answer tells.
      if (!row) return undefined;
      const resetAt = Number(row.reset);
      const probing = row.remaining < 0;
      const decision = decideShare({
        instance: this.instance,
        demand,
        want: probing ? 0 : want,
        remaining: probing ? 0 : row.remaining,
        windowReset: resetAt,
        shares: row.shares ?? {},
        now: Number(row.now),
      });
      // While another instance's call finds out the window, asking still records this
      // instance's callers, so the window is shared from its first call.
      await manager.query(
        `UPDATE ${table} SET remaining = remaining - $2, shares = $3::jsonb, updated_at = now()
          WHERE holder_key = $1`,
        [holderKey, decision.granted, JSON.stringify(decision.shares)],
      );
      return {
        granted: decision.granted,
        resetAt,
        probing,
        capped: decision.capped,
        remaining: probing ? 0 : row.remaining,
      };
    });
  }

  /**
   * Nobody knows the holder's current window: claims the one call that will tell it, for
   * `leaseMs` (a row with `remaining` -1 that others read as "wait"). False when another instance
   * holds the claim or already knows the window. Without it every instance would send its own
   * first call into a new window, unaccounted.
   */
  async claimProbe(holderKey: string, leaseMs: number): Promise<boolean> {
    const result: unknown = await this.dataSource.query(
      `INSERT INTO ${this.table} AS t (holder_key, window_reset, remaining, updated_at)
       VALUES ($1, now() + make_interval(secs => $2::float8 / 1000), -1, now())
       ON CONFLICT (holder_key) DO UPDATE
         SET window_reset = EXCLUDED.window_reset, remaining = -1, updated_at = now()
         WHERE t.window_reset <= now()
       RETURNING holder_key`,
      [holderKey, leaseMs],
    );
    const rows = (
      Array.isArray(result) && Array.isArray(result[0]) ? result[0] : result
    ) as unknown[];
    return rows.length > 0;
  }

  /** Procore answered 429: no instance calls for this holder before `retryAt`. */
  async rateLimited(holderKey: string, retryAt: number): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO ${this.table} AS t (holder_key, window_reset, remaining, updated_at)
       VALUES ($1, $2, 0, now())
       ON CONFLICT (holder_key) DO UPDATE SET window_reset = $2, remaining = 0, updated_at = now()`,
      [holderKey, new Date(retryAt)],
    );
  }

  /**
   * Records what an answer said. A later window replaces the row; within one window the row only
   * ever goes down (answers of calls sent earlier may arrive later and report more).
   */
  async observe(holderKey: string, remaining: number, resetAt: number): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO ${this.table} AS t (holder_key, window_reset, remaining, updated_at)
       VALUES ($1, $2, $3, now())
       ON CONFLICT (holder_key) DO UPDATE SET
         remaining = CASE
           WHEN t.remaining < 0 OR t.window_reset <= now()
                OR EXCLUDED.window_reset > t.window_reset + interval '1 second'
             THEN EXCLUDED.remaining
           ELSE LEAST(t.remaining, EXCLUDED.remaining) END,
         window_reset = CASE
           WHEN t.remaining < 0 OR t.window_reset <= now() THEN EXCLUDED.window_reset
           ELSE GREATEST(t.window_reset, EXCLUDED.window_reset) END,
         updated_at = now()`,
      [holderKey, new Date(resetAt), Math.max(0, Math.floor(remaining))],
    );
  }

  private get dataSource(): DataSource {
    return this.resolveDataSource();
  }

  private get table(): string {
    return quoteTablePath(this.dataSource.getMetadata(ProcoreRateLimitEntity).tablePath);
  }
}
