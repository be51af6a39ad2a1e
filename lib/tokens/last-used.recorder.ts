import { Logger } from '@nestjs/common';
import type { ProcoreTokenStore } from '../storage/procore-token.store.js';
import type { AccessTokenUseRecorder } from './access-token.cache.js';

/**
 * Records "last used" off the hot path: at most once per `intervalMs` per owner, written in one
 * batched statement on the next tick. The scheduler uses it to skip idle connections. A cache hit
 * reaches it only once per interval per cached entry (`AccessTokenCache.use()`).
 */
export class LastUsedRecorder implements AccessTokenUseRecorder {
  private readonly logger = new Logger('ProcoreAuth');
  private readonly lastRecorded = new Map<string, number>();
  private pending = new Set<string>();
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: ProcoreTokenStore,
    readonly intervalMs: number,
  ) {}

  record(ownerId: string): void {
    const now = Date.now();
    const last = this.lastRecorded.get(ownerId);
    if (last !== undefined && now - last < this.intervalMs) return;
    this.lastRecorded.set(ownerId, now);
    if (this.lastRecorded.size > 100_000) this.lastRecorded.clear();
    this.pending.add(ownerId);
    this.timer ??= setTimeout(() => void this.flush(), 0);
    this.timer.unref?.();
  }

  /** Writes what is pending (also called on shutdown). */
  async flush(): Promise<void> {
    this.timer = undefined;
    await this.flushing;
    if (this.pending.size === 0) return;
    const ownerIds = [...this.pending];
    this.pending = new Set();
    this.flushing = this.store.touch(ownerIds, new Date()).catch((error: unknown) => {
      this.logger.warn(
        `Could not record last use of ${ownerIds.length} Procore connection(s): ${String((error as Error)?.message ?? error)}`,
      );
    });
    await this.flushing;
  }
}
