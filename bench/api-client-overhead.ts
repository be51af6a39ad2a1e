/**
 * api-client-overhead: what the package's API client costs on a route that calls Procore. A real
 * Nest HTTP app (Express) in its own process serves
 *
 * - `GET /api/client`: `@ProcoreApi() procore` then `procore.get('/rest/v1.0/me')`;
 * - `GET /api/fetch`: `@ProcoreToken() token` then the global `fetch` of the fake's
 *   `/rest/v1.0/me` with `Authorization: Bearer <token>` (a non-2xx answer is an error).
 *
 * Both answer the fake's `/me` body. `GET /without` (no parameter, no call: `{"ok":true}`) is a
 * reference for what the app costs without any Procore call. One owner is connected (its token
 * served from the cache), and the fake's rate limit is lifted so no call waits. autocannon (this
 * process) loads each route in rotating order, round after round; ratios are taken within each
 * round and the median is reported, with the app process's CPU time per request. The fake
 * Procore server runs in this process too, beside autocannon.
 */
import autocannon from 'autocannon';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { createBenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { generateEncryptionKey, workerConfig } from './support/procore.js';
import { fmt, mean, median, ms, printBlock, recordFigures } from './support/stats.js';
import { AppWorker } from './support/worker-client.js';

const DURATION_S = Number(process.env['BENCH_API_DURATION_S'] ?? 5);
const ROUNDS = Number(process.env['BENCH_API_ROUNDS'] ?? 6);
const WARMUP_S = Number(process.env['BENCH_API_WARMUP_S'] ?? 3);
const CONNECTIONS = 10;
const OWNER = 'bench-user';
const ROUTES = ['client', 'fetch', 'without'] as const;
type Route = (typeof ROUTES)[number];
const PATHS: Record<Route, string> = {
  client: '/api/client',
  fetch: '/api/fetch',
  without: '/without',
};

/** Rotated and reversed from round to round (as route-overhead), so drift hits every route alike. */
function roundOrder(round: number): Route[] {
  const rotated = [...ROUTES.slice(round % 3), ...ROUTES.slice(0, round % 3)];
  return round % 2 ? rotated.reverse() : rotated;
}

interface Run {
  result: autocannon.Result;
  /** CPU time (user + system) of the app process per request served. */
  cpuUsPerRequest: number;
  /** Database statements the app process sent over the run. */
  statements: number;
}

async function load(base: string, route: Route, duration: number): Promise<autocannon.Result> {
  const result = await autocannon({
    url: `${base}${PATHS[route]}`,
    connections: CONNECTIONS,
    pipelining: 1,
    duration,
    headers: { 'x-user-id': OWNER },
  });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(
      `${PATHS[route]}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`,
    );
  }
  return result;
}

async function main(): Promise<void> {
  const database = await createBenchDatabase('api_client_overhead');
  const fake = await FakeProcoreServer.start();
  // Procore's default (3,600 calls an hour per token) would be spent in a second: lift it, so the
  // governor never holds a call and both routes measure the call itself.
  fake.setRateLimit({ limit: 1_000_000_000, windowSeconds: 3600 });
  let worker: AppWorker | undefined;
  await withCleanup(
    async () => {
      worker = await AppWorker.start(
        workerConfig({
          label: 'http-app',
          databaseUrl: database.url,
          fake,
          encryptionKey: generateEncryptionKey(),
          http: true,
        }),
      );
      await worker.call('importTokens', { entries: [[OWNER, fake.issueTokens()]], concurrency: 1 });
      const base = `http://127.0.0.1:${worker.port}`;

      // Sanity: both routes answer the fake's /me for the owner, and refuse without one.
      const me = JSON.stringify({ id: fake.user.id, login: fake.user.login, name: fake.user.name });
      for (const route of ['client', 'fetch'] as const) {
        const ok = await fetch(`${base}/api/${route}`, { headers: { 'x-user-id': OWNER } });
        const body = await ok.text();
        const refused = await fetch(`${base}/api/${route}`);
        if (ok.status !== 200 || body !== me || refused.status !== 401) {
          throw new Error(
            `sanity check failed: /api/${route} ${ok.status} ${body}, no owner ${refused.status}`,
          );
        }
      }

      for (const route of [...ROUTES, ...ROUTES]) await load(base, route, WARMUP_S);

      const app = worker;
      fake.resetCounters();
      const measure = async (route: Route): Promise<Run> => {
        const before = await app.call('cpuUsage', null);
        const result = await load(base, route, DURATION_S);
        const after = await app.call('cpuUsage', null);
        const cpuUs = after.userUs + after.systemUs - before.userUs - before.systemUs;
        return {
          result,
          cpuUsPerRequest: cpuUs / result.requests.total,
          statements: after.statements - before.statements,
        };
      };
      const runs: Record<Route, Run[]> = { client: [], fetch: [], without: [] };
      for (let round = 0; round < ROUNDS; round++) {
        for (const route of roundOrder(round)) runs[route].push(await measure(route));
      }
      const served = (['client', 'fetch'] as const).reduce(
        (total, route) => total + runs[route].reduce((n, r) => n + r.result.requests.total, 0),
        0,
      );

      const rps = (route: Route) => runs[route].map((r) => r.result.requests.average);
      const cpu = (route: Route) => runs[route].map((r) => r.cpuUsPerRequest);
      const clientRps = mean(rps('client'));
      const fetchRps = mean(rps('fetch'));
      const withoutRps = mean(rps('without'));
      const roundRatios = Array.from(
        { length: ROUNDS },
        (_, i) => rps('client')[i] / rps('fetch')[i],
      );
      const medianRatio = median(roundRatios);
      const cpuRatio = median(
        Array.from({ length: ROUNDS }, (_, i) => cpu('fetch')[i] / cpu('client')[i]),
      );
      const cpuUs = (route: Route) => median(cpu(route));
      /** Database statements per request over all of a route's runs. */
      const perRequestStatements = (route: Route) =>
        runs[route].reduce((n, r) => n + r.statements, 0) /
        runs[route].reduce((n, r) => n + r.result.requests.total, 0);
      const p = (route: Route, key: 'p50' | 'p99') =>
        mean(runs[route].map((r) => r.result.latency[key]));
      const list = (values: number[], digits?: number) =>
        values.map((v) => fmt(v, digits)).join(', ');
      const latency = (route: Route) => `${ms(p(route, 'p50'))} / ${ms(p(route, 'p99'))}`;
      const verdict =
        medianRatio >= 1
          ? 'met (the pooled client beats raw fetch)'
          : medianRatio >= 0.95
            ? 'met'
            : 'NOT met';

      printBlock(
        `api-client-overhead  (Express app in its own process calling the fake's GET /rest/v1.0/me, ${CONNECTIONS} connections, ${ROUNDS} rounds × 3 routes × ${DURATION_S} s, order rotated each round, autocannon and the fake in the parent)`,
        [
          [
            'GET /api/client req/s (@ProcoreApi)',
            `${fmt(clientRps)}  (runs: ${list(rps('client'))})`,
          ],
          ['GET /api/fetch  req/s (raw fetch)', `${fmt(fetchRps)}  (runs: ${list(rps('fetch'))})`],
          [
            'GET /without    req/s (no call)',
            `${fmt(withoutRps)}  (runs: ${list(rps('without'))})`,
          ],
          ['latency p50 / p99  /api/client', latency('client')],
          ['latency p50 / p99  /api/fetch', latency('fetch')],
          ['latency p50 / p99  /without', latency('without')],
          [
            'ratio client/fetch, req/s',
            `${fmt(medianRatio, 3)} median of rounds, ${fmt(clientRps / fetchRps, 3)} of the means  (rounds: ${list(roundRatios, 3)}; target ≥ 0.95: ${verdict})`,
          ],
          [
            'ratio client/fetch, app CPU',
            `${fmt(cpuRatio, 3)}  (app CPU per request: client ${fmt(cpuUs('client'))} µs, fetch ${fmt(cpuUs('fetch'))} µs, without ${fmt(cpuUs('without'))} µs; medians)`,
          ],
          [
            'app CPU of the Procore call itself',
            `client ${fmt(cpuUs('client') - cpuUs('without'))} µs, fetch ${fmt(cpuUs('fetch') - cpuUs('without'))} µs  (route's CPU − /without's)`,
          ],
          [
            'database statements per request',
            `client ${fmt(perRequestStatements('client'), 3)}, fetch ${fmt(perRequestStatements('fetch'), 3)}, without ${fmt(perRequestStatements('without'), 3)}  (all the app's pg statements ÷ requests served)`,
          ],
          [
            'calls at the fake / requests served',
            `${fmt(fake.counters.api, 0)} / ${fmt(served, 0)}  (429: ${fake.counters.apiRateLimited}, 401: ${fake.counters.apiUnauthorized}, refresh calls: ${fake.counters.refreshToken})`,
          ],
        ],
      );
      recordFigures('api-client-overhead', {
        clientRps,
        fetchRps,
        withoutRps,
        medianRatio,
        ratioOfMeans: clientRps / fetchRps,
        roundRatioMin: Math.min(...roundRatios),
        roundRatioMax: Math.max(...roundRatios),
        cpuRatio,
        cpuUsClient: cpuUs('client'),
        cpuUsFetch: cpuUs('fetch'),
        cpuUsWithout: cpuUs('without'),
        callCpuUsClient: cpuUs('client') - cpuUs('without'),
        callCpuUsFetch: cpuUs('fetch') - cpuUs('without'),
        statementsPerRequestClient: perRequestStatements('client'),
        statementsPerRequestFetch: perRequestStatements('fetch'),
        clientP50Ms: p('client', 'p50'),
        clientP99Ms: p('client', 'p99'),
        fetchP50Ms: p('fetch', 'p50'),
        fetchP99Ms: p('fetch', 'p99'),
        fakeApiCalls: fake.counters.api,
        requestsServed: served,
        fake429s: fake.counters.apiRateLimited,
        refreshCalls: fake.counters.refreshToken,
      });
    },
    async () => {
      await worker?.close();
      await fake.close();
      await database.drop();
    },
  );
}

runBenchmark(main);
