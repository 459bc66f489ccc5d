/**
 * `npm run bench [name...]`: runs every bench module (bench/<name>.ts exporting `run()`), each
 * measuring a hot path against its baseline in the same run, and writes the table to
 * bench/results/latest.md and bench/results/<date>.md (plus JSON).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import type { BenchResult } from './lib.js';

const dir = new URL('.', import.meta.url).pathname;
const only = process.argv.slice(2);
const modules = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['lib.ts', 'run.ts', 'http-load.ts'].includes(f)) // helpers, not benches
  .map((f) => f.replace(/\.ts$/, ''))
  .filter((n) => only.length === 0 || only.includes(n))
  .sort();

const fmt = (v: number): string => (Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));
const rows: string[] = [];
const moduleOfRow: string[] = [];
/** The machine's 1-minute load average when each module started and ended (shared machines: read it with the numbers). */
const loadOf = new Map<string, string>();
const resultOfRow: (BenchResult | undefined)[] = [];
let failed = 0;
for (const name of modules) {
  process.stderr.write(`bench ${name}…\n`);
  const started = performance.now();
  const loadBefore = loadavg()[0]!;
  try {
    const mod = (await import(join(dir, `${name}.ts`))) as { run: () => Promise<BenchResult[]> };
    const results = await mod.run();
    for (const r of results) {
      moduleOfRow.push(name);
      resultOfRow.push(r);
      rows.push(
        `| ${name} | ${r.name} | ${fmt(r.value)} ${r.unit} | ${r.baseline ? `${r.baseline.name}: ${fmt(r.baseline.value)} ${r.baseline.unit}` : '—'} | ${r.ratio !== undefined ? `${r.ratio.toFixed(2)}${r.ratioNote ? ` (${r.ratioNote})` : ''}` : '—'} | ${r.goal ?? '—'} | ${r.met === undefined ? '—' : r.met ? 'yes' : '**no**'} |`,
      );
      process.stderr.write(`  ${r.name}: ${fmt(r.value)} ${r.unit}${r.ratio !== undefined ? ` (ratio ${r.ratio.toFixed(2)})` : ''}${r.met === false ? '  [goal missed]' : ''}\n`);
    }
    process.stderr.write(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    loadOf.set(name, `${loadBefore.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`);
  } catch (e) {
    failed++;
    moduleOfRow.push(name);
    resultOfRow.push(undefined);
    rows.push(`| ${name} | failed: ${(e as Error).message.replace(/\|/g, '/').slice(0, 200)} | | | | | |`);
    process.stderr.write(`  FAILED: ${(e as Error).stack}\n`);
  }
}

const date = new Date().toISOString();
const machine = `Node ${process.version} · ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'} · ${Math.round(totalmem() / 2 ** 30)} GiB`;
const out = join(dir, 'results');
mkdirSync(out, { recursive: true });

// latest.json keeps the newest rows of every module: a run of some modules replaces only theirs.
type Stored = { module: string; date: string; machine: string; row: string; result?: BenchResult; load?: string };
let latest: Stored[] = [];
try {
  latest = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Stored[];
} catch {
  latest = [];
}
const ran = new Set(modules);
latest = latest.filter((r) => !ran.has(r.module));
rows.forEach((row, i) => {
  const load = loadOf.get(moduleOfRow[i]!);
  latest.push({ module: moduleOfRow[i]!, date, machine, row, result: resultOfRow[i], ...(load ? { load } : {}) });
});
latest.sort((a, b) => a.module.localeCompare(b.module));

const header = `# Benchmark results

Every row measures a hot path and its baseline in the same run on the same machine; the ratio
compares them. Regenerate with \`npm run bench\` (or \`npm run bench -- <name>\` for one module;
its rows here are replaced). See docs/benchmarks.md.

| bench | run | measurement | value | baseline (same run) | ratio | goal | met |
|---|---|---|---|---|---|---|---|
`;
const text = header + latest.map((r) => r.row.replace(/^\| ([^|]+) \|/, `| $1 | ${r.date.slice(0, 16).replace('T', ' ')} |`)).join('\n') + `\n\nMachines: ${[...new Set(latest.map((r) => r.machine))].join('; ')}\n` +
  `\nLoad (1-minute load average when the module started → ended; ${cpus().length} cores): ${[...new Map(latest.filter((r) => r.load).map((r) => [r.module, `${r.module} ${r.load} (${r.date.slice(0, 16).replace('T', ' ')})`])).values()].join('; ') || 'not recorded'}.\n`;
writeFileSync(join(out, 'latest.md'), text);
writeFileSync(join(out, 'latest.json'), JSON.stringify(latest, null, 2));
// The dated file is the table as of this run (every module's newest rows), also after a partial run.
writeFileSync(join(out, `${date.slice(0, 10)}.md`), text);
process.stdout.write(text);
process.exitCode = failed ? 1 : 0;
