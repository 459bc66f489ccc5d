/**
 * The policy decision cache (src/policy/engine.ts on AuthCache): it ends with the auth epoch, so
 * any event bumped anywhere (key revocation, revocation, reload) drops cached decisions; and one
 * principal's flood of distinct requests (arguments are part of the key) cannot evict the others.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPolicyEngine } from '../../src/policy/engine.js';
import { createAuthEpoch } from '../../src/shared/auth-epoch.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { agent, tempDir } from './helpers.js';

const A = agent('spiffe://example.org/ns/gw/sa/a');
const B = agent('spiffe://example.org/ns/gw/sa/b');

function setup(dir: string) {
  writeFileSync(join(dir, 'p.cedar'), '@id("all") permit (principal, action == Tessera::Action::"tool.call", resource);');
  const epoch = createAuthEpoch();
  const e = createPolicyEngine({ dir, clock: new ManualClock(), logger: silentLogger, audit: new MemoryAuditWriter(), watch: false, cacheSize: 100, cacheSizePerPrincipal: 5, epoch });
  return { e, epoch };
}
const call = (principal = A, n = 0) => ({ principal, action: 'tool.call' as const, resource: { type: 'Tool' as const, server: 'mem', tool: 'a' }, context: { args: { n } } });

test('a successful reload bumps the epoch; any bump ends cached decisions', async (t) => {
  const { e, epoch } = setup(tempDir(t));
  const start = epoch.value;
  assert.equal((await e.load()).ok, true);
  assert.equal(epoch.value, start + 1, 'the load bumped the epoch (cause policy)');
  e.authorize(call());
  assert.equal(e.authorize(call()).cached, true);
  const hits = e.cacheHits;
  epoch.bump('keys'); // an event elsewhere
  assert.equal(e.authorize(call()).cached, false);
  assert.equal(e.cacheHits, hits);
  assert.equal(e.authorize(call()).cached, true);
});

test('one principal flooding distinct arguments keeps at most its quota and never evicts another', async (t) => {
  const { e } = setup(tempDir(t));
  await e.load();
  e.authorize(call(B));
  assert.equal(e.authorize(call(B)).cached, true);
  for (let n = 1; n <= 500; n++) e.authorize(call(A, n));
  assert.equal(e.authorize(call(B)).cached, true, "B's decision survived A's flood");
  assert.equal(e.authorize(call(A, 500)).cached, true, "A's newest are cached");
  assert.equal(e.authorize(call(A, 1)).cached, false, "A's oldest went first");
});
