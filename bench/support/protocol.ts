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
  /** Listen on loopback with the benchmark routes (`GET /with`, `GET /without`). */
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
  /** `process.cpuUsage()` of the worker, in µs (user + system). */
  cpuUsage: { args: null; result: { userUs: number; systemUs: number } };
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
