/**
 * Configuration keys in the docs and in the schema (src/config/schema.ts) are the same set.
 *
 * - Every tessera.yaml fragment in the docs (a YAML block whose top-level keys include a config
 *   section, or that starts with a `# tessera.yaml` comment) uses only keys the schema has, and
 *   is valid as a whole (`configSchema.safeParse`).
 * - Every key path written in inline code (`server.public_url`, `gateway.servers[].env`) exists;
 *   names the code uses for something else (audit event kinds such as `policy.decision`, meta
 *   keys such as `audit.head`) are recognised by appearing as string literals in src/.
 * - Every schema key is documented in docs/configuration.md (in its YAML examples or by path).
 * - Every default docs/configuration.md states equals the schema's default.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, parse as parseYaml, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';
import { parseDuration } from '../../src/config/duration.js';
import { docFiles, readDoc, type MarkdownDoc } from './markdown.js';
import { discriminate, normalizePath, pathExists, schemaPaths, shapes, type Shape } from './schema-paths.js';

const PATHS = schemaPaths(configSchema);
const SECTIONS = new Set([...PATHS].filter((p) => !/[.[]/.test(p)));

/** Dotted string literals in src/: event kinds, meta keys, actions — names that are not config keys. */
const CODE_NAMES = ((): Set<string> => {
  const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : n.endsWith('.ts') ? [join(d, n)] : []));
  const out = new Set<string>();
  for (const f of walk('src')) for (const m of readFileSync(f, 'utf8').matchAll(/['"`]([a-z_]+(?:\.[a-z_]+)+)['"`]/g)) out.add(m[1]!);
  return out;
})();

interface Finding { at: string; what: string }

/** Is this YAML block a tessera.yaml fragment? */
function isConfigFragment(text: string, value: unknown): boolean {
  if (/^\s*#\s*tessera\.yaml\b/.test(text)) return true;
  return !!value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).some((k) => SECTIONS.has(k));
}

/**
 * Walks a YAML node against the schema: unknown keys are findings; `seen` collects the
 * normalized path of every key written.
 */
function walkYaml(node: YamlNode | null | undefined, schema: z.ZodType, path: string, lineOf: (n: YamlNode) => number, findings: (f: { line: number; what: string }) => void, seen: Set<string>): void {
  if (!node) return;
  const options = shapes(schema);
  if (isMap(node)) {
    const js = node.toJSON() as Record<string, unknown>;
    const chosen = discriminate(schema, js);
    const objects = (chosen ? shapes(chosen) : options).filter((s) => s.kind === 'object');
    const record = options.find((s) => s.kind === 'record');
    if (objects.length === 0 && !record) return; // free-form (a JSON Schema) or not a mapping: safeParse judges it
    for (const pair of node.items) {
      if (!isPair(pair) || !isScalar(pair.key)) continue;
      const key = String(pair.key.value);
      const keyNode = pair.key as YamlNode;
      if (record && record.kind === 'record') {
        seen.add(`${path}.*`);
        walkYaml(pair.value as YamlNode, record.value, `${path}.*`, lineOf, findings, seen);
        continue;
      }
      const field = objects.map((o) => (o.kind === 'object' ? o.fields.get(key) : undefined)).find(Boolean);
      const p = path ? `${path}.${key}` : key;
      if (!field) {
        const known = [...new Set(objects.flatMap((o) => (o.kind === 'object' ? [...o.fields.keys()] : [])))];
        findings({ line: lineOf(keyNode), what: known.length ? `\`${p}\` is not a configuration key (keys here: ${known.join(', ')})` : `\`${p}\`: nothing is configurable under \`${path}\`` });
        continue;
      }
      seen.add(p);
      walkYaml(pair.value as YamlNode, field, p, lineOf, findings, seen);
    }
  } else if (isSeq(node)) {
    const arr = options.find((s) => s.kind === 'array');
    if (!arr || arr.kind !== 'array') return;
    for (const item of node.items) walkYaml(item as YamlNode, arr.element, `${path}[]`, lineOf, findings, seen);
  }
}

/** tessera.yaml fragments of one doc: unknown keys and schema errors; the paths they write. */
function checkYamlBlocks(doc: MarkdownDoc): { findings: Finding[]; seen: Set<string>; fragments: number } {
  const findings: Finding[] = [];
  const seen = new Set<string>();
  let fragments = 0;
  for (const block of doc.blocks.filter((b) => b.lang === 'yaml' || b.lang === 'yml')) {
    const lc = new LineCounter();
    const parsed = parseDocument(block.text, { lineCounter: lc, uniqueKeys: true });
    let value: unknown;
    try {
      value = parsed.toJS();
    } catch {
      value = undefined;
    }
    if (!isConfigFragment(block.text, value)) continue;
    fragments++;
    if (parsed.errors.length) {
      findings.push({ at: `${doc.file}:${block.line}`, what: `a tessera.yaml example that is not valid YAML: ${parsed.errors[0]!.message}` });
      continue;
    }
    const lineOf = (n: YamlNode): number => block.line + lc.linePos(n.range?.[0] ?? 0).line - 1;
    walkYaml(parsed.contents as YamlNode, configSchema, '', lineOf, (f) => findings.push({ at: `${doc.file}:${f.line}`, what: f.what }), seen);
    const r = configSchema.safeParse(value);
    if (!r.success) {
      for (const i of r.error.issues) {
        if (i.code === 'unrecognized_keys') continue; // reported above, with its line
        findings.push({ at: `${doc.file}:${block.line}`, what: `the example is not a valid configuration: ${i.path.join('.') || '(top level)'}: ${i.message}` });
      }
    }
  }
  return { findings, seen, fragments };
}

/** Key paths written in inline code: `server.listen`, `gateway.servers[].env`, `master_key.env: X`. */
function inlinePaths(doc: MarkdownDoc): { line: number; raw: string; path: string }[] {
  const out: { line: number; raw: string; path: string }[] = [];
  for (const span of doc.inline) {
    const text = span.text.replace(/:\s.*$/, '').replace(/:$/, '');
    if (!/^[a-z_]+(?:\.[A-Za-z_*<>]+|\[[^\]]*\])+$/.test(text)) continue;
    if (/\.(ts|js|mjs|json|md|ya?ml|cedar|sql|jsonl|db|key|pem)$/.test(text)) continue; // file names
    const section = text.split(/[.[]/)[0]!;
    if (!SECTIONS.has(section)) continue;
    const path = normalizePath(text);
    // A name the code uses for something else is not a key — unless it IS a key (src/ quotes
    // keys too, e.g. in error messages and doc comments).
    if (CODE_NAMES.has(text) && !pathExists(PATHS, path)) continue;
    out.push({ line: span.line, raw: span.text, path });
  }
  return out;
}

for (const file of docFiles()) {
  test(`configuration keys in ${file} exist in the schema`, () => {
    const doc = readDoc(file);
    const { findings } = checkYamlBlocks(doc);
    for (const m of inlinePaths(doc)) {
      if (!pathExists(PATHS, m.path)) findings.push({ at: `${file}:${m.line}`, what: `\`${m.raw}\` looks like a configuration key but src/config/schema.ts has no \`${m.path}\`` });
    }
    assert.deepEqual(findings.map((f) => `${f.at}: ${f.what}`), []);
  });
}

test('every configuration key is documented in docs/configuration.md', () => {
  const doc = readDoc('docs/configuration.md');
  const { seen } = checkYamlBlocks(doc);
  const mentioned = new Set(inlinePaths(doc).map((m) => m.path));
  const documented = (p: string): boolean => seen.has(p) || [...mentioned].some((m) => m === p || pathExists(new Set([p]), m));
  const missing = [...PATHS].filter((p) => !documented(p)).sort();
  assert.deepEqual(missing, [], 'document these keys in docs/configuration.md: in a YAML example, or by path in inline code (`a.b[].c`)');
});

/** The default a docs/configuration.md table row states, if it is a literal. */
function literalDefault(cell: string): { value: unknown } | undefined {
  const c = cell.trim();
  if (c === '' || c === '—' || c === '-' || /<|\bor\b|\(/.test(c)) return undefined;
  const m = /^`([^`]*)`$/.exec(c);
  const text = m ? m[1]! : c;
  if (!m && !/^(\d[\d_,.]*\s*(ms|s|m|h|d|KiB|MiB)?|true|false)$/.test(text)) return undefined; // prose
  try {
    return { value: parseYaml(text.replace(/(\d),(\d{3})/g, '$1$2')) };
  } catch {
    return undefined;
  }
}

function valueAt(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

/** The schema of one dotted key path (no lists, no wildcards), or undefined. */
function fieldAt(path: string): z.ZodType | undefined {
  let s: z.ZodType | undefined = configSchema;
  for (const k of path.split('.')) {
    const obj: Shape | undefined = s ? shapes(s).find((sh) => sh.kind === 'object' && sh.fields.has(k)) : undefined;
    s = obj?.kind === 'object' ? obj.fields.get(k) : undefined;
  }
  return s;
}

/**
 * The schema's default of a key: its value in a parsed empty configuration, or — under an
 * optional section that is absent by default (`audit.retention`) — the key's own default, i.e.
 * what it is when the section is written without it.
 */
function schemaDefault(defaults: unknown, path: string): unknown {
  const v = valueAt(defaults, path);
  if (v !== undefined) return v;
  const r = fieldAt(path)?.safeParse(undefined);
  return r?.success ? r.data : undefined;
}

test('the defaults docs/configuration.md states are the schema defaults', () => {
  const doc = readDoc('docs/configuration.md');
  const defaults = configSchema.parse({});
  const problems: string[] = [];
  let compared = 0;
  for (const row of doc.rows) {
    const [keyCell, defaultCell] = row.cells;
    if (keyCell === undefined || defaultCell === undefined) continue;
    const keys = [...keyCell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    if (keys.length !== 1 || /[[*<]/.test(keys[0]!) || !PATHS.has(keys[0]!)) continue;
    const lit = literalDefault(defaultCell);
    if (!lit) continue;
    const actual = schemaDefault(defaults, keys[0]!);
    let expected = lit.value;
    if (typeof actual === 'number' && typeof expected === 'string') expected = parseDuration(expected) ?? expected; // "5m" → ms
    compared++;
    try {
      assert.deepEqual(actual, expected);
    } catch {
      problems.push(`docs/configuration.md:${row.line}: \`${keys[0]}\` default is documented as ${defaultCell} but the schema's is ${JSON.stringify(actual)}`);
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(compared >= 20, `only ${compared} defaults compared`);
});

test('the checker catches unknown keys, invalid examples and unknown key paths', async () => {
  const { parseMarkdown } = await import('./markdown.js');
  const doc = parseMarkdown('docs/x.md', [
    'Set `server.listn` and `gateway.servers[].environment`; `policy.decision` is an event kind.',
    '',
    '```yaml',
    'server:',
    '  listen: 127.0.0.1:8200',
    '  port: 8200',
    'gateway:',
    '  servers:',
    '    - name: gh',
    '      transport: stdio',
    '      command: npx',
    '      envs: {}',
    'tokens:',
    '  agent_ttl: soon',
    '```',
    '',
    '```yaml',
    '# pod spec',
    'volumes: []',
    '```',
  ].join('\n'));
  const { findings, fragments } = checkYamlBlocks(doc);
  assert.equal(fragments, 1);
  const text = findings.map((f) => `${f.at}: ${f.what}`).join('\n');
  assert.match(text, /docs\/x.md:6: `server.port` is not a configuration key \(keys here: listen, public_url/);
  assert.match(text, /docs\/x.md:12: `gateway.servers\[\].envs` is not a configuration key/);
  assert.match(text, /docs\/x.md:4: the example is not a valid configuration: tokens.agent_ttl: expected a duration/);
  const paths = inlinePaths(doc).map((m) => m.path);
  assert.deepEqual(paths, ['server.listn', 'gateway.servers[].environment']);
  assert.ok(!pathExists(PATHS, 'server.listn') && pathExists(PATHS, 'gateway.servers[].env.*.secret') && pathExists(PATHS, 'gateway.tools[].*'));
  // A key src/ also quotes (messages, comments) is still a key to check and to count.
  assert.ok(CODE_NAMES.has('gateway.tool_name_format'));
  assert.deepEqual(inlinePaths(parseMarkdown('docs/y.md', 'Set `gateway.tool_name_format`; `policy.decision` is an event.')).map((m) => m.path), ['gateway.tool_name_format']);
  // Defaults under an optional section absent by default are the key's own default.
  const empty = configSchema.parse({});
  assert.equal(empty.audit.retention, undefined);
  assert.equal(schemaDefault(empty, 'audit.retention.keep_events'), 100_000);
  assert.equal(schemaDefault(empty, 'audit.retention.archive_dir'), undefined);
  assert.equal(schemaDefault(empty, 'leases.revoke_max_attempts'), 8);
  assert.deepEqual(literalDefault('`5m`'), { value: '5m' });
  assert.equal(literalDefault('host name'), undefined);
  assert.equal(literalDefault('`<data_dir>/tessera.db`'), undefined);
});
