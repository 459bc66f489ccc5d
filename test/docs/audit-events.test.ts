/**
 * Documented audit events have the shape of real ones. A scenario runs through the whole of
 * Tessera (real HTTP, real store, real JSONL sink): an operator writes a secret and creates a
 * join token, an agent logs in and reads the secret, the operator revokes the agent, the agent
 * is refused. Then:
 * - every JSON example in the docs that is an audit record (`{seq, ts, prev_hash, hash, event}`)
 *   or a bare event (`{kind, actor, action, result, …}`) has exactly the key paths and JSON
 *   types of a real event of the same kind, result and kind of actor;
 * - every field real events carry is named in docs/audit.md's field table;
 * - the API (`GET /v1/admin/audit`) and the file sink write records of the same shape.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startHarness, type Harness } from '../e2e/harness.js';
import { docFiles, readDoc } from './markdown.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Rec = { seq: number; ts: number; prev_hash: string; hash: string; event: Record<string, Json> };

const AGENT = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';
const SECRET = 'healthcare/prod/agents/patient-reader/db-url';
let h: Harness;
const records: Rec[] = [];
let fileLines: Rec[] = [];
let heads: { type?: string; seq: number }[] = [];
let rotateFrom = 0;

before(async () => {
  h = await startHarness();
  const put = await h.admin('PUT', `/v1/admin/secrets/${SECRET}`, { value: 'postgres://db.internal/clinic', mode: 'read' });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const token = await h.login(await h.joinToken(AGENT));
  const read = await h.agent(token, 'GET', `/v1/secrets/${SECRET}`);
  assert.equal(read.status, 200, JSON.stringify(read.body));
  const denied = await h.agent(token, 'GET', '/v1/secrets/finance/prod/ledger');
  assert.equal(denied.status, 403);
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: AGENT, reason: 'docs test' });
  assert.equal(rev.status, 201, JSON.stringify(rev.body));
  const refused = await h.agent(token, 'GET', `/v1/secrets/${SECRET}`);
  assert.equal(refused.status, 401);
  await h.tessera.audit.flush();
  rotateFrom = (await h.admin('GET', '/v1/admin/audit?limit=1000')).body.next_seq as number;
  const rotated = await h.admin('POST', '/v1/admin/keys/rotate', { revoke_previous: true });
  assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
  await h.tessera.audit.flush();
  for (let after = 0, page = 0; page < 100; page++) {
    const r = await h.admin('GET', `/v1/admin/audit?after_seq=${after}&limit=1000`);
    assert.equal(r.status, 200);
    const events = r.body.events as Rec[];
    records.push(...events);
    if (!events.length || r.body.next_seq <= after) break;
    after = r.body.next_seq;
  }
  // Record lines only: the file sink also writes a signed head line (`{"type":"tessera.audit.head",…}`)
  // after each batch, and readers that want events skip lines with a `type` (docs/audit.md).
  const lines = readFileSync(h.auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Rec & { type?: string });
  heads = lines.filter((l) => l.type !== undefined);
  fileLines = lines.filter((l) => l.type === undefined);
});
after(async () => {
  await h?.close();
});

/** `path: type` for every value, arrays as `[]` (element shapes merged). */
function shape(v: Json, path = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) {
    out.add(`${path}: array`);
    for (const x of v) shape(x, `${path}[]`, out);
  } else if (v !== null && typeof v === 'object') {
    out.add(`${path || '(root)'}: object`);
    for (const [k, x] of Object.entries(v)) shape(x, path ? `${path}.${k}` : k, out);
  } else out.add(`${path}: ${v === null ? 'null' : typeof v}`);
  return out;
}

const actorClass = (e: Record<string, Json>): string => {
  const id = String((e.actor as { id?: string } | null)?.id ?? '');
  return id.startsWith('admin:') ? 'operator' : id.startsWith('spiffe://') ? 'agent' : id;
};

/** JSON examples in the docs that are audit records or events. */
function documentedEvents(): { at: string; record: boolean; value: Record<string, Json> }[] {
  const out: { at: string; record: boolean; value: Record<string, Json> }[] = [];
  for (const file of docFiles()) {
    for (const block of readDoc(file).blocks.filter((b) => b.lang === 'json' || b.lang === 'jsonc')) {
      let v: unknown;
      try {
        v = JSON.parse(block.text);
      } catch {
        continue;
      }
      if (!v || typeof v !== 'object' || Array.isArray(v)) continue;
      const o = v as Record<string, Json>;
      if (o.event && typeof o.event === 'object' && 'seq' in o) out.push({ at: `${file}:${block.line}`, record: true, value: o });
      else if (typeof o.kind === 'string' && o.actor && 'result' in o && 'action' in o) out.push({ at: `${file}:${block.line}`, record: false, value: o });
    }
  }
  return out;
}

test('the scenario produced the events it is about', () => {
  const kinds = new Set(records.map((r) => r.event.kind));
  for (const k of ['secret.written', 'join_token.created', 'auth.login', 'secret.read', 'revocation.created', 'auth.token_refused']) assert.ok(kinds.has(k), `${k} missing: ${[...kinds].join(', ')}`);
});

test('every documented audit event has the shape of a real one (same kind, result and actor)', () => {
  const docs = documentedEvents();
  assert.ok(docs.length >= 2, 'docs/audit.md shows example events');
  const problems: string[] = [];
  for (const d of docs) {
    const event = (d.record ? d.value.event : d.value) as Record<string, Json>;
    const same = records.filter((r) => r.event.kind === event.kind && r.event.result === event.result && actorClass(r.event) === actorClass(event));
    if (!same.length) {
      problems.push(`${d.at}: no real ${String(event.kind)} event with result ${String(event.result)} by ${actorClass(event)} came out of this test's scenario; extend the scenario (test/docs/audit-events.test.ts) or correct the example`);
      continue;
    }
    const documented = shape((d.record ? d.value : event) as Json);
    // A real event matches when it has exactly the documented paths and types.
    const candidates = same.map((r) => shape((d.record ? r : r.event) as unknown as Json));
    if (candidates.some((c) => c.size === documented.size && [...c].every((x) => documented.has(x)))) continue;
    const closest = candidates[0]!;
    const extra = [...documented].filter((x) => !closest.has(x));
    const missing = [...closest].filter((x) => !documented.has(x));
    problems.push(`${d.at}: the documented ${String(event.kind)} event differs from the real one — documented but not real: ${extra.join(', ') || 'none'}; real but not documented: ${missing.join(', ') || 'none'}`);
  }
  assert.deepEqual(problems, []);
});

test('what an operator does is audited with the operator as actor (admin:<token id>), never as system', () => {
  const operator = records.filter((r) => ['secret.write', 'revoke.agent'].includes(String(r.event.action)) || (r.event.kind === 'key.rotated' && r.seq > rotateFrom));
  assert.ok(operator.some((r) => r.event.action === 'key.create') && operator.some((r) => r.event.action === 'key.revoke'), 'the operator rotation was audited');
  for (const r of operator) assert.match(String((r.event.actor as { id: string }).id), /^admin:adm_/, `${String(r.event.kind)} ${String(r.event.action)} at seq ${r.seq}`);
  const joinTokens = records.filter((r) => r.event.kind === 'join_token.created' && (r.event.where as { requestId?: string } | undefined)?.requestId);
  assert.ok(joinTokens.length >= 1 && joinTokens.every((r) => /^admin:adm_/.test(String((r.event.actor as { id: string }).id))));
});

test('every field real events carry is in the field table of docs/audit.md', () => {
  const doc = readDoc('docs/audit.md');
  const named = new Set(doc.rows.flatMap((r) => [...(r.cells[0] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!)));
  const fields = new Set<string>();
  for (const r of records) {
    for (const [k, v] of Object.entries(r.event)) {
      if (k === 'details') fields.add('details');
      else if (v && typeof v === 'object' && !Array.isArray(v) && k !== 'reason') for (const sub of Object.keys(v)) fields.add(`${k}.${sub}`);
      else fields.add(k);
    }
  }
  for (const k of Object.keys(records[0]!)) if (k !== 'event') fields.add(k);
  const missing = [...fields].filter((f) => !named.has(f)).sort();
  assert.deepEqual(missing, [], 'name these fields in the first column of a table in docs/audit.md');
});

test('the API and the file sink return records of the same shape, event for event', () => {
  assert.ok(fileLines.length >= records.length - 1 && records.length > 5);
  const bySeq = new Map(fileLines.map((l) => [l.seq, l]));
  for (const r of records) {
    const line = bySeq.get(r.seq);
    if (!line) continue;
    assert.deepEqual(line, r, `seq ${r.seq}: the JSONL line and the API record differ`);
  }
  // The other lines are signed heads of records the file holds.
  assert.ok(heads.length > 0 && heads.every((hd) => hd.type === 'tessera.audit.head' && bySeq.has(hd.seq)), JSON.stringify(heads.slice(0, 3)));
});
