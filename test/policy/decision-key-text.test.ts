/**
 * The decision cache key (src/policy/entities.ts toCedarRequestWithKey): the Cedar request's JSON
 * text, with the unpaired-surrogate refusal read off that text. The key equals the request's
 * text; requests that differ in any one field (strings that try to fake a delimiter included)
 * get different keys; an unpaired surrogate anywhere (value or key, cache on or off) is refused
 * with the same code as before, and text that only spells a backslash-u is accepted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toCedarRequest, toCedarRequestWithKey } from '../../src/policy/entities.js';
import { createPolicyEngine } from '../../src/policy/engine.js';
import { ManualClock } from '../../src/shared/clock.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { PolicyRequest } from '../../src/policy/types.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { agent, k8sAgent, tempDir } from './helpers.js';

const P = k8sAgent('spiffe://example.org/ns/gw/sa/a', { task: 't1', chain: ['spiffe://example.org/ns/gw/sa/o'], scope: ['tool:mem/*'], tctx: { ticket: 'T-1' } });
const base: PolicyRequest = { principal: P, action: 'tool.call', resource: { type: 'Tool', server: 'mem', tool: 'a' }, context: { args: { a: 'x', n: 1 } } };
const invalid = (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_POLICY_REQUEST_INVALID';

test('the key is the request text, and any single field changes it', () => {
  const { request, key } = toCedarRequestWithKey(base);
  assert.deepEqual(request, toCedarRequest(base));
  assert.equal(key, JSON.stringify(toCedarRequest(base)));
  const variants: [string, PolicyRequest][] = [
    ['principal', { ...base, principal: k8sAgent('spiffe://example.org/ns/gw/sa/b', { task: 't1', chain: P.chain!, scope: P.scope!, tctx: P.tctx! }) }],
    ['attestor', { ...base, principal: { ...P, attestor: 'other' } }],
    ['attributes', { ...base, principal: { ...P, attributes: { ...P.attributes, 'label.x': 'y' } } }],
    ['dpop', { ...base, principal: { ...P, cnf: { jkt: 'k' } } }],
    ['task', { ...base, principal: { ...P, task: 't2' } }],
    ['chain', { ...base, principal: { ...P, chain: [] } }],
    ['scope', { ...base, principal: { ...P, scope: ['tool:mem/a'] } }],
    ['tctx', { ...base, principal: { ...P, tctx: { ticket: 'T-2' } } }],
    ['user kind', { ...base, principal: { ...P, user: 'corp:ann', userClaims: { issuer: 'corp', attrs: {}, groups: [] } } }],
    ['action', { ...base, action: 'secret.read', resource: { type: 'Tool', server: 'mem', tool: 'a' } }],
    ['resource', { ...base, resource: { type: 'Tool', server: 'mem', tool: 'b' } }],
    ['resource split', { ...base, resource: { type: 'Tool', server: 'mem/a', tool: '' } }],
    ['args value', { ...base, context: { args: { a: 'y', n: 1 } } }],
    ['args type', { ...base, context: { args: { a: 'x', n: '1' } } }],
    ['args key', { ...base, context: { args: { b: 'x', n: 1 } } }],
    ['delimiter in a value', { ...base, context: { args: { a: 'x","n":1,"z":"', n: 1 } } }],
    ['delimiter in a key', { ...base, context: { args: { 'a":"x","n':1, n: 1 } } }],
    ['backslash', { ...base, context: { args: { a: 'x\\', n: 1 } } }],
  ];
  const seen = new Map<string, string>([[key, 'base']]);
  for (const [what, r] of variants) {
    let k: string;
    try {
      k = toCedarRequestWithKey(r).key;
    } catch (e) {
      if (what === 'user kind' || what === 'resource split') continue; // refused outright: no key at all
      throw e;
    }
    assert.equal(seen.get(k), undefined, `${what} collides with ${seen.get(k)}`);
    seen.set(k, what);
  }
});

test('an unpaired surrogate is refused in a value or a key; a paired one or a spelled backslash-u is not', () => {
  for (const args of [{ a: '\ud800' }, { a: 'x\udfff' }, { ['\udbff']: 'x' }, { a: ['ok', { b: '\ud83d' }] }]) {
    const r = { ...base, context: { args } };
    assert.throws(() => toCedarRequestWithKey(r), invalid);
    assert.throws(() => toCedarRequest(r), invalid);
  }
  for (const args of [{ a: '\ud83d\ude00' }, { a: '\\ud800' }, { a: '\\uD800', ['\\udfff']: 1 }]) {
    const r = { ...base, context: { args } };
    assert.equal(toCedarRequestWithKey(r).key, JSON.stringify(toCedarRequest(r)));
  }
});

test('the engine refuses an unpaired surrogate with the cache on and off', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'p.cedar'), '@id("all") permit (principal, action == Tessera::Action::"tool.call", resource);');
  for (const cacheSize of [100, 0]) {
    const e = createPolicyEngine({ dir, clock: new ManualClock(), logger: silentLogger, audit: new MemoryAuditWriter(), watch: false, cacheSize });
    await e.load();
    const A = agent('spiffe://example.org/ns/gw/sa/a');
    const call = (a: string) => ({ principal: A, action: 'tool.call' as const, resource: { type: 'Tool' as const, server: 'mem', tool: 'a' }, context: { args: { a } } });
    assert.throws(() => e.authorize(call('\ud800')), invalid, `cache ${cacheSize}`);
    assert.equal(e.authorize(call('\\ud800')).allowed, true);
    assert.equal(e.authorize(call('\ud83d\ude00')).allowed, true);
  }
});
