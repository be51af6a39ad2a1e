import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ResolvedProcoreAuthOptions } from '../config/resolve-procore-auth-options.js';
import { ProcoreReauthorizationRequiredError } from '../errors/procore-reauthorization-required.error.js';
import { PROCORE_AUTH_OPTIONS } from '../procore-auth.constants.js';
import { ProcoreTokenStore, type ProcoreTokenRecord } from '../storage/procore-token.store.js';
import { storageErrorCode } from '../storage/storage-errors.js';
import { ProcoreMetrics } from '../metrics/procore-metrics.js';
import { ProcoreTokenRefresher } from './procore-token.refresher.js';

/**
 * Name under which the job is registered with `SchedulerRegistry` when the app has one.
 * @publicApi
 */
export const PROCORE_REFRESH_JOB = 'procore-token-refresh';

/** What one tick did. */
export interface ProcoreRefreshTickSummary {
  claimed: number;
  refreshed: number;
  /** Claimed, but already refreshed by a request or another instance meanwhile. */
  skipped: number;
  failed: number;
  reauthorizationRequired: number;
  durationMs: number;
}

/** Default look-ahead: min(15 minutes, half the token's lifetime). */
function defaultLookAheadMs(record: ProcoreTokenRecord): number {
  return Math.min(900, (record.tokenLifetimeSeconds ?? 5400) / 2) * 1000;
}

/**
 * Refreshes tokens before they expire, so requests rarely have to. Runs inside the library (the
 * app need not call `ScheduleModule.forRoot()`), registers its interval with the app's
 * `SchedulerRegistry` when there is one (so the app can see and stop it), and stops on shutdown.
 *
 * Each tick claims due connections in batches (`FOR UPDATE SKIP LOCKED` plus a short lease, so
 * instances share the work without overlap) and refreshes them with bounded concurrency through
 * the same exactly-once protocol as the request path. On shutdown no new refresh starts; the ones
 * in flight finish, and their transactions commit, before the DataSource closes.
 * @publicApi
 */
@Injectable()
export class TokenRefreshScheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('ProcoreAuth');
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ProcoreRefreshTickSummary> | undefined;
  private stopping = false;
  /** The error that stopped the previous tick: repeats are logged at debug level, not once a tick. */
  private failing: string | undefined;
  private registry:
    | { addInterval(name: string, id: NodeJS.Timeout): void; deleteInterval(name: string): void }
    | undefined;

  constructor(
    @Inject(PROCORE_AUTH_OPTIONS) private readonly options: ResolvedProcoreAuthOptions,
    private readonly store: ProcoreTokenStore,
    private readonly refresher: ProcoreTokenRefresher,
    private readonly moduleRef: ModuleRef,
    private readonly metrics: ProcoreMetrics,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.options.scheduler.enabled) return;
    this.timer = setInterval(
      () => void this.runTick(true).catch(() => undefined),
      this.options.scheduler.intervalMs,
    );
    this.timer.unref();
    this.registry = await this.findSchedulerRegistry();
    this.registry?.addInterval(PROCORE_REFRESH_JOB, this.timer);
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    if (this.timer) {
      if (this.registry) this.tryDelete(this.registry);
      clearInterval(this.timer);
      this.timer = undefined;
    }
    // Its refreshes are tracked by ProcoreInFlightOperations, whose drain bounds the wait.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.running?.catch(() => undefined),
      new Promise((resolve) => {
        timer = setTimeout(resolve, this.options.shutdownTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /**
   * Runs one tick now (a tick already running is joined, never doubled). The interval calls this
   * (with a random delay of up to 10% of the interval); tests and admin commands may too.
   */
  runTick(jitter = false): Promise<ProcoreRefreshTickSummary> {
    this.running ??= this.tick(jitter).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async tick(jitter: boolean): Promise<ProcoreRefreshTickSummary> {
    if (jitter) {
      // Instances started together would otherwise hit the database and Procore in lockstep.
      await sleep(Math.random() * Math.min(this.options.scheduler.intervalMs * 0.1, 5_000));
    }
    const startedAt = Date.now();
    const summary: ProcoreRefreshTickSummary = {
      claimed: 0,
      refreshed: 0,
      skipped: 0,
      failed: 0,
      reauthorizationRequired: 0,
      durationMs: 0,
    };
    const { batchSize, activeWithinDays, lookAheadSeconds } = this.options.scheduler;
    try {
      while (!this.stopping) {
        const ownerIds = await this.store.claimDue({
          lookAheadSeconds,
          activeSince: new Date(Date.now() - activeWithinDays * 86_400_000),
          limit: batchSize,
          leaseSeconds: this.leaseSeconds(),
        });
        summary.claimed += ownerIds.length;
        await this.refreshAll(ownerIds, summary);
        if (ownerIds.length < batchSize) break;
      }
      if (this.failing !== undefined) {
        this.logger.log('Procore token refresh: the database answers again; ticks resumed.');
        this.failing = undefined;
      }
    } catch (error) {
      const code = storageErrorCode(error);
      const line = `Procore token refresh tick stopped (${code}): ${(error as Error).message}. Tokens already cached keep being served; the next tick tries again.`;
      if (this.failing === code) this.logger.debug(line);
      else this.logger.error(line);
      this.failing = code;
    }
    summary.durationMs = Date.now() - startedAt;
    this.metrics.schedulerTick(summary.durationMs, summary.claimed);
    const line = `Procore token refresh: claimed ${summary.claimed}, refreshed ${summary.refreshed}, skipped ${summary.skipped}, failed ${summary.failed}, reauthorization required ${summary.reauthorizationRequired} in ${summary.durationMs} ms`;
    if (summary.claimed > 0) this.logger.log(line);
    else this.logger.debug(line);
    this.warnIfBehind(summary);
    return summary;
  }

  /**
   * A tick longer than the interval means connections came due faster than this instance (and the
   * others) refresh them: the backlog waits, and past the look-ahead tokens expire unrefreshed
   * (requests then refresh on their own path). Says so, with the sizing rule.
   */
  private warnIfBehind(summary: ProcoreRefreshTickSummary): void {
    const { intervalMs, concurrency } = this.options.scheduler;
    if (this.stopping || summary.durationMs <= intervalMs) return;
    const perSecond = (summary.claimed * 1000) / Math.max(1, summary.durationMs);
    this.logger.warn(
      `Procore token refresh cannot keep up: this tick took ${Math.round(summary.durationMs / 1000)} s ` +
        `for ${summary.claimed} connection(s) (${perSecond.toFixed(1)}/s), longer than ` +
        `scheduler.intervalMs (${Math.round(intervalMs / 1000)} s). Raise scheduler.concurrency ` +
        `(${concurrency}; the pool needs as many connections), run more instances, or look at the ` +
        `token endpoint's latency: an instance refreshes about concurrency ÷ latency connections a ` +
        `second, and keeps about 4,500 × that fresh with 90-minute tokens.`,
    );
  }

  /** Refreshes with at most `concurrency` in flight; nothing new starts once shutdown began. */
  private async refreshAll(ownerIds: string[], summary: ProcoreRefreshTickSummary): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (!this.stopping && next < ownerIds.length) {
        await this.refreshOne(ownerIds[next++], summary);
      }
    };
    const workers = Math.min(this.options.scheduler.concurrency, ownerIds.length);
    await Promise.all(Array.from({ length: workers }, worker));
  }

  private async refreshOne(ownerId: string, summary: ProcoreRefreshTickSummary): Promise<void> {
    const lookAhead = this.options.scheduler.lookAheadSeconds;
    // The same window the claim used, so a row refreshed meanwhile by a request is skipped.
    const margin = (record: ProcoreTokenRecord) =>
      lookAhead === undefined ? defaultLookAheadMs(record) : lookAhead * 1000;
    try {
      const issued = await this.refresher.refresh(ownerId, 'scheduler', margin);
      if (issued.refreshed) summary.refreshed++;
      else summary.skipped++;
    } catch (error) {
      if (error instanceof ProcoreReauthorizationRequiredError) summary.reauthorizationRequired++;
      else summary.failed++;
    }
  }

  /** Long enough to cover a batch; a failed connection is retried once it lapses. */
  private leaseSeconds(): number {
    return Math.max(60, Math.ceil((this.options.scheduler.intervalMs * 2) / 1000));
  }

  /** The app's SchedulerRegistry, if it uses @nestjs/schedule (an optional peer). */
  private async findSchedulerRegistry(): Promise<TokenRefreshScheduler['registry']> {
    try {
      const { SchedulerRegistry } = await import('@nestjs/schedule');
      return this.moduleRef.get(SchedulerRegistry, { strict: false });
    } catch {
      return undefined;
    }
  }

  private tryDelete(registry: NonNullable<TokenRefreshScheduler['registry']>): void {
    try {
      registry.deleteInterval(PROCORE_REFRESH_JOB);
    } catch {
      // The app removed it already.
    }
  }
}
