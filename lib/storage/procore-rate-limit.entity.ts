import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * Procore's rate-limit budget of one token holder, shared by every instance of the app
 * (`procore_rate_limits`): Procore counts calls per token, not per instance, so instances reserve
 * calls from this row instead of each spending what its own answers report.
 */
@Entity({ name: 'procore_rate_limits' })
export class ProcoreRateLimitEntity {
  /** `owner<US><id>` or `account<US><name><US><company>` (US: U+001F). */
  @PrimaryColumn({ name: 'holder_key', type: 'varchar', length: 400 })
  holderKey!: string;

  /** When Procore's window (the one closer to running out) resets. */
  @Column({ name: 'window_reset', type: 'timestamptz' })
  windowReset!: Date;

  /** Calls of this window not yet reserved by an instance. */
  @Column({ type: 'integer' })
  remaining!: number;

  /**
   * Each instance's share of the window: its callers waiting, calls granted, when last seen
   * (keyed by a per-process instance id; see `decideShare`).
   */
  @Column({ type: 'jsonb', default: () => "'{}'::jsonb" })
  shares!: Record<string, unknown>;

  @Column({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;
}
