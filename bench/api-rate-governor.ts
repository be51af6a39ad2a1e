/**
 * api-rate-governor: does each instance's rate-limit governor, learning Procore's budget from the
 * `X-Rate-Limit-*` headers of its own answers, keep a deployment of several instances out of
 * 429s, or must instances coordinate? The package answers with `api.rateLimitCoordination`:
 * `'database'` (default: a shared budget per token holder in PostgreSQL, `procore_rate_limits`)
 * or `'instance'` (each instance on its own answers). This benchmark measures both, and a naive
 * client, in one run.
 *
 * Each phase: 3 app instances (separate processes) × 30 concurrent callers, all for ONE owner
 * (one token), each caller looping `client.forOwner(owner, { companyId: '1001' })
 * .get('/rest/v1.0/projects', { query: { per_page: 1 } })` for `BENCH_GOVERNOR_DURATION_S` (60)
 * seconds. The fake allows 50 calls per 10-second spike window per token (beside Procore's hourly
 * 3,600), answers 429 without `Retry-After` (as Procore does: `X-Rate-Limit-Reset` says when), and
 * answers every call after `BENCH_GOVERNOR_API_LATENCY_MS` (50) ms. `api.maxRateLimitWaitMs` is
 * `BENCH_GOVERNOR_MAX_WAIT_S` (30) s: a GET held longer than that fails with
 * `ProcoreRateLimitedError`. At the end, calls still waiting for the budget are aborted.
 *
 * The naive phase has the same callers: the token in hand, global `fetch`, a 429 retried at once
 * up to 3 times before the call counts as failed (as a hand-written integration does).
 * `BENCH_GOVERNOR_MODES` (`database,instance,naive`) picks the phases. Each phase has fresh
 * instances, its own owner (token) and a fresh budget at the fake.
 *
 * Each call carries `bench_instance=<i>&bench_caller=<n>` in its query (the fake ignores them),
 * so the fake's request log says who sent it; the windows are rebuilt from that log.
 */
import { FakeProcoreServer, type FakeProcoreApiRequest } from 'nestjs-procore-auth/testing';
import { createBenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { generateEncryptionKey, workerConfig } from './support/procore.js';
import type { GovernorLoadResult } from './support/protocol.js';
import { fmt, mean, ms, percentile, printBlock, recordFigures } from './support/stats.js';
import { closeAll, startWorkers, type AppWorker } from './support/worker-client.js';

const DURATION_S = Number(process.env['BENCH_GOVERNOR_DURATION_S'] ?? 60);
const API_LATENCY_MS = Number(process.env['BENCH_GOVERNOR_API_LATENCY_MS'] ?? 50);
const INSTANCES = 3;
const CALLERS = 30;
const LIMIT = 50;
const WINDOW_S = 10;
const COMPANY_ID = '1001';
const MAX_RATE_LIMIT_WAIT_MS = Number(process.env['BENCH_GOVERNOR_MAX_WAIT_S'] ?? 30) * 1000;
/** Prints the library phases' calls, as the fake logged them, on stderr. */
const TRACE = Boolean(process.env['BENCH_GOVERNOR_TRACE']);
const MODES = ['database', 'instance', 'naive'] as const;
type Mode = (typeof MODES)[number];
const SELECTED: Mode[] = (process.env['BENCH_GOVERNOR_MODES'] ?? MODES.join(','))
  .split(',')
  .map((mode) => {
    if (!(MODES as readonly string[]).includes(mode)) throw new Error(`unknown mode ${mode}`);
    return mode as Mode;
  });
const NAIVE_RETRIES = 3;
const POOL_SIZE = 10;

interface Phase {
  mode: Mode;
  startAt: number;
  durationMs: number;
  results: GovernorLoadResult[];
  /** The fake's counters over the phase (exact, whatever the log kept). */
  sent: number;
  answered429: number;
  answered401: number;
  /** The fake's request log of the phase (its most recent 100,000 calls). */
  log: FakeProcoreApiRequest[];
}

interface Window {
  startAt: number;
  /** ms from the previous window's end to this window's first call (0 for the first window). */
  lateMs: number;
  served: number;
  rateLimited: number;
  /** Per instance: calls sent in the window, and how many were answered 429. */
  sentBy: number[];
  rateLimitedBy: number[];
}

/**
 * The fake's spike windows, rebuilt from its log with its own rule: a window starts at the first
 * counted call (valid token, not answered 429) at or after the previous window's end.
 */
function windowsOf(log: readonly FakeProcoreApiRequest[]): Window[] {
  const windows: Window[] = [];
  let current: Window | undefined;
  for (const entry of log) {
    const counted = entry.authorization === 'valid' && entry.status !== 429;
    if (counted && (!current || entry.at >= current.startAt + WINDOW_S * 1000)) {
      current = {
        startAt: entry.at,
        lateMs: current ? entry.at - (current.startAt + WINDOW_S * 1000) : 0,
        served: 0,
        rateLimited: 0,
        sentBy: Array.from({ length: INSTANCES }, () => 0),
        rateLimitedBy: Array.from({ length: INSTANCES }, () => 0),
      };
      windows.push(current);
    }
    if (!current) continue;
    const instance = Number(entry.query['bench_instance']);
    current.sentBy[instance]++;
    if (entry.status === 200) current.served++;
    if (entry.status === 429) {
      current.rateLimited++;
      current.rateLimitedBy[instance]++;
    }
  }
  return windows;
}

interface CallerStreaks {
  /** Answers to a caller that followed a 429 to the same caller, and how many were 429 again. */
  after429: number;
  after429Again: number;
  /** Answers that followed a served call of the same caller, and how many were 429. */
  afterServed: number;
  afterServed429: number;
  /** The longest run of consecutive 429s one caller received. */
  longest429Run: number;
  /** Runs of 3 or more consecutive 429s (with a 30 s wait, the third one ends a GET). */
  runsOf3: number;
}

/**
 * Who gets the 429s: each caller has one call outstanding at a time, so its answers in the log
 * are its calls' attempts in order. Compares the chance of a 429 after a 429 with that after a
 * served call.
 */
function callerStreaks(log: readonly FakeProcoreApiRequest[]): CallerStreaks {
  const byCaller = new Map<string, number[]>();
  for (const entry of log) {
    if (entry.status !== 200 && entry.status !== 429) continue;
    const key = `${entry.query['bench_instance']}/${entry.query['bench_caller']}`;
    let statuses = byCaller.get(key);
    if (!statuses) byCaller.set(key, (statuses = []));
    statuses.push(entry.status);
  }
  const streaks: CallerStreaks = {
    after429: 0,
    after429Again: 0,
    afterServed: 0,
    afterServed429: 0,
    longest429Run: 0,
    runsOf3: 0,
  };
  for (const statuses of byCaller.values()) {
    let run = 0;
    statuses.forEach((status, i) => {
      if (i > 0 && statuses[i - 1] === 429) {
        streaks.after429++;
        if (status === 429) streaks.after429Again++;
      } else if (i > 0) {
        streaks.afterServed++;
        if (status === 429) streaks.afterServed429++;
      }
      run = status === 429 ? run + 1 : 0;
      if (run === 3) streaks.runsOf3++;
      streaks.longest429Run = Math.max(streaks.longest429Run, run);
    });
  }
  return streaks;
}

function sumErrors(results: readonly GovernorLoadResult[]): Record<string, number> {
  const errors: Record<string, number> = {};
  for (const result of results) {
    for (const [name, count] of Object.entries(result.failures)) {
      errors[name] = (errors[name] ?? 0) + count;
    }
  }
  return errors;
}

const total = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
const pct = (value: number) => `${fmt(value * 100)} %`;

async function main(): Promise<void> {
  const database = await createBenchDatabase('api_rate_governor');
  const fake = await FakeProcoreServer.start();
  const encryptionKey = generateEncryptionKey();
  const spikeLimit = {
    limit: 3600,
    windowSeconds: 3600,
    spikeLimit: LIMIT,
    spikeWindowSeconds: WINDOW_S,
  };
  let workers: AppWorker[] = [];
  await withCleanup(
    async () => {
      /** One phase on fresh instances, for a fresh owner with a fresh budget at the fake. */
      const run = async (mode: Mode): Promise<Phase> => {
        workers = await startWorkers(INSTANCES, (i) =>
          workerConfig({
            label: `${mode}-instance-${i}`,
            databaseUrl: database.url,
            fake,
            encryptionKey,
            poolSize: POOL_SIZE,
            options: {
              scheduler: { enabled: false },
              api: {
                maxRateLimitWaitMs: MAX_RATE_LIMIT_WAIT_MS,
                rateLimitCoordination: mode === 'instance' ? 'instance' : 'database',
              },
            },
          }),
        );
        // Warm-up (JIT, HTTP connections) on another owner, with no limit in the way.
        fake.setRateLimit({ limit: 1_000_000, windowSeconds: 3600 });
        fake.apiLatencyMs = 0;
        const warmUp = `warm-up-${mode}`;
        const owner = `${mode}-owner`;
        await workers[0].call('importTokens', {
          entries: [
            [warmUp, fake.issueTokens()],
            [owner, fake.issueTokens()],
          ],
          concurrency: 1,
        });
        await Promise.all(
          workers.map((w) =>
            w.call('apiStorm', { owner: warmUp, count: 60, startAt: 0, path: '/rest/v1.0/me' }),
          ),
        );
        // Every instance has the owner's token cached: no token read inside the run.
        await Promise.all(
          workers.map((w) => w.call('getAccessTokens', { owners: [owner], concurrency: 1 })),
        );
        fake.setRateLimit(spikeLimit);
        fake.apiLatencyMs = API_LATENCY_MS;
        fake.resetRateLimits();
        fake.resetCounters();
        fake.clearApiRequests();
        const startAt = Date.now() + 500;
        const durationMs = DURATION_S * 1000;
        const results = await Promise.all(
          workers.map((w, instance) =>
            w.call('governorLoad', {
              mode: mode === 'naive' ? 'naive' : 'library',
              owner,
              companyId: COMPANY_ID,
              callers: CALLERS,
              startAt,
              durationMs,
              instance,
              naiveRetries: NAIVE_RETRIES,
            }),
          ),
        );
        const phase: Phase = {
          mode,
          startAt,
          durationMs,
          results,
          sent: fake.counters.api,
          answered429: fake.counters.apiRateLimited,
          answered401: fake.counters.apiUnauthorized,
          log: [...fake.apiRequests],
        };
        await closeAll(workers);
        workers = [];
        if (TRACE && mode !== 'naive') {
          // The phase's calls as the fake saw them: ms since the first, instance, caller, status.
          const t0 = phase.log[0]?.at ?? 0;
          const lines = phase.log.map(
            (e) =>
              `${e.at - t0}\t${e.query['bench_instance']}\t${e.query['bench_caller']}\t${e.status}`,
          );
          console.error(`# ${mode} trace (ms, instance, caller, status)\n${lines.join('\n')}`);
        }
        return phase;
      };

      const phases: Phase[] = [];
      for (const mode of SELECTED) phases.push(await run(mode));

      // Windows that begin inside the run if each began the instant the previous one ended.
      const windowsElapsed = Math.ceil(DURATION_S / WINDOW_S);
      const capacity = windowsElapsed * LIMIT;
      const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
      const figures: Record<string, number> = {
        durationS: DURATION_S,
        apiLatencyMs: API_LATENCY_MS,
        maxRateLimitWaitS: MAX_RATE_LIMIT_WAIT_MS / 1000,
        capacity,
      };
      const lines: [string, string][] = [];
      for (const phase of phases) {
        const m = phase.mode;
        const logComplete = phase.log.length === phase.sent;
        const served = logComplete
          ? phase.log.filter((e) => e.status === 200 && e.at < phase.startAt + phase.durationMs)
              .length
          : phase.sent - phase.answered429;
        const servedRatio = served / capacity;
        const share429 = phase.answered429 / phase.sent;
        const failures = sumErrors(phase.results);
        const failed = total(Object.values(failures));
        const latencies = phase.results.flatMap((r) => r.latenciesMs);
        Object.assign(figures, {
          [`${m}Served`]: served,
          [`${m}ServedRatio`]: servedRatio,
          [`${m}Sent`]: phase.sent,
          [`${m}429s`]: phase.answered429,
          [`${m}429Share`]: share429,
          [`${m}Failed`]: failed,
          [`${m}401s`]: phase.answered401,
          [`${m}P50Ms`]: percentile(latencies, 50),
          [`${m}P99Ms`]: percentile(latencies, 99),
        });
        const served429Target =
          m === 'naive'
            ? ''
            : `  (targets: served ≥ 0.9 ${met(servedRatio >= 0.9)}, 429 ≤ 2 % ${met(share429 <= 0.02)})`;
        lines.push(
          [
            `${m}: served / sent / 429`,
            `${fmt(served, 0)} of ${capacity} (${windowsElapsed} windows × ${LIMIT}) = ${fmt(servedRatio, 3)}; ${fmt(phase.sent, 0)} sent, ${fmt(phase.answered429, 0)} answered 429 = ${pct(share429)}${served429Target}`,
          ],
          [
            `${m}: failed calls`,
            m === 'naive'
              ? `${fmt(failed, 0)} ${JSON.stringify(failures)}  (gave up after 1 + ${NAIVE_RETRIES} immediate tries)`
              : `${failed} ${JSON.stringify(failures)}  (target 0: ${met(failed === 0)}; ${total(phase.results.map((r) => r.stoppedAtEnd))} still waiting for the budget at the end, aborted)`,
          ],
        );
        if (m === 'naive') {
          lines.push([
            `${m}: latency of served calls`,
            `p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}`,
          ]);
          continue;
        }
        const events = total(phase.results.map((r) => r.rateLimitedEvents));
        const waitedOver = (seconds: number) => latencies.filter((v) => v > seconds * 1000).length;
        const windows = windowsOf(phase.log);
        const full = windows.filter(
          (w) => w.startAt + WINDOW_S * 1000 <= phase.startAt + phase.durationMs,
        );
        const late = windows.slice(1).map((w) => w.lateMs);
        const streaks = callerStreaks(phase.log);
        const again429 = streaks.after429Again / Math.max(1, streaks.after429);
        const first429 = streaks.afterServed429 / Math.max(1, streaks.afterServed);
        Object.assign(figures, {
          [`${m}RateLimitedEvents`]: events,
          [`${m}ServedAfterOver12s`]: waitedOver(WINDOW_S * 1.2),
          [`${m}ServedAfterOver22s`]: waitedOver(WINDOW_S * 2.2),
          [`${m}WindowsOpened`]: windows.length,
          [`${m}Mean429PerWindow`]: mean(full.map((w) => w.rateLimited)),
          [`${m}MeanSentPerWindow`]: mean(full.map((w) => w.served + w.rateLimited)),
          [`${m}MeanWindowLateMs`]: mean(late),
          [`${m}429After429Share`]: again429,
          [`${m}429AfterServedShare`]: first429,
          [`${m}Longest429Run`]: streaks.longest429Run,
        });
        lines.push(
          [
            `${m}: latency of served calls`,
            `p50 ${ms(percentile(latencies, 50))}, p90 ${ms(percentile(latencies, 90))}, p99 ${ms(percentile(latencies, 99))} (waiting for the budget included); ${waitedOver(WINDOW_S * 1.2)} of ${latencies.length} waited over ${WINDOW_S * 1.2} s, ${waitedOver(WINDOW_S * 2.2)} over ${WINDOW_S * 2.2} s; rate_limited events ${events}`,
          ],
          [
            `${m}: windows the fake opened`,
            `${windows.length}; each opened ${late.map((v) => fmt(v, 0)).join(', ')} ms after the previous one ended (X-Rate-Limit-Reset is in whole seconds, rounded up)`,
          ],
          [
            `${m}: per full window`,
            `${full.length} windows: served ${full.map((w) => w.served).join(', ')}; 429 ${full.map((w) => w.rateLimited).join(', ')}`,
          ],
          [
            `${m}: per instance and window`,
            Array.from(
              { length: INSTANCES },
              (_, i) =>
                `#${i} sent ${fmt(mean(full.map((w) => w.sentBy[i])))} (429: ${fmt(mean(full.map((w) => w.rateLimitedBy[i])))})`,
            ).join('; ') + ' on average',
          ],
          [
            `${m}: who gets the 429s`,
            `a caller's next attempt after a 429 is 429 again in ${pct(again429)} (${streaks.after429Again}/${streaks.after429}), after a served call in ${pct(first429)} (${streaks.afterServed429}/${streaks.afterServed}); longest run of 429s for one caller ${streaks.longest429Run}, runs of ≥ 3: ${streaks.runsOf3}`,
          ],
        );
      }
      const by = (mode: Mode) => phases.find((phase) => phase.mode === mode);
      const naive = by('naive');
      for (const mode of ['database', 'instance'] as const) {
        const phase = by(mode);
        if (phase && naive) {
          lines.push([
            `429s naive / ${mode}`,
            `${fmt(naive.answered429 / Math.max(1, phase.answered429))}×`,
          ]);
        }
      }
      printBlock(
        `api-rate-governor  (${INSTANCES} instances in separate processes × ${CALLERS} callers, one owner, GET /rest/v1.0/projects?per_page=1 with Procore-Company-Id ${COMPANY_ID}, fake limit ${LIMIT} calls per ${WINDOW_S} s window, API latency ${API_LATENCY_MS} ms, ${DURATION_S} s per phase, maxRateLimitWaitMs ${MAX_RATE_LIMIT_WAIT_MS / 1000} s; database = rateLimitCoordination 'database' (default), instance = 'instance')`,
        lines,
      );
      recordFigures('api-rate-governor', figures);
    },
    async () => {
      await closeAll(workers);
      await fake.close();
      await database.drop();
    },
  );
}

runBenchmark(main);
