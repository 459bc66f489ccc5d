import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { EngineData } from '../../src/leases/engine.js';
import { createLeaseService, type LeaseServiceDeps } from '../../src/leases/index.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';

/** MemoryEngine plus the optional batch contract member, with per-credential failure injection. */
class BatchMemoryEngine extends MemoryEngine {
  /** Usernames `revokeMany` reports as failed (the per-lease `revoke` then succeeds). */
  readonly failInBatch = new Set<string>();
  /** Usernames both `revokeMany` and `revoke` fail to drop (backend refuses). */
  readonly failAlways = new Set<string>();
  /** `revokeMany` throws as a whole. */
  throwBatch = false;
  /** `revokeMany` never resolves (only the caller's signal ends it). */
  hangBatch = false;
  readonly batches: number[] = [];
  readonly disableBatches: number[] = [];
  /** Usernames `disableMany` reports as failed (the per-lease `disable` then succeeds). */
  readonly failDisableInBatch = new Set<string>();
  /** Usernames both `disableMany` and `disable` fail to disable (backend refuses). */
  readonly failDisableAlways = new Set<string>();

  async disableMany(items: readonly EngineData[], signal: AbortSignal): Promise<{ failed: { index: number; error: unknown }[] }> {
    this.disableBatches.push(items.length);
    if (this.hangBatch) await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
    if (this.down) throw new TesseraError('TESSERA_ENGINE_UNAVAILABLE', `${this.name} backend is down`);
    if (this.throwBatch) throw new TesseraError('TESSERA_ENGINE_FAILED', 'batch refused (injected)');
    const failed: { index: number; error: unknown }[] = [];
    items.forEach((d, index) => {
      const user = String(d.username);
      if (this.failDisableInBatch.has(user) || this.failDisableAlways.has(user)) failed.push({ index, error: new TesseraError('TESSERA_ENGINE_FAILED', 'refused (injected)') });
      else {
        const c = this.credentials.get(user);
        if (c) c.disabled = true;
      }
    });
    return { failed };
  }

  async revokeMany(items: readonly EngineData[], signal: AbortSignal): Promise<{ failed: { index: number; error: unknown }[] }> {
    this.batches.push(items.length);
    if (this.hangBatch) await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
    if (this.down) throw new TesseraError('TESSERA_ENGINE_UNAVAILABLE', `${this.name} backend is down`);
    if (this.throwBatch) throw new TesseraError('TESSERA_ENGINE_FAILED', 'batch refused (injected)');
    const failed: { index: number; error: unknown }[] = [];
    items.forEach((d, index) => {
      const user = String(d.username);
      if (this.failInBatch.has(user) || this.failAlways.has(user)) failed.push({ index, error: new TesseraError('TESSERA_ENGINE_FAILED', 'refused (injected)') });
      else this.credentials.delete(user);
    });
    return { failed };
  }

  override async disable(data: EngineData): Promise<void> {
    if (this.failDisableAlways.has(String(data.username))) {
      this.calls.disable++;
      throw new TesseraError('TESSERA_ENGINE_FAILED', 'refused (injected)');
    }
    return super.disable(data);
  }

  override async revoke(data: EngineData): Promise<void> {
    if (this.failAlways.has(String(data.username))) {
      this.calls.revoke++;
      throw new TesseraError('TESSERA_ENGINE_FAILED', 'refused (injected)');
    }
    return super.revoke(data);
  }
}

function principal(name: string, extra: Partial<AgentPrincipal> = {}): AgentPrincipal {
  return { spiffeId: `spiffe://example.org/${name}`, trustDomain: 'example.org', path: `/${name}`, attributes: {}, jti: `jti-${name}`, expiresAt: Date.UTC(2030, 0, 1), ...extra };
}

const code = (c: string) => (e: unknown) => e instanceof TesseraError && e.code === c;
const alice = principal('alice', { task: 'task-1' });
const bob = principal('bob');

async function setup(opts: Partial<LeaseServiceDeps> = {}) {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const engine = new BatchMemoryEngine();
  const leases = createLeaseService({ store, clock, audit, engines: [engine], maxRevokeAttempts: 3, backoff: { baseMs: 1000, maxMs: 10_000 }, ...opts });
  return { store, clock, audit, engine, leases };
}

const revokedEvents = (audit: MemoryAuditWriter) => audit.events.filter((e) => e.kind === 'lease.revoked');

test('revokeByOwner of 2,000 leases goes through revokeMany in chunks, one lease.revoked per lease', async () => {
  const { leases, engine, audit } = await setup();
  const ids: string[] = [];
  for (let i = 0; i < 2000; i++) ids.push((await leases.issue({ engine: 'mem', role: 'reader', principal: alice })).lease_id);
  const bobs = await leases.issue({ engine: 'mem', role: 'reader', principal: bob });
  const actor = { id: 'admin:ops' };
  const counts = await leases.revokeByOwner(alice.spiffeId, { actor, where: { source: '127.0.0.1', requestId: 'req-1' } });
  assert.deepEqual(counts, { matched: 2000, revoked: 2000, retrying: 0, disabled: 0, irrevocable: 0 });
  assert.deepEqual(engine.batches, [500, 500, 500, 500]);
  assert.equal(engine.calls.revoke, 0, 'no per-lease engine call');
  assert.deepEqual([...engine.credentials.keys()], [`tsr_${bobs.lease_id}`]);
  const events = revokedEvents(audit);
  assert.equal(events.length, 2000);
  assert.equal(new Set(events.map((e) => e.details?.lease_hmac)).size, 2000);
  assert.deepEqual(new Set(events.map((e) => e.details?.lease_hmac)), new Set(ids.map((id) => audit.hmac(id))));
  assert.ok(events.every((e) => e.actor.id === 'admin:ops' && e.details?.cause === 'owner_revoked' && e.txn === 'task-1' && e.where?.requestId === 'req-1'));
  const l = await leases.get(ids[0]!);
  assert.equal(l?.state, 'revoked');
  assert.equal(l?.revokeCause, 'owner_revoked');
  assert.equal(l?.revokedAt !== null, true);
  assert.equal((await leases.list({ state: 'active' })).length, 1);
  // Idempotent: nothing left to match.
  assert.deepEqual(await leases.revokeByOwner(alice.spiffeId), { matched: 0, revoked: 0, retrying: 0, disabled: 0, irrevocable: 0 });
});

test('an item disableMany fails goes through the per-lease path: retried with backoff, then irrevocable', async () => {
  const { leases, engine, audit, clock } = await setup();
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push((await leases.issue({ engine: 'mem', role: 'reader', principal: alice })).lease_id);
  const [stuck, transient] = [ids[3]!, ids[7]!];
  engine.failDisableAlways.add(`tsr_${stuck}`);
  engine.failDisableInBatch.add(`tsr_${transient}`);
  assert.deepEqual(await leases.revokeByOwner(alice.spiffeId), { matched: 10, revoked: 9, retrying: 1, disabled: 0, irrevocable: 0 });
  assert.deepEqual(engine.disableBatches, [10]);
  assert.deepEqual(engine.batches, [8], 'only disabled credentials are cleaned up in the batch');
  assert.equal(engine.calls.disable, 2, 'one per-lease fallback for each item the batch could not disable');
  assert.equal((await leases.get(transient))?.state, 'revoked');
  let l = await leases.get(stuck);
  assert.equal(l?.state, 'revoking');
  assert.equal(l?.revokeAttempts, 1);
  assert.equal(l?.nextAttemptAt, clock.now() + 1000);
  assert.match(l?.lastError ?? '', /TESSERA_ENGINE_FAILED/);
  assert.equal(revokedEvents(audit).length, 9);
  assert.equal(audit.events.filter((e) => e.kind === 'lease.revoke_failed').length, 1);
  assert.deepEqual([...engine.credentials.keys()], [`tsr_${stuck}`]);
  assert.equal(engine.usable(`tsr_${stuck}`, clock.now()), true, 'what could not be disabled is reported as such');

  clock.advance(1000);
  await leases.reapOnce(); // attempt 2
  clock.advance(2000);
  await leases.reapOnce(); // attempt 3 = maxRevokeAttempts
  l = await leases.get(stuck);
  assert.equal(l?.state, 'irrevocable');
  assert.equal(l?.revokeAttempts, 3);
  const failed = audit.events.filter((e) => e.kind === 'lease.revoke_failed');
  assert.equal(failed.length, 3);
  assert.equal(failed.at(-1)?.details?.irrevocable, true);
  // An operator retry once the backend is fixed.
  engine.failDisableAlways.clear();
  assert.equal((await leases.revoke(stuck, 'operator_request')).state, 'revoked');
  assert.equal(revokedEvents(audit).length, 10);
});

test('an item revokeMany (cleanup) fails: disabled in the batch, then the per-lease path records it disabled, never usable', async () => {
  const { leases, engine, audit, clock } = await setup();
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push((await leases.issue({ engine: 'mem', role: 'reader', principal: alice })).lease_id);
  const [stuck, transient] = [ids[2]!, ids[5]!];
  engine.failAlways.add(`tsr_${stuck}`);
  engine.failInBatch.add(`tsr_${transient}`);
  assert.deepEqual(await leases.revokeByOwner(alice.spiffeId), { matched: 10, revoked: 9, retrying: 0, disabled: 1, irrevocable: 0 });
  assert.deepEqual([engine.disableBatches, engine.batches], [[10], [10]]);
  assert.equal(engine.calls.revoke, 2, 'one per-lease cleanup for each item the batch could not drop');
  assert.equal((await leases.get(transient))?.state, 'revoked');
  let l = await leases.get(stuck);
  assert.deepEqual([l?.state, l?.revokeAttempts, l?.nextAttemptAt], ['disabled', 1, clock.now() + 1000]);
  assert.equal(engine.usable(`tsr_${stuck}`, clock.now()), false);
  const failed = audit.events.filter((e) => e.kind === 'lease.revoke_failed');
  assert.deepEqual([failed.length, failed[0]?.details?.stage, failed[0]?.details?.disabled], [1, 'cleanup', true]);
  clock.advance(1000);
  await leases.reapOnce();
  clock.advance(2000);
  await leases.reapOnce();
  l = await leases.get(stuck);
  assert.deepEqual([l?.state, l?.revokeAttempts, l?.nextAttemptAt], ['disabled', 3, null]);
  engine.failAlways.clear();
  assert.equal((await leases.revoke(stuck, 'operator_request')).state, 'revoked');
  assert.equal(revokedEvents(audit).length, 10);
});

test('a bulk revocation of only failing items reports them as irrevocable or disabled', async () => {
  const { leases, engine } = await setup({ maxRevokeAttempts: 1 });
  const a = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  engine.failDisableAlways.add(`tsr_${a.lease_id}`);
  assert.deepEqual(await leases.revokeByOwner(alice.spiffeId), { matched: 1, revoked: 0, retrying: 0, disabled: 0, irrevocable: 1 });
  assert.equal((await leases.get(a.lease_id))?.state, 'irrevocable');
  const b = await leases.issue({ engine: 'mem', role: 'reader', principal: bob });
  engine.failAlways.add(`tsr_${b.lease_id}`);
  assert.deepEqual(await leases.revokeByOwner(bob.spiffeId), { matched: 1, revoked: 0, retrying: 0, disabled: 1, irrevocable: 0 });
  assert.deepEqual([(await leases.get(b.lease_id))?.state, (await leases.get(b.lease_id))?.nextAttemptAt], ['disabled', null]);
});

test('a revokeMany that throws or times out falls back to one engine call per lease', async () => {
  const { leases, engine, audit } = await setup({ engineTimeoutMs: 50 });
  for (let i = 0; i < 5; i++) await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  engine.throwBatch = true;
  assert.deepEqual(await leases.revokeByOwner(alice.spiffeId), { matched: 5, revoked: 5, retrying: 0, disabled: 0, irrevocable: 0 });
  assert.equal(engine.calls.revoke, 5);
  assert.equal(engine.credentials.size, 0);

  engine.throwBatch = false;
  engine.hangBatch = true;
  for (let i = 0; i < 3; i++) await leases.issue({ engine: 'mem', role: 'reader', principal: bob });
  assert.deepEqual(await leases.revokeByOwner(bob.spiffeId), { matched: 3, revoked: 3, retrying: 0, disabled: 0, irrevocable: 0 });
  assert.equal(engine.calls.revoke, 8);
  assert.equal(engine.credentials.size, 0);
  assert.equal(revokedEvents(audit).length, 8);
});

test('an unreachable backend: every lease is queued for retry, none lost', async () => {
  const { leases, engine, clock } = await setup();
  for (let i = 0; i < 4; i++) await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  engine.down = true;
  assert.deepEqual(await leases.revokeByOwner(alice.spiffeId), { matched: 4, revoked: 0, retrying: 4, disabled: 0, irrevocable: 0 });
  assert.equal((await leases.list({ state: 'revoking' })).length, 4);
  engine.down = false;
  clock.advance(1000);
  const r = await leases.reapOnce();
  assert.equal(r.retried, 4);
  assert.equal(engine.credentials.size, 0);
  assert.equal((await leases.list({ state: 'revoked' })).length, 4);
});

test('an engine without revokeMany still revokes lease by lease, in the same bulk as a batch engine', async () => {
  const plain = new MemoryEngine('plain');
  const batch = new BatchMemoryEngine('batch');
  const { leases, audit } = await setup({ engines: [plain, batch] });
  for (let i = 0; i < 6; i++) await leases.issue({ engine: i % 2 ? 'plain' : 'batch', role: 'reader', principal: alice });
  assert.deepEqual(await leases.revokeByOwner(alice.spiffeId), { matched: 6, revoked: 6, retrying: 0, disabled: 0, irrevocable: 0 });
  assert.equal(plain.calls.revoke, 3);
  assert.equal(batch.calls.revoke, 0);
  assert.deepEqual(batch.batches, [3]);
  assert.equal(plain.credentials.size + batch.credentials.size, 0);
  assert.equal(revokedEvents(audit).length, 6);
  assert.deepEqual(await leases.revokeByPrefix('batch/'), { matched: 0, revoked: 0, retrying: 0, disabled: 0, irrevocable: 0 });
});

test('the reaper revokes expired leases through revokeMany, in chunks of revokeBatchSize', async () => {
  const { leases, engine, clock, audit } = await setup({ revokeBatchSize: 200 });
  for (let i = 0; i < 600; i++) await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 10_000 });
  const keep = await leases.issue({ engine: 'mem', role: 'reader', principal: alice, ttlMs: 100_000 });
  clock.advance(10_000);
  const r1 = await leases.reapOnce(); // batchSize 500 per pass
  assert.equal(r1.expired, 500);
  assert.equal(r1.revoked, 500);
  assert.deepEqual(engine.batches, [200, 200, 100]);
  const r2 = await leases.reapOnce();
  assert.equal(r2.expired, 100);
  assert.equal(engine.calls.revoke, 0);
  assert.deepEqual([...engine.credentials.keys()], [`tsr_${keep.lease_id}`]);
  const events = revokedEvents(audit);
  assert.equal(events.length, 600);
  assert.ok(events.every((e) => e.details?.cause === 'expired' && e.actor.id === 'system'));
});

test('concurrent bulk and single revocations share one outcome: one lease.revoked per lease', async () => {
  const { leases, engine, audit } = await setup();
  const ids: string[] = [];
  for (let i = 0; i < 50; i++) ids.push((await leases.issue({ engine: 'mem', role: 'reader', principal: alice })).lease_id);
  const results = await Promise.all([
    leases.revokeByOwner(alice.spiffeId),
    leases.revoke(ids[10]!, 'owner_request'),
    leases.revokeByTask('task-1'),
    leases.revokeByOwner(alice.spiffeId),
  ]);
  // Each caller counts the leases it matched; whoever ran the engine call, all end revoked.
  assert.equal(results[0].matched, 50);
  assert.equal(results[0].revoked, 50);
  assert.equal(results[1].state, 'revoked');
  assert.equal(engine.credentials.size, 0);
  assert.equal(revokedEvents(audit).length, 50);
  assert.equal(new Set(revokedEvents(audit).map((e) => e.details?.lease_hmac)).size, 50);
});

test('a lease revoked in bulk while its credential is being created is dropped, never activated', async () => {
  const { leases, engine } = await setup();
  let open!: () => void;
  engine.createGate = new Promise((r) => (open = r));
  const issuing = leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  for (let i = 0; i < 100 && (await leases.list({ state: 'pending' })).length === 0; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(await leases.revokeByOwner(alice.spiffeId), { matched: 1, revoked: 1, retrying: 0, disabled: 0, irrevocable: 0 });
  assert.deepEqual(engine.batches, [1]);
  open();
  await assert.rejects(issuing, code('TESSERA_LEASE_EXPIRED'));
  assert.equal(engine.credentials.size, 0);
  assert.equal((await leases.list())[0]?.state, 'revoked');
});

test('an audit failure during a batched revocation fails the call, with counts, after every lease got its attempt; `revoked` waits for its event', async () => {
  const { leases, engine, audit } = await setup();
  for (let i = 0; i < 5; i++) await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  audit.failing = true;
  await assert.rejects(leases.revokeByOwner(alice.spiffeId), (e: unknown) => {
    assert.ok(e instanceof TesseraError);
    assert.equal(e.code, 'TESSERA_AUDIT_UNAVAILABLE');
    // Disabled and dropped in the backend, but not `revoked` without the event (ADR 0041, 0071).
    assert.deepEqual(e.details, { matched: 5, revoked: 0, retrying: 0, disabled: 5, irrevocable: 0 });
    return true;
  });
  assert.equal(engine.credentials.size, 0, 'the credentials are dropped even though the audit is down');
  // No lease is `revoked` without its `lease.revoked` event (ADR 0041): they wait in `disabled`
  // (the crash journal's record that the credential is unusable, ADR 0071), due for a retry.
  assert.equal((await leases.list({ state: 'revoked' })).length, 0);
  const waiting = await leases.list({ state: 'disabled' });
  assert.equal(waiting.length, 5);
  assert.ok(waiting.every((l) => l.nextAttemptAt !== null && l.revokeAttempts === 0), 'queued, and no attempt counted without its event');
  assert.equal(audit.events.filter((e) => e.kind === 'lease.revoked').length, 0);
  audit.failing = false;
  const pass = await leases.reapOnce();
  assert.equal(pass.revoked, 5);
  assert.equal((await leases.list({ state: 'revoked' })).length, 5);
  assert.equal(audit.events.filter((e) => e.kind === 'lease.revoked').length, 5);
});

test('revokeBatchSize is validated', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  const base = { store, clock: new ManualClock(), audit: new MemoryAuditWriter(), engines: [] };
  assert.throws(() => createLeaseService({ ...base, revokeBatchSize: 0 }), code('TESSERA_CONFIG_INVALID'));
  assert.throws(() => createLeaseService({ ...base, revokeBatchSize: 5001 }), code('TESSERA_CONFIG_INVALID'));
  assert.throws(() => createLeaseService({ ...base, revokeBatchSize: 1.5 }), code('TESSERA_CONFIG_INVALID'));
  await store.close();
});
