/**
 * A revocation refresh (every 30 s, or another replica's notification) ends cached decisions only
 * when the revocations in force changed (ADR 0195): the real revocation service over a real store,
 * the real policy engine and auth epoch, wired by the same hook as src/main.ts. Before, the policy
 * decision cache was cleared on every refresh, whether anything changed or not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createAuthEpoch } from '../../src/shared/auth-epoch.js';
import { createLeaseService } from '../../src/leases/index.js';
import { createRevocationService } from '../../src/revocations/index.js';
import { revocationHook } from '../../src/revocations/hooks.js';
import { createPolicyEngine } from '../../src/policy/engine.js';
import { createTrustDomains } from '../../src/identity/trust-domains.js';
import { silentLogger } from '../../src/shared/logger.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { MemoryEngine } from '../helpers/memory-engine.js';
import { agent, tempDir } from '../policy/helpers.js';

const A = agent('spiffe://example.org/ns/gw/sa/a');
const call = { principal: A, action: 'tool.call' as const, resource: { type: 'Tool' as const, server: 'mem', tool: 'a' }, context: { args: {} } };

async function setup(dir: string) {
  writeFileSync(join(dir, 'p.cedar'), '@id("all") permit (principal, action == Tessera::Action::"tool.call", resource);');
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock(Date.now());
  const audit = new MemoryAuditWriter();
  const bumps: string[] = [];
  const epoch = createAuthEpoch((cause) => bumps.push(cause));
  const policy = createPolicyEngine({ dir, clock, logger: silentLogger, audit, watch: false, cacheSize: 100, cacheSizePerPrincipal: 10, epoch });
  assert.equal((await policy.load()).ok, true);
  let sessionsChecked = 0;
  let announced = 0;
  const hook = revocationHook({ epoch, policy, gateway: () => ({ onRevocation: () => void sessionsChecked++ }), announce: () => void announced++ });
  const deps = { store, clock, audit, leases: createLeaseService({ store, clock, audit, engines: [new MemoryEngine()] }), trustDomains: createTrustDomains('example.org') };
  const here = createRevocationService({ ...deps, onRevoke: hook });
  // Another replica writing to the same store (its revocations reach `here` only by a refresh).
  const other = createRevocationService(deps);
  await here.refresh();
  await other.refresh();
  bumps.length = 0;
  return { policy, here, other, bumps, sessionsChecked: () => sessionsChecked, announced: () => announced };
}

test('a refresh that finds the same revocations keeps cached decisions, the epoch and the revocation generation', async (t) => {
  const s = await setup(tempDir(t));
  await s.other.revoke({ kind: 'agent', target: 'spiffe://example.org/ns/x/sa/old', reason: 'before' });
  await s.here.refresh();
  assert.deepEqual(s.bumps, ['revocation'], 'a new revocation from another replica is a change');
  s.policy.authorize(call);
  assert.equal(s.policy.authorize(call).cached, true);
  const generation = s.here.generation!();
  const checked = s.sessionsChecked();
  for (let i = 0; i < 3; i++) await s.here.refresh();
  assert.equal(s.policy.authorize(call).cached, true, 'the decision cache survived refreshes that changed nothing');
  assert.equal(s.here.generation!(), generation, 'the revocation generation did not move');
  assert.deepEqual(s.bumps, ['revocation'], 'no epoch bump');
  assert.equal(s.sessionsChecked(), checked, 'the gateway was not asked to re-check its sessions');
  assert.equal(s.announced(), 0, 'a refresh is never announced to the other replicas');
});

test('a refresh that finds a change (added, lifted) ends cached decisions; a local revocation too, and it is announced', async (t) => {
  const s = await setup(tempDir(t));
  s.policy.authorize(call);
  assert.equal(s.policy.authorize(call).cached, true);
  const added = await s.other.revoke({ kind: 'agent', target: 'spiffe://example.org/ns/x/sa/new', reason: 'added elsewhere' });
  const generation = s.here.generation!();
  await s.here.refresh();
  assert.equal(s.policy.authorize(call).cached, false, 'added: the cached decision ended');
  assert.ok(s.here.generation!() > generation);
  assert.equal(s.policy.authorize(call).cached, true);
  await s.other.lift(added.id, { actor: { id: 'admin:t' } });
  await s.here.refresh();
  assert.equal(s.policy.authorize(call).cached, false, 'lifted: the cached decision ended');
  assert.equal(s.policy.authorize(call).cached, true);
  await s.here.revoke({ kind: 'agent', target: 'spiffe://example.org/ns/x/sa/local', reason: 'here' });
  assert.equal(s.policy.authorize(call).cached, false, 'a local revocation ends it at once');
  assert.equal(s.announced(), 1);
  assert.deepEqual(s.bumps, ['revocation', 'revocation', 'revocation']);
});
