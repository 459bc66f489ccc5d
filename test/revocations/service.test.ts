import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import { createLeaseService } from '../../src/leases/index.js';
import { createRevocationService } from '../../src/revocations/index.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { createTrustDomains } from '../../src/identity/trust-domains.js';

const trustDomains = createTrustDomains('example.org');
const code = (c: string) => (e: unknown) => e instanceof TesseraError && e.code === c;

function principal(name: string, extra: Partial<AgentPrincipal> = {}): AgentPrincipal {
  return { spiffeId: `spiffe://example.org/${name}`, trustDomain: 'example.org', path: `/${name}`, attributes: {}, jti: `jti-${name}`, expiresAt: Date.UTC(2030, 0, 1), ...extra };
}
const subject = (p: AgentPrincipal, extra: Record<string, unknown> = {}) => ({ spiffeId: p.spiffeId, jti: p.jti, issuedAt: 0, ...(p.task ? { task: p.task } : {}), ...(p.user ? { user: p.user } : {}), ...extra });

async function setup() {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const engine = new MemoryEngine();
  const leases = createLeaseService({ store, clock, audit, engines: [engine], maxRevokeAttempts: 2 });
  let invalidations = 0;
  const revocations = createRevocationService({ store, clock, audit, leases, trustDomains, onRevoke: () => invalidations++ });
  await revocations.refresh();
  return { store, clock, audit, engine, leases, revocations, invalidations: () => invalidations };
}

const alice = principal('alice', { task: 'task-1', user: 'u-1' });
const bob = principal('bob');

test('revoking an agent refuses its tokens at once, refuses its logins and revokes its leases', async () => {
  const { revocations, leases, engine, audit, invalidations } = await setup();
  await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  const bobs = await leases.issue({ engine: 'mem', role: 'reader', principal: bob });
  assert.equal(revocations.isRevoked(subject(alice)), false);
  const r = await revocations.revoke({ kind: 'agent', target: alice.spiffeId, reason: 'compromised', actor: { id: 'admin:t' } });
  // The very next check after the call returns is refused: no await between.
  assert.equal(revocations.isRevoked(subject(alice)), true);
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), true);
  assert.equal(revocations.isRevoked(subject(bob)), false);
  assert.equal(revocations.isAgentRevoked(bob.spiffeId), false);
  assert.deepEqual(r.leases, { matched: 2, revoked: 2, retrying: 0, disabled: 0, irrevocable: 0 });
  assert.equal(engine.credentials.size, 1);
  assert.equal((await leases.get(bobs.lease_id))?.state, 'active');
  assert.equal(r.expiresAt, null);
  assert.ok(invalidations() >= 2);
  const created = audit.events.find((e) => e.kind === 'revocation.created');
  assert.equal(created?.resource, alice.spiffeId);
  assert.equal(created?.actor.id, 'admin:t');
});

test('a revoked agent anywhere in the delegation chain taints the token', async () => {
  const { revocations } = await setup();
  await revocations.revoke({ kind: 'agent', target: 'spiffe://example.org/orchestrator' });
  const sub = principal('sub', { chain: ['spiffe://example.org/orchestrator', 'spiffe://example.org/sub'] });
  assert.equal(revocations.isPrincipalRevoked({ ...subject(sub), chain: sub.chain! }), true);
  assert.equal(revocations.isRevoked({ ...subject(sub), chain: sub.chain! } as Parameters<typeof revocations.isRevoked>[0]), true);
  assert.equal(revocations.isRevoked(subject(sub)), false);
});

test('a temporary revocation ends by itself; a lifted one ends at once', async () => {
  const { revocations, clock, audit } = await setup();
  const temp = await revocations.revoke({ kind: 'agent', target: alice.spiffeId, ttlMs: 60_000 });
  assert.equal(temp.expiresAt, clock.now() + 60_000);
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), true);
  clock.advance(59_999);
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), true);
  clock.advance(1);
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), false);
  assert.equal(revocations.isRevoked(subject(alice)), false);

  const perm = await revocations.revoke({ kind: 'agent', target: alice.spiffeId });
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), true);
  const lifted = await revocations.lift(perm.id, { actor: { id: 'admin:t' } });
  assert.equal(lifted.liftedAt, clock.now());
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), false);
  assert.ok(audit.events.some((e) => e.kind === 'revocation.lifted'));
  await assert.rejects(revocations.lift(perm.id), code('TESSERA_REVOCATION_NOT_FOUND'));
  await assert.rejects(revocations.lift('rev_nope'), code('TESSERA_REVOCATION_NOT_FOUND'));
  assert.equal((await revocations.list({ active: true })).length, 0);
  assert.equal((await revocations.list()).length, 2);
});

test('token, task and user revocations', async () => {
  const { revocations, clock, leases, engine } = await setup();
  const lease = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  await revocations.revoke({ kind: 'token', target: 'jti-bob' });
  assert.equal(revocations.isRevoked(subject(bob)), true);
  assert.equal(revocations.isRevoked(subject(bob, { jti: 'jti-other' })), false);
  assert.equal(revocations.isAgentRevoked(bob.spiffeId), false, 'a token revocation does not block logins');
  // A jti is remembered only as long as the token could live (24 h by default).
  const t = await revocations.revokeToken('jti-short', clock.now() + 300_000);
  assert.equal(t.expiresAt, clock.now() + 300_000);
  assert.equal((await revocations.revokeToken('jti-old', clock.now() - 1)).id, '', 'already expired: nothing recorded');

  const task = await revocations.revoke({ kind: 'task', target: 'task-1' });
  assert.equal(revocations.isRevoked(subject(alice)), true);
  assert.equal(revocations.isRevoked(subject(alice, { task: 'task-9' })), false, 'another task of the same agent is not affected');
  assert.equal(task.leases.revoked, 1);
  assert.equal((await leases.get(lease.lease_id))?.state, 'revoked');
  assert.equal(engine.credentials.size, 0);
  await revocations.revoke({ kind: 'user', target: 'u-2' });
  assert.equal(revocations.isRevoked({ spiffeId: 'spiffe://example.org/x', jti: 'j', issuedAt: 0, user: 'u-2' }), true);
  assert.equal(revocations.isRevoked({ spiffeId: 'spiffe://example.org/x', jti: 'j', issuedAt: 0, user: 'u-3' }), false);
  clock.advance(24 * 3_600_000);
  assert.equal(revocations.isRevoked(subject(bob)), false, 'the jti revocation expired with the longest token lifetime');
});

test('a lease revocation revokes that lease; an unknown lease is refused', async () => {
  const { revocations, leases, engine } = await setup();
  const lease = await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  const r = await revocations.revoke({ kind: 'lease', target: lease.lease_id });
  assert.deepEqual(r.leases, { matched: 1, revoked: 1, retrying: 0, disabled: 0, irrevocable: 0 });
  assert.equal(engine.credentials.size, 0);
  await assert.rejects(revocations.revoke({ kind: 'lease', target: 'lease_nope' }), code('TESSERA_LEASE_NOT_FOUND'));
});

test('tokens are refused even when lease revocation is failing', async () => {
  const { revocations, leases, engine } = await setup();
  await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  engine.down = true;
  const r = await revocations.revoke({ kind: 'agent', target: alice.spiffeId });
  assert.equal(revocations.isRevoked(subject(alice)), true);
  assert.deepEqual(r.leases, { matched: 1, revoked: 0, retrying: 1, disabled: 0, irrevocable: 0 });
});

test('bad revocation inputs get TESSERA_REVOCATION_INVALID', async () => {
  const { revocations, store } = await setup();
  const bad = [
    { kind: 'agent', target: 'not-a-spiffe-id' },
    { kind: 'agent', target: 'spiffe://Example.org/x' },
    { kind: 'agent', target: 'spiffe://example.org/a/' },
    { kind: 'machine', target: 'x' },
    { kind: 'task', target: '' },
    { kind: 'user', target: 'has space' },
    { kind: 'token', target: 'x'.repeat(3000) },
    { kind: 'agent', target: alice.spiffeId, ttlMs: 0 },
    { kind: 'agent', target: alice.spiffeId, ttlMs: 1.5 },
    { kind: 'agent', target: alice.spiffeId, reason: 'x'.repeat(1001) },
  ];
  for (const b of bad) await assert.rejects(revocations.revoke(b as Parameters<typeof revocations.revoke>[0]), code('TESSERA_REVOCATION_INVALID'), JSON.stringify(b).slice(0, 80));
  assert.deepEqual(await store.all('SELECT * FROM revocations'), []);
});

test('refresh loads revocations written by another replica; a restart keeps them', async () => {
  const { store, clock, audit, leases, revocations } = await setup();
  const other = createRevocationService({ store, clock, audit, leases, trustDomains });
  await other.revoke({ kind: 'agent', target: alice.spiffeId });
  await other.revoke({ kind: 'token', target: 'jti-gone', ttlMs: 1000 });
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), false, 'not yet seen here');
  await revocations.refresh();
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), true);
  clock.advance(1000);
  const restarted = createRevocationService({ store, clock, audit, leases, trustDomains });
  await restarted.refresh();
  assert.equal(restarted.isAgentRevoked(alice.spiffeId), true);
  assert.equal(restarted.isRevoked({ spiffeId: 'spiffe://example.org/z', jti: 'jti-gone', issuedAt: 0 }), false);
});

test('a revocation is audited or does not happen: an audit failure refuses it and leaves nothing behind (ADR 0041)', async () => {
  const { revocations, audit, leases, engine, store, invalidations } = await setup();
  await leases.issue({ engine: 'mem', role: 'reader', principal: alice });
  const before = invalidations();
  audit.failing = true;
  await assert.rejects(revocations.revoke({ kind: 'agent', target: alice.spiffeId }), code('TESSERA_AUDIT_UNAVAILABLE'));
  await assert.rejects(revocations.revoke({ kind: 'task', target: 'task-1' }), code('TESSERA_AUDIT_UNAVAILABLE'));
  await assert.rejects(revocations.revokeToken('jti-x', Date.UTC(2030, 0, 1)), code('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), false, 'the in-memory entry was withdrawn');
  assert.equal(revocations.isRevoked(subject(alice)), false);
  assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM revocations'))?.n, 0, 'no row without its event');
  assert.equal(engine.credentials.size, 1, 'the revocation did not happen, so its leases were not touched');
  assert.equal(invalidations(), before, 'nobody was told about a revocation that did not happen');
  await revocations.refresh();
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), false);

  audit.failing = false;
  const r = await revocations.revoke({ kind: 'agent', target: alice.spiffeId });
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), true);
  assert.equal(audit.events.filter((e) => e.kind === 'revocation.created').length, 1);

  // A lift that cannot be recorded does not happen either: the revocation stays enforced.
  audit.failing = true;
  await assert.rejects(revocations.lift(r.id), code('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), true);
  assert.equal((await store.get<{ lifted_at: number | null }>('SELECT lifted_at FROM revocations WHERE id = ?', [r.id]))?.lifted_at, null);
  audit.failing = false;
  await revocations.lift(r.id);
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), false);
  assert.equal(audit.events.filter((e) => e.kind === 'revocation.lifted').length, 1);
});

test('revocation targets that look like credentials are refused with TESSERA_REQUEST_CREDENTIAL_LIKE, for every kind', async () => {
  const { revocations, store, audit } = await setup();
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4In0.c2lnbmF0dXJl';
  const tsr = `tsr_admin_${'A'.repeat(30)}`;
  const targets: [string, string][] = [
    ['agent', `spiffe://example.org/ns/${tsr}`],
    ['task', tsr], ['task', jwt], ['user', jwt], ['token', jwt], ['lease', tsr],
  ];
  for (const [kind, target] of targets) {
    await assert.rejects(revocations.revoke({ kind: kind as 'agent', target }), code('TESSERA_REQUEST_CREDENTIAL_LIKE'), `${kind} ${target}`);
  }
  assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM revocations'))?.n, 0);
  assert.equal(audit.events.length, 0);
});

test('agent revocations: a foreign trust domain is refused (nothing recorded); an agent never seen is recorded and reported unknown', async () => {
  const { revocations, store, audit, clock } = await setup();
  for (const target of ['spiffe://other.org/alice', 'spiffe://example.org.evil/alice', 'spiffe://xexample.org/alice']) {
    await assert.rejects(revocations.revoke({ kind: 'agent', target }), code('TESSERA_TRUST_DOMAIN_UNKNOWN'), target);
    assert.equal(revocations.isAgentRevoked(target), false);
  }
  assert.equal((await revocations.list()).length, 0);

  const unknown = await revocations.revoke({ kind: 'agent', target: alice.spiffeId });
  assert.equal(unknown.agentKnown, false);
  assert.equal(revocations.isAgentRevoked(alice.spiffeId), true, 'recorded and enforced anyway');
  assert.equal(audit.events.filter((e) => e.kind === 'revocation.created').at(-1)?.details?.agent_known, false);

  await store.run('INSERT INTO agents (spiffe_id, attestor, attributes, first_seen, last_seen, logins) VALUES (?, ?, ?, ?, ?, ?)', [bob.spiffeId, 'join_token', '{}', clock.now(), clock.now(), 1]);
  const known = await revocations.revoke({ kind: 'agent', target: bob.spiffeId });
  assert.equal(known.agentKnown, true);
  // Other kinds carry no agent_known.
  const task = await revocations.revoke({ kind: 'task', target: 'task-9' });
  assert.equal(task.agentKnown, undefined);

  // A federated trust domain (a spiffe attestor's) is accepted; the inventory port is asked.
  const asked: string[] = [];
  const fed = createRevocationService({
    store, clock, audit, leases: createLeaseService({ store, clock, audit, engines: [] }),
    trustDomains: createTrustDomains('example.org', ['spire.example']),
    agents: { isKnown: async (id) => (asked.push(id), true) },
  });
  assert.equal((await fed.revoke({ kind: 'agent', target: 'spiffe://spire.example/w/x' })).agentKnown, true);
  assert.deepEqual(asked, ['spiffe://spire.example/w/x']);
});
