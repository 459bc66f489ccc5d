/**
 * After the test run: every serialized audit event the suite produced, scanned for every
 * secret and token the suite registered, and for anything token-shaped (JWTs, Tessera tokens,
 * PEM private keys). Exit 1 on any hit. Run by scripts/run-tests.mjs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) throw new Error('usage: leak-scan <dir>');
const files = readdirSync(dir);
const read = (prefix: string): string[] =>
  files.filter((f) => f.startsWith(prefix)).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));

const events = read('events-');
const sensitive = new Set(read('sensitive-').map((l) => JSON.parse(l) as string));
const SHAPES: [string, RegExp][] = [
  ['JWT', /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}/],
  ['Tessera token', /tsr_(join|admin)_[A-Za-z0-9_-]{20,}/],
  ['PEM private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
];
const kinds = new Map<string, number>();
const problems: string[] = [];
for (const e of events) {
  let kind = '?';
  try {
    const o = JSON.parse(e) as { kind?: string; event?: { kind?: string } };
    kind = o.event?.kind ?? o.kind ?? '?';
  } catch {
    /* scanned as text all the same */
  }
  kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  for (const s of sensitive) {
    if (e.includes(s)) problems.push(`a ${kind} event contains a registered secret/token (${s.slice(0, 4)}…)`);
  }
  for (const [name, re] of SHAPES) if (re.test(e)) problems.push(`a ${kind} event contains something shaped like a ${name}`);
}
const summary = `leak scan: ${events.length} audit events of ${kinds.size} kinds scanned for ${sensitive.size} secrets/tokens and token shapes`;
if (problems.length) {
  console.error(`${summary}: ${problems.length} problem(s)\n  ${[...new Set(problems)].slice(0, 20).join('\n  ')}`);
  process.exit(1);
}
console.log(`${summary}: clean\n  kinds: ${[...kinds.entries()].sort().map(([k, n]) => `${k}×${n}`).join(', ')}`);
