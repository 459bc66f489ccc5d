/**
 * The whole server on the PostgreSQL store (the HA configuration): the same agent flow as on the
 * embedded store — login, policy-checked secret read, kill switch, audit verification — and two
 * replicas on one database: a revocation made on one is enforced by the other (LISTEN/NOTIFY).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.js';
import { createTestDatabase } from '../helpers/postgres.js';

const READER = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';

test('two replicas on PostgreSQL: shared secrets, cross-replica kill switch, verifiable audit', async (t) => {
  const db = await createTestDatabase('e2e_store');
  t.after(() => db.drop());
  // Both replicas share the database and the master key (env), as a real HA deployment would.
  const masterKey = Buffer.alloc(32, 7).toString('base64');
  process.env.TESSERA_TEST_MASTER_KEY = masterKey;
  const config = (replica: string) => ({
    // Behind one load balancer: one public URL, so one issuer for both replicas.
    server: { listen: '127.0.0.1:0', public_url: 'https://tessera.test' },
    replica_id: replica,
    store: { kind: 'postgres', url: db.url },
    master_key: { env: 'TESSERA_TEST_MASTER_KEY' },
  });
  const rootToken = 'tsr_admin_pg-store-replicas-share-one-root-token';
  // Both replicas are dev mode on one database: they share one --root-token (each dev start
  // would otherwise revoke the other's dev token, docs/operators.md).
  const a = await startHarness({ config: config('replica-a'), rootToken });
  t.after(() => a.close());
  const b = await startHarness({ config: config('replica-b'), rootToken });
  t.after(() => b.close());

  const value = `pg-store-secret-${Math.random().toString(36).slice(2)}`;
  a.sensitive.add(value);
  assert.equal((await a.admin('PUT', '/v1/admin/secrets/healthcare/prod/agents/patient-reader/key', { value, mode: 'read' })).status, 200);

  // Log in through replica a, read through replica b: keys and secrets are shared.
  const token = await a.login(await a.joinToken(READER));
  // Replica b learns replica a's signing key on first sight of its kid.
  const read = await b.agent(token, 'GET', '/v1/secrets/healthcare/prod/agents/patient-reader/key');
  assert.equal(read.status, 200, JSON.stringify(read.body));
  assert.equal(read.body.value, value);

  // Kill switch on replica a; replica b refuses the token once the notification arrives (bounded wait).
  assert.equal((await a.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: READER })).status, 201);
  assert.equal((await a.agent(token, 'GET', '/v1/secrets/healthcare/prod/agents/patient-reader/key')).status, 401);
  let refusedOnB = false;
  for (let i = 0; i < 50 && !refusedOnB; i++) {
    const r = await b.agent(token, 'GET', '/v1/secrets/healthcare/prod/agents/patient-reader/key');
    refusedOnB = r.status === 401 && r.body.error.code === 'TESSERA_TOKEN_REVOKED';
    if (!refusedOnB) await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(refusedOnB, 'replica b still accepts a token revoked on replica a after 1 s');

  // An emergency key rotation on replica b: replica a refuses tokens signed by the old keys.
  const fresh = await b.login(await b.joinToken('spiffe://tessera.local/ns/billing/sa/invoicer'));
  assert.equal((await a.agent(fresh, 'GET', '/v1/whoami')).status, 200);
  assert.equal((await b.admin('POST', '/v1/admin/keys/rotate', { revoke_previous: true })).status, 200);
  let refusedOnA = false;
  for (let i = 0; i < 50 && !refusedOnA; i++) {
    const r = await a.agent(fresh, 'GET', '/v1/whoami');
    refusedOnA = r.status === 401 && r.body.error.code === 'TESSERA_TOKEN_KID_UNKNOWN';
    if (!refusedOnA) await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(refusedOnA, 'replica a still accepts a token whose key replica b revoked');

  // One audit chain, written by both replicas, verifies.
  // Verification runs as a background job; `wait` answers when it has finished.
  const verify = await b.admin('POST', '/v1/admin/audit/verify', { full: true, wait: true });
  assert.equal(verify.status, 200);
  assert.equal(verify.body.job.state, 'done');
  assert.equal(verify.body.job.result.ok, true, JSON.stringify(verify.body.job.result.problems));
  const tail = await a.admin('GET', '/v1/admin/audit?limit=500');
  const replicas = new Set((tail.body.events as { event: { where?: { replica?: string } } }[]).map((e) => e.event.where?.replica).filter(Boolean));
  assert.ok(replicas.has('replica-a') && replicas.has('replica-b'), `events from both replicas expected, saw ${[...replicas].join(', ')}`);
});
