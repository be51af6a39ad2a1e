import { Injectable } from '@nestjs/common';
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

  /** Number of operations running now. */
  get size(): number {
    return this.running.size;
  }

  /** Whether shutdown has begun. */
  get shuttingDown(): boolean {
    return this.closing.signal.aborted;
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
    this.closing.abort();
    const deadline = Date.now() + timeoutMs;
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
