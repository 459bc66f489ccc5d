/**
 * What the docs say about error codes matches the catalogue (src/shared/errors.ts):
 * - every `TESSERA_…` name in the docs is a catalogue code, an environment variable Tessera
 *   reads, or one of the few names the reader chooses (USER_NAMES);
 * - every HTTP status written next to a code — in a table row (`| CODE | 403 | … |`) or in
 *   prose (`CODE` (403), `CODE`, 403, 415 `CODE`, `CODE` (HTTP 503)) — is the code's status,
 *   and an OAuth error name in the column after it is the code's `oauth`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CATALOGUE } from '../../src/shared/errors.js';
import { docFiles, lineAt, readDoc, type MarkdownDoc } from './markdown.js';

const CATALOGUE = ERROR_CATALOGUE as Record<string, { status: number; oauth?: string }>;

/** Environment variables Tessera (server, CLI, tests, benchmarks) reads. */
const ENV_VARS = ((): Set<string> => {
  const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : /\.(ts|mjs|js)$/.test(n) ? [join(d, n)] : []));
  const out = new Set<string>();
  for (const f of ['src', 'bench', 'scripts', 'test', 'bin'].flatMap(walk)) {
    for (const m of readFileSync(f, 'utf8').matchAll(/\benv(?:\.|\[\s*['"`])(TESSERA_[A-Z0-9_]+)/g)) out.add(m[1]!);
  }
  return out;
})();

/** Names the docs use that the reader picks: examples of `master_key.env` or an audit sink's `auth.env`, a client's or a CI job's variable. */
const USER_NAMES = new Set(['TESSERA_MASTER_KEY', 'TESSERA_MCP_TOKEN', 'TESSERA_ID_TOKEN', 'TESSERA_AUDIT_COLLECTOR_TOKEN', 'TESSERA_MCP_URL']); // TESSERA_MCP_URL: set by the injector for the app (docs/k8s-agent.md), read by the app's code

const OAUTH_NAMES = /^`(invalid_request|invalid_client|invalid_grant|unauthorized_client|unsupported_grant_type|invalid_scope|invalid_target|invalid_token|insufficient_scope|access_denied|server_error|temporarily_unavailable)`$/;

interface Claim { line: number; code: string; status: number; oauth?: string | null }

/** (code, status[, oauth]) claims in one doc. */
export function statusClaims(doc: MarkdownDoc): Claim[] {
  const claims: Claim[] = [];
  for (const row of doc.rows) {
    const at = row.cells.findIndex((c) => /^[1-5]\d\d$/.test(c));
    if (at <= 0) continue;
    const next = row.cells[at + 1];
    const oauth = next === undefined ? undefined : OAUTH_NAMES.test(next) ? next.slice(1, -1) : next === '—' || next === '' ? null : undefined;
    for (const cell of row.cells.slice(0, at)) {
      for (const m of cell.matchAll(/`(TESSERA_[A-Z0-9_]+)`/g)) claims.push({ line: row.line, code: m[1]!, status: Number(row.cells[at]), ...(oauth !== undefined ? { oauth } : {}) });
    }
  }
  const text = doc.prose.split('\n').map((l) => (/^\s*\|/.test(l) ? '' : l)).join('\n'); // tables done above
  for (const m of text.matchAll(/`(TESSERA_[A-Z0-9_]+)`\)?(?:,\s*|\s*\(\s*|\s+)(?:HTTP\s+)?([1-5]\d\d)\b/g)) {
    claims.push({ line: lineAt(text, m.index), code: m[1]!, status: Number(m[2]) });
  }
  for (const m of text.matchAll(/\b([1-5]\d\d)\s+`(TESSERA_[A-Z0-9_]+)`/g)) {
    claims.push({ line: lineAt(text, m.index), code: m[2]!, status: Number(m[1]) });
  }
  return claims;
}

for (const file of docFiles()) {
  test(`error codes and statuses in ${file} match the catalogue`, () => {
    const doc = readDoc(file);
    const problems: string[] = [];
    for (const m of doc.source.matchAll(/\bTESSERA_[A-Z0-9_]*[A-Z0-9]\b(?![_<*])/g)) {
      const name = m[0];
      if (name in CATALOGUE || ENV_VARS.has(name) || USER_NAMES.has(name)) continue;
      problems.push(`${file}:${lineAt(doc.source, m.index)}: ${name} is not an error code in src/shared/errors.ts, nor an environment variable Tessera reads (if it is a name the reader chooses, add it to USER_NAMES in this test)`);
    }
    for (const c of statusClaims(doc)) {
      const spec = CATALOGUE[c.code];
      if (!spec) continue; // reported above
      if (spec.status !== c.status) problems.push(`${file}:${c.line}: ${c.code} is documented with HTTP ${c.status}, but the catalogue says ${spec.status}`);
      if (c.oauth !== undefined && (spec.oauth ?? null) !== c.oauth) problems.push(`${file}:${c.line}: ${c.code} is documented with OAuth error ${c.oauth ?? '—'}, but the catalogue says ${spec.oauth ?? '— (none)'}`);
    }
    assert.deepEqual([...new Set(problems)], []);
  });
}

test('the claims extractor reads tables and prose', async () => {
  const { parseMarkdown } = await import('./markdown.js');
  const doc = parseMarkdown('docs/x.md', [
    '| code | status | OAuth `error` | when |',
    '|---|---|---|---|',
    '| `TESSERA_AGENT_REVOKED` | 403 | `invalid_grant` | login by a revoked agent |',
    '| `TESSERA_ATTEST_FAILED`, `TESSERA_JOIN_TOKEN_INVALID` | 400 | `invalid_request` | x |',
    '',
    'A revoked agent cannot log in (`TESSERA_AGENT_REVOKED`, 403). Refused with 415 `TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE`;',
    'audit down: `TESSERA_AUDIT_UNAVAILABLE` (HTTP 503), `TESSERA_SECRET_NOT_READABLE` (404).',
  ].join('\n'));
  const claims = statusClaims(doc).map((c) => `${c.line} ${c.code} ${c.status}${c.oauth !== undefined ? ` ${c.oauth}` : ''}`);
  assert.deepEqual(claims.sort(), [
    '3 TESSERA_AGENT_REVOKED 403 invalid_grant',
    '4 TESSERA_ATTEST_FAILED 400 invalid_request',
    '4 TESSERA_JOIN_TOKEN_INVALID 400 invalid_request',
    '6 TESSERA_AGENT_REVOKED 403',
    '6 TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE 415',
    '7 TESSERA_AUDIT_UNAVAILABLE 503',
    '7 TESSERA_SECRET_NOT_READABLE 404',
  ].sort());
  assert.equal(CATALOGUE.TESSERA_AGENT_REVOKED!.status, 400, 'the wrong claim above is wrong');
  assert.ok(ENV_VARS.has('TESSERA_ADDR') && ENV_VARS.has('TESSERA_TOKEN') && ENV_VARS.has('TESSERA_PG_URL'), [...ENV_VARS].join(' '));
});
