import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { metrics } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import {
  connectOwner,
  createProcoreTestApp,
  expireStoredToken,
  fakeProcoreOptions,
  migrate,
  type ProcoreTestApp,
} from './support/procore-test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** The sum of a counter's data points (with these attributes) in what the exporter received. */
function sumOf(exported: ResourceMetrics[], name: string, attributes: Record<string, string> = {}) {
  let sum = 0;
  for (const resource of exported) {
    for (const scope of resource.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.descriptor.name !== name) continue;
        for (const point of metric.dataPoints) {
          const matches = Object.entries(attributes).every(([k, v]) => point.attributes[k] === v);
          if (matches && typeof point.value === 'number') sum += point.value;
        }
      }
    }
  }
  return sum;
}

/**
 * The package's instruments as an app with the OpenTelemetry SDK sees them: a real MeterProvider
 * with the SDK's in-memory exporter, registered before the Nest app starts.
 */
describe('metrics through the OpenTelemetry SDK (in-memory exporter)', () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: ProcoreTestApp;

  beforeAll(async () => {
    metrics.setGlobalMeterProvider(provider);
    database = await createTestDatabase('metrics_sdk');
    await migrate(database.url);
    fake = await FakeProcoreServer.start();
    app = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
    });
  });
  afterAll(async () => {
    await app?.close();
    await fake?.close();
    await provider.shutdown();
    metrics.disable();
    await database?.drop();
  });

  it('exports the refresh a cache miss caused, by trigger and outcome, and the cache hit after it', async () => {
    await connectOwner(app.service, 'sdk-user');
    await expireStoredToken(app.dataSource, fake, 'sdk-user');
    app.service.evict('sdk-user');

    await app.service.getAccessToken('sdk-user');
    await app.service.getAccessToken('sdk-user');
    await reader.forceFlush();
    const exported = exporter.getMetrics();

    expect(exported.length).toBeGreaterThan(0);
    expect(exported[0]!.scopeMetrics.map((scope) => scope.scope.name)).toContain(
      'nestjs-procore-auth',
    );
    expect(
      sumOf(exported, 'procore.token.refreshes', {
        'procore.refresh.trigger': 'request',
        'procore.refresh.outcome': 'refreshed',
      }),
    ).toBe(1);
    expect(sumOf(exported, 'procore.token.cache.hits')).toBeGreaterThanOrEqual(1);
    expect(sumOf(exported, 'procore.token.cache.misses')).toBeGreaterThanOrEqual(1);
  });
});
