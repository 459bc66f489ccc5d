/**
 * Fail fast means fast (issue 7, item 16): against a database that accepts TCP but never
 * answers, with connect_timeout 2 s, issuance answers 503 after ONE timeout — its clean-up
 * revocation runs in the background afterwards — and no engine call path chains timeouts:
 * each of issue, renew, revoke and reconcile opens exactly one connection to the silent server.
 * Ordering, not wall-clock time, is asserted.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { urlMetaKey } from '../../src/engines/postgres/index.js';
import { ADMIN, harness, loginAs, pgFixture, type Harness, type PgFixture } from './pg-setup.js';

let fx: PgFixture;
let h: Harness;
const prefix = `f${Math.random().toString(36).slice(2, 7)}_`;
const sockets: Socket[] = [];
let accepted = 0;
const silent = createServer((s) => {
  accepted++;
  sockets.push(s); // accepted, never answered
});
let silentUrl = '';

before(async () => {
  fx = await pgFixture('pgfailfast');
  h = await harness({ maxRevokeAttempts: 5 });
  await new Promise<void>((res) => silent.listen(0, '127.0.0.1', () => res()));
  silentUrl = `postgres://u:p@127.0.0.1:${(silent.address() as { port: number }).port}/db`;
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/ff', ADMIN, { connection_url: fx.mgmtUrl, username_prefix: prefix, connect_timeout: '2s', pool_size: 4 })).status, 200);
  assert.equal((await h.call('PUT', '/v1/admin/engines/postgres/ff/roles/ff-reader', ADMIN, { groups: [fx.group] })).status, 200);
});
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((res) => silent.close(() => res()));
  await h?.close();
  await fx?.drop();
});

/** Points configuration "ff" at `url` in place (a replica's view of a network partition). */
async function pointAt(url: string): Promise<void> {
  const key = urlMetaKey('ff');
  await h.store.run('UPDATE meta SET value = ? WHERE key = ?', [h.sealer.seal(Buffer.from(url), key).toString('base64'), key]);
  await h.store.run('UPDATE pg_engine_configs SET updated_at = updated_at + 1 WHERE name = ?', ['ff']);
  await h.postgres.reload();
}

async function until(what: string, cond: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a silent database: issuance answers 503 after one connect_timeout; the clean-up finishes after the answer, in the background', async () => {
  const live = await h.call('POST', '/v1/creds/postgres/ff-reader', 'agent-reader');
  assert.equal(live.status, 201);
  await pointAt(silentUrl);
  try {
    const before = accepted;
    const t0 = performance.now();
    const r = await h.call('POST', '/v1/creds/postgres/ff-reader', 'agent-reader');
    const ms = performance.now() - t0;
    assert.deepEqual([r.status, r.json.error?.code], [503, 'TESSERA_ENGINE_UNAVAILABLE'], JSON.stringify(r.json));
    // When the answer arrived, the clean-up revocation had not finished: its attempt is not recorded yet.
    const [pending] = (await h.leases.list({ owner: 'spiffe://example.org/ns/healthcare/sa/patient-reader' })).filter((l) => l.state === 'pending' || l.state === 'revoking');
    assert.ok(pending, 'the intent stays for the clean-up');
    assert.deepEqual([pending.revokeAttempts, pending.lastError], [0, null], 'the answer did not wait for the clean-up');
    console.log(`issuance against a silent server answered after ${ms.toFixed(0)} ms (connect_timeout 2 s)`);
    // ... which then runs against the same silent server and times out on its own.
    await until('the background clean-up attempt', async () => ((await h.leases.get(pending.id))?.revokeAttempts ?? 0) === 1);
    const after = await h.leases.get(pending.id);
    assert.equal(after?.state, 'revoking', 'not disabled: the database never answered');
    assert.match(after?.lastError ?? '', /TESSERA_ENGINE_UNAVAILABLE/);
    assert.equal(accepted - before, 2, 'one connection for the create, one for the clean-up (disable only: no cleanup after a failed disable)');

    // Renew, revoke and reconcile: one connection each, one timeout each.
    let n = accepted;
    const renew = await h.call('POST', `/v1/leases/${live.json.lease_id as string}/renew`, 'agent-reader', { increment: 60 });
    assert.deepEqual([renew.status, renew.json.error?.code], [503, 'TESSERA_ENGINE_UNAVAILABLE']);
    assert.equal(accepted - n, 1);
    assert.equal((await h.leases.get(live.json.lease_id as string))?.expiresAt, Date.parse(live.json.expires_at as string), 'a failed renew changes nothing');
    n = accepted;
    const del = await h.call('DELETE', `/v1/leases/${live.json.lease_id as string}`, 'agent-reader');
    assert.equal(del.json.state, 'revoking');
    assert.equal(accepted - n, 1, 'a disable that timed out is not followed by a cleanup');
    n = accepted;
    await h.leases.reconcile(); // an unreachable configuration is skipped, logged
    assert.equal(accepted - n, 1, 'reconcile: one connection per configuration');
  } finally {
    await pointAt(fx.mgmtUrl);
  }
  // The database is back: the queued revocations complete.
  h.clock.advance(60_000);
  await h.leases.reapOnce();
  assert.deepEqual((await h.leases.list()).map((l) => l.state).sort(), ['revoked', 'revoked']);
  await assert.rejects(loginAs(live.json.data as { host: string; port: number; database: string; username: string; password: string }));
});
