import { Injectable } from '@nestjs/common';
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProcoreShutdownError } from '../errors/procore-shutdown.error.js';

/**
 * Work that must finish before the DataSource closes: refreshes (request path, `refresh()`, the
 * scheduler) and revocations. A refresh interrupted after Procore rotated the token, but before
 * the new one was committed, loses the user's connection: on shutdown the module waits for these
 * (bounded by `shutdownTimeoutMs`) in `beforeApplicationShutdown`, which Nest runs before any
 * `onApplicationShutdown` hook, and so before TypeORM destroys the DataSource.
 */
@Injectable()
export class ProcoreInFlightOperations {
  private readonly running = new Set<Promise<unknown>>();
  private readonly closing = new AbortController();
  private closed = false;
  /** When the drain gives up (epoch ms); set when shutdown begins. */
  private deadline = Number.POSITIVE_INFINITY;

  constructor() {
    // One listener per pausing retry: many owners may be waiting at once.
    setMaxListeners(0, this.closing.signal);
  }

  /** Number of operations running now. */
  get size(): number {
    return this.running.size;
  }

  /** Whether shutdown has begun. */
  get shuttingDown(): boolean {
    return this.closing.signal.aborted;
  }

  /**
   * Whether a call taking up to `ms` can still finish before the drain gives up. A refresh must not
   * start a call to Procore it cannot finish: its rotated token would be lost with the DataSource.
   */
  hasTimeFor(ms: number): boolean {
    return this.deadline - Date.now() >= ms;
  }

  /** Runs `work` tracked; refuses to start once the drain has finished. */
  run<T>(doing: string, work: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new ProcoreShutdownError(doing));
    const promise = work();
    this.running.add(promise);
    const done = () => this.running.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /**
   * Waits `ms` between retries, outside any transaction. Shutdown ends the wait early with a
   * `ProcoreShutdownError`: a retry is not worth keeping the process (and the deploy) waiting.
   */
  async pause(ms: number, doing: string): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.closing.signal });
    } catch {
      throw new ProcoreShutdownError(doing);
    }
  }

  /**
   * Starts the shutdown: waits for running operations (and ones started meanwhile) for at most
   * `timeoutMs`, then refuses new ones. Returns how many were still running.
   */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    this.deadline = deadline;
    this.closing.abort();
    while (this.running.size > 0 && Date.now() < deadline) {
      const timer = new AbortController();
      await Promise.race([
        Promise.allSettled([...this.running]),
        sleep(deadline - Date.now(), undefined, { signal: timer.signal }).catch(() => undefined),
      ]);
      timer.abort();
    }
    this.closed = true;
    return this.running.size;
  }
}
