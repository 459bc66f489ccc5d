/**
 * A policy that pins a trust domain the server does not serve (a typo: `exmaple.org`) is valid
 * Cedar that can never match. The pinned domains are read from each policy's JSON form, and the
 * policy engine warns at every load; `tessera policy validate --config` and `tessera config
 * validate` say so too (test/cli, test/config).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import cedar from '@cedar-policy/cedar-wasm/nodejs';
import { createPolicyEngine } from '../../src/policy/engine.js';
import { validatePolicyDir } from '../../src/policy/loader.js';
import { trustDomainsPinnedBy, unservedTrustDomains, describeUnserved } from '../../src/policy/trust-domains.js';
import { createLogger } from '../../src/shared/logger.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { tempDir } from './helpers.js';

const pinned = (text: string): string[] => {
  const j = cedar.policyToJson(text);
  assert.equal(j.type, 'success', text);
  return trustDomainsPinnedBy(j.type === 'success' ? j.json : undefined);
};
const P = 'permit (principal, action == Tessera::Action::"secret.read", resource)';

test('the trust domains a policy pins: comparisons with .trust_domain and every spiffe:// string', () => {
  assert.deepEqual(pinned(`${P} when { principal.trust_domain == "Example.ORG" };`), ['example.org']);
  assert.deepEqual(pinned(`${P} when { "a.test" == resource.trust_domain };`), ['a.test']);
  assert.deepEqual(pinned(`${P} when { ["x.test", "y.test"].contains(principal.trust_domain) };`), ['x.test', 'y.test']);
  assert.deepEqual(pinned(`${P} when { ["x.test"].containsAny([principal.trust_domain]) };`), []);
  assert.deepEqual(pinned('permit (principal == Tessera::Agent::"spiffe://agents.test/ns/a/sa/b", action, resource);'), ['agents.test']);
  assert.deepEqual(pinned(`${P} when { principal.spiffe_id == "spiffe://ids.test/x" };`), ['ids.test']);
  assert.deepEqual(pinned(`${P} when { principal.spiffe_id like "spiffe://like.test/ci/*" };`), ['like.test']);
  // Not a pin: an inequality, an attribute compared with another, no trust domain at all.
  assert.deepEqual(pinned(`${P} when { principal.trust_domain != "neg.test" };`), []);
  assert.deepEqual(pinned(`${P} when { resource.trust_domain == principal.trust_domain };`), []);
  assert.deepEqual(pinned(`${P};`), []);
  assert.deepEqual(pinned(`${P} when { principal.spiffe_id like "spiffe://*" };`), []);
  assert.deepEqual(pinned(`${P} when { principal.spiffe_id like "spiffe://part*" };`), [], 'a domain cut by a wildcard is not pinned');
});

test('unservedTrustDomains: each pinned domain that is not served, with where; described with what is served', () => {
  const policies = [
    { id: 'ok', file: 'a.cedar', line: 1, trustDomains: ['tessera.local'] },
    { id: 'typo', file: 'b.cedar', line: 7, trustDomains: ['tessera.lcoal', 'tessera.local'] },
    { id: 'none', file: 'c.cedar', line: 2, trustDomains: [] },
  ];
  const u = unservedTrustDomains(policies, ['tessera.local', 'Corp.Example']);
  assert.deepEqual(u, [{ policy: 'typo', file: 'b.cedar', line: 7, trustDomain: 'tessera.lcoal' }]);
  assert.equal(
    describeUnserved(u[0]!, ['tessera.local', 'corp.example']),
    'b.cedar:7: policy "typo" pins trust domain "tessera.lcoal", which this Tessera does not serve (it serves 2 trust domains: tessera.local, corp.example): it can never match; a typo, or a trust_domain / spiffe attestor missing from the configuration?',
  );
  assert.deepEqual(unservedTrustDomains(policies, ['corp.example']).map((x) => x.trustDomain), ['tessera.local', 'tessera.lcoal', 'tessera.local']);
});

test('validatePolicyDir reports what each policy pins; the engine warns at every load about a domain it does not serve', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.cedar'), `@id("typo")\n${P} when { principal.trust_domain == "tessera.lcoal" };\n@id("fine")\n${P} when { principal.trust_domain == "tessera.local" };\n`);
  const v = validatePolicyDir(dir);
  assert.equal(v.ok, true);
  assert.deepEqual(v.pinned.map((p) => [p.id, p.trustDomains]), [['typo', ['tessera.lcoal']], ['fine', ['tessera.local']]]);

  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk)) as Record<string, unknown>); cb(); } });
  const e = createPolicyEngine({ dir, clock: new ManualClock(), logger: createLogger({ level: 'warn', destination }), audit: new MemoryAuditWriter(), watch: false, servedTrustDomains: ['tessera.local'] });
  assert.equal((await e.load()).ok, true, 'a warning, not an error: the set is loaded');
  const warns = lines.filter((l) => l.level === 40);
  assert.equal(warns.length, 1, JSON.stringify(lines));
  assert.equal(warns[0]!.policy, 'typo');
  assert.equal(warns[0]!.trust_domain, 'tessera.lcoal');
  assert.match(String(warns[0]!.msg), /^a\.cedar:1: policy "typo" pins trust domain "tessera\.lcoal", which this Tessera does not serve \(it serves 1 trust domain: tessera\.local\): it can never match/);
  // Again at a reload.
  writeFileSync(join(dir, 'b.cedar'), `@id("other")\n${P} when { principal.trust_domain == "exmaple.org" };\n`);
  assert.equal((await e.load()).ok, true);
  assert.deepEqual(lines.filter((l) => l.level === 40).map((l) => l.trust_domain), ['tessera.lcoal', 'tessera.lcoal', 'exmaple.org']);
  e.stop();
});
