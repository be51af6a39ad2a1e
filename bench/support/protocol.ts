import type { ProcoreAuthModuleOptions, ProcoreRefreshTickSummary } from 'nestjs-procore-auth';
import type { FakeProcoreTokenResponse } from 'nestjs-procore-auth/testing';

/** How the parent tells a worker process which app to boot. */
export interface WorkerConfig {
  /** Shown in error messages. */
  label: string;
  databaseUrl: string;
  procore: { url: string; clientId: string; clientSecret: string };
  encryptionKey: string;
  /** TypeORM pool size of this instance (TypeORM's default is 10). */
  poolSize: number;
  /**
   * Listen on loopback with the benchmark routes (`GET /with`, `GET /without`, `GET /control`,
   * `GET /api/client`, `GET /api/fetch`).
   */
  http: boolean;
  /** Extra module options (plain data: no functions cross the process boundary). */
  options: Partial<Omit<ProcoreAuthModuleOptions, 'dataSource' | 'ownerResolver'>>;
}

/** Timings of one batch of concurrent calls made inside a worker. */
export interface CallsResult {
  /** Per call, from its start to its settlement, in ms. */
  latenciesMs: number[];
  /** Distinct tokens the calls returned. */
  tokens: string[];
  /** Error name (or `invalid_grant`, ...) → count. */
  errors: Record<string, number>;
  /** Epoch ms the first call started and the last one settled. */
  startedAt: number;
  endedAt: number;
  /** Naive baseline only: how callers ended. */
  outcomes?: Record<string, number>;
  /** Naive baseline only: the tokens callers ended with, one per caller (for validity checks). */
  callerTokens?: (string | null)[];
}

export interface NaiveStormArgs {
  table: string;
  owner: string;
  count: number;
  startAt: number;
  /** Pool size of this "instance"'s hand-written integration. */
  poolSize: number;
}

/** What `apiStorm` reports: the calls' timings and errors, and how many answered Procore's `/me`. */
export interface ApiCallsResult extends CallsResult {
  /** Calls that resolved with the fake user's `/me` body. */
  served: number;
}

export interface GovernorLoadArgs {
  /** `library`: `ProcoreClient.forOwner()`; `naive`: global fetch, retry at once on 429. */
  mode: 'library' | 'naive';
  owner: string;
  companyId: string;
  /** Concurrent callers in this instance, each looping one call after the other. */
  callers: number;
  /** Epoch ms the callers start, and how long they loop (outstanding calls are aborted then). */
  startAt: number;
  durationMs: number;
  /** Sent as `bench_instance` in the query, so the fake's log says which instance sent a call. */
  instance: number;
  /** Naive mode: immediate retries of a 429 before the call counts as failed. */
  naiveRetries: number;
}

export interface GovernorLoadResult {
  /** Calls that resolved with a page. */
  served: number;
  /** Calls that failed (error name → count), not counting those aborted at the end. */
  failures: Record<string, number>;
  /** Calls still waiting (or in flight) when the duration ended, aborted by the benchmark. */
  stoppedAtEnd: number;
  /** Library mode: `rate_limited` events the instance emitted (one per 429 it received). */
  rateLimitedEvents: number;
  /** Naive mode: 429 answers the instance received. */
  naive429s: number;
  /** Per served call, from its start (including any wait for the budget) to its answer, ms. */
  latenciesMs: number[];
  startedAt: number;
  endedAt: number;
}

/** Commands a worker understands, with their argument and result types. */
export interface WorkerCommands {
  init: { args: WorkerConfig; result: { port: number | null; pid: number } };
  importTokens: {
    args: { entries: [string, FakeProcoreTokenResponse][]; concurrency: number };
    result: { count: number; ms: number };
  };
  evict: { args: { owner: string }; result: null };
  storm: { args: { owner: string; count: number; startAt: number }; result: CallsResult };
  naiveStorm: { args: NaiveStormArgs; result: CallsResult };
  runTick: {
    args: { startAt: number };
    result: { summary: ProcoreRefreshTickSummary; startedAt: number; endedAt: number };
  };
  getAccessTokens: { args: { owners: string[]; concurrency: number }; result: CallsResult };
  refresh: { args: { owners: string[]; concurrency: number }; result: CallsResult };
  /** `count` concurrent `ProcoreClient.forOwner(owner).get(path)` calls, fired at `startAt`. */
  apiStorm: {
    args: { owner: string; count: number; startAt: number; path: string };
    result: ApiCallsResult;
  };
  /** Callers looping GET /rest/v1.0/projects?per_page=1 for one owner and company. */
  governorLoad: { args: GovernorLoadArgs; result: GovernorLoadResult };
  /**
   * `process.cpuUsage()` of the worker, in µs (user + system), and, in an HTTP worker, the
   * statements its `pg` clients have sent since it started (`-1` elsewhere).
   */
  cpuUsage: { args: null; result: { userUs: number; systemUs: number; statements: number } };
  close: { args: null; result: null };
}

export type WorkerCommand = keyof WorkerCommands;

export interface WorkerRequest<C extends WorkerCommand = WorkerCommand> {
  id: number;
  command: C;
  args: WorkerCommands[C]['args'];
}

export type WorkerReply =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
