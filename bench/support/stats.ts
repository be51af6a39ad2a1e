import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** The p-th percentile (0-100) of `values`, nearest-rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** `1234567.8` → `1,234,568`; `12.345` → `12.3` (one decimal below 100). */
export function fmt(value: number, decimals?: number): string {
  if (!Number.isFinite(value)) return String(value);
  const digits = decimals ?? (Math.abs(value) < 100 ? 1 : 0);
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function ms(value: number): string {
  return `${fmt(value)} ms`;
}

/** Prints a benchmark's block: a title line, then aligned `label  value` lines. */
export function printBlock(title: string, lines: [string, string][]): void {
  const width = Math.max(...lines.map(([label]) => label.length));
  console.log(`\n== ${title}`);
  for (const [label, value] of lines) console.log(`   ${label.padEnd(width)}  ${value}`);
}

/**
 * Records a benchmark's figures (a flat object of numbers and strings) where `run.js` asked for
 * them (`BENCH_RESULT_FILE`), so repeated runs can be summarised as ranges.
 */
export function recordFigures(name: string, figures: Record<string, number | string | boolean>) {
  const file = process.env['BENCH_RESULT_FILE'];
  if (!file) return;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ name, figures }, null, 2));
}

export function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
