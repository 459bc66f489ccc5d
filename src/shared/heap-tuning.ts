import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/**
 * V8 heap sizing for the server process (`tessera server`, `tessera dev`), set from inside the
 * process because `tessera` is started by its users (an installed command, a unit file, a
 * container) and start-up flags cannot be relied on. Two settings, measured with
 * bench/memory.ts (built server, 1,000 agents, 10,000 leases; docs/adr/0121-memory.md):
 *
 * 1. **Young generation at most 2 × 8 MiB.** V8 doubles the new space whenever enough objects
 *    survive scavenges, up to 2 × 16 MiB on 64-bit Node 20, and under steady request load it
 *    always ends there: 32 MiB resident for objects that live a few milliseconds. The maximum is
 *    fixed at start-up; what V8 reads at run time is the growth factor
 *    (`--semi-space-growth-factor`). It stays 2 while the new space is below the cap and becomes
 *    1 (no growth) once the new space reaches it, checked after every garbage collection. When V8
 *    shrinks an idle new space, the factor returns to 2 so it can grow again up to the cap. The
 *    check runs when the collection is reported (a PerformanceObserver callback), so under load
 *    V8 may grow the space once more before it runs: the bound is one doubling past the cap.
 *    Loading the server's modules and starting it are one long synchronous stretch in which no
 *    callback runs, so every later call of tuneServerHeap checks at once (src/main.ts calls it
 *    again once the modules have loaded, before the server starts): without it the new space
 *    reached its maximum, 2 × 16 MiB, while the server started
 *    (docs/adr/0290-server-memory-lazy-kubernetes-client.md).
 * 2. **Old generation grown by 50 % over the live size** (`--heap-growing-percent=50`, read by V8
 *    each time it sets the next full-collection limit) instead of V8's dynamic factor, which for a
 *    heap of this size lets the old space reach 2–3 × the live objects before a full collection:
 *    after a burst of requests the promoted garbage stays resident until then.
 *
 * Together ≈ −35 MiB resident under load, at no measurable garbage-collection time per login
 * (the young cap alone costs ≈ 10 µs per login under load; the full collections are concurrent).
 * Each setting is skipped when the operator chose it (NODE_OPTIONS or node's command line:
 * `--max-semi-space-size`, `--semi-space-growth-factor`, `--heap-growing-percent`).
 */
export const SEMI_SPACE_CAP_MIB = 8;
export const HEAP_GROWING_PERCENT = 50;

let observer: PerformanceObserver | undefined;
let checkYoung: (() => void) | undefined;

function operatorFlags(execArgv: readonly string[], nodeOptions: string): string[] {
  return [...execArgv, ...nodeOptions.split(/\s+/)].filter((a) => a.startsWith('--')).map((a) => a.replace(/_/g, '-'));
}

/** The settings the operator made themselves (so tuneServerHeap leaves them alone). */
export function operatorHeapSettings(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): { young: boolean; old: boolean } {
  const flags = operatorFlags(execArgv, nodeOptions);
  return {
    young: flags.some((f) => /^--(max-semi-space-size|semi-space-growth-factor)(=|$)/.test(f)),
    old: flags.some((f) => /^--heap-growing-percent(=|$)/.test(f)),
  };
}

/**
 * Applies both settings once per process; returns which are active. Call it before the server's
 * modules load (loading them is what first grows the new space), and again after: a later call
 * changes no setting but checks the new space against the cap at once.
 */
export function tuneServerHeap(options: { semiSpaceMiB?: number; heapGrowingPercent?: number } = {}): { young: boolean; old: boolean } {
  const operator = operatorHeapSettings();
  if (!operator.old) setFlagsFromString(`--heap-growing-percent=${options.heapGrowingPercent ?? HEAP_GROWING_PERCENT}`);
  if (!operator.young && observer) checkYoung?.();
  else if (!operator.young) {
    const capBytes = 2 * (options.semiSpaceMiB ?? SEMI_SPACE_CAP_MIB) * 1024 * 1024;
    let factor = 2;
    const check = (): void => {
      const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
      if (!young) return;
      const want = young.space_size >= capBytes ? 1 : 2;
      if (want !== factor) {
        factor = want;
        setFlagsFromString(`--semi-space-growth-factor=${want}`);
      }
    };
    checkYoung = check;
    observer = new PerformanceObserver(check);
    observer.observe({ entryTypes: ['gc'] });
    check();
  }
  return { young: !operator.young, old: !operator.old };
}
