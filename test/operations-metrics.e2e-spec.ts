import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { metrics, type MeterProvider } from '@opentelemetry/api';
import { ProcoreClient, TokenRefreshScheduler } from 'nestjs-procore-auth';
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

type Attributes = Record<string, string | number>;

/** One measurement as an SDK would receive it. */
interface Measurement {
  meter: string;
  instrument: string;
  kind: 'counter' | 'histogram' | 'gauge';
  unit: string | undefined;
  value: number;
  attributes: Attributes;
}

/**
 * A tiny MeterProvider that records every measurement (the OpenTelemetry SDK and its in-memory
 * reader are not installed): what the package hands to `@opentelemetry/api` is what an SDK exports.
 */
class RecordingMeterProvider {
  readonly measurements: Measurement[] = [];

  getMeter(meter: string) {
    const instrument =
      (kind: Measurement['kind']) => (name: string, options?: { unit?: string }) => {
        const record = (value: number, attributes: Attributes = {}) => {
          this.measurements.push({
            meter,
            instrument: name,
            kind,
            unit: options?.unit,
            value,
            attributes,
          });
        };
        return { add: record, record };
      };
    return {
      createCounter: instrument('counter'),
      createHistogram: instrument('histogram'),
      createGauge: instrument('gauge'),
    };
  }

  /** The measurements of one instrument, optionally only those with these attributes. */
  of(name: string, attributes: Attributes = {}): Measurement[] {
    return this.measurements.filter(
      (m) =>
        m.instrument === name &&
        Object.entries(attributes).every(([key, value]) => m.attributes[key] === value),
    );
  }

  /** The sum of a counter's measurements. */
  sum(name: string, attributes: Attributes = {}): number {
    return this.of(name, attributes).reduce((total, m) => total + m.value, 0);
  }
}

describe('metrics through @opentelemetry/api (real PostgreSQL, fake Procore)', () => {
  const provider = new RecordingMeterProvider();
  let database: TestDatabase;
  let fake: FakeProcoreServer;
  let app: ProcoreTestApp;
  let owner = 0;
  const nextOwner = () => `metrics-user-${++owner}`;

  beforeAll(async () => {
    // As an app does: the SDK is registered before the Nest app starts.
    metrics.setGlobalMeterProvider(provider as unknown as MeterProvider);
    database = await createTestDatabase('metrics');
    await migrate(database.url);
  });
  beforeEach(async () => {
    fake = await FakeProcoreServer.start();
    app = await createProcoreTestApp({
      databaseUrl: database.url,
      options: fakeProcoreOptions(fake),
    });
    provider.measurements.length = 0;
  });
  afterEach(async () => {
    await app.close();
    await fake.close();
  });
  afterAll(async () => {
    metrics.disable();
    await database.drop();
  });

  it('counts a cache miss, the refresh it caused (trigger, outcome, latency, lock wait), then a cache hit', async () => {
    const ownerId = nextOwner();
    await connectOwner(app.service, ownerId);
    await expireStoredToken(app.dataSource, fake, ownerId);
    app.service.evict(ownerId);
    provider.measurements.length = 0;

    await app.service.getAccessToken(ownerId);
    await app.service.getAccessToken(ownerId);

    expect(provider.sum('procore.token.cache.misses')).toBe(1);
    expect(provider.sum('procore.token.cache.hits')).toBe(1);
    expect(
      provider.sum('procore.token.refreshes', {
        'procore.refresh.trigger': 'request',
        'procore.refresh.outcome': 'refreshed',
      }),
    ).toBe(1);
    const [latency] = provider.of('procore.token.refresh.duration');
    expect(latency).toMatchObject({
      meter: 'nestjs-procore-auth',
      kind: 'histogram',
      unit: 's',
      attributes: { 'procore.refresh.trigger': 'request', 'procore.refresh.outcome': 'refreshed' },
    });
    expect(latency!.value).toBeGreaterThan(0);
    expect(provider.of('procore.token.lock.wait')).toHaveLength(1);
    expect(provider.of('procore.token.lock.wait')[0]!.value).toBeGreaterThanOrEqual(0);
  });

  it('counts a refused refresh as reauthorization required, by cause', async () => {
    const ownerId = nextOwner();
    await connectOwner(app.service, ownerId);
    // The user disconnects the app in Procore: its refresh token is revoked with the access token.
    fake.revokeToken(await app.service.getAccessToken(ownerId));
    provider.measurements.length = 0;

    await expect(app.service.refresh(ownerId)).rejects.toThrow();

    expect(
      provider.sum('procore.token.refreshes', {
        'procore.refresh.trigger': 'manual',
        'procore.refresh.outcome': 'reauthorization_required',
      }),
    ).toBe(1);
    expect(
      provider.sum('procore.connection.reauthorization_required', {
        'procore.reauthorization.cause': 'invalid_grant',
      }),
    ).toBe(1);
  });

  it("records a scheduler tick's duration and backlog", async () => {
    const owners = [nextOwner(), nextOwner()];
    for (const ownerId of owners) await connectOwner(app.service, ownerId);
    await expireStoredToken(app.dataSource, fake, owners);
    provider.measurements.length = 0;

    const summary = await app.app.get(TokenRefreshScheduler).runTick();

    expect(summary.refreshed).toBe(2);
    expect(provider.of('procore.scheduler.tick.duration')).toHaveLength(1);
    expect(provider.of('procore.scheduler.backlog')).toEqual([
      expect.objectContaining({ kind: 'gauge', value: 2 }),
    ]);
    expect(
      provider.sum('procore.token.refreshes', {
        'procore.refresh.trigger': 'scheduler',
        'procore.refresh.outcome': 'refreshed',
      }),
    ).toBe(2);
  });

  it('counts API calls by status and records the rate limit remaining', async () => {
    const ownerId = nextOwner();
    await connectOwner(app.service, ownerId);
    fake.setRateLimit({ limit: 50, windowSeconds: 600 });
    provider.measurements.length = 0;
    const client = app.app.get(ProcoreClient).forOwner(ownerId);

    await client.get('/rest/v1.0/me');
    fake.injectFault({ kind: 'status', status: 404 }, { path: '/rest/v1.0/me' });
    await expect(client.get('/rest/v1.0/me')).rejects.toThrow();

    expect(
      provider.sum('procore.api.calls', {
        'http.request.method': 'GET',
        'http.response.status_code': 200,
      }),
    ).toBe(1);
    expect(provider.sum('procore.api.calls', { 'http.response.status_code': 404 })).toBe(1);
    expect(provider.of('procore.api.call.duration')).toEqual([
      expect.objectContaining({ kind: 'histogram', unit: 's' }),
      expect.objectContaining({
        attributes: expect.objectContaining({ 'http.response.status_code': 404 }),
      }),
    ]);
    const remaining = provider.of('procore.api.rate_limit.remaining');
    expect(remaining.length).toBeGreaterThanOrEqual(1);
    expect(remaining[0]).toMatchObject({
      kind: 'gauge',
      value: 49,
      attributes: { 'procore.holder.kind': 'owner' },
    });
  });

  it("counts the refresh an API 401 caused under the trigger 'unauthorized'", async () => {
    const ownerId = nextOwner();
    await connectOwner(app.service, ownerId);
    fake.injectFault({ kind: 'status', status: 401 }, { path: '/rest/v1.0/me' });
    provider.measurements.length = 0;

    await app.app.get(ProcoreClient).forOwner(ownerId).get('/rest/v1.0/me');

    expect(
      provider.sum('procore.token.refreshes', {
        'procore.refresh.trigger': 'unauthorized',
        'procore.refresh.outcome': 'refreshed',
      }),
    ).toBe(1);
    expect(provider.sum('procore.api.calls', { 'http.response.status_code': 200 })).toBe(1);
  });
});
