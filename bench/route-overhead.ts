/**
 * route-overhead: what `@ProcoreToken()` costs on a hot route. A real Nest HTTP app (Express) in
 * its own process serves `GET /with` (handler takes `@ProcoreToken() token: string`) and
 * `GET /without` (same tiny JSON, no decorator); the owner comes from `x-user-id`. One owner is
 * connected, so `/with` is served from the in-memory cache (a database read every `cache.ttlSeconds`).
 * A third route, `GET /control`, has a do-nothing custom parameter decorator with an async pipe
 * (the shape `@ProcoreToken()` had until it resolved in its parameter factory): what Nest's
 * parameter-pipe machinery alone costs, for comparison. route-interleaved compares the same three
 * routes request by request, which this machine's noise does not tilt.
 * autocannon (this process) loads each route in rotating order; the ratios are from this run.
 * Besides req/s, the app process's CPU time per request is measured (process.cpuUsage() around
 * each run): on a noisy VM it is a steadier estimate of the cost than throughput.
 */
import autocannon from 'autocannon';
import { FakeProcoreServer } from 'nestjs-procore-auth/testing';
import { createBenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { generateEncryptionKey, workerConfig } from './support/procore.js';
import { fmt, mean, median, ms, printBlock, recordFigures } from './support/stats.js';
import { AppWorker } from './support/worker-client.js';

const DURATION_S = Number(process.env['BENCH_ROUTE_DURATION_S'] ?? 2);
const ROUNDS = Number(process.env['BENCH_ROUTE_ROUNDS'] ?? 15);
const WARMUP_S = Number(process.env['BENCH_ROUTE_WARMUP_S'] ?? 3);
const CONNECTIONS = 10;
const OWNER = 'bench-user';
const ROUTES = ['with', 'without', 'control', 'param', 'again'] as const;
type Route = (typeof ROUTES)[number];
/**
 * Each route once per round, the order rotated and reversed from round to round, so drift
 * (noisy neighbours on this VM) hits every route alike; ratios are taken within each round and
 * the median over rounds is reported beside the ratio of the means. Many short rounds (15 × 2 s)
 * rather than a few long ones (6 × 5 s, until issue 11): the same time per route, but adjacent
 * windows closer in time and a median over more of them.
 */
function roundOrder(round: number): Route[] {
  const shift = round % ROUTES.length;
  const rotated = [...ROUTES.slice(shift), ...ROUTES.slice(0, shift)];
  return round % 2 ? rotated.reverse() : rotated;
}

interface Run {
  result: autocannon.Result;
  /** CPU time (user + system) of the app process per request served. */
  cpuUsPerRequest: number;
}

async function load(base: string, route: Route, duration: number): Promise<autocannon.Result> {
  const result = await autocannon({
    url: `${base}/${route}`,
    connections: CONNECTIONS,
    pipelining: 1,
    duration,
    headers: { 'x-user-id': OWNER },
  });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(
      `/${route}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`,
    );
  }
  return result;
}

async function main(): Promise<void> {
  const database = await createBenchDatabase('route_overhead');
  const fake = await FakeProcoreServer.start();
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

      // Sanity: the decorator really resolves (200) and really refuses without an owner (401).
      const ok = await fetch(`${base}/with`, { headers: { 'x-user-id': OWNER } });
      const refused = await fetch(`${base}/with`);
      if (ok.status !== 200 || refused.status !== 401) {
        throw new Error(`sanity check failed: /with ${ok.status}, no owner ${refused.status}`);
      }

      // Warm-up until every route's code is optimised (a first measured run used to lag).
      for (const route of [...ROUTES, ...ROUTES]) await load(base, route, WARMUP_S);

      const app = worker;
      /** One load run, with the app process's CPU time per request over it. */
      const measure = async (route: Route): Promise<Run> => {
        const before = await app.call('cpuUsage', null);
        const result = await load(base, route, DURATION_S);
        const after = await app.call('cpuUsage', null);
        const cpuUs = after.userUs + after.systemUs - before.userUs - before.systemUs;
        return { result, cpuUsPerRequest: cpuUs / result.requests.total };
      };
      const runs: Record<Route, Run[]> = {
        with: [],
        without: [],
        control: [],
        param: [],
        again: [],
      };
      for (let round = 0; round < ROUNDS; round++) {
        for (const route of roundOrder(round)) runs[route].push(await measure(route));
      }

      const rps = (route: Route) => runs[route].map((r) => r.result.requests.average);
      const cpu = (route: Route) => runs[route].map((r) => r.cpuUsPerRequest);
      const withRps = mean(rps('with'));
      const withoutRps = mean(rps('without'));
      const controlRps = mean(rps('control'));
      // Within each round (each route ran once per round, seconds apart).
      const perRound = (values: (route: Route) => number[], a: Route, b: Route) =>
        Array.from({ length: ROUNDS }, (_, i) => values(a)[i] / values(b)[i]);
      const roundRatios = perRound(rps, 'with', 'without');
      const medianRatio = median(roundRatios);
      const medianRatioControl = median(perRound(rps, 'with', 'control'));
      const paramRatios = perRound(rps, 'with', 'param');
      const medianRatioParam = median(paramRatios);
      // A/A: the same handler under two paths. How far its ratio strays from 1 is this run's noise.
      const aaRatios = perRound(rps, 'again', 'without');
      const medianRatioAA = median(aaRatios);
      // Capacity ratio from CPU time: what the app could serve with vs without, CPU-bound.
      const cpuRatio = median(perRound(cpu, 'without', 'with'));
      const cpuUs = (route: Route) => median(cpu(route));
      const extraUs = cpuUs('with') - cpuUs('without');
      const nestParamUs = cpuUs('control') - cpuUs('without');
      const libraryUs = cpuUs('with') - cpuUs('control');
      const p = (route: Route, key: 'p50' | 'p99') =>
        mean(runs[route].map((r) => r.result.latency[key]));

      const list = (values: number[], digits?: number) =>
        values.map((v) => fmt(v, digits)).join(', ');
      const latency = (route: Route) => `${ms(p(route, 'p50'))} / ${ms(p(route, 'p99'))}`;
      printBlock(
        `route-overhead  (Express app in its own process, ${CONNECTIONS} connections, ${ROUNDS} rounds × ${ROUTES.length} routes × ${DURATION_S} s, order rotated each round, autocannon in the parent)`,
        [
          ['GET /with    req/s', `${fmt(withRps)}  (runs: ${list(rps('with'))})`],
          ['GET /without req/s', `${fmt(withoutRps)}  (runs: ${list(rps('without'))})`],
          ['GET /control req/s', `${fmt(controlRps)}  (runs: ${list(rps('control'))})`],
          ['latency p50 / p99  /with', latency('with')],
          ['latency p50 / p99  /without', latency('without')],
          ['latency p50 / p99  /control', latency('control')],
          [
            'ratio with/without, req/s',
            `${fmt(medianRatio, 3)} median of rounds, ${fmt(withRps / withoutRps, 3)} of the means  (rounds: ${list(roundRatios, 3)}; target ≥ 0.97: ${medianRatio >= 0.97 ? 'met' : 'NOT met'})`,
          ],
          [
            'ratio with/without, app CPU',
            `${fmt(cpuRatio, 3)}  (app CPU per request: with ${fmt(cpuUs('with'))} µs, without ${fmt(cpuUs('without'))} µs, control ${fmt(cpuUs('control'))} µs, param ${fmt(cpuUs('param'))} µs, again ${fmt(cpuUs('again'))} µs; medians)`,
          ],
          ['ratio with/control, req/s', `${fmt(medianRatioControl, 3)} median of rounds`],
          [
            'ratio with/param, req/s',
            `${fmt(medianRatioParam, 3)} median of rounds  (rounds: ${list(paramRatios, 3)}; over the cheapest parameter: a constant, no pipe)`,
          ],
          [
            'A/A ratio again/without, req/s',
            `${fmt(medianRatioAA, 3)} median of rounds  (rounds: ${list(aaRatios, 3)}; the same route twice: what noise alone gives)`,
          ],
          [
            'extra app CPU per request',
            `with − without ${fmt(extraUs)} µs (the decorator, all of it); control − without ${fmt(nestParamUs)} µs (an async parameter pipe, for comparison); with − control ${fmt(libraryUs)} µs`,
          ],
          ['refresh calls at the fake', String(fake.counters.refreshToken)],
        ],
      );
      recordFigures('route-overhead', {
        withRps,
        withoutRps,
        controlRps,
        medianRatio,
        ratioOfMeans: withRps / withoutRps,
        roundRatioMin: Math.min(...roundRatios),
        roundRatioMax: Math.max(...roundRatios),
        medianRatioControl,
        medianRatioAA,
        medianRatioParam,
        aaRoundRatioMin: Math.min(...aaRatios),
        aaRoundRatioMax: Math.max(...aaRatios),
        cpuRatio,
        cpuUsWith: cpuUs('with'),
        cpuUsWithout: cpuUs('without'),
        cpuUsControl: cpuUs('control'),
        cpuUsAgain: cpuUs('again'),
        cpuUsParam: cpuUs('param'),
        extraCpuUs: extraUs,
        nestParamPipeCpuUs: nestParamUs,
        libraryCpuUs: libraryUs,
        withP50Ms: p('with', 'p50'),
        withP99Ms: p('with', 'p99'),
        withoutP50Ms: p('without', 'p50'),
        withoutP99Ms: p('without', 'p99'),
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
