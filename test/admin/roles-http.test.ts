/**
 * Operator roles over real HTTP through the whole of Tessera: for EVERY operator route the
 * running server registers (read from /v1/openapi.json, which lists every route guarded by
 * app.requireAdmin — a route added later is covered without touching this file), an `auditor`
 * token is allowed or refused with 403 TESSERA_ADMIN_ROLE_FORBIDDEN as this table expects, and an
 * `admin` token is never refused for its role. The expectation is written here, not derived from
 * src/admin/roles.ts: a new POST route is expected to be an admin-only change until someone
 * decides here that it is read-only.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';

/** POST routes that change nothing: the auditor may call them (contract "Operators"). */
const READ_ONLY_POSTS = new Set([
  'POST /v1/admin/policy/check',
  'POST /v1/admin/proxy/test',
  'POST /v1/admin/audit/verify',
  'POST /v1/admin/audit/witness',
  'POST /v1/admin/audit/hmac',
  'POST /v1/oauth/introspect',
]);
/** GET routes that answer with a secret's value: never for the auditor. */
const REVEALS_SECRET = new Set(['GET /v1/admin/secrets/{path}']);

function auditorMayCall(op: string): boolean {
  if (REVEALS_SECRET.has(op)) return false;
  return op.startsWith('GET ') || READ_ONLY_POSTS.has(op);
}

const MARKER_READ = 'table-marker-read-9f3c1e7a';
const MARKER_INJECT = 'table-marker-inject-4b8d2a6c';

let h: Harness;
let auditor: string;
const operations: { method: string; path: string; roles: string[] | undefined }[] = [];

before(async () => {
  h = await startHarness();
  const r = await h.admin('POST', '/v1/admin/operator-tokens', { name: 'table-auditor', role: 'auditor', ttl: '1h' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  auditor = r.body.token;
  h.sensitive.add(auditor);
  // Secret values an auditor must never see in any answer (one per mode, under the path the table's
  // `{path}` routes use, so a value-returning route is called with an existing secret).
  for (const [path, value, mode] of [['table/x', MARKER_READ, 'read'], ['table/inject', MARKER_INJECT, 'inject']] as const) {
    const put = await h.admin('PUT', `/v1/admin/secrets/${path}`, { value, mode });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    h.sensitive.add(value);
  }
  const doc = (await h.admin('GET', '/v1/openapi.json')).body as { paths: Record<string, Record<string, { security?: { adminToken?: unknown }[]; 'x-tessera-operator-roles'?: string[] }>> };
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (op.security?.some((s) => s.adminToken !== undefined)) operations.push({ method: method.toUpperCase(), path, roles: op['x-tessera-operator-roles'] });
    }
  }
});
after(() => h.close());

/** One request; the body is read only when it is JSON (an event stream is cut after its headers). */
async function call(token: string, method: string, path: string): Promise<{ status: number; code: string | undefined; text: string }> {
  const concrete = path.replace(/\{path\}/g, 'table/x').replace(/\{[A-Za-z_]+\}/g, 'x-table');
  const ac = new AbortController();
  const hasBody = method === 'POST' || method === 'PUT';
  const res = await fetch(h.url + concrete, {
    method, signal: ac.signal,
    headers: { authorization: `Bearer ${token}`, ...(hasBody ? { 'content-type': 'application/json' } : {}) },
    ...(hasBody ? { body: '{}' } : {}),
  });
  let code: string | undefined;
  let text = '';
  if ((res.headers.get('content-type') ?? '').includes('application/json')) {
    text = await res.text();
    const b = JSON.parse(text) as { error?: { code?: string } | string; code?: string };
    code = typeof b.error === 'object' ? b.error.code : b.code;
  } else {
    ac.abort();
  }
  return { status: res.status, code, text };
}

test('the table covers every operator route the server registers, introspection and the operator-token routes included', () => {
  const ops = new Set(operations.map((o) => `${o.method} ${o.path}`));
  for (const known of ['POST /v1/oauth/introspect', 'GET /v1/admin/operator-tokens', 'POST /v1/admin/operator-tokens', 'DELETE /v1/admin/operator-tokens/{id}', 'PUT /v1/admin/secrets/{path}', 'GET /v1/admin/secrets/{path}', 'POST /v1/admin/revocations']) {
    assert.ok(ops.has(known), `${known} is listed as an operator route`);
  }
  assert.ok(operations.length >= 35, `${operations.length} operator routes`);
  for (const ro of READ_ONLY_POSTS) assert.ok(ops.has(ro), `${ro} (declared read-only here) exists`);
});

test('auditor: GET/HEAD and read-only POSTs pass the role check, every other operator route is 403 TESSERA_ADMIN_ROLE_FORBIDDEN', async () => {
  const wrong: string[] = [];
  for (const o of operations) {
    const op = `${o.method} ${o.path}`;
    const allowed = auditorMayCall(op);
    const r = await call(auditor, o.method, o.path);
    const forbidden = r.status === 403 && r.code === 'TESSERA_ADMIN_ROLE_FORBIDDEN';
    if (allowed === forbidden) wrong.push(`${op}: expected ${allowed ? 'allowed' : '403 TESSERA_ADMIN_ROLE_FORBIDDEN'}, got ${r.status} ${r.code ?? ''}`);
    if (!allowed && r.status !== 403) wrong.push(`${op}: status ${r.status}`);
    // The document says the same as the server does.
    const documented = o.roles?.includes('auditor') === true;
    if (documented !== allowed) wrong.push(`${op}: x-tessera-operator-roles ${JSON.stringify(o.roles)}`);
    // Every answer is an answer: no role refusal turns into a server error.
    if (r.status >= 500 && r.status !== 503) wrong.push(`${op}: ${r.status}`);
    // Whatever the auditor may call answers no secret value and no operator token.
    for (const v of [MARKER_READ, MARKER_INJECT, auditor, h.adminToken]) if (r.text.includes(v)) wrong.push(`${op}: the answer holds a secret or token value`);
  }
  assert.deepEqual(wrong, []);
});

test('auditor: HEAD of a GET route passes the role check, HEAD of a secret value does not', async () => {
  const list = await fetch(`${h.url}/v1/admin/operator-tokens`, { method: 'HEAD', headers: { authorization: `Bearer ${auditor}` } });
  assert.equal(list.status, 200);
  const value = await fetch(`${h.url}/v1/admin/secrets/table/x`, { method: 'HEAD', headers: { authorization: `Bearer ${auditor}` } });
  assert.equal(value.status, 403);
});

test('admin: no operator route refuses an admin token for its role', async () => {
  const wrong: string[] = [];
  let sawValue = false;
  // Reads first: a DELETE of `{path}` must not remove the secret before its GET.
  const readsFirst = [...operations].sort((x, y) => Number(x.method !== 'GET') - Number(y.method !== 'GET'));
  for (const o of readsFirst) {
    const r = await call(h.adminToken, o.method, o.path);
    if (o.method === 'GET' && r.text.includes(MARKER_READ)) sawValue = true;
    if (r.code === 'TESSERA_ADMIN_ROLE_FORBIDDEN') wrong.push(`${o.method} ${o.path}`);
    if (!o.roles?.includes('admin')) wrong.push(`${o.method} ${o.path}: x-tessera-operator-roles ${JSON.stringify(o.roles)}`);
  }
  assert.deepEqual(wrong, []);
  // The value check of the auditor test can fail: the same calls with an admin token do read a value.
  assert.ok(sawValue, 'an admin GET of {path} answered the secret value');
});

test('auditor reads metadata but never a value, and cannot write one', async () => {
  const path = '/v1/admin/secrets/table/readable';
  const put = await h.admin("PUT", path, { value: "table-secret-value-1", mode: "read" });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  h.sensitive.add('table-secret-value-1');
  const list = await h.agent(auditor, 'GET', '/v1/admin/secrets?prefix=table');
  assert.equal(list.status, 200, JSON.stringify(list.body));
  assert.ok(list.body.secrets.some((s: { path: string }) => s.path === 'table/readable'), JSON.stringify(list.body));
  assert.ok(!JSON.stringify(list.body).includes('table-secret-value-1'), 'metadata only');
  const read = await h.agent(auditor, 'GET', path);
  assert.equal(read.status, 403);
  assert.equal(read.body.error.code, 'TESSERA_ADMIN_ROLE_FORBIDDEN');
  assert.match(read.body.error.message, /auditor role.*never a secret value.*admin token/);
  assert.ok(!JSON.stringify(read.body).includes('table-secret-value-1'));
  const write = await h.agent(auditor, 'PUT', path, { value: 'overwritten-by-auditor' });
  assert.equal(write.status, 403);
  assert.equal(write.body.error.code, 'TESSERA_ADMIN_ROLE_FORBIDDEN');
  assert.match(write.body.error.message, /auditor role, which may read but not change anything; use an admin token/);
  assert.equal((await h.admin('GET', path)).body.value, 'table-secret-value-1', 'unchanged');
});
