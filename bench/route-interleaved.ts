/**
 * route-interleaved: the three routes of route-overhead (`/with` takes `@ProcoreToken()`,
 * `/without` nothing, `/control` a do-nothing custom parameter with an async pipe), one request at
 * a time over one keep-alive connection, the routes interleaved request by request (the order
 * rotated every time). Whatever else the machine runs slows all three alike, so the ratio of the
 * median latencies resolves differences of a microsecond that throughput on a shared VM hides.
 * The app is the Nest app of route-overhead (Express; Fastify with BENCH_ROUTE_PLATFORM=fastify)
 * with the in-memory stores of `nestjs-procore-auth/testing` (a cache hit touches no database);
 * the client runs in the same process, so latency = client + server time, the same client work
 * for every route. Every route passes through a stand-in for authentication middleware that reads
 * the request headers (see below).
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ProcoreAuthModule, ProcoreTokenService } from 'nestjs-procore-auth';
import {
  FakeProcoreServer,
  fakeProcoreAuthOptions,
  InMemoryProcoreOAuthStateStore,
  InMemoryProcoreTokenStore,
} from 'nestjs-procore-auth/testing';
import { runBenchmark } from './support/main.js';
import { RouteOverheadController } from './support/route-controller.js';
import { fmt, median, printBlock, recordFigures } from './support/stats.js';

const ROUTES = ['without', 'with', 'control', 'param'] as const;
type Route = (typeof ROUTES)[number];
const OWNER = 'bench-user';

function get(agent: Agent, port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host: '127.0.0.1', port, path, headers: { 'x-user-id': OWNER } },
      (res) => {
        if (res.statusCode !== 200) reject(new Error(`${path}: ${res.statusCode}`));
        res.resume();
        res.on('end', resolve);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const REQUESTS = Number(process.env['BENCH_INTERLEAVED_REQUESTS'] ?? 20_000);
const WARMUP_REQUESTS = Number(process.env['BENCH_INTERLEAVED_WARMUP'] ?? 5_000);

async function main(): Promise<void> {
  const fake = await FakeProcoreServer.start();
  @Module({
    imports: [
      ProcoreAuthModule.forRoot({
        ...fakeProcoreAuthOptions(fake, {
          ownerResolver: (req) =>
            (req as { headers: Record<string, string | undefined> }).headers['x-user-id'],
        }),
        storage: { tokens: InMemoryProcoreTokenStore, states: InMemoryProcoreOAuthStateStore },
      }),
    ],
    controllers: [RouteOverheadController],
  })
  class InterleavedModule {}
  const platform = process.env['BENCH_ROUTE_PLATFORM'] ?? 'express';
  const app =
    platform === 'fastify'
      ? await NestFactory.create(
          InterleavedModule,
          new (await import('@nestjs/platform-fastify')).FastifyAdapter(),
          { logger: ['error', 'fatal'] },
        )
      : await NestFactory.create(InterleavedModule, { logger: ['error', 'fatal'] });
  // A stand-in for the app's authentication middleware, on every route: it reads the request's
  // headers, as any real one does. Node builds `req.headers` on first access (about 4 µs here),
  // which would otherwise be billed to whoever reads them first: the owner resolver of /with.
  // BENCH_INTERLEAVED_NO_AUTH=1 leaves it out.
  const authStandIn = process.env['BENCH_INTERLEAVED_NO_AUTH'] !== '1';
  if (authStandIn) {
    app.use((req: { headers: unknown }, _res: unknown, next: () => void) => {
      void req.headers;
      next();
    });
  }
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await app.listen(0, '127.0.0.1');
    await app.get(ProcoreTokenService).importTokens(OWNER, fake.issueTokens());
    const { port } = app.getHttpServer().address() as AddressInfo;
    const latencies: Record<Route, number[]> = { without: [], with: [], control: [], param: [] };
    for (let i = 0; i < WARMUP_REQUESTS + REQUESTS; i++) {
      for (let j = 0; j < ROUTES.length; j++) {
        const route = ROUTES[(i + j) % ROUTES.length];
        const t0 = process.hrtime.bigint();
        await get(agent, port, `/${route}`);
        if (i >= WARMUP_REQUESTS)
          latencies[route].push(Number(process.hrtime.bigint() - t0) / 1000);
      }
    }
    const med = (route: Route) => median(latencies[route]);
    const withUs = med('with');
    const withoutUs = med('without');
    const controlUs = med('control');
    const paramUs = med('param');
    printBlock(
      `route-interleaved  (${platform}, ${REQUESTS} requests per route after ${WARMUP_REQUESTS}, one at a time, routes interleaved; client in the same process; ${authStandIn ? 'every route reads the headers (authentication stand-in)' : 'no authentication stand-in'})`,
      [
        ['GET /without median', `${fmt(withoutUs, 1)} µs`],
        [
          'GET /with (@ProcoreToken()) median',
          `${fmt(withUs, 1)} µs (${fmt(withUs - withoutUs, 2)} µs more)`,
        ],
        [
          'GET /control (async pipe) median',
          `${fmt(controlUs, 1)} µs (${fmt(controlUs - withoutUs, 2)} µs more)`,
        ],
        [
          'ratio without/with (requests a second, one at a time)',
          `${fmt(withoutUs / withUs, 3)} (target ≥ 0.97: ${withoutUs / withUs >= 0.97 ? 'met' : 'NOT met'})`,
        ],
        [
          'GET /param (a constant parameter, no pipe) median',
          `${fmt(paramUs, 1)} µs (${fmt(paramUs - withoutUs, 2)} µs more)`,
        ],
        ['ratio control/with', fmt(controlUs / withUs, 3)],
        ['ratio param/with (over the cheapest parameter)', fmt(paramUs / withUs, 3)],
      ],
    );
    recordFigures('route-interleaved', {
      authStandIn: authStandIn ? 1 : 0,
      medianUsWith: withUs,
      medianUsWithout: withoutUs,
      medianUsControl: controlUs,
      extraUsWith: withUs - withoutUs,
      extraUsControl: controlUs - withoutUs,
      medianUsParam: paramUs,
      extraUsParam: paramUs - withoutUs,
      ratioParamOverWith: paramUs / withUs,
      ratioWithoutOverWith: withoutUs / withUs,
      ratioControlOverWith: controlUs / withUs,
    });
  } finally {
    agent.destroy();
    await app.close();
    await fake.close();
  }
}

runBenchmark(main);
