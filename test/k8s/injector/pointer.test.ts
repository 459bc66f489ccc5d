/**
 * RFC 6901 §3 escaping of the object keys the injector puts in patch paths (pure; the webhook
 * tests apply real patches). A key with `/` or `~` must address that key, not a deeper path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import jsonpatch from 'fast-json-patch';
import { pointerToken } from '../../../src/k8s/injector/index.js';

test('pointerToken escapes ~ before / (RFC 6901 §3), and the result addresses the key itself', () => {
  assert.equal(pointerToken('tessera.io/injected'), 'tessera.io~1injected');
  assert.equal(pointerToken('a~1b'), 'a~01b', '"~1" in a key is not a "/"');
  assert.equal(pointerToken('~/'), '~0~1');
  const doc = { metadata: { annotations: { 'a~1b': 'kept', a: { b: 'kept' } } } };
  for (const key of ['tessera.io/injected', 'a~1b/x', '~', '/']) {
    const r = jsonpatch.applyPatch(structuredClone(doc), [{ op: 'add', path: `/metadata/annotations/${pointerToken(key)}`, value: 'v' }], true, false).newDocument;
    assert.equal((r.metadata.annotations as Record<string, unknown>)[key], 'v', key);
    assert.equal(r.metadata.annotations['a~1b'], 'kept');
    assert.deepEqual(r.metadata.annotations.a, { b: 'kept' });
  }
});
