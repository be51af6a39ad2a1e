import { afterEach, describe, expect, it } from '@jest/globals';
import { metrics, type MeterProvider } from '@opentelemetry/api';
import { ProcoreMetrics } from './procore-metrics.js';

/** A meter as `@opentelemetry/api` before 1.9 had it: counters and histograms, no gauge. */
function meterWithoutGauge(recorded: string[]) {
  const instrument = (name: string) => ({
    add: () => recorded.push(name),
    record: () => recorded.push(name),
  });
  return { getMeter: () => ({ createCounter: instrument, createHistogram: instrument }) };
}

describe('ProcoreMetrics', () => {
  afterEach(() => metrics.disable());

  it('does nothing without a registered MeterProvider', async () => {
    const procoreMetrics = new ProcoreMetrics();
    await procoreMetrics.onModuleInit();

    expect(() => {
      procoreMetrics.refresh('request', 'refreshed', 12);
      procoreMetrics.schedulerTick(5, 0);
      procoreMetrics.rateLimitRemaining(10, 'owner');
    }).not.toThrow();
  });

  it('records counters and histograms with an API that has no synchronous gauge, and skips the gauges', async () => {
    const recorded: string[] = [];
    metrics.setGlobalMeterProvider(meterWithoutGauge(recorded) as unknown as MeterProvider);
    const procoreMetrics = new ProcoreMetrics();
    await procoreMetrics.onModuleInit();

    procoreMetrics.cacheHit();
    procoreMetrics.schedulerTick(5, 3);
    procoreMetrics.rateLimitRemaining(10, 'owner');

    expect(recorded).toEqual(['procore.token.cache.hits', 'procore.scheduler.tick.duration']);
  });

  it('turns itself off when the meter refuses an instrument, instead of failing the app', async () => {
    metrics.setGlobalMeterProvider({
      getMeter: () => ({
        createCounter: () => {
          throw new TypeError('bad instrument');
        },
      }),
    } as unknown as MeterProvider);
    const procoreMetrics = new ProcoreMetrics();

    await expect(procoreMetrics.onModuleInit()).resolves.toBeUndefined();
    expect(() => procoreMetrics.cacheMiss()).not.toThrow();
  });
});
