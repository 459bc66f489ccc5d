/**
 * `npm run bench [name...]`: runs every bench module (bench/<name>.ts exporting `run()`), each
 * measuring a hot path against its baseline in the same run, and writes the table to
 * bench/results/latest.md and bench/results/<date>.md (plus JSON).
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { BenchResult } from './lib.js';

const dir = new URL('.', import.meta.url).pathname;
const only = process.argv.slice(2);
const modules = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['lib.ts', 'run.ts'].includes(f))
  .map((f) => f.replace(/\.ts$/, ''))
  .filter((n) => only.length === 0 || only.includes(n))
  .sort();

const fmt = (v: number): string => (Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));
const rows: string[] = [];
const all: (BenchResult & { module: string })[] = [];
let failed = 0;
for (const name of modules) {
  process.stderr.write(`bench ${name}…\n`);
  const started = performance.now();
  try {
    const mod = (await import(join(dir, `${name}.ts`))) as { run: () => Promise<BenchResult[]> };
    const results = await mod.run();
    for (const r of results) {
      all.push({ ...r, module: name });
      rows.push(
        `| ${name} | ${r.name} | ${fmt(r.value)} ${r.unit} | ${r.baseline ? `${r.baseline.name}: ${fmt(r.baseline.value)} ${r.baseline.unit}` : '—'} | ${r.ratio !== undefined ? `${r.ratio.toFixed(2)}${r.ratioNote ? ` (${r.ratioNote})` : ''}` : '—'} | ${r.goal ?? '—'} | ${r.met === undefined ? '—' : r.met ? 'yes' : '**no**'} |`,
      );
      process.stderr.write(`  ${r.name}: ${fmt(r.value)} ${r.unit}${r.ratio !== undefined ? ` (ratio ${r.ratio.toFixed(2)})` : ''}${r.met === false ? '  [goal missed]' : ''}\n`);
    }
    process.stderr.write(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  } catch (e) {
    failed++;
    rows.push(`| ${name} | failed: ${(e as Error).message.replace(/\|/g, '/').slice(0, 200)} | | | | | |`);
    process.stderr.write(`  FAILED: ${(e as Error).stack}\n`);
  }
}

const date = new Date().toISOString();
const header = `# Benchmark results

${date} · Node ${process.version} · ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'} · ${Math.round(totalmem() / 2 ** 30)} GiB

Every row measures a hot path and its baseline in the same run on the same machine; the ratio
compares them. Regenerate with \`npm run bench\`.

| bench | measurement | value | baseline (same run) | ratio | goal | met |
|---|---|---|---|---|---|---|
`;
const out = join(dir, 'results');
mkdirSync(out, { recursive: true });
const text = header + rows.join('\n') + '\n';
if (only.length === 0) writeFileSync(join(out, 'latest.md'), text);
writeFileSync(join(out, `${date.slice(0, 10)}${only.length ? `-${only.join('-')}` : ''}.md`), text);
writeFileSync(join(out, `${date.slice(0, 10)}${only.length ? `-${only.join('-')}` : ''}.json`), JSON.stringify(all, null, 2));
process.stdout.write(text);
process.exitCode = failed ? 1 : 0;
