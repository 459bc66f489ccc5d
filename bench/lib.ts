/**
 * Shared benchmark helpers. Every bench measures a hot path AND its baseline in the same run
 * and reports the ratio; `bench/run.ts` writes the table to bench/results/.
 */
import { createServer as createNetServer } from 'node:net';

/** A free TCP port on 127.0.0.1 (bound, then released) for a child process to listen on. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export interface BenchResult {
  /** e.g. "login over HTTP (token exchange, audit on)". */
  readonly name: string;
  readonly value: number;
  readonly unit: string; // "ops/s", "µs", "ms", "events/s"
  readonly baseline?: { readonly name: string; readonly value: number; readonly unit: string };
  /** value / baseline.value (or inverse for latencies, stated in `ratioNote`). */
  readonly ratio?: number;
  readonly ratioNote?: string;
  /** The goal from the issue, as text, and whether it was met. */
  readonly goal?: string;
  readonly met?: boolean;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

/** Runs `fn` repeatedly for about `ms` milliseconds (bounded by `maxOps`); returns ops/s. */
export async function throughput(fn: () => Promise<unknown> | unknown, opts: { ms?: number; maxOps?: number; concurrency?: number } = {}): Promise<number> {
  const ms = opts.ms ?? 2000;
  const maxOps = opts.maxOps ?? 1_000_000;
  const concurrency = opts.concurrency ?? 1;
  let ops = 0;
  const start = performance.now();
  const deadline = start + ms;
  async function worker(): Promise<void> {
    while (performance.now() < deadline && ops < maxOps) {
      ops++;
      await fn();
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (ops / (performance.now() - start)) * 1000;
}

/** Latencies in microseconds of `n` sequential calls, sorted. */
export async function latencies(fn: () => Promise<unknown> | unknown, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return out.sort((a, b) => a - b);
}

/**
 * Latencies (µs, sorted) of `direct` and `via` measured in the same run: both warmed up, then
 * sampled in four interleaved blocks of n/4 so that machine noise hits both alike.
 */
export async function pairedLatencies(direct: () => Promise<unknown>, via: () => Promise<unknown>, n: number, warmup: number): Promise<{ direct: number[]; via: number[] }> {
  await latencies(direct, warmup);
  await latencies(via, warmup);
  const d: number[] = [];
  const g: number[] = [];
  for (let block = 0; block < 4; block++) {
    d.push(...(await latencies(direct, n / 4)));
    g.push(...(await latencies(via, n / 4)));
  }
  return { direct: d.sort((a, b) => a - b), via: g.sort((a, b) => a - b) };
}
