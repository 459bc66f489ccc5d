import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApp, type AdminAuthenticator } from '../../src/server/app.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { registerAuditRoutes } from '../../src/audit/routes.js';
import { appendSequential, makeLog } from './setup.js';

const ADMIN = 'test-admin-token';

async function start() {
  const { log, store } = await makeLog({ checkpointEveryEvents: 5 });
  await appendSequential(log, 1, 12);
  const admin: AdminAuthenticator = {
    async authenticate(token) {
      if (token !== ADMIN) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'unknown admin token');
      return { kind: 'admin', tokenId: 'adm1' };
    },
  };
  const app = createApp({
    logger: silentLogger,
    replicaId: 'r1',
    bodyLimit: 65536,
    admin,
    agents: { authenticate: async () => { throw new TesseraError('TESSERA_TOKEN_MISSING', 'no agents here'); } },
  });
  registerAuditRoutes(app, { audit: log });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address() as { port: number };
  const base = `http://127.0.0.1:${addr.port}`;
  const call = async (method: string, path: string, body?: unknown, token: string | null = ADMIN) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
     
    return { status: res.status, json: (await res.json()) as any };
  };
  return { app, log, store, call };
}

test('GET /v1/admin/audit lists, filters and pages; bad input and missing auth get stable codes', async (t) => {
  const { app, call, log } = await start();
  t.after(() => app.close());
  let r = await call('GET', '/v1/admin/audit?limit=5');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.events.map((e: { seq: number }) => e.seq), [1, 2, 3, 4, 5]);
  assert.equal(r.json.next_seq, 5);
  r = await call('GET', `/v1/admin/audit?after_seq=${r.json.next_seq}&limit=100`);
  assert.equal(r.json.events.length, 7);
  assert.equal(r.json.next_seq, 12);
  r = await call('GET', `/v1/admin/audit?actor=${encodeURIComponent('spiffe://tessera.local/agent/a2')}&txn=txn-1`);
  assert.deepEqual(r.json.events.map((e: { seq: number }) => e.seq), [5]);
  r = await call('GET', '/v1/admin/audit?kind=policy.decision&limit=1');
  assert.equal(r.json.events[0].event.kind, 'policy.decision');

  for (const q of ['limit=0', 'limit=abc', 'after_seq=-1', 'kind=BAD KIND', 'bogus=1']) {
    r = await call('GET', `/v1/admin/audit?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID', q);
  }
  r = await call('GET', '/v1/admin/audit', undefined, null);
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  r = await call('GET', '/v1/admin/audit', undefined, 'wrong');
  assert.equal(r.json.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
  r = await call('POST', '/v1/admin/audit/verify', undefined, null);
  assert.equal(r.json.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');

  r = await call('POST', '/v1/admin/audit/hmac', { value: 'jti-1' });
  assert.equal(r.status, 200);
  assert.equal(r.json.hmac, log.hmac('jti-1'));
  r = await call('POST', '/v1/admin/audit/hmac', { value: '' });
  assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
});

test('POST /v1/admin/audit/verify reports ok, then the tampered seq', async (t) => {
  const { app, call, store } = await start();
  t.after(() => app.close());
  let r = await call('POST', '/v1/admin/audit/verify');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { ok: true, checked: 12, checkpoints: 2, problems: [] });
  await store.run('DELETE FROM audit_events WHERE seq = 3');
  r = await call('POST', '/v1/admin/audit/verify');
  assert.equal(r.json.ok, false);
  assert.deepEqual(r.json.problems.map((p: { seq: number; kind: string }) => [p.seq, p.kind]), [[3, 'deleted']]);
  assert.match(r.json.problems[0].message, /event 3 is missing/);
});
