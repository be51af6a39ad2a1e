/**
 * Runs the benchmarks: `npm run bench` (all), `npm run bench -- route-overhead refresh-storm`
 * (some), `npm run bench -- --repeat 3` (each selected one 3 times, then the min–max range of
 * every figure). Each benchmark runs in its own node process (cache-and-queries with
 * --expose-gc) and creates, migrates and drops its own database.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { serverVersion } from './support/database.js';
import { fmt } from './support/stats.js';

interface Benchmark {
  name: string;
  file: string;
  nodeArgs: string[];
}

const BENCHMARKS: Benchmark[] = [
  { name: 'route-overhead', file: 'route-overhead.js', nodeArgs: [] },
  { name: 'route-interleaved', file: 'route-interleaved.js', nodeArgs: [] },
  { name: 'refresh-storm', file: 'refresh-storm.js', nodeArgs: [] },
  { name: 'scheduler-throughput', file: 'scheduler-throughput.js', nodeArgs: [] },
  { name: 'cache-and-queries', file: 'cache-and-queries.js', nodeArgs: ['--expose-gc'] },
  { name: 'api-client-overhead', file: 'api-client-overhead.js', nodeArgs: [] },
  { name: 'api-401-storm', file: 'api-401-storm.js', nodeArgs: [] },
  { name: 'api-rate-governor', file: 'api-rate-governor.js', nodeArgs: [] },
  { name: 'scale-claim', file: 'scale-claim.js', nodeArgs: [] },
  { name: 'scheduler-capacity', file: 'scheduler-capacity.js', nodeArgs: [] },
];

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

function usage(): never {
  console.error(
    `usage: npm run bench -- [--repeat N] [${BENCHMARKS.map((b) => b.name).join(' | ')} ...]`,
  );
  process.exit(2);
}

function parseArgs(argv: string[]): { selected: Benchmark[]; repeat: number } {
  let repeat = 1;
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--repeat') {
      repeat = Number(argv[++i]);
      if (!Number.isInteger(repeat) || repeat < 1) usage();
    } else if (argv[i] === '--help' || argv[i] === '-h') {
      usage();
    } else {
      names.push(argv[i]);
    }
  }
  const selected = names.length
    ? names.map((name) => BENCHMARKS.find((b) => b.name === name) ?? usage())
    : BENCHMARKS;
  return { selected, repeat };
}

function runOne(benchmark: Benchmark, resultFile: string): Promise<number> {
  const script = fileURLToPath(new URL(`./${benchmark.file}`, import.meta.url));
  const child = spawn(process.execPath, [...benchmark.nodeArgs, script], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_RESULT_FILE: resultFile },
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

type Figures = Record<string, number | string | boolean>;

function printRanges(name: string, runs: Figures[]): void {
  console.log(`\n== ${name}: ranges over ${runs.length} runs (min – max)`);
  const keys = Object.keys(runs[0]);
  const width = Math.max(...keys.map((k) => k.length));
  for (const key of keys) {
    const values = runs.map((r) => r[key]);
    let text: string;
    if (values.every((v) => typeof v === 'number')) {
      const numbers = values as number[];
      const [min, max] = [Math.min(...numbers), Math.max(...numbers)];
      const digits = Math.abs(max) < 10 ? 3 : undefined;
      text = min === max ? fmt(min, digits) : `${fmt(min, digits)} – ${fmt(max, digits)}`;
    } else {
      text = [...new Set(values.map(String))].join(' | ');
    }
    console.log(`   ${key.padEnd(width)}  ${text}`);
  }
}

async function main(): Promise<void> {
  const { selected, repeat } = parseArgs(process.argv.slice(2));
  const started = Date.now();
  console.log(
    `nestjs-procore-auth benchmarks: node ${process.version}, ${cpus().length} CPUs, PostgreSQL ${await serverVersion()}`,
  );
  rmSync(RESULTS_DIR, { recursive: true, force: true });
  mkdirSync(RESULTS_DIR, { recursive: true });
  const collected = new Map<string, Figures[]>();
  let failed = 0;
  for (let round = 1; round <= repeat; round++) {
    for (const benchmark of selected) {
      if (repeat > 1) console.log(`\n-- ${benchmark.name}, run ${round} of ${repeat}`);
      const resultFile = `${RESULTS_DIR}${benchmark.name}-${round}.json`;
      const code = await runOne(benchmark, resultFile);
      if (code !== 0) {
        failed++;
        console.error(`${benchmark.name} failed (exit code ${code})`);
        continue;
      }
      if (existsSync(resultFile)) {
        const { figures } = JSON.parse(readFileSync(resultFile, 'utf8')) as { figures: Figures };
        collected.set(benchmark.name, [...(collected.get(benchmark.name) ?? []), figures]);
      }
    }
  }
  if (repeat > 1) for (const [name, runs] of collected) printRanges(name, runs);
  console.log(
    `\nbenchmarks done in ${fmt((Date.now() - started) / 1000)} s${failed ? `, ${failed} failed` : ''}`,
  );
  process.exit(failed ? 1 : 0);
}

void main();
