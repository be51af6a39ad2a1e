/**
 * route-instructions: the CPU instructions one request costs, counted by valgrind's callgrind, for
 * the three routes of route-overhead (`/with` takes `@ProcoreToken()`, `/without` nothing,
 * `/control` a do-nothing custom parameter with an async pipe). Instruction counts do not depend
 * on what else the machine runs, so they show differences of a few microseconds that throughput
 * on a shared VM hides.
 *
 * `npm run bench -- route-instructions` runs, for each route, this file under
 * `valgrind --tool=callgrind` twice (N1 and N2 requests after the same warm-up) and takes
 * (instructions(N2) − instructions(N1)) / (N2 − N1): start-up and warm-up cancel out. The app is
 * the Nest app of route-overhead (Express; Fastify with BENCH_ROUTE_PLATFORM=fastify) with the
 * in-memory stores of `nestjs-procore-auth/testing` (no database: a cache hit does not touch it),
 * and the client is in the same process (its instructions are the same for every route).
 *
 * Run as a child (`ROUTE_INSTRUCTIONS_CHILD=<route>:<requests>`), it serves and sends the requests.
 */
import 'reflect-metadata';
import {
  Controller,
  createParamDecorator,
  Get,
  Injectable,
  Module,
  type PipeTransform,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ProcoreAuthModule, ProcoreTokenService, ProcoreToken } from 'nestjs-procore-auth';
import {
  FakeProcoreServer,
  InMemoryProcoreOAuthStateStore,
  InMemoryProcoreTokenStore,
} from 'nestjs-procore-auth/testing';
import { runBenchmark } from './support/main.js';
import { generateEncryptionKey } from './support/procore.js';
import { fmt, printBlock, recordFigures } from './support/stats.js';

const ROUTES = ['without', 'with', 'control'] as const;
type Route = (typeof ROUTES)[number];
const WARMUP = Number(process.env['BENCH_INSTRUCTIONS_WARMUP'] ?? 3000);
const N1 = Number(process.env['BENCH_INSTRUCTIONS_N1'] ?? 1000);
const N2 = Number(process.env['BENCH_INSTRUCTIONS_N2'] ?? 3000);
const OWNER = 'bench-user';
const BODY = { ok: true };

@Injectable()
class ControlPipe implements PipeTransform<unknown, Promise<string>> {
  async transform(): Promise<string> {
    return 'control';
  }
}
const ControlParam = () => createParamDecorator(() => null)(undefined, ControlPipe);

@Controller()
class BenchController {
  @Get('control')
  control(@ControlParam() value: string) {
    void value;
    return BODY;
  }

  @Get('with')
  with(@ProcoreToken() token: string) {
    void token;
    return BODY;
  }

  @Get('without')
  without() {
    return BODY;
  }
}

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

/** The child: one app, `warm-up + requests` sequential requests to one route, then exit. */
async function child(route: Route, requests: number): Promise<void> {
  const fake = await FakeProcoreServer.start();
  @Module({
    imports: [
      ProcoreAuthModule.forRoot({
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
        redirectUri: 'http://127.0.0.1:3000/procore/oauth/callback',
        authBaseUrl: fake.url,
        apiBaseUrl: fake.url,
        encryptionKey: generateEncryptionKey(),
        scheduler: { enabled: false },
        // An hour: the measured requests are all cache hits (no reload inside the run).
        cache: { maxEntries: 10_000, ttlSeconds: 3600 },
        storage: { tokens: InMemoryProcoreTokenStore, states: InMemoryProcoreOAuthStateStore },
        ownerResolver: (req) =>
          (req as { headers: Record<string, string | undefined> }).headers['x-user-id'],
      }),
    ],
    controllers: [BenchController],
  })
  class InstructionsModule {}
  const platform = process.env['BENCH_ROUTE_PLATFORM'] ?? 'express';
  const app =
    platform === 'fastify'
      ? await NestFactory.create(
          InstructionsModule,
          new (await import('@nestjs/platform-fastify')).FastifyAdapter(),
          { logger: ['error', 'fatal'] },
        )
      : await NestFactory.create(InstructionsModule, { logger: ['error', 'fatal'] });
  await app.listen(0, '127.0.0.1');
  await app.get(ProcoreTokenService).importTokens(OWNER, fake.issueTokens());
  const { port } = app.getHttpServer().address() as AddressInfo;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < WARMUP + requests; i++) await get(agent, port, `/${route}`);
  agent.destroy();
  await app.close();
  await fake.close();
}

/** Instructions callgrind counted in one child run. */
function countInstructions(route: Route, requests: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      'valgrind',
      [
        '--tool=callgrind',
        '--callgrind-out-file=/dev/null',
        '--smc-check=all-non-file',
        process.execPath,
        fileURLToPath(import.meta.url),
      ],
      {
        env: { ...process.env, ROUTE_INSTRUCTIONS_CHILD: `${route}:${requests}` },
        stdio: ['ignore', 'inherit', 'pipe'],
      },
    );
    let stderr = '';
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.on('error', reject);
    proc.on('exit', (code) => {
      const collected = /Collected\s*:\s*(\d+)/.exec(stderr);
      if (code !== 0 || !collected) {
        reject(
          new Error(`callgrind run of /${route} failed (exit ${code}):\n${stderr.slice(-2000)}`),
        );
      } else {
        resolve(Number(collected[1]));
      }
    });
  });
}

async function main(): Promise<void> {
  const perRequest: Record<string, number> = {};
  for (const route of ROUTES) {
    const low = await countInstructions(route, N1);
    const high = await countInstructions(route, N2);
    perRequest[route] = (high - low) / (N2 - N1);
  }
  const { with: withI, without, control } = perRequest as Record<Route, number>;
  const platform = process.env['BENCH_ROUTE_PLATFORM'] ?? 'express';
  printBlock(
    `route-instructions  (${platform}, callgrind, (instructions at ${N2} − at ${N1} requests) ÷ ${N2 - N1}, after ${WARMUP} warm-up requests; client in the same process)`,
    [
      ['GET /without', `${fmt(without, 0)} instructions per request`],
      [
        'GET /with (@ProcoreToken())',
        `${fmt(withI, 0)} (${fmt(withI - without, 0)} more, ${fmt(((withI - without) / without) * 100, 1)} %)`,
      ],
      [
        'GET /control (async pipe)',
        `${fmt(control, 0)} (${fmt(control - without, 0)} more, ${fmt(((control - without) / without) * 100, 1)} %)`,
      ],
      ['ratio without/with (capacity, CPU-bound)', fmt(without / withI, 3)],
    ],
  );
  recordFigures('route-instructions', {
    instructionsWithout: without,
    instructionsWith: withI,
    instructionsControl: control,
    extraInstructionsWith: withI - without,
    extraInstructionsControl: control - without,
    capacityRatio: without / withI,
  });
}

const childSpec = process.env['ROUTE_INSTRUCTIONS_CHILD'];
if (childSpec) {
  const [route, requests] = childSpec.split(':');
  child(route as Route, Number(requests)).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
} else {
  runBenchmark(main);
}
