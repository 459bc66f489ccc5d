import { setFlagsFromString } from 'node:v8';

/**
 * Imported (for its effect) before `@cedar-policy/cedar-wasm` by every module that loads it, so
 * it runs before V8 compiles Cedar's WebAssembly module (4.3 MB).
 *
 * V8 compiles that module with its baseline compiler (Liftoff) and then re-compiles the functions
 * that get hot with its optimizing compiler (TurboFan) on background threads — by default one
 * compilation task per V8 worker thread (4). Each of those threads allocates its compiler's
 * working memory from its own malloc arena, and glibc keeps an arena's peak: measured on the
 * built server, loading the policy set left four arenas of ≈ 20 MB each (the "Cedar costs
 * ≈ 67 MB" of issue 7). With one compilation task the same functions get the same optimized
 * code, on one thread — ≈ 40 MB less resident memory; decisions are as fast once the hot
 * functions are tiered up (bench/policy.ts, bench/memory.ts; docs/adr/0121-memory.md).
 * `--liftoff-only` would save ≈ 25 MB more but doubles the cold decision time: not used.
 */
export const WASM_COMPILATION_TASKS = 1;

try {
  setFlagsFromString(`--wasm-num-compilation-tasks=${WASM_COMPILATION_TASKS}`);
} catch {
  // A runtime without the flag compiles as it would anyway: memory, not correctness.
}
