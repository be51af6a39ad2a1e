import { fork, type ChildProcess } from 'node:child_process';
import type {
  WorkerCommand,
  WorkerCommands,
  WorkerConfig,
  WorkerReply,
  WorkerRequest,
} from './protocol.js';

const WORKER_SCRIPT = new URL('./app-worker.js', import.meta.url);

/** An app instance in a child process (app-worker.ts), driven over IPC. */
export class AppWorker {
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve(value: unknown): void; reject(error: Error): void }
  >();
  private exited = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly label: string,
    /** Loopback port of the HTTP app, when it listens. */
    public port: number | null = null,
  ) {
    child.on('message', (reply: WorkerReply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.result);
      else waiter.reject(new Error(reply.error));
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const waiter of this.pending.values()) {
        waiter.reject(new Error(`${label} exited (code ${code}, signal ${signal})`));
      }
      this.pending.clear();
    });
  }

  /** Forks a worker and boots its app. */
  static async start(config: WorkerConfig): Promise<AppWorker> {
    const child = fork(WORKER_SCRIPT, [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
      // e.g. BENCH_WORKER_EXEC_ARGV="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the instances.
      execArgv: (process.env['BENCH_WORKER_EXEC_ARGV'] ?? '').split(' ').filter(Boolean),
    });
    const worker = new AppWorker(child, config.label);
    try {
      const { port } = await worker.call('init', config);
      worker.port = port;
    } catch (error) {
      await worker.close();
      throw error;
    }
    return worker;
  }

  call<C extends WorkerCommand>(
    command: C,
    args: WorkerCommands[C]['args'],
  ): Promise<WorkerCommands[C]['result']> {
    if (this.exited) return Promise.reject(new Error(`${this.label} has exited`));
    const id = ++this.nextId;
    const request: WorkerRequest<C> = { id, command, args };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send(request);
    });
  }

  /** Closes the app (its pool, the scheduler) and waits for the process to exit. */
  async close(): Promise<void> {
    if (this.exited) return;
    const exit = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.call('close', null).catch(() => this.child.kill('SIGKILL'));
    await exit;
    clearTimeout(timer);
  }
}

/** Starts `count` workers in parallel (booting Nest apps is CPU-bound; it still overlaps I/O). */
export function startWorkers(
  count: number,
  config: (index: number) => WorkerConfig,
): Promise<AppWorker[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => AppWorker.start(config(i))));
}

export async function closeAll(workers: readonly AppWorker[]): Promise<void> {
  await Promise.all(workers.map((worker) => worker.close()));
}
