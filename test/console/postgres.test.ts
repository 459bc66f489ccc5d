/**
 * Console sessions on PostgreSQL with two replicas (real server each, one database): a session
 * started on one is used on the other; sign-out and token revocation on one end it on the
 * other at once; an idle session ends on both (the store holds last_seen_at, not a replica).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from '../e2e/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { createAdminTokenService } from '../../src/admin/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { call, signIn } from './client.js';

test('two replicas on PostgreSQL share console sessions; ends are seen at once by both', async (t) => {
  const db = await createTestDatabase('console_sessions');
  t.after(() => db.drop());
  process.env.TESSERA_TEST_MASTER_KEY = Buffer.alloc(32, 7).toString('base64');
  const clock = new ManualClock(Date.now());
  const config = (replica: string) => ({
    server: { listen: '127.0.0.1:0', public_url: 'https://tessera.test' },
    replica_id: replica,
    store: { kind: 'postgres', url: db.url },
    master_key: { env: 'TESSERA_TEST_MASTER_KEY' },
  });
  const a = await startHarness({ config: config('replica-a'), clock });
  t.after(() => a.close());
  const b = await startHarness({ config: config('replica-b'), clock });
  t.after(() => b.close());

  // A dev start revokes the dev token of the previous one (docs/operators.md): b's token is the live one.
  clock.advance(6_000);
  const s = await signIn(a.url, b.adminToken);
  assert.match(s.setCookie, /^__Host-tessera_session=/);
  assert.equal((await call(b.url, 'GET', '/v1/admin/agents', { cookie: s.cookie })).status, 200, 'used on the other replica');
  assert.deepEqual((await call(b.url, 'GET', '/v1/console/session', { cookie: s.cookie })).body, s.body);
  const body = { spiffe_id: 'spiffe://tessera.local/ns/console/sa/pg', ttl: '5m' };
  const created = await call(b.url, 'POST', '/v1/admin/join-tokens', { cookie: s.cookie, csrf: s.csrf, body });
  assert.equal(created.status, 201, 'the CSRF token is good on every replica');
  a.sensitive.add(created.body.token);

  // Sign-out on b: refused on a at once.
  assert.equal((await call(b.url, 'DELETE', '/v1/console/session', { cookie: s.cookie, csrf: s.csrf })).status, 204);
  assert.equal((await call(a.url, 'GET', '/v1/admin/agents', { cookie: s.cookie })).body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');

  // A token revoked through replica a's store: b refuses its session at once (no 5 s cache).
  const tokens = createAdminTokenService({ store: a.tessera.store, clock, audit: a.tessera.audit });
  const { id, token } = await tokens.create({ name: 'pg-other', expiresAt: null, actor: 'test' });
  a.sensitive.add(token);
  clock.advance(6_000);
  const r = await signIn(b.url, token);
  assert.equal((await call(a.url, 'GET', '/v1/admin/agents', { cookie: r.cookie })).status, 200);
  await tokens.revoke(id, { actor: 'test' });
  const after = await call(b.url, 'GET', '/v1/admin/agents', { cookie: r.cookie });
  assert.equal(after.status, 401);
  assert.equal(after.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');

  // Used on a every 20 minutes, the session is alive on b at 40 minutes; then idle on both.
  const u = await signIn(a.url, b.adminToken);
  clock.advance(20 * 60_000);
  assert.equal((await call(a.url, 'GET', '/v1/console/session', { cookie: u.cookie })).status, 200);
  clock.advance(20 * 60_000);
  assert.equal((await call(b.url, 'GET', '/v1/console/session', { cookie: u.cookie })).status, 200);
  clock.advance(30 * 60_000);
  assert.equal((await call(a.url, 'GET', '/v1/console/session', { cookie: u.cookie })).body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  assert.equal((await call(b.url, 'GET', '/v1/console/session', { cookie: u.cookie })).body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
  await a.tessera.audit.flush();
  const ended = await a.tessera.store.all<{ n: number }>("SELECT COUNT(*) AS n FROM audit_events WHERE kind = 'console.session_ended'");
  assert.equal(Number(ended[0]!.n), 3, 'signed_out, token_revoked, idle: each once');
});
