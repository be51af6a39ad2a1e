/**
 * cache-and-queries:
 * (a) heap cost of the access-token cache (`AccessTokenCache`, lib/tokens/access-token.cache.ts)
 *     holding 100,000 owners' tokens, measured with `global.gc()` (run with --expose-gc; run.js
 *     does it);
 * (b) database round trips of `getAccessToken()` on a cache hit, on a cache miss with a fresh
 *     stored token, and on a refresh, counted twice: by a TypeORM logger (`logQuery`) and by
 *     wrapping `pg.Client.prototype.query` (everything the driver sends);
 * (c) CPU time of the hot path, per call: `getAccessToken()` on a cache hit and what
 *     `@ProcoreToken()`'s parameter factory runs (`ProcoreTokenPipe.resolve()`, synchronous on a
 *     hit; route-overhead measures it through HTTP).
 */
import 'reflect-metadata';
import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger as TypeOrmLogger } from 'typeorm';
import {
  ProcoreAuthModule,
  ProcoreTokenPipe,
  ProcoreTokenService,
  procoreAuthEntities,
} from 'nestjs-procore-auth';
import { FakeProcoreServer, fakeProcoreAuthOptions } from 'nestjs-procore-auth/testing';
import { createBenchDatabase } from './support/database.js';
import { runBenchmark, withCleanup } from './support/main.js';
import { fmt, printBlock, recordFigures, sleep } from './support/stats.js';

const ENTRIES = 100_000;

// ---------------------------------------------------------------------------------------------
// (a) memory

interface TokenCache {
  set(ownerId: string, token: string, expiresAt: Date): void;
  get(ownerId: string, skewMs: number): string | undefined;
  clear(): void;
  readonly size: number;
}
type TokenCacheClass = new (maxEntries: number, ttlSeconds: number) => TokenCache;

/** The built class (internal: not exported by the package, so loaded by path next to dist/index.js). */
async function loadCacheClass(): Promise<TokenCacheClass> {
  const url = new URL('./tokens/access-token.cache.js', import.meta.resolve('nestjs-procore-auth'));
  const module = (await import(url.href)) as { AccessTokenCache: TokenCacheClass };
  return module.AccessTokenCache;
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with node --expose-gc (npm run bench does)');
  for (let i = 0; i < 4; i++) collect();
}

/** V8 heap plus memory outside it (the LRU's typed arrays live there). */
function memory(): number {
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

/**
 * A JWT-shaped token of `length` characters, as a flat string with nothing else referencing it
 * (as a token decrypted from the database is).
 */
function jwtLike(length: number): string {
  // header (36) . payload . signature (43), `length` characters in all.
  const raw = randomBytes(length).toString('base64url').slice(0, length);
  const signature = 43;
  const joined = `${raw.slice(0, 36)}.${raw.slice(37, length - signature - 1)}.${raw.slice(length - signature)}`;
  if (joined.length !== length) throw new Error(`token of ${joined.length} chars, not ${length}`);
  return Buffer.from(joined, 'latin1').toString('latin1');
}

/**
 * A UUID owner id as a flat string, as one read from a request or the database is. (randomUUID()
 * itself returns a tree of concatenated pieces that weighs ~490 bytes instead of ~56.)
 */
function ownerId(): string {
  return Buffer.from(randomUUID(), 'latin1').toString('latin1');
}

/** Heap size of a flat one-byte string of `length` characters (64-bit V8: 16-byte header, 8-byte aligned). */
function stringBytes(length: number): number {
  return Math.ceil((16 + length) / 8) * 8;
}

interface MemoryFigures {
  tokenLength: number;
  emptyBytes: number;
  filledBytes: number;
  bytesPerEntry: number;
}

async function measureCache(
  AccessTokenCache: TokenCacheClass,
  tokenLength: number,
): Promise<MemoryFigures> {
  const before = memory();
  const cache = new AccessTokenCache(ENTRIES, 3600);
  const empty = memory();
  const expiresAt = new Date(Date.now() + 5400_000);
  for (let i = 0; i < ENTRIES; i++) cache.set(ownerId(), jwtLike(tokenLength), expiresAt);
  if (cache.size !== ENTRIES) throw new Error(`cache holds ${cache.size}, not ${ENTRIES}`);
  const filled = memory();
  cache.clear();
  return {
    tokenLength,
    emptyBytes: empty - before,
    filledBytes: filled - before,
    bytesPerEntry: (filled - empty) / ENTRIES,
  };
}

// ---------------------------------------------------------------------------------------------
// (b) queries

/** Every statement, seen by TypeORM's logger and by the pg driver. */
class QueryRecorder implements TypeOrmLogger {
  typeorm: string[] = [];
  driver = 0;

  constructor() {
    const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
    const countOne = () => this.driver++;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      countOne();
      return original.apply(this, args);
    } as typeof pg.Client.prototype.query;
  }

  reset(): void {
    this.typeorm = [];
    this.driver = 0;
  }

  logQuery(query: string): void {
    this.typeorm.push(query.replace(/\s+/g, ' ').trim());
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

interface Counted {
  label: string;
  path: string[];
  pathDriver: number;
  deferred: string[];
}

/** Runs `work`, then waits for what was deferred off the path (the "last used" write). */
async function count(
  recorder: QueryRecorder,
  label: string,
  work: () => Promise<unknown>,
): Promise<Counted> {
  await sleep(50);
  recorder.reset();
  await work();
  const path = recorder.typeorm;
  const pathDriver = recorder.driver;
  recorder.reset();
  await sleep(100);
  return { label, path, pathDriver, deferred: recorder.typeorm };
}

/** Mean time of `work()` over `iterations` sequential awaited calls, after a warm-up, in ns. */
async function nsPerCall(work: () => Promise<unknown>, iterations = 300_000): Promise<number> {
  for (let i = 0; i < 30_000; i++) await work();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await work();
  return Number(process.hrtime.bigint() - start) / iterations;
}

/** Mean time of `work()` over `iterations` sequential synchronous calls, after a warm-up, in ns. */
function nsPerSyncCall(work: () => unknown, iterations = 1_000_000): number {
  for (let i = 0; i < 100_000; i++) work();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) work();
  return Number(process.hrtime.bigint() - start) / iterations;
}

/** `SELECT "t"."id" AS "t_id", ... FROM ... WHERE ...` → `SELECT … FROM "procore_oauth_tokens" … WHERE …`. */
function shorten(sql: string): string {
  const select = /^SELECT .*? FROM ("[a-z_]+")(?: "(\w+)")?(.*)$/i.exec(sql);
  const text = select ? `SELECT <${select[1]} columns> FROM ${select[1]}${select[3]}` : sql;
  return text.length > 110 ? `${text.slice(0, 107)}...` : text;
}

async function main(): Promise<void> {
  // (a) first, in a heap where nothing else is going on.
  const AccessTokenCache = await loadCacheClass();
  await measureCache(AccessTokenCache, 128); // warm up code paths and lazily allocated structures
  const memoryFigures = [
    await measureCache(AccessTokenCache, 337),
    await measureCache(AccessTokenCache, 512),
  ];

  // (b)
  const database = await createBenchDatabase('cache_queries');
  const fake = await FakeProcoreServer.start();
  const recorder = new QueryRecorder();
  let app: INestApplication | undefined;
  await withCleanup(
    async () => {
      @Module({
        imports: [
          TypeOrmModule.forRoot({
            type: 'postgres',
            url: database.url,
            entities: procoreAuthEntities,
            logger: recorder,
          }),
          ProcoreAuthModule.forRoot(fakeProcoreAuthOptions(fake)),
        ],
      })
      class QueriesModule {}
      app = await NestFactory.create(QueriesModule, { logger: ['error', 'fatal'] });
      await app.init();
      const tokens = app.get(ProcoreTokenService);
      const owner = 'owner-a';
      await tokens.importTokens(owner, fake.issueTokens()); // caches the token, as a connect does

      const runs: Counted[] = [];
      runs.push(
        await count(recorder, 'cache hit, first use of the owner', () =>
          tokens.getAccessToken(owner),
        ),
      );
      runs.push(await count(recorder, 'cache hit', () => tokens.getAccessToken(owner)));
      tokens.evict(owner);
      runs.push(
        await count(recorder, 'cache miss, stored token fresh', () => tokens.getAccessToken(owner)),
      );
      tokens.evict(owner);
      runs.push(
        await count(recorder, 'cache miss, 100 concurrent callers', () =>
          Promise.all(Array.from({ length: 100 }, () => tokens.getAccessToken(owner))),
        ),
      );
      fake.advanceClock(fake.accessTokenTtlSeconds + 60);
      await database.pool.query(
        `UPDATE procore_oauth_tokens SET expires_at = now() - interval '1 minute' WHERE owner_id = $1`,
        [owner],
      );
      tokens.evict(owner);
      fake.resetCounters();
      const refresh = await count(recorder, 'cache miss, stored token expired (refresh)', () =>
        tokens.getAccessToken(owner),
      );
      runs.push(refresh);
      if (fake.counters.refreshToken !== 1) throw new Error('the refresh run did not refresh once');

      // (c) the hot path, on a cache hit (the refresh above cached the new token).
      const pipe = app.get(ProcoreTokenPipe);
      const request = { user: { id: owner } };
      const hotPath = {
        awaitBaseline: await nsPerCall(() => Promise.resolve('token')),
        getAccessTokenHit: await nsPerCall(() => tokens.getAccessToken(owner)),
        pipeTransformHit: await nsPerCall(() => pipe.transform({ request, options: {} })),
        // What @ProcoreToken()'s parameter factory calls: a string on a hit, no promise.
        pipeResolveHit: nsPerSyncCall(() => {
          const token = pipe.resolve({ request, options: {} });
          if (typeof token !== 'string') throw new Error('resolve() did not answer from the cache');
          return token;
        }),
      };
      if (fake.counters.refreshToken !== 1) throw new Error('the hot path refreshed');

      const [hitFirst, hit, miss, missConcurrent] = runs;
      printBlock(
        'cache-and-queries (a): access-token cache memory, 100,000 entries (UUID owner ids)',
        [
          ...memoryFigures.map((m): [string, string] => [
            `tokens of ${m.tokenLength} chars`,
            `${fmt(m.filledBytes / 1024 / 1024)} MiB = ${fmt(m.filledBytes / 1e6)} MB in total (empty cache sized for 100k: ${fmt(m.emptyBytes / 1024 / 1024)} MiB), ${fmt(m.bytesPerEntry, 0)} bytes/entry, ${fmt(m.bytesPerEntry - stringBytes(m.tokenLength) - stringBytes(36), 0)} beyond the token and owner id strings (${stringBytes(m.tokenLength)} + ${stringBytes(36)} bytes)`,
          ]),
          [
            'target: 100,000 owners, 337-char tokens < 50 MB',
            memoryFigures[0].filledBytes < 50e6 ? 'met' : 'NOT met',
          ],
          [
            'default cache (10,000 entries max)',
            `≈ ${fmt((memoryFigures[1].bytesPerEntry * 10_000) / 1024 / 1024)} MiB at 512-char tokens`,
          ],
        ],
      );
      printBlock('cache-and-queries (b): database statements per getAccessToken()', [
        ...runs.map((run): [string, string] => [
          run.label,
          `${run.path.length} on the path (driver saw ${run.pathDriver})` +
            (run.deferred.length
              ? ` + ${run.deferred.length} deferred: ${run.deferred.map(shorten).join('; ')}`
              : ''),
        ]),
        [
          'targets',
          `miss 1 (${miss.path.length === 1 ? 'met' : 'NOT met'}), hit 0 (${hit.path.length === 0 && hitFirst.path.length === 0 ? 'met' : 'NOT met'}), 100 concurrent misses 1 (${missConcurrent.path.length === 1 ? 'met' : 'NOT met'})`,
        ],
      ]);
      console.log('   the refresh, statement by statement:');
      refresh.path.forEach((sql, i) => console.log(`     ${i + 1}. ${shorten(sql)}`));

      printBlock('cache-and-queries (c): CPU time of the hot path (cache hit), per call', [
        ['await of a resolved promise (baseline)', `${fmt(hotPath.awaitBaseline, 0)} ns`],
        ['ProcoreTokenService.getAccessToken()', `${fmt(hotPath.getAccessTokenHit, 0)} ns`],
        [
          'ProcoreTokenPipe.transform() (async, as a pipe)',
          `${fmt(hotPath.pipeTransformHit, 0)} ns`,
        ],
        [
          'ProcoreTokenPipe.resolve() (what @ProcoreToken() runs; sync)',
          `${fmt(hotPath.pipeResolveHit, 0)} ns`,
        ],
      ]);

      recordFigures('cache-and-queries', {
        nsAwaitBaseline: hotPath.awaitBaseline,
        nsGetAccessTokenHit: hotPath.getAccessTokenHit,
        nsPipeTransformHit: hotPath.pipeTransformHit,
        nsPipeResolveHit: hotPath.pipeResolveHit,
        ...Object.fromEntries(
          memoryFigures.flatMap((m) => [
            [`cacheMiB_${m.tokenLength}`, m.filledBytes / 1024 / 1024],
            [`bytesPerEntry_${m.tokenLength}`, m.bytesPerEntry],
            [
              `bytesBeyondStrings_${m.tokenLength}`,
              m.bytesPerEntry - stringBytes(m.tokenLength) - stringBytes(36),
            ],
          ]),
        ),
        queriesHitFirstUse: hitFirst.path.length,
        deferredHitFirstUse: hitFirst.deferred.length,
        queriesHit: hit.path.length,
        queriesMiss: miss.path.length,
        queriesMiss100Concurrent: missConcurrent.path.length,
        queriesRefresh: refresh.path.length,
        driverQueriesRefresh: refresh.pathDriver,
      });
    },
    async () => {
      await app?.close();
      await fake.close();
      await database.drop();
    },
  );
}

runBenchmark(main);
