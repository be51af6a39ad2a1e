import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import type { ProcoreRefreshTrigger } from '../events/procore-auth.events.js';

/** The OpenTelemetry meter every instrument of the package belongs to. */
export const PROCORE_METER_NAME = 'nestjs-procore-auth';

/** How a run of the refresh protocol ended. */
export type ProcoreRefreshOutcome =
  /** Procore issued new tokens and they were stored. */
  | 'refreshed'
  /** Another caller or instance refreshed first: the stored token was used. */
  | 'fresh'
  /** Procore refused the refresh token: the owner must connect again. */
  | 'reauthorization_required'
  /** Procore or the database failed (transient, configuration, lock timeout, shutdown). */
  | 'failed';

type Attributes = Record<string, string | number>;

// The few shapes of `@opentelemetry/api` used here, so nothing of it is needed to compile or run.
interface Counter {
  add(value: number, attributes?: Attributes): void;
}
interface Histogram {
  record(value: number, attributes?: Attributes): void;
}
interface Meter {
  createCounter(name: string, options: { description: string; unit: string }): Counter;
  createHistogram(name: string, options: { description: string; unit: string }): Histogram;
  /** Since `@opentelemetry/api` 1.9; older versions have no synchronous gauge. */
  createGauge?(name: string, options: { description: string; unit: string }): Histogram;
}

const NO_GAUGE: Histogram = { record: () => undefined };

function gauge(meter: Meter, name: string, options: { description: string; unit: string }) {
  return typeof meter.createGauge === 'function' ? meter.createGauge(name, options) : NO_GAUGE;
}

interface Instruments {
  refreshes: Counter;
  refreshDuration: Histogram;
  reauthorizations: Counter;
  lockWait: Histogram;
  cacheHits: Counter;
  cacheMisses: Counter;
  tickDuration: Histogram;
  backlog: Histogram;
  apiCalls: Counter;
  apiCallDuration: Histogram;
  rateLimitRemaining: Histogram;
}

function createInstruments(meter: Meter): Instruments {
  return {
    refreshes: meter.createCounter('procore.token.refreshes', {
      description: 'Runs of the refresh protocol, by trigger and outcome.',
      unit: '{refresh}',
    }),
    refreshDuration: meter.createHistogram('procore.token.refresh.duration', {
      description: 'Time a run of the refresh protocol took (lock wait, Procore call, retries).',
      unit: 's',
    }),
    reauthorizations: meter.createCounter('procore.connection.reauthorization_required', {
      description: 'Connections that now need the user to authorize the app again, by cause.',
      unit: '{connection}',
    }),
    lockWait: meter.createHistogram('procore.token.lock.wait', {
      description: "Time a refresh waited for the owner's row lock.",
      unit: 's',
    }),
    cacheHits: meter.createCounter('procore.token.cache.hits', {
      description: 'getAccessToken() calls served from the in-memory cache.',
      unit: '{request}',
    }),
    cacheMisses: meter.createCounter('procore.token.cache.misses', {
      description: 'getAccessToken() calls that had to read the database (and maybe refresh).',
      unit: '{request}',
    }),
    tickDuration: meter.createHistogram('procore.scheduler.tick.duration', {
      description: 'Time one tick of the refresh scheduler took.',
      unit: 's',
    }),
    backlog: gauge(meter, 'procore.scheduler.backlog', {
      description: 'Connections due for a refresh that the last tick of this instance claimed.',
      unit: '{connection}',
    }),
    apiCalls: meter.createCounter('procore.api.calls', {
      description: "Calls to Procore's REST API, by method and final status (0: no answer).",
      unit: '{call}',
    }),
    apiCallDuration: meter.createHistogram('procore.api.call.duration', {
      description: "Time a call to Procore's REST API took, retries and rate-limit waits included.",
      unit: 's',
    }),
    rateLimitRemaining: gauge(meter, 'procore.api.rate_limit.remaining', {
      description: "Procore's X-Rate-Limit-Remaining in the latest answer.",
      unit: '{call}',
    }),
  };
}

/**
 * The package's metrics, recorded through `@opentelemetry/api` (an optional peer). Without it, or
 * without an SDK registered by the app, every method does nothing. The meter is taken once, at
 * module init: start the OpenTelemetry SDK before the Nest app initializes (as its docs advise).
 * Every instrument is listed in docs/OPERATIONS.md.
 */
@Injectable()
export class ProcoreMetrics implements OnModuleInit {
  private instruments: Instruments | undefined;

  private readonly logger = new Logger('ProcoreAuth');

  async onModuleInit(): Promise<void> {
    let api: typeof import('@opentelemetry/api');
    try {
      api = await import('@opentelemetry/api');
    } catch {
      return; // Not installed: metrics are off.
    }
    try {
      this.instruments = createInstruments(api.metrics.getMeter(PROCORE_METER_NAME) as Meter);
    } catch (error) {
      // An SDK that refuses an instrument must not stop the app: metrics are off then.
      this.logger.warn(
        `Procore metrics are off: the OpenTelemetry meter refused an instrument (${(error as Error)?.name ?? 'error'}).`,
      );
    }
  }

  /** A finished run of the refresh protocol. */
  refresh(
    trigger: ProcoreRefreshTrigger,
    outcome: ProcoreRefreshOutcome,
    durationMs: number,
    errorCode?: string,
  ): void {
    this.measure((instruments) => {
      const attributes: Attributes = {
        'procore.refresh.trigger': trigger,
        'procore.refresh.outcome': outcome,
      };
      if (errorCode !== undefined) attributes['error.type'] = errorCode;
      instruments.refreshes.add(1, attributes);
      instruments.refreshDuration.record(durationMs / 1000, {
        'procore.refresh.trigger': trigger,
        'procore.refresh.outcome': outcome,
      });
    });
  }

  /** A connection was marked `reauthorization_required` (`invalid_grant`, `refresh_response_lost`...). */
  reauthorizationRequired(cause: string): void {
    this.measure((instruments) =>
      instruments.reauthorizations.add(1, { 'procore.reauthorization.cause': cause }),
    );
  }

  /** A refresh holds the row lock after waiting `durationMs` for it. */
  lockWait(durationMs: number): void {
    this.measure((instruments) => instruments.lockWait.record(durationMs / 1000));
  }

  cacheHit(): void {
    // Checked here, not only in measure(): no closure is built on the hot path when metrics are off.
    if (this.instruments) this.measure((instruments) => instruments.cacheHits.add(1));
  }

  cacheMiss(): void {
    this.measure((instruments) => instruments.cacheMisses.add(1));
  }

  /** A finished scheduler tick and how many due connections it claimed. */
  schedulerTick(durationMs: number, claimed: number): void {
    this.measure((instruments) => {
      instruments.tickDuration.record(durationMs / 1000);
      instruments.backlog.record(claimed);
    });
  }

  /** A finished API call: its final status (0 when Procore never answered). */
  apiCall(method: string, status: number, durationMs: number): void {
    this.measure((instruments) => {
      const attributes = { 'http.request.method': method, 'http.response.status_code': status };
      instruments.apiCalls.add(1, attributes);
      instruments.apiCallDuration.record(durationMs / 1000, attributes);
    });
  }

  /** An API answer's `X-Rate-Limit-Remaining`, per kind of token holder. */
  rateLimitRemaining(remaining: number, holder: 'owner' | 'serviceAccount'): void {
    this.measure((instruments) =>
      instruments.rateLimitRemaining.record(remaining, {
        'procore.holder.kind': holder === 'owner' ? 'owner' : 'service_account',
      }),
    );
  }

  /**
   * Records through the instruments, if metrics are on. Measurements are taken on the hot path
   * and inside a refresh (after its commit, too): a meter that throws there must not fail a
   * request or hide a rotation, so the first failure turns the metrics off with one warning.
   */
  private measure(record: (instruments: Instruments) => void): void {
    if (!this.instruments) return;
    try {
      record(this.instruments);
    } catch (error) {
      this.instruments = undefined;
      this.logger.warn(
        `Procore metrics are off: the OpenTelemetry meter failed to record (${(error as Error)?.name ?? 'error'}).`,
      );
    }
  }
}
