/**
 * Operator tokens over real HTTP through the whole of Tessera, on the embedded SQLite store and on
 * PostgreSQL: create (the value once), list (never values), revoke, the last admin token, name
 * uniqueness, expiry (also of a token the 5 s cache holds), the auditor role on these routes, the
 * audit events — and every bad input with its exact code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, auditTexts, type Harness } from '../e2e/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { ManualClock } from '../../src/shared/clock.js';

const H = 3_600_000;

async function expectError(p: Promise<{ status: number; body: any }>, status: number, code: string, message?: RegExp): Promise<void> {
  const r = await p;
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error.code, code, JSON.stringify(r.body));
  if (message) assert.match(r.body.error.message, message);
}

async function lifeCycle(h: Harness, clock: ManualClock): Promise<void> {
  const list0 = await h.admin('GET', '/v1/admin/operator-tokens');
  assert.equal(list0.status, 200);
  const dev = list0.body.tokens.filter((t: { revoked_at: string | null }) => t.revoked_at === null);
  assert.equal(dev.length, 1);
  assert.deepEqual({ name: dev[0].name, role: dev[0].role, created_by: dev[0].created_by, current: dev[0].current }, { name: 'dev', role: 'admin', created_by: 'system:dev', current: true });
  const devId: string = dev[0].id;

  // Create: 201, the value once, the default ttl of 90 days.
  const created = await h.admin('POST', '/v1/admin/operator-tokens', { name: 'alice@example.com', role: 'admin' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.match(created.body.id, /^adm_/);
  assert.match(created.body.token, /^tsr_admin_[A-Za-z0-9_-]{43}$/);
  assert.equal(created.body.expires_at, new Date(clock.now() + 90 * 24 * H).toISOString());
  assert.deepEqual(Object.keys(created.body).sort(), ['expires_at', 'id', 'name', 'role', 'token']);
  const alice: string = created.body.token;
  h.sensitive.add(alice);
  const aud = await h.admin('POST', '/v1/admin/operator-tokens', { name: 'audit.bot', role: 'auditor', ttl: '12h' });
  assert.equal(aud.status, 201);
  assert.equal(aud.body.expires_at, new Date(clock.now() + 12 * H).toISOString());
  const auditor: string = aud.body.token;
  h.sensitive.add(auditor);
  assert.equal((await h.admin('POST', '/v1/admin/operator-tokens', { name: 'max', ttl: '365d' })).status, 201);
  assert.equal((await h.admin('POST', '/v1/admin/operator-tokens', { name: 'seconds', ttl: 3600 })).status, 201);

  // List: metadata only, `current` for the caller.
  const list = await h.agent(alice, 'GET', '/v1/admin/operator-tokens');
  assert.equal(list.status, 200);
  const text = JSON.stringify(list.body);
  assert.ok(!text.includes(alice) && !text.includes(auditor) && !text.includes(h.adminToken), 'no token value is listed');
  assert.ok(!/hash/i.test(text));
  const byName = new Map(list.body.tokens.map((t: { name: string }) => [t.name, t]));
  assert.deepEqual(Object.keys(byName.get('alice@example.com') as object).sort(), ['created_at', 'created_by', 'current', 'expires_at', 'id', 'name', 'revoked_at', 'role']);
  assert.equal((byName.get('alice@example.com') as { current: boolean }).current, true);
  assert.equal((byName.get('dev') as { current: boolean }).current, false);
  assert.equal((byName.get('alice@example.com') as { created_by: string }).created_by, devId);
  assert.equal((byName.get('audit.bot') as { role: string }).role, 'auditor');

  // Bad input: exact codes, nothing created.
  const bad = async (body: unknown, status: number, code: string) => expectError(h.admin('POST', '/v1/admin/operator-tokens', body), status, code);
  await bad({}, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: '' }, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: 'has space' }, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: 'slash/name' }, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: 'é' }, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: 'x'.repeat(65) }, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: 42 }, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: `tsr_admin_${'A'.repeat(43)}` }, 400, 'TESSERA_REQUEST_CREDENTIAL_LIKE');
  await bad({ name: 'ok', role: 'root' }, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: 'ok', role: 'Admin' }, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: 'ok', extra: true }, 400, 'TESSERA_REQUEST_INVALID');
  for (const ttl of ['0', '0s', 0, '366d', '8761h', 'soon', '1w', '-1d', -5, '', 'P30D']) await bad({ name: 'ok', ttl }, 400, 'TESSERA_ADMIN_TOKEN_TTL_INVALID');
  await bad({ name: 'ok', ttl: 'x'.repeat(33) }, 400, 'TESSERA_REQUEST_INVALID');
  await bad({ name: 'ok', ttl: true }, 400, 'TESSERA_REQUEST_INVALID');
  await expectError(h.admin('POST', '/v1/admin/operator-tokens', { name: 'alice@example.com' }), 409, 'TESSERA_ADMIN_TOKEN_NAME_TAKEN', /revoke that token first/);
  assert.ok(!(await h.admin('GET', '/v1/admin/operator-tokens')).body.tokens.some((t: { name: string }) => t.name === 'ok'));

  // The auditor lists, but neither creates nor revokes.
  assert.equal((await h.agent(auditor, 'GET', '/v1/admin/operator-tokens')).status, 200);
  await expectError(h.agent(auditor, 'POST', '/v1/admin/operator-tokens', { name: 'escalate', role: 'admin' }), 403, 'TESSERA_ADMIN_ROLE_FORBIDDEN');
  await expectError(h.agent(auditor, 'DELETE', `/v1/admin/operator-tokens/${devId}`), 403, 'TESSERA_ADMIN_ROLE_FORBIDDEN');

  // Revoke: unknown id, malformed id.
  await expectError(h.admin('DELETE', '/v1/admin/operator-tokens/adm_unknown'), 404, 'TESSERA_ADMIN_TOKEN_NOT_FOUND');
  await expectError(h.admin('DELETE', '/v1/admin/operator-tokens/adm%20x'), 400, 'TESSERA_REQUEST_INVALID');

  // Expiry: the auditor token (12 h), just used and so in the cache, stops working at its expiry.
  assert.equal((await h.agent(auditor, 'GET', '/v1/admin/agents')).status, 200);
  clock.advance(12 * H - 1);
  assert.equal((await h.agent(auditor, 'GET', '/v1/admin/agents')).status, 200);
  clock.advance(1);
  await expectError(h.agent(auditor, 'GET', '/v1/admin/agents'), 401, 'TESSERA_ADMIN_TOKEN_EXPIRED', /expired at .*tessera operator-token create/);
  // Its name is free again.
  const again = await h.admin('POST', '/v1/admin/operator-tokens', { name: 'audit.bot', role: 'auditor', ttl: '1h' });
  assert.equal(again.status, 201, JSON.stringify(again.body));
  h.sensitive.add(again.body.token);

  // Revoking the dev token (alice, max and seconds are admins too).
  const revoked = await h.agent(alice, 'DELETE', `/v1/admin/operator-tokens/${devId}`);
  assert.deepEqual([revoked.status, revoked.body], [200, { id: devId, revoked: true }]);
  await expectError(h.admin('GET', '/v1/admin/agents'), 401, 'TESSERA_ADMIN_TOKEN_INVALID');
  // Revoking again: it is revoked.
  assert.deepEqual((await h.agent(alice, 'DELETE', `/v1/admin/operator-tokens/${devId}`)).body, { id: devId, revoked: true });
  // The last active admin token cannot be revoked: expire `seconds`, revoke `max`, then alice is the last.
  const tokens = (await h.agent(alice, 'GET', '/v1/admin/operator-tokens')).body.tokens as { id: string; name: string }[];
  const id = (n: string) => tokens.find((t) => t.name === n)!.id;
  clock.advance(3600 * 1000);
  assert.equal((await h.agent(alice, 'DELETE', `/v1/admin/operator-tokens/${id('max')}`)).status, 200);
  await expectError(h.agent(alice, 'DELETE', `/v1/admin/operator-tokens/${id('alice@example.com')}`), 409, 'TESSERA_ADMIN_LAST_TOKEN', /last active admin operator token.*Create another admin token first/);
  assert.equal((await h.agent(alice, 'GET', '/v1/admin/agents')).status, 200, 'still works');
  // An expired admin token may be revoked (it is not active).
  assert.equal((await h.agent(alice, 'DELETE', `/v1/admin/operator-tokens/${id('seconds')}`)).status, 200);

  // Audited with the calling operator as actor; never a value.
  await h.tessera.audit.flush();
  const events = await h.tessera.store.all<{ kind: string; actor: string; body: string }>("SELECT kind, actor, body FROM audit_events WHERE kind LIKE 'admin_token.%' ORDER BY seq");
  const aliceId = id('alice@example.com');
  const byDev = events.filter((e) => e.kind === 'admin_token.created' && e.actor === `admin:${devId}`);
  assert.equal(byDev.length, 5, 'alice, audit.bot, max, seconds, audit.bot again');
  assert.ok(events.some((e) => e.kind === 'admin_token.revoked' && e.actor === `admin:${aliceId}` && e.body.includes(devId)));
  for (const t of await auditTexts(h)) for (const v of [alice, auditor, again.body.token]) assert.ok(!t.text.includes(v), `no token value in ${t.kind}`);
}

test('operator tokens on SQLite: create, list, revoke, the last admin, expiry, bad input', async (t) => {
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  const h = await startHarness({ clock });
  t.after(() => h.close());
  await lifeCycle(h, clock);
});

test('operator tokens on PostgreSQL: the same life cycle', async (t) => {
  const db = await createTestDatabase('operator_tokens');
  t.after(() => db.drop());
  process.env.TESSERA_TEST_MASTER_KEY = Buffer.alloc(32, 9).toString('base64');
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  const h = await startHarness({ clock, config: { store: { kind: 'postgres', url: db.url }, master_key: { env: 'TESSERA_TEST_MASTER_KEY' } } });
  t.after(() => h.close());
  await lifeCycle(h, clock);
});
