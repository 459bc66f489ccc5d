/**
 * ADR 0041 for the PostgreSQL engine's configuration: every configuration change commits with
 * its `engine.*` event or does not happen, and names that look like credentials are refused at
 * the edge. Real PostgreSQL (the management connection is probed for real), real HTTP routes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, harness, pgFixture, type Harness, type PgFixture } from './pg-setup.js';

let fx: PgFixture;
let h: Harness;
const prefix = `a${Math.random().toString(36).slice(2, 7)}_`;

before(async () => {
  fx = await pgFixture('pgaudit');
  h = await harness();
});
after(async () => {
  await h?.close();
  await fx?.drop();
});

const configBody = () => ({ connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 2, connect_timeout: '2s', statement_timeout: '5s' });
const snapshot = async () => JSON.stringify([await h.store.all('SELECT name, updated_at FROM pg_engine_configs ORDER BY name'), await h.store.all('SELECT name, updated_at FROM pg_engine_roles ORDER BY name')]);

test('engine configuration changes are audited or do not happen: with the audit down every write is refused and nothing changes', async () => {
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main', ADMIN, configBody())).status, 200);
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main/roles/reader', ADMIN, { groups: [fx.group] })).status, 200);
  const before = await snapshot();
  const events = h.audit.events.length;

  h.audit.failing = true;
  const writes: [string, string, unknown][] = [
    ['PUT', '/v1/admin/engines/postgres/other', configBody()],
    ['PUT', '/v1/admin/engines/postgres/main', { ...configBody(), pool_size: 3 }],
    ['PUT', '/v1/admin/engines/postgres/main/roles/writer', { groups: [fx.group] }],
    ['PUT', '/v1/admin/engines/postgres/main/roles/reader', { groups: [fx.group], default_ttl: '2m' }],
    ['DELETE', '/v1/admin/engines/postgres/main/roles/reader', undefined],
  ];
  for (const [method, path, body] of writes) {
    const r = await h.call(method, path, ADMIN, body);
    assert.equal(r.status, 503, `${method} ${path}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error?.code, 'TESSERA_AUDIT_UNAVAILABLE');
  }
  assert.equal(await snapshot(), before, 'no configuration changed without its event');
  assert.equal(h.audit.events.length, events);
  assert.equal((await h.call('GET', '/v1/admin/engines/postgres/main/roles/reader', ADMIN)).status, 200, 'the in-memory view did not move either');
  assert.equal((await h.call('GET', '/v1/admin/engines/postgres/other', ADMIN)).status, 404);

  h.audit.failing = false;
  assert.equal((await h.call('DELETE', '/v1/admin/engines/postgres/main/roles/reader', ADMIN)).status, 200);
  h.audit.failing = true;
  assert.equal((await h.call('DELETE', '/v1/admin/engines/postgres/main', ADMIN)).json.error?.code, 'TESSERA_AUDIT_UNAVAILABLE');
  assert.equal((await h.call('GET', '/v1/admin/engines/postgres/main', ADMIN)).status, 200, 'still configured');
  h.audit.failing = false;
  assert.equal((await h.call('DELETE', '/v1/admin/engines/postgres/main', ADMIN)).status, 200);
  assert.deepEqual(h.audit.events.slice(events).map((e) => `${e.kind} ${e.resource}`), ['engine.deleted postgres/reader', 'engine.deleted postgres:main']);
});

test('engine and role names that look like credentials are refused with TESSERA_REQUEST_CREDENTIAL_LIKE; nothing is stored or audited', async () => {
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/main', ADMIN, configBody())).status, 200);
  const before = await snapshot();
  const events = h.audit.events.length;
  const tsr = `tsr_admin_${'a'.repeat(30)}`;
  for (const [path, body] of [
    [`/v1/admin/engines/postgres/${tsr}`, configBody()],
    [`/v1/admin/engines/postgres/main/roles/${tsr}`, { groups: [fx.group] }],
  ] as const) {
    const r = await h.call('PUT', path, ADMIN, body);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.error?.code, 'TESSERA_REQUEST_CREDENTIAL_LIKE');
    assert.ok(!JSON.stringify(r.json).includes(tsr), 'the value is not echoed');
  }
  assert.equal(await snapshot(), before);
  assert.equal(h.audit.events.length, events);
});
