/**
 * api-rate-governor: does each instance's rate-limit governor, learning Procore's budget from the
 * `X-Rate-Limit-*` headers of its own answers, keep a deployment of several instances out of
 * 429s, or must instances coordinate (e.g. through PostgreSQL)?
 *
 * 3 app instances (separate processes) × 30 concurrent callers, all for ONE owner (one token),
 * each caller looping `client.forOwner(owner, { companyId: '1001' }).get('/rest/v1.0/projects',
 * { query: { per_page: 1 } })` for `BENCH_GOVERNOR_DURATION_S` (60) seconds. The fake allows 50
 * calls per 10-second spike window per token (beside Procore's hourly 3,600), answers 429 without
 * `Retry-After` (as Procore does: `X-Rate-Limit-Reset` says when), and answers every call after
 * `BENCH_GOVERNOR_API_LATENCY_MS` (50) ms. `api.maxRateLimitWaitMs` is
 * `BENCH_GOVERNOR_MAX_WAIT_S` (30) s: a GET held longer than that fails with
 * `ProcoreRateLimitedError`. At the end, calls still waiting for the budget are aborted.
 *
 * Then, in the same run, a naive client with the same callers: the token in hand, global `fetch`,
 * a 429 retried at once up to 3 times before the call counts as failed (as a hand-written
 * integration does), against a fresh budget for another owner.
 *
 * Each call carries `bench_instance=<i>` in its query, so the fake's request log says which
 * instance sent it; the windows are rebuilt from that log for the analysis.
 */
import { FakeProcoreServer, type FakeProcoreApiRequest } from 'nestjs-procore-auth/testing';
import { createBenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { generateEncryptionKey, workerConfig } from './support/procore.js';
import type { GovernorLoadArgs, GovernorLoadResult } from './support/protocol.js';
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
/** Prints the library phase's calls, as the fake logged them, on stderr. */
const TRACE = Boolean(process.env['BENCH_GOVERNOR_TRACE']);
const NAIVE_RETRIES = 3;
const POOL_SIZE = 10;

interface Phase {
  mode: GovernorLoadArgs['mode'];
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
  let workers: AppWorker[] = [];
  await withCleanup(
    async () => {
      workers = await startWorkers(INSTANCES, (i) =>
        workerConfig({
          label: `instance-${i}`,
          databaseUrl: database.url,
          fake,
          encryptionKey,
          poolSize: POOL_SIZE,
          options: {
            scheduler: { enabled: false },
            api: { maxRateLimitWaitMs: MAX_RATE_LIMIT_WAIT_MS },
          },
        }),
      );

      // Warm-up (JIT, HTTP connections) on another owner, before any limit applies to the run.
      await workers[0].call('importTokens', {
        entries: [['warm-up', fake.issueTokens()]],
        concurrency: 1,
      });
      await Promise.all(
        workers.map((w) =>
          w.call('apiStorm', { owner: 'warm-up', count: 60, startAt: 0, path: '/rest/v1.0/me' }),
        ),
      );

      fake.setRateLimit({
        limit: 3600,
        windowSeconds: 3600,
        spikeLimit: LIMIT,
        spikeWindowSeconds: WINDOW_S,
      });
      fake.apiLatencyMs = API_LATENCY_MS;

      const run = async (mode: GovernorLoadArgs['mode'], owner: string): Promise<Phase> => {
        await workers[0].call('importTokens', {
          entries: [[owner, fake.issueTokens()]],
          concurrency: 1,
        });
        // Every instance has the owner's token cached: no database read inside the run.
        await Promise.all(
          workers.map((w) => w.call('getAccessTokens', { owners: [owner], concurrency: 1 })),
        );
        fake.resetRateLimits();
        fake.resetCounters();
        fake.clearApiRequests();
        const startAt = Date.now() + 500;
        const durationMs = DURATION_S * 1000;
        const results = await Promise.all(
          workers.map((w, instance) =>
            w.call('governorLoad', {
              mode,
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
        return {
          mode,
          startAt,
          durationMs,
          results,
          sent: fake.counters.api,
          answered429: fake.counters.apiRateLimited,
          answered401: fake.counters.apiUnauthorized,
          log: [...fake.apiRequests],
        };
      };

      const library = await run('library', 'governor-owner');
      if (TRACE) {
        // The library phase's calls as the fake saw them: ms since the first, instance, status.
        const t0 = library.log[0]?.at ?? 0;
        const lines = library.log.map(
          (e) => `${e.at - t0}\t${e.query['bench_instance']}\t${e.status}`,
        );
        console.error(`# api-rate-governor trace (ms, instance, status)\n${lines.join('\n')}`);
      }
      const naive = await run('naive', 'naive-owner');

      // Windows that begin inside the run if each began the instant the previous one ended.
      const windowsElapsed = Math.ceil(DURATION_S / WINDOW_S);
      const capacity = windowsElapsed * LIMIT;
      const servedInRun = (phase: Phase) =>
        phase.log.filter((e) => e.status === 200 && e.at < phase.startAt + phase.durationMs).length;

      // Library.
      const libServed = servedInRun(library);
      const libWindows = windowsOf(library.log);
      const lib429Share = library.answered429 / library.sent;
      const libFailures = sumErrors(library.results);
      const libFailed = total(Object.values(libFailures));
      const libEvents = total(library.results.map((r) => r.rateLimitedEvents));
      const libStopped = total(library.results.map((r) => r.stoppedAtEnd));
      const libLatencies = library.results.flatMap((r) => r.latenciesMs);
      const waitedOver = (s: number) => libLatencies.filter((v) => v > s * 1000).length;
      const fullWindows = libWindows.filter(
        (w) => w.startAt + WINDOW_S * 1000 <= library.startAt + library.durationMs,
      );
      const perWindow429 = fullWindows.map((w) => w.rateLimited);
      const perWindowSent = fullWindows.map((w) => w.served + w.rateLimited);
      const sentByInstance = (i: number) => mean(fullWindows.map((w) => w.sentBy[i]));
      const latePerWindow = libWindows.slice(1).map((w) => w.lateMs);
      const streaks = callerStreaks(library.log);
      const again429 = streaks.after429Again / Math.max(1, streaks.after429);
      const first429 = streaks.afterServed429 / Math.max(1, streaks.afterServed);

      // Naive (counters: the log keeps the last 100,000 calls only).
      const naiveServedClient = total(naive.results.map((r) => r.served));
      const naive429Share = naive.answered429 / naive.sent;
      const naiveFailures = sumErrors(naive.results);
      const naiveFailed = total(Object.values(naiveFailures));
      const naiveLogComplete = naive.log.length === naive.sent;
      const naiveServed = naiveLogComplete ? servedInRun(naive) : naive.sent - naive.answered429;
      const naiveLatencies = naive.results.flatMap((r) => r.latenciesMs);

      const servedRatio = libServed / capacity;
      const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
      printBlock(
        `api-rate-governor  (${INSTANCES} instances in separate processes × ${CALLERS} callers, one owner, GET /rest/v1.0/projects?per_page=1 with Procore-Company-Id ${COMPANY_ID}, fake limit ${LIMIT} calls per ${WINDOW_S} s window, API latency ${API_LATENCY_MS} ms, ${DURATION_S} s per client, maxRateLimitWaitMs ${MAX_RATE_LIMIT_WAIT_MS / 1000} s)`,
        [
          [
            'library: calls served',
            `${libServed} of a capacity of ${capacity} (${windowsElapsed} windows × ${LIMIT}) = ${fmt(servedRatio, 3)}  (target ≥ 0.9: ${met(servedRatio >= 0.9)})`,
          ],
          [
            'library: calls sent / answered 429',
            `${library.sent} / ${library.answered429} = ${pct(lib429Share)} of calls sent  (target ≤ 2 %: ${met(lib429Share <= 0.02)}; rate_limited events ${libEvents})`,
          ],
          [
            'library: failed calls',
            `${libFailed} ${JSON.stringify(libFailures)}  (target 0: ${met(libFailed === 0)}; ${libStopped} still waiting for the budget at the end, aborted)`,
          ],
          [
            'library: latency of served calls',
            `p50 ${ms(percentile(libLatencies, 50))}, p90 ${ms(percentile(libLatencies, 90))}, p99 ${ms(percentile(libLatencies, 99))} (waiting for the budget included); ${waitedOver(WINDOW_S * 1.2)} of ${libLatencies.length} waited over ${WINDOW_S * 1.2} s, ${waitedOver(WINDOW_S * 2.2)} over ${WINDOW_S * 2.2} s`,
          ],
          [
            'library: windows the fake opened',
            `${libWindows.length}; each opened ${latePerWindow.map((v) => fmt(v, 0)).join(', ')} ms after the previous one ended (X-Rate-Limit-Reset is in whole seconds, rounded up)`,
          ],
          [
            'library: per full window',
            `${fullWindows.length} windows: served ${fullWindows.map((w) => w.served).join(', ')}; 429 ${perWindow429.join(', ')}; sent ${perWindowSent.join(', ')}`,
          ],
          [
            'library: per instance and window',
            Array.from(
              { length: INSTANCES },
              (_, i) =>
                `instance ${i} sent ${fmt(sentByInstance(i))} (429: ${fmt(mean(fullWindows.map((w) => w.rateLimitedBy[i])))})`,
            ).join('; ') + ' on average',
          ],
          [
            'library: who gets the 429s',
            `after a 429 the same caller's next attempt is 429 again in ${pct(again429)} (${streaks.after429Again}/${streaks.after429}); after a served call, in ${pct(first429)} (${streaks.afterServed429}/${streaks.afterServed}); longest run of 429s for one caller ${streaks.longest429Run}, runs of ≥ 3: ${streaks.runsOf3}`,
          ],
          [
            'naive: calls served',
            `${naiveServed} of ${capacity} = ${fmt(naiveServed / capacity, 3)}  (callers got ${naiveServedClient} pages)`,
          ],
          [
            'naive: calls sent / answered 429',
            `${fmt(naive.sent, 0)} / ${fmt(naive.answered429, 0)} = ${pct(naive429Share)} of calls sent`,
          ],
          [
            'naive: failed calls',
            `${fmt(naiveFailed, 0)} ${JSON.stringify(naiveFailures)}  (gave up after 1 + ${NAIVE_RETRIES} immediate tries)`,
          ],
          [
            'naive: latency of served calls',
            `p50 ${ms(percentile(naiveLatencies, 50))}, p99 ${ms(percentile(naiveLatencies, 99))}`,
          ],
          ['429s naive / library', `${fmt(naive.answered429 / Math.max(1, library.answered429))}×`],
        ],
      );
      recordFigures('api-rate-governor', {
        durationS: DURATION_S,
        apiLatencyMs: API_LATENCY_MS,
        capacity,
        libServed,
        libServedRatio: servedRatio,
        libSent: library.sent,
        lib429s: library.answered429,
        lib429Share,
        libFailed,
        libStoppedAtEnd: libStopped,
        libRateLimitedEvents: libEvents,
        libP50Ms: percentile(libLatencies, 50),
        libP99Ms: percentile(libLatencies, 99),
        libServedAfterOver12s: waitedOver(WINDOW_S * 1.2),
        libServedAfterOver22s: waitedOver(WINDOW_S * 2.2),
        maxRateLimitWaitS: MAX_RATE_LIMIT_WAIT_MS / 1000,
        libWindowsOpened: libWindows.length,
        libMean429PerWindow: mean(perWindow429),
        libMeanSentPerWindow: mean(perWindowSent),
        libMeanWindowLateMs: mean(latePerWindow),
        lib429After429Share: again429,
        lib429AfterServedShare: first429,
        libLongest429Run: streaks.longest429Run,
        lib429RunsOf3: streaks.runsOf3,
        naiveServed,
        naiveServedRatio: naiveServed / capacity,
        naiveSent: naive.sent,
        naive429s: naive.answered429,
        naive429Share,
        naiveFailed,
        naive401s: naive.answered401,
      });
    },
    async () => {
      await closeAll(workers);
      await fake.close();
      await database.drop();
    },
  );
}

runBenchmark(main);
