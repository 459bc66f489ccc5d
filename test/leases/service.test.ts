import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import type { Store } from '../../src/store/port.js';
import { createLeaseService, type LeaseServiceDeps } from '../../src/leases/index.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { MemoryEngine } from '../helpers/memory-engine.js';

export function principal(name: string, extra: Partial<AgentPrincipal> = {}): AgentPrincipal {
  return { spiffeId: `spiffe://example.org/${name}`, trustDomain: 'example.org', path: `/${name}`, attributes: {}, jti: `jti-${name}`, expiresAt: Date.UTC(2030, 0, 1), ...extra };
}

const code = (c: string) => (e: unknown) => e instanceof TesseraError && e.code === c;

async function setup(opts: Partial<LeaseServiceDeps> = {}, store?: Store) {
  const s = store ?? openSqliteStore({ file: ':memory:' });
  await s.migrate();
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const engine = new MemoryEngine();
  const metrics = new MetricsRegistry();
  const leases = createLeaseService({ store: s, clock, audit, engines: [engine], maxRevokeAttempts: 3, metrics, backoff: { baseMs: 1000, maxMs: 10_000 }, ...opts });
  return { store: s, clock, audit, engine, metrics, leases };
}

const alice = principal('alice', { task: 'task-1', user: 'u-1' });
const bob = principal('bob');

test('issue writes the intent, creates the credential and returns it once', async () => {
  const { leases, engine, audit, store, clock } = await setup();
  const issued = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  assert.match(issued.lease_id, /^lease_/);
  assert.equal(issued.expires_at, clock.now() + 60_000);
  assert.equal(issued.renewable, true);
  assert.equal(typeof issued.data.password, 'string');
  assert.equal(engine.credentials.size, 1);
  const lease = await leases.get(issued.lease_id);
  assert.equal(lease?.state, 'active');
  assert.equal(lease?.path, `mem/reader/${issued.lease_id}`);
  assert.equal(lease?.ownerAgent, alice.spiffeId);
  assert.equal(lease?.taskId, 'task-1');
  // The password is never persisted nor audited; the lease id only as an HMAC.
  const raw = JSON.stringify(await store.all('SELECT * FROM leases'));
  assert.ok(!raw.includes(String(issued.data.password)));
  const created = audit.events.find((e) => e.kind === 'lease.created');
  assert.ok(created);
  assert.ok(!JSON.stringify(audit.events).includes(issued.lease_id));
  assert.ok(!JSON.stringify(audit.events).includes(String(issued.data.password)));
  assert.equal(created.txn, 'task-1');
});

test('bad issuance inputs get stable codes', async () => {
  const { leases, engine } = await setup();
  await assert.rejects(leases.issue({ engine: 'nope', role: 'reader', principal: alice }), code('TESSERA_ENGINE_NOT_FOUND'));
  await assert.rejects(leases.issue({ engine: 'mem', role: 'nope', principal: alice }), code('TESSERA_ENGINE_NOT_FOUND'));
  await assert.rejects(leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 300_001 }), code('TESSERA_LEASE_TTL_INVALID'));
  await assert.rejects(leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 0 }), code('TESSERA_LEASE_TTL_INVALID'));
  await assert.rejects(leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: -5 }), code('TESSERA_LEASE_TTL_INVALID'));
  assert.equal(engine.calls.create, 0);
  assert.deepEqual(await leases.list(), []);
});

test('a failed create cleans up its intent; an unreachable backend fails fast and queues the cleanup', async () => {
  const { leases, engine, clock } = await setup();
  engine.failCreate = 1;
  await assert.rejects(leases.issue({ engine: 'mem', role: 'reader', principal: alice }), code('TESSERA_ENGINE_FAILED'));
  await leases.idle(); // the clean-up runs in the background
  let [l] = await leases.list();
  assert.equal(l?.state, 'revoked');
  assert.equal(l?.revokeCause, 'create_failed');
  assert.deepEqual(engine.log, ['create', 'disable', 'revoke'], 'disable first, then cleanup');

  engine.down = true;
  await assert.rejects(leases.issue({ engine: 'mem', role: 'reader', principal: alice }), code('TESSERA_ENGINE_UNAVAILABLE'));
  await leases.idle();
  [l] = await leases.list({ state: 'revoking' });
  assert.ok(l, 'cleanup is queued for retry');
  engine.down = false;
  clock.advance(1000);
  const r = await leases.reapOnce();
  assert.equal(r.retried, 1);
  assert.equal((await leases.get(l.id))?.state, 'revoked');
});

test('renew follows the documented formula: expires_at = min(now + increment, max_expires_at)', async () => {
  const { leases, clock, engine } = await setup();
  const issued = await leases.issue({ engine: 'mem', role: 'reader', principal: alice }); // TTL 60 s, max 300 s
  const max = issued.expires_at - 60_000 + 300_000;
  clock.advance(30_000);
  const r1 = await leases.renew(issued.lease_id, alice); // default increment: the role TTL
  assert.equal(r1.expires_at, clock.now() + 60_000);
  assert.equal(r1.ttl_ms, 60_000);
  assert.equal(engine.credentials.get(`tsr_${issued.lease_id}`)?.validUntil, r1.expires_at);
  clock.advance(50_000);
  assert.equal((await leases.renew(issued.lease_id, alice, 120_000)).expires_at, clock.now() + 120_000);
  clock.advance(100_000);
  // An increment beyond the cap (even beyond the max TTL itself) is capped, not refused.
  const r2 = await leases.renew(issued.lease_id, alice, 400_000);
  assert.equal(r2.expires_at, max, 'capped at created_at + max TTL');
  assert.equal(r2.ttl_ms, max - clock.now());
  assert.equal(r2.renewable, false);
  // Only a lease AT its cap is not renewable, whatever the increment.
  await assert.rejects(leases.renew(issued.lease_id, alice), code('TESSERA_LEASE_NOT_RENEWABLE'));
  await assert.rejects(leases.renew(issued.lease_id, alice, 1000), code('TESSERA_LEASE_NOT_RENEWABLE'));
  for (const bad of [0, -1000, 1.5, Number.NaN]) await assert.rejects(leases.renew(issued.lease_id, alice, bad), code('TESSERA_LEASE_TTL_INVALID'), String(bad));
  await assert.rejects(leases.renew('lease_missing', alice), code('TESSERA_LEASE_NOT_FOUND'));
  clock.advance(max - clock.now());
  await assert.rejects(leases.renew(issued.lease_id, alice), code('TESSERA_LEASE_EXPIRED'));
});

test("renew, the issue's numbers: TTL 60 s, max 150 s, increment 10 s right away is granted (not 'already at max TTL')", async () => {
  const engine = new MemoryEngine('mem', { r: { defaultTtlMs: 60_000, maxTtlMs: 150_000, renewable: true } });
  const { leases, clock } = await setup({ engines: [engine] });
  const t0 = clock.now();
  const issued = await leases.issue({ engine: 'mem', role: 'r', principal: alice });
  assert.equal(issued.expires_at, t0 + 60_000);
  // 90 s remain before the cap: granted, from now (the lease is shortened to 10 s: the formula's meaning).
  const r1 = await leases.renew(issued.lease_id, alice, 10_000);
  assert.deepEqual([r1.expires_at, r1.ttl_ms, r1.renewable], [t0 + 10_000, 10_000, true]);
  assert.equal(engine.credentials.get(`tsr_${issued.lease_id}`)?.validUntil, t0 + 10_000);
  clock.advance(5_000);
  // One millisecond short of the cap, then exactly to the cap.
  const r2 = await leases.renew(issued.lease_id, alice, 150_000 - 5_000 - 1);
  assert.deepEqual([r2.expires_at, r2.renewable], [t0 + 150_000 - 1, true]);
  const r3 = await leases.renew(issued.lease_id, alice, 1);
  assert.deepEqual([r3.expires_at, r3.ttl_ms], [t0 + 5_001, 1], 'a small increment shortens, it is never refused below the cap');
  const r4 = await leases.renew(issued.lease_id, alice, 145_000);
  assert.deepEqual([r4.expires_at, r4.renewable], [t0 + 150_000, false]);
  // At the cap: the only refusal.
  await assert.rejects(leases.renew(issued.lease_id, alice, 10_000), (e: unknown) => {
    assert.ok(e instanceof TesseraError);
    assert.equal(e.code, 'TESSERA_LEASE_NOT_RENEWABLE');
    assert.match(e.message, /already reaches its max TTL/);
    return true;
  });
  // An increment above the role's max TTL on a fresh lease: capped, granted.
  const fresh = await leases.issue({ engine: 'mem', role: 'r', principal: alice });
  clock.advance(20_000);
  const r5 = await leases.renew(fresh.lease_id, alice, 10 * 365 * 86_400_000);
  assert.deepEqual([r5.expires_at, r5.ttl_ms, r5.renewable], [fresh.expires_at - 60_000 + 150_000, 130_000, false]);
});

test('only the owner may renew or revoke a lease', async () => {
  const { leases, engine } = await setup();
  const issued = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  await assert.rejects(leases.renew(issued.lease_id, bob), code('TESSERA_LEASE_NOT_FOUND'));
  await assert.rejects(leases.revoke(issued.lease_id, 'owner_request', { principal: bob }), code('TESSERA_LEASE_NOT_FOUND'));
  assert.equal(engine.credentials.size, 1);
  const r = await leases.revoke(issued.lease_id, 'owner_request', { principal: alice });
  assert.equal(r.state, 'revoked');
  assert.equal(engine.credentials.size, 0);
  // Idempotent.
  assert.equal((await leases.revoke(issued.lease_id, 'again')).state, 'revoked');
  await assert.rejects(leases.renew(issued.lease_id, alice), code('TESSERA_LEASE_EXPIRED'));
});

test('a non-renewable role refuses renewal', async () => {
  const engine = new MemoryEngine('mem', { fixed: { defaultTtlMs: 1000, maxTtlMs: 5000, renewable: false } });
  const { leases } = await setup({ engines: [engine] });
  const issued = await leases.issue({ engine: 'mem', role: 'fixed', principal: alice });
  assert.equal(issued.renewable, false);
  await assert.rejects(leases.renew(issued.lease_id, alice), code('TESSERA_LEASE_NOT_RENEWABLE'));
});

test('the reaper revokes expired leases', async () => {
  const { leases, clock, engine, audit } = await setup();
  const a = await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 10_000 });
  const b = await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 100_000 });
  clock.advance(10_000);
  const r = await leases.reapOnce();
  assert.equal(r.expired, 1);
  assert.equal((await leases.get(a.lease_id))?.state, 'revoked');
  assert.equal((await leases.get(a.lease_id))?.revokeCause, 'expired');
  assert.equal((await leases.get(b.lease_id))?.state, 'active');
  assert.equal(engine.credentials.size, 1);
  await assert.rejects(leases.renew(a.lease_id, alice), code('TESSERA_LEASE_EXPIRED'));
  assert.equal(audit.events.filter((e) => e.kind === 'lease.revoked').length, 1);
});

test('startReaper runs passes in the background and stopReaper waits for the current one', async () => {
  const { leases, clock } = await setup();
  const a = await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 1000 });
  clock.advance(1000);
  leases.startReaper(10);
  for (let i = 0; i < 200 && (await leases.get(a.lease_id))?.state !== 'revoked'; i++) await new Promise((r) => setTimeout(r, 10));
  await leases.stopReaper();
  assert.equal((await leases.get(a.lease_id))?.state, 'revoked');
  assert.throws(() => leases.startReaper(0), code('TESSERA_CONFIG_INVALID'));
});

test('revoke by owner, task, user and path prefix', async () => {
  const other = new MemoryEngine('other');
  const { leases, engine } = await setup({ engines: [new MemoryEngine(), other] });
  void engine;
  const a1 = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  const a2 = await leases.issue({ engine: 'other', role: 'reader', principal: alice });
  const b1 = await leases.issue({ engine: 'mem', role: 'reader', principal: bob });
  const b2 = await leases.issue({ engine: 'other', role: 'reader', principal: principal('bob', { task: 'task-2', user: 'u-2' }) });

  assert.deepEqual(await leases.revokeByPrefix('other/'), { matched: 2, revoked: 2, retrying: 0, disabled: 0, irrevocable: 0 });
  assert.equal((await leases.get(a2.lease_id))?.state, 'revoked');
  assert.equal((await leases.get(b2.lease_id))?.state, 'revoked');
  assert.equal(other.credentials.size, 0);
  assert.equal((await leases.revokeByPrefix('MEM/')).matched, 0, 'prefix match is case-sensitive');
  assert.throws(() => leases.revokeByPrefix(''), code('TESSERA_REQUEST_INVALID'));

  assert.equal((await leases.revokeByTask('task-1')).revoked, 1);
  assert.equal((await leases.get(a1.lease_id))?.state, 'revoked');
  assert.equal((await leases.get(b1.lease_id))?.state, 'active');
  assert.equal((await leases.revokeByUser('u-1')).matched, 0);
  assert.equal((await leases.revokeByOwner(bob.spiffeId)).revoked, 1);
  assert.equal((await leases.get(b1.lease_id))?.state, 'revoked');
  assert.deepEqual(await leases.list({ state: 'active' }), []);
});

test('a credential that cannot be disabled: retried with exponential backoff, then irrevocable, audited and counted', async () => {
  const { leases, clock, engine, audit, metrics } = await setup();
  const issued = await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 1000 });
  engine.failDisable = 10;
  clock.advance(1000);
  await leases.reapOnce(); // attempt 1 fails → retry after 1 s
  let l = await leases.get(issued.lease_id);
  assert.equal(l?.state, 'revoking');
  assert.equal(l?.revokeAttempts, 1);
  assert.equal(l?.nextAttemptAt, clock.now() + 1000);
  assert.match(l?.lastError ?? '', /TESSERA_ENGINE_FAILED/);
  assert.equal(engine.calls.revoke, 0, 'no cleanup before the credential is disabled');
  clock.advance(999);
  assert.equal((await leases.reapOnce()).retried, 0, 'not before the backoff elapses');
  clock.advance(1);
  await leases.reapOnce(); // attempt 2 fails → retry after 2 s
  l = await leases.get(issued.lease_id);
  assert.equal(l?.nextAttemptAt, clock.now() + 2000);
  clock.advance(2000);
  await leases.reapOnce(); // attempt 3 = maxRevokeAttempts
  l = await leases.get(issued.lease_id);
  assert.equal(l?.state, 'irrevocable');
  // Never without a next attempt: the credential may still be usable (backoff 4 s after attempt 3).
  assert.equal(l?.nextAttemptAt, clock.now() + 4000);
  const failed = audit.events.filter((e) => e.kind === 'lease.revoke_failed');
  assert.equal(failed.length, 3);
  assert.deepEqual([failed.at(-1)?.details?.irrevocable, failed.at(-1)?.details?.disabled, failed.at(-1)?.details?.stage], [true, false, 'disable']);
  assert.deepEqual((await leases.list({ irrevocable: true })).map((x) => x.id), [issued.lease_id]);
  const text = await metrics.render();
  assert.match(text, /tessera_leases_irrevocable 1/);
  assert.match(text, /tessera_leases_active 0/);
  assert.match(text, /tessera_lease_revoke_failures_total\{engine="mem",stage="disable"\} 3/);
  assert.deepEqual(await leases.health(), { revoking: 0, disabled: 0, irrevocable: 1 });
  // The reaper keeps retrying an irrevocable lease, at the longest backoff (capped), and
  // every attempt is audited; once the backend lets it, the lease is revoked without a person.
  clock.advance(3999);
  assert.equal((await leases.reapOnce()).retried, 0, 'not before its backoff elapses');
  clock.advance(1);
  assert.equal((await leases.reapOnce()).retried, 1);
  l = await leases.get(issued.lease_id);
  assert.deepEqual([l?.state, l?.revokeAttempts, l?.nextAttemptAt], ['irrevocable', 4, clock.now() + 8000]);
  for (let i = 0; i < 5; i++) {
    clock.advance(3_600_000);
    assert.equal((await leases.reapOnce()).retried, 1);
  }
  l = await leases.get(issued.lease_id);
  assert.equal(l?.nextAttemptAt, clock.now() + 10_000, 'capped at the longest backoff, never NULL');
  assert.equal(audit.events.filter((e) => e.kind === 'lease.revoke_failed').length, 9);
  engine.failDisable = 0;
  clock.advance(10_000);
  assert.equal((await leases.reapOnce()).retried, 1);
  assert.equal((await leases.get(issued.lease_id))?.state, 'revoked');
  assert.match(await metrics.render(), /tessera_leases_irrevocable 0/);
});

test('an irrevocable lease with no next attempt (written by an older version) is retried by the reaper and by recover() at start', async () => {
  const { leases, clock, engine, store } = await setup();
  const a = await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 60_000 });
  const b = await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 60_000 });
  await store.run(`UPDATE leases SET state = 'irrevocable', revoke_attempts = 8, next_attempt_at = NULL WHERE id IN (?, ?)`, [a.lease_id, b.lease_id]);
  engine.failDisable = 1; // the first retry fails again: it is rescheduled, not dropped
  await leases.recover();
  const states = [(await leases.get(a.lease_id))?.state, (await leases.get(b.lease_id))?.state].sort();
  assert.deepEqual(states, ['irrevocable', 'revoked']);
  const left = (await leases.get(a.lease_id))?.state === 'irrevocable' ? a.lease_id : b.lease_id;
  assert.ok(((await leases.get(left))?.nextAttemptAt ?? 0) > clock.now());
  clock.advance(10_000);
  await leases.reapOnce();
  assert.equal((await leases.get(left))?.state, 'revoked');
});

test('a cleanup that fails leaves the credential disabled (never usable): recorded, retried, counted, audited', async () => {
  const { leases, clock, engine, audit, metrics } = await setup();
  const issued = await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 60_000 });
  const user = `tsr_${issued.lease_id}`;
  assert.equal(engine.usable(user, clock.now()), true);
  engine.failRevoke = 10; // the cleanup step refuses (e.g. objects it cannot drop)
  const r = await leases.revoke(issued.lease_id, 'owner_request', { principal: alice });
  assert.equal(r.state, 'disabled');
  assert.equal(engine.usable(user, clock.now()), false, 'disabled before the cleanup was even tried');
  assert.deepEqual(engine.log.slice(-2), ['disable', 'revoke']);
  let l = await leases.get(issued.lease_id);
  assert.deepEqual([l?.state, l?.revokeAttempts, l?.nextAttemptAt], ['disabled', 1, clock.now() + 1000]);
  assert.match(l?.lastError ?? '', /TESSERA_ENGINE_FAILED/);
  const failed = audit.events.filter((e) => e.kind === 'lease.revoke_failed');
  assert.deepEqual([failed.at(-1)?.details?.disabled, failed.at(-1)?.details?.stage, failed.at(-1)?.details?.irrevocable], [true, 'cleanup', false]);
  assert.match(await metrics.render(), /tessera_leases_disabled 1/);
  assert.match(await metrics.render(), /tessera_lease_revoke_failures_total\{engine="mem",stage="cleanup"\} 1/);
  assert.deepEqual(await leases.health(), { revoking: 0, disabled: 1, irrevocable: 0 });
  // A bulk revocation reports it as disabled, not as retrying.
  assert.deepEqual(await leases.revokeByOwner(alice.spiffeId), { matched: 1, revoked: 0, retrying: 0, disabled: 1, irrevocable: 0 });
  // Retries with backoff; exhausted retries leave it disabled with no next attempt (never irrevocable: it is unusable).
  clock.advance(10_000);
  await leases.reapOnce();
  l = await leases.get(issued.lease_id);
  assert.deepEqual([l?.state, l?.revokeAttempts, l?.nextAttemptAt], ['disabled', 3, null]);
  assert.equal(engine.usable(user, clock.now()), false);
  clock.advance(3_600_000);
  assert.equal((await leases.reapOnce()).retried, 0, 'exhausted: an operator retries');
  assert.equal((await leases.list({ irrevocable: true })).length, 0);
  engine.failRevoke = 0;
  assert.equal((await leases.revoke(issued.lease_id, 'operator_request')).state, 'revoked');
  assert.equal(engine.credentials.size, 0);
  assert.match(await metrics.render(), /tessera_leases_disabled 0/);
  assert.equal(audit.events.filter((e) => e.kind === 'lease.revoked').length, 1);
});

test('a disabled lease whose cleanup is due is retried by the reaper, and by recover() at start', async () => {
  const { leases, clock, engine } = await setup();
  const a = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  const b = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  engine.failRevoke = 2;
  assert.equal((await leases.revoke(a.lease_id, 'owner_request')).state, 'disabled');
  assert.equal((await leases.revoke(b.lease_id, 'owner_request')).state, 'disabled');
  clock.advance(1000);
  assert.equal((await leases.reapOnce()).retried, 2);
  assert.equal((await leases.get(a.lease_id))?.state, 'revoked');
  engine.failRevoke = 1;
  const c = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  assert.equal((await leases.revoke(c.lease_id, 'owner_request')).state, 'disabled');
  const rec = await leases.recover(); // retries due or not
  assert.equal(rec.retried, 1);
  assert.equal((await leases.get(c.lease_id))?.state, 'revoked');
  // The backend lost a disabled user (an operator dropped it by hand): reconcile closes the lease.
  engine.failRevoke = 1;
  const d = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  await leases.revoke(d.lease_id, 'owner_request');
  engine.credentials.clear();
  assert.equal((await leases.reconcile()).missing, 1);
  assert.equal((await leases.get(d.lease_id))?.state, 'revoked');
});

test('fail fast: a failed create answers before its background clean-up has finished (order of events)', async () => {
  const { leases, engine } = await setup();
  let release!: () => void;
  engine.disableGate = new Promise((r) => (release = r));
  engine.failCreate = 1;
  await assert.rejects(leases.issue({ engine: 'mem', role: 'reader', principal: alice }), code('TESSERA_ENGINE_FAILED'));
  // The answer came first: the clean-up has not finished (it cannot: disable is held by the gate).
  assert.ok(!engine.log.includes('revoke'));
  const [l] = await leases.list();
  assert.ok(l?.state === 'revoking' || l?.state === 'pending', `the intent stays for the clean-up (${l?.state})`);
  for (let i = 0; i < 2000 && !engine.log.includes('disable'); i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(engine.log, ['create', 'disable'], 'the clean-up is running in the background, blocked in disable');
  assert.notEqual((await leases.get(l!.id))?.state, 'revoked');
  release();
  await leases.idle();
  assert.equal((await leases.get(l!.id))?.state, 'revoked');
  assert.deepEqual(engine.log, ['create', 'disable', 'revoke']);
});

test('a lease revoked while its credential is being created is dropped, never activated', async () => {
  const { leases, engine } = await setup();
  let open!: () => void;
  engine.createGate = new Promise((r) => (open = r));
  const issuing = leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  for (let i = 0; i < 100 && (await leases.list({ state: 'pending' })).length === 0; i++) await new Promise((r) => setImmediate(r));
  const counts = await leases.revokeByOwner(alice.spiffeId);
  assert.equal(counts.matched, 1);
  open();
  await assert.rejects(issuing, code('TESSERA_LEASE_EXPIRED'));
  assert.equal(engine.credentials.size, 0);
  assert.equal((await leases.list())[0]?.state, 'revoked');
});

test('audit failure on issuance fails closed and drops the credential', async () => {
  const { leases, engine, audit } = await setup();
  audit.failing = true;
  await assert.rejects(leases.issue({ engine: 'mem', role: 'reader', principal: alice }), code('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal(engine.credentials.size, 0);
});

test('every lease state change is recorded with its event or not at all (ADR 0041): renew, revoke, failed revoke under an audit outage', async () => {
  const { leases, engine, audit, store, clock } = await setup();
  const a = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  const b = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  const row = async (id: string) => store.get<{ state: string; expires_at: number; revoke_attempts: number }>('SELECT state, expires_at, revoke_attempts FROM leases WHERE id = ?', [id]);
  const expiresBefore = (await row(a.lease_id))!.expires_at;
  clock.advance(1000);
  audit.failing = true;
  const eventsBefore = audit.events.length;

  await assert.rejects(leases.renew(a.lease_id, alice), code('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal((await row(a.lease_id))!.expires_at, expiresBefore, 'the expiry did not move without its lease.renewed');

  await assert.rejects(leases.revoke(a.lease_id, 'owner_request', { principal: alice }), code('TESSERA_AUDIT_UNAVAILABLE'));
  // Disabled first, then dropped in the backend (ADR 0071); `disabled` is journal (no event), but
  // the lease is not `revoked` without its event (ADR 0041).
  assert.equal((await row(a.lease_id))!.state, 'disabled', 'dropped in the backend, but not `revoked` without its event');
  assert.equal(engine.credentials.has(`tsr_${a.lease_id}`), false, 'the credential itself is gone');
  assert.equal(engine.credentials.has(`tsr_${b.lease_id}`), true);

  engine.failRevoke = 1;
  await assert.rejects(leases.revoke(b.lease_id, 'owner_request', { principal: alice }), code('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal((await row(b.lease_id))!.revoke_attempts, 0, 'a failed attempt is not counted without its lease.revoke_failed');
  assert.equal((await row(b.lease_id))!.state, 'disabled', 'the disable happened; the failed cleanup waits for the reaper');
  assert.equal(audit.events.length, eventsBefore, 'no event while the audit is down');

  // Back up: the reaper finishes both, each with its event.
  audit.failing = false;
  engine.failRevoke = 0;
  await leases.reapOnce();
  assert.equal((await row(a.lease_id))!.state, 'revoked');
  assert.equal((await row(b.lease_id))!.state, 'revoked');
  assert.equal(engine.credentials.size, 0);
  assert.equal(audit.events.slice(eventsBefore).filter((e) => e.kind === 'lease.revoked').length, 2);
});

test('recovery after a crash: pending intents and leases that expired while down are revoked, orphans reconciled', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-leases-'));
  const file = join(dir, 'crash.db');
  const engine = new MemoryEngine();
  const clock = new ManualClock();
  {
    const store = openSqliteStore({ file });
    await store.migrate();
    const leases = createLeaseService({ store, clock, audit: new MemoryAuditWriter(), engines: [engine], maxRevokeAttempts: 3 });
    await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 1000 }); // will expire while down
    const alive = await leases.issue({ engine: 'mem', role: 'reader', principal: bob, ttlMs: 100_000 });
    // A crash between the intent and the end of create: the backend has the user, the row says pending.
    const now = clock.now();
    await store.run(
      `INSERT INTO leases (id, engine, role, path, owner_agent, state, engine_data, created_at, expires_at, max_expires_at) VALUES ('lease_crashed', 'mem', 'reader', 'mem/reader/lease_crashed', ?, 'pending', ?, ?, ?, ?)`,
      [alice.spiffeId, JSON.stringify({ username: 'tsr_lease_crashed' }), now, now + 60_000, now + 300_000],
    );
    engine.credentials.set('tsr_lease_crashed', { password: 'x', validUntil: now + 60_000, role: 'reader', disabled: false });
    // A credential no lease knows about (intent lost with an older crash).
    engine.credentials.set('tsr_orphan', { password: 'y', validUntil: now, role: 'reader', disabled: false });
    await store.close();
    assert.equal(engine.credentials.size, 4);
    clock.advance(5000);
    void alive;
  }
  const store = openSqliteStore({ file });
  await store.migrate();
  const audit = new MemoryAuditWriter();
  const leases = createLeaseService({ store, clock, audit, engines: [engine], maxRevokeAttempts: 3 });
  const r = await leases.recover();
  assert.equal(r.expired, 1);
  assert.equal(r.abandoned, 1);
  assert.equal(r.reconciled.orphansDropped, 1);
  assert.equal((await leases.get('lease_crashed'))?.state, 'revoked');
  assert.equal((await leases.get('lease_crashed'))?.revokeCause, 'abandoned_intent');
  assert.deepEqual([...engine.credentials.keys()].length, 1, 'only the live lease keeps its credential');
  assert.equal((await leases.list({ state: 'active' })).length, 1);
  // A live lease whose credential vanished from the backend is marked revoked by reconcile.
  engine.credentials.clear();
  assert.equal((await leases.reconcile()).missing, 1);
  assert.equal((await leases.list({ state: 'active' })).length, 0);
  await store.close();
});

test('the periodic reaper only treats pending intents as abandoned after the grace period', async () => {
  const { leases, store, clock, engine } = await setup({ pendingGraceMs: 60_000 });
  const now = clock.now();
  await store.run(
    `INSERT INTO leases (id, engine, role, path, owner_agent, state, engine_data, created_at, expires_at, max_expires_at) VALUES ('lease_p', 'mem', 'reader', 'mem/reader/lease_p', ?, 'pending', '{"username":"tsr_lease_p"}', ?, ?, ?)`,
    [alice.spiffeId, now, now + 60_000, now + 300_000],
  );
  assert.equal((await leases.reapOnce()).abandoned, 0);
  clock.advance(60_000);
  assert.equal((await leases.reapOnce()).abandoned, 1);
  assert.equal((await leases.get('lease_p'))?.state, 'revoked');
  assert.ok(engine.calls.revoke >= 1);
});

test('duplicate engine names and a bad maxRevokeAttempts are configuration errors', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  const base = { store, clock: new ManualClock(), audit: new MemoryAuditWriter() };
  assert.throws(() => createLeaseService({ ...base, engines: [new MemoryEngine(), new MemoryEngine()] }), code('TESSERA_CONFIG_INVALID'));
  assert.throws(() => createLeaseService({ ...base, engines: [], maxRevokeAttempts: 0 }), code('TESSERA_CONFIG_INVALID'));
});
