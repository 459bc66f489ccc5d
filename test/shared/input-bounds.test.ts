/**
 * The shared edge checks of ADR 0041: nesting depth (iterative, so any depth is safe to
 * measure), unpaired surrogates, credential shapes in names, and durations that stay safe
 * integers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_JSON_DEPTH, checkJsonInput, isWellFormedText, jsonDepth, jsonTextWellFormed } from '../../src/shared/json-depth.js';
import { credentialLike, redactCredentialLike, refuseCredentialLike } from '../../src/shared/credential-like.js';
import { parseDuration } from '../../src/config/duration.js';
import { TesseraError } from '../../src/shared/errors.js';

const isCode = (code: string) => (e: unknown) => e instanceof TesseraError && e.code === code;
const TSR = `tsr_admin_${'A'.repeat(30)}`;
const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4In0.c2lnbmF0dXJl';

test('jsonDepth: scalars 0, containers count, 100,000 levels measured without recursion, early stop at the limit', () => {
  assert.equal(jsonDepth('x'), 0);
  assert.equal(jsonDepth(null), 0);
  assert.equal(jsonDepth([]), 1);
  assert.equal(jsonDepth({ a: [1, { b: [] }] }), 4);
  const deep = JSON.parse('['.repeat(100_000) + ']'.repeat(100_000)) as unknown;
  assert.equal(jsonDepth(deep), 100_000);
  assert.equal(jsonDepth(deep, 64), 65, 'stops as soon as the limit is passed');
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.equal(jsonDepth(cyclic, 10), 11, 'a cycle is just "too deep", never a hang');
});

test('checkJsonInput: TESSERA_REQUEST_TOO_DEEP past 64 levels, TESSERA_REQUEST_INVALID for an unpaired surrogate in a value or a key', () => {
  let v: unknown = 1;
  for (let i = 0; i < MAX_JSON_DEPTH; i++) v = [v];
  checkJsonInput(v, 'body');
  assert.throws(() => checkJsonInput([v], 'body'), isCode('TESSERA_REQUEST_TOO_DEEP'));
  assert.throws(() => checkJsonInput({ a: 'x\ud800' }, 'body'), isCode('TESSERA_REQUEST_INVALID'));
  assert.throws(() => checkJsonInput({ ['\udc00']: 1 }, 'body'), isCode('TESSERA_REQUEST_INVALID'));
  assert.equal(jsonTextWellFormed({ emoji: '😀', cjk: '中文', arr: ['é'] }), true);
});

/** The definition (Unicode §3.9 D91): every high surrogate followed by a low one, every low one preceded by a high one. */
function wellFormedByDefinition(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const n = i + 1 < s.length ? s.charCodeAt(i + 1) : -1;
      if (n < 0xdc00 || n > 0xdfff) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

test('isWellFormedText agrees with the definition on every arrangement of surrogates, in values and keys', () => {
  const parts = ['a', 'é', '\ud83d', '\ude00', '😀', '\udbff', '\udc00', '中', ''];
  let checked = 0;
  for (const a of parts) for (const b of parts) for (const c of parts) for (const d of parts) {
    const s = a + b + c + d;
    const want = wellFormedByDefinition(s);
    assert.equal(isWellFormedText(s), want, JSON.stringify(s));
    assert.equal(jsonTextWellFormed({ [s]: [s, { k: s }] }), want, JSON.stringify(s));
    checked++;
  }
  assert.equal(checked, parts.length ** 4);
});

test('credential shapes: found in names, refused with TESSERA_REQUEST_CREDENTIAL_LIKE without echoing them, redacted from free text', () => {
  assert.equal(credentialLike(`a/${TSR}/b`), 'a Tessera token (tsr_…)');
  assert.equal(credentialLike(JWT), 'a JWT');
  assert.equal(credentialLike('healthcare/prod/db-password'), undefined);
  assert.equal(credentialLike('tsr_short'), undefined);
  assert.throws(() => refuseCredentialLike(TSR, 'the name'), (e: unknown) => isCode('TESSERA_REQUEST_CREDENTIAL_LIKE')(e) && !(e as Error).message.includes(TSR));
  assert.equal(redactCredentialLike(`role "${TSR}" and ${JWT} failed`), 'role "[redacted]" and [redacted] failed');
});

test('parseDuration: results beyond Number.MAX_SAFE_INTEGER milliseconds are malformed, not Infinity or a rounded number', () => {
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('99999999999999999999999d'), null);
  assert.equal(parseDuration(1e22), null);
  assert.equal(parseDuration('1' + '0'.repeat(400)), null);
});

test('operator files nested 30,000 deep are refused with a stable code, not a crash (tessera.yaml, policy test tables)', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const { loadConfigFile } = await import('../../src/config/index.js');
  const { runPolicyTests } = await import('../../src/policy/test-runner.js');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-deep-'));
  for (const [name, text] of [
    ['flow-seq.yaml', `audit: ${'['.repeat(30_000)}${']'.repeat(30_000)}\n`],
    ['flow-map.yaml', `audit: ${'{a: '.repeat(30_000)}1${'}'.repeat(30_000)}\n`],
  ] as const) {
    const file = join(dir, name);
    writeFileSync(file, text);
    assert.throws(() => loadConfigFile(file), isCode('TESSERA_CONFIG_INVALID'), name);
    await assert.rejects(runPolicyTests({ testFile: file, policyDir: 'examples/policies' }), isCode('TESSERA_REQUEST_INVALID'), name);
  }
});
