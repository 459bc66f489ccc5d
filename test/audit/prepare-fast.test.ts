/**
 * The audit log's one-walk preparation (src/audit/validate.ts validateAndCanonicalize): whenever
 * it answers, the text is exactly canonicalize's (so the stored bytes and chain hashes do not
 * change) and validateEvent accepts; overall, over a table of hostile events and seeded
 * mutations of real ones, the verdict and the refusal (code and message) equal the two-step path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalize, chainHash, chainHashOfBody, GENESIS_HASH } from '../../src/audit/chain.js';
import { validateAndCanonicalize, validateEvent } from '../../src/audit/validate.js';
import { isTesseraError } from '../../src/shared/errors.js';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl';
const base = {
  kind: 'tool.called', actor: { id: 'spiffe://t.test/ns/a/sa/b', chain: ['spiffe://t.test/ns/a/sa/o'], user: 'corp:ann' }, action: 'tool.call', resource: 'Tool::records/query',
  result: 'allow', reason: { policies: ['p1', 'p2'], code: 'OK' }, txn: 'abc', purpose: 'summarize', where: { source: 'gateway', replica: 'r1', requestId: 'req-1' },
  details: { server: 'records', tool: 'query', duration_ms: 12, args_hmac: 'x'.repeat(43), nested: { a: [1, 2.5, -0, 1e21, true, null, 'é\u2028"\\'], b: { c: undefined, d: [] } } },
};

type Verdict = { ok: true; body: string } | { ok: false; code: string; message: string };
function twoStep(e: unknown): Verdict {
  try {
    validateEvent(e);
    return { ok: true, body: canonicalize(e) };
  } catch (err) {
    return isTesseraError(err) ? { ok: false, code: err.code, message: err.message } : { ok: false, code: 'TypeError', message: (err as Error).message };
  }
}
function oneWalk(e: unknown): Verdict & { fast?: boolean } {
  try {
    const b = validateAndCanonicalize(e);
    if (b !== undefined) {
      assert.equal(b, canonicalize(e), 'the fast text is canonicalize\'s');
      validateEvent(e); // and validateEvent accepts what it accepted
      return { ok: true, body: b, fast: true };
    }
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return isTesseraError(err) ? { ok: false, code: err.code, message: err.message } : { ok: false, code: 'TypeError', message: (err as Error).message };
  }
  return twoStep(e);
}
const same = (e: unknown, what: string): boolean => {
  const a = oneWalk(e);
  const { fast, ...rest } = a;
  assert.deepEqual(rest, twoStep(e), what);
  return fast === true;
};

let deep: Record<string, unknown> = { leaf: 1 };
for (let i = 0; i < 10; i++) deep = { d: deep };

test('hostile and unusual events get the same verdict, message and bytes', () => {
  const cases: [string, unknown][] = [
    ['base', base], ['minimal', { kind: 'a.b', actor: { id: 'x' }, action: 'y', result: 'success' }],
    ['jwt in details', { ...base, details: { v: JWT } }], ['jwt in an array', { ...base, details: { v: ['ok', JWT] } }],
    ['tsr token', { ...base, details: { v: 'tsr_' + 'A'.repeat(40) } }], ['jwt as resource', { ...base, resource: JWT }],
    ['forbidden key', { ...base, details: { password: 'x' } }], ['forbidden key, null', { ...base, details: { password: null, token: undefined } }],
    ['forbidden key nested', { ...base, details: { a: { Client_Secret: 1 } } }],
    ['NaN', { ...base, details: { n: Number.NaN } }], ['Infinity', { ...base, details: { n: -Infinity } }], ['bigint', { ...base, details: { n: 1n } }],
    ['function', { ...base, details: { f: () => 1 } }], ['symbol', { ...base, details: { s: Symbol('x') } }],
    ['too deep', { ...base, details: deep }], ['undefined deep', { ...base, details: { a: { b: { c: { d: { e: { f: { g: { h: undefined } } } } } } } } }],
    ['undefined in an array deep', { ...base, details: { a: { b: { c: { d: { e: { f: { g: [undefined] } } } } } } } }],
    ['sparse array', { ...base, details: { a: new Array<unknown>(3).fill(1, 0, 1) } }], ['date', { ...base, details: { at: new Date(0) } }],
    ['unpaired surrogate', { ...base, details: { s: '\ud800' } }], ['__proto__ key', { ...base, details: JSON.parse('{"__proto__":{"x":1}}') }],
    ['bad kind', { ...base, kind: 'Tool' }], ['unknown top key', { ...base, extra: 1 }], ['bad result', { ...base, result: 'ok' }],
    ['verified true', { ...base, actor: { id: 'x', verified: true } }], ['not an object', 'x'], ['null', null],
  ];
  for (const [what, e] of cases) same(e, what);
  assert.equal(same(base, 'base'), true, 'a common event takes the fast path');
});

test('seeded mutations of a real event agree with the two-step path', () => {
  let seed = 42;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const values: unknown[] = ['', 'x', JWT, 'tsr_' + 'B'.repeat(40), 0, -1.5, Number.NaN, true, null, undefined, [], [JWT], {}, { token: 'v' }, { secret: null }, 'a'.repeat(5000), deep];
  const keys = ['kind', 'actor', 'action', 'resource', 'result', 'reason', 'txn', 'purpose', 'where', 'details', 'token', 'password', 'x'];
  let fast = 0;
  for (let i = 0; i < 4000; i++) {
    const e = structuredClone(base) as Record<string, unknown>;
    const target = rnd(3) === 0 ? e : (e['details'] as Record<string, unknown>);
    target[keys[rnd(keys.length)]!] = values[rnd(values.length)];
    const d = e['details'];
    if (rnd(4) === 0) (d !== null && typeof d === 'object' && !Array.isArray(d) ? (d as Record<string, unknown>) : e)[keys[rnd(keys.length)]!] = values[rnd(values.length)];
    if (same(e, `mutation ${i}`)) fast++;
  }
  assert.ok(fast > 100, `the fast path answered ${fast} times`);
});

test('the same events give the same chain hashes by either path', () => {
  let prevOld = GENESIS_HASH;
  let prevNew = GENESIS_HASH;
  for (let i = 1; i <= 20; i++) {
    const e = { ...base, txn: `t${i}`, details: { ...base.details, i } };
    prevOld = chainHash(prevOld, i, 1000 + i, e);
    prevNew = chainHashOfBody(prevNew, i, 1000 + i, validateAndCanonicalize(e)!);
    assert.equal(prevNew, prevOld);
  }
});
