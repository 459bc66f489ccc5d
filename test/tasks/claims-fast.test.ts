/**
 * The pre-compiled task-claims check (src/tasks/claims-fast.ts) against zod, the source of truth
 * (taskClaimsSchema): over a table of hostile values and thousands of seeded mutations of real
 * claims, whenever the fast path answers, zod accepts and returns a deep-equal value with the
 * same keys in the same order; and parseTaskClaims (fast, else zod) gives exactly zod's verdict
 * and error for every value. Also: the fast path does answer for the claims Tessera signs (else
 * it would be dead weight).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fastTaskClaims, parseTaskClaims } from '../../src/tasks/claims-fast.js';
import { nestActors, taskClaimsSchema } from '../../src/tasks/claims.js';

const ORCH = 'spiffe://tessera.local/ns/bench/sa/orchestrator';
const T = (n: number): string => `task_${String(n).padStart(22, '0')}`;
const JKT = 'A'.repeat(43);

function depth5(): Record<string, unknown> {
  const actors = [{ sub: ORCH }, ...Array.from({ length: 5 }, (_, i) => (i % 2 ? { sub: ORCH, label: `worker-${i}` } : { sub: `spiffe://tessera.local/ns/bench/sa/sub-${i}` }))];
  return {
    iss: 'https://tessera.test', sub: ORCH, aud: 'https://tessera.test', exp: 1_900_000_900, iat: 1_900_000_000, nbf: 1_900_000_000, jti: 'abcdefghijklmnopqrstuv',
    act: nestActors(actors), txn: T(5), ptxn: T(4), rtxn: T(0), anc: [T(0), T(1), T(2), T(3), T(4)],
    scope: 'secret:bench/a/** tool:bench/query', purpose: 'bench: a depth-5 task', depth: 5, max_depth: 8, tctx: { ticket: 'INC-42', step: '5' }, cnf: { jkt: JKT },
    tessera: { attestor: 'k8s-prod', kind: 'kubernetes', attrs: { namespace: 'bench', service_account: 'orchestrator', pod: 'p-1' } },
  };
}

function root(): Record<string, unknown> {
  return { iss: 'https://tessera.test', sub: ORCH, aud: ['https://a.test', 'https://b.test'], exp: 2, iat: 1, jti: 'j'.repeat(16), act: { sub: ORCH }, txn: T(1), rtxn: T(1), anc: [], scope: 'x', purpose: '', depth: 0, max_depth: 0 };
}

/** Same verdict and same output as zod: the fast path only ever agrees with an acceptance. */
function check(v: unknown, what: string): void {
  const z = taskClaimsSchema.safeParse(v);
  const fast = fastTaskClaims(v);
  if (fast !== undefined) {
    assert.ok(z.success, `${what}: fast path accepted what zod refuses (${z.success ? '' : JSON.stringify(z.error.issues[0])})`);
    assert.deepStrictEqual(fast, z.data, what);
    assert.equal(JSON.stringify(fast), JSON.stringify(z.data), `${what}: key order`);
  }
  const p = parseTaskClaims(v);
  assert.equal(p.success, z.success, what);
  if (p.success && z.success) assert.deepStrictEqual(p.data, z.data, what);
  if (!p.success && !z.success) assert.deepStrictEqual(p.error.issues, z.error.issues, what);
}

test('the fast path answers for the claims Tessera signs: root, depth 5, bound, with facts', () => {
  for (const c of [depth5(), root(), JSON.parse(JSON.stringify(depth5())) as unknown]) {
    assert.ok(fastTaskClaims(c), JSON.stringify(c));
    check(c, 'signed shape');
  }
});

test('a table of hostile claims: every answer of the fast path is zod\'s', () => {
  const base = depth5();
  const withProto = JSON.parse('{"__proto__":"x","a":"b"}') as unknown;
  const hostile: [string, unknown][] = [
    ['null', null], ['array', [base]], ['string', 'claims'], ['number', 5], ['empty object', {}],
    ['null prototype', Object.assign(Object.create(null) as object, base)],
    ['class instance', Object.assign(new (class C {})(), base)],
    ['unknown extra claims (dropped)', { ...base, may_act: { sub: 'x' }, chain: ['y'], admin: true }],
    ['explicit undefined ptxn', { ...base, ptxn: undefined }],
    ['explicit undefined tctx', { ...base, tctx: undefined }],
    ['usr on an agent sub', { ...base, usr: { iss: 'okta' } }],
    ['usr with attrs', { ...base, sub: 'user:alice', usr: { iss: 'okta', attrs: { dept: 'x' }, groups: ['g'] } }],
    ['usr extra key (strict)', { ...base, sub: 'user:alice', usr: { iss: 'okta', admin: true } }],
    ['exp 0', { ...base, exp: 0 }], ['exp negative', { ...base, exp: -5 }], ['exp -0', { ...base, exp: -0 }], ['exp float', { ...base, exp: 1.5 }],
    ['exp 2^53', { ...base, exp: 2 ** 53 }], ['exp NaN', { ...base, exp: Number.NaN }], ['exp Infinity', { ...base, exp: Infinity }], ['exp string', { ...base, exp: '1900000900' }],
    ['exp bigint', { ...base, exp: 5n }], ['iat missing', { ...base, iat: undefined }], ['nbf null', { ...base, nbf: null }],
    ['depth 9', { ...base, depth: 9 }], ['depth -1', { ...base, depth: -1 }], ['depth -0', { ...base, depth: -0 }], ['max_depth 8.5', { ...base, max_depth: 8.5 }], ['max_depth "8"', { ...base, max_depth: '8' }],
    ['iss empty', { ...base, iss: '' }], ['sub empty', { ...base, sub: '' }], ['sub 2049', { ...base, sub: 's'.repeat(2049) }], ['sub 2048', { ...base, sub: 's'.repeat(2048) }],
    ['aud empty string', { ...base, aud: '' }], ['aud empty array', { ...base, aud: [] }], ['aud 17', { ...base, aud: Array.from({ length: 17 }, (_, i) => `a${i}`) }],
    ['aud 16', { ...base, aud: Array.from({ length: 16 }, (_, i) => `a${i}`) }], ['aud with empty', { ...base, aud: ['a', ''] }], ['aud sparse', { ...base, aud: [, 'a'] }], // eslint-disable-line no-sparse-arrays
    ['aud number', { ...base, aud: 5 }], ['aud object', { ...base, aud: { 0: 'a', length: 1 } }],
    ['jti 15', { ...base, jti: 'j'.repeat(15) }], ['jti 129', { ...base, jti: 'j'.repeat(129) }], ['jti 128', { ...base, jti: 'j'.repeat(128) }],
    ['txn bad', { ...base, txn: 'task_short' }], ['txn newline', { ...base, txn: `${T(5)}\n` }], ['ptxn null', { ...base, ptxn: null }], ['rtxn missing', { ...base, rtxn: undefined }],
    ['anc 9', { ...base, anc: Array.from({ length: 9 }, (_, i) => T(i)) }], ['anc bad id', { ...base, anc: [T(0), 'x'] }], ['anc sparse', { ...base, anc: [, T(0)] }], // eslint-disable-line no-sparse-arrays
    ['anc string', { ...base, anc: T(0) }],
    ['scope empty', { ...base, scope: '' }], ['scope huge', { ...base, scope: 's'.repeat(64 * 513 + 1) }], ['scope at bound', { ...base, scope: 's'.repeat(64 * 513) }],
    ['purpose 513', { ...base, purpose: 'p'.repeat(513) }], ['purpose 512', { ...base, purpose: 'p'.repeat(512) }], ['purpose number', { ...base, purpose: 5 }],
    ['tctx array', { ...base, tctx: ['a'] }], ['tctx null', { ...base, tctx: null }], ['tctx bad key', { ...base, tctx: { '1a': 'x' } }], ['tctx key dash', { ...base, tctx: { 'a-b': 'x' } }],
    ['tctx number value', { ...base, tctx: { a: 1 } }], ['tctx value 257', { ...base, tctx: { a: 'v'.repeat(257) } }], ['tctx value 256', { ...base, tctx: { a: 'v'.repeat(256) } }],
    ['tctx __proto__ key (JSON)', { ...base, tctx: withProto }], ['tctx symbol key', { ...base, tctx: { a: 'b', [Symbol('s')]: 'c' } }],
    ['tctx hidden key', { ...base, tctx: Object.defineProperty({ a: 'b' }, 'h', { value: 'x', enumerable: false }) }],
    ['cnf empty', { ...base, cnf: {} }], ['cnf bad jkt', { ...base, cnf: { jkt: 'short' } }], ['cnf extra', { ...base, cnf: { jkt: JKT, x5t: 'y' } }], ['cnf undefined jkt', { ...base, cnf: { jkt: undefined } }],
    ['tessera empty', { ...base, tessera: {} }], ['tessera bad kind', { ...base, tessera: { kind: 'root' } }], ['tessera attestor 129', { ...base, tessera: { attestor: 'a'.repeat(129) } }],
    ['tessera attrs number', { ...base, tessera: { attrs: { a: 1 } } }], ['tessera attrs key 257', { ...base, tessera: { attrs: { ['k'.repeat(257)]: 'v' } } }],
    ['tessera attrs value 1025', { ...base, tessera: { attrs: { a: 'v'.repeat(1025) } } }], ['tessera attrs __proto__', { ...base, tessera: { attrs: withProto } }],
    ['tessera attrs numeric keys', { ...base, tessera: { attrs: { 2: 'b', 1: 'a', z: 'c' } } }], ['tessera extra key', { ...base, tessera: { kind: 'jwt', admin: 'yes' } }],
    ['tessera undefined kind', { ...base, tessera: { kind: undefined } }], ['tessera array', { ...base, tessera: [] }],
    ['act missing', { ...base, act: undefined }], ['act string', { ...base, act: ORCH }], ['act empty sub', { ...base, act: { sub: '' } }], ['act bad label', { ...base, act: { sub: ORCH, label: '-x' } }],
    ['act label null', { ...base, act: { sub: ORCH, label: null } }], ['act act null', { ...base, act: { sub: ORCH, act: null } }], ['act undefined act', { ...base, act: { sub: ORCH, act: undefined } }],
    ['act extra keys (dropped)', { ...base, act: { sub: ORCH, may_act: 'x', act: { sub: ORCH, iss: 'y' } } }],
    ['act 12 deep', { ...base, act: nestActors(Array.from({ length: 12 }, () => ({ sub: ORCH }))) }],
    ['act 200 deep', { ...base, act: nestActors(Array.from({ length: 200 }, () => ({ sub: ORCH }))) }],
  ];
  for (const [what, v] of hostile) check(v, what);
});

/** A small deterministic PRNG (mulberry32), so a failure names a reproducible seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD: unknown[] = [undefined, null, 0, -1, 1.5, 2 ** 53, Number.NaN, '', ' ', 'x', 'task_', T(9), 's'.repeat(3000), [], [''], ['a'], {}, { a: 'b' }, true, JKT, 'spiffe://tessera.local/x', 'kubernetes', 'bad kind'];

/** Replaces or deletes one value somewhere inside `v` (objects and arrays), in place. */
function mutate(v: Record<string, unknown>, rnd: () => number): void {
  const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rnd() * xs.length)]!;
  let node: Record<string, unknown> | unknown[] = v;
  for (;;) {
    const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    if (keys.length === 0) return;
    const k = pick(keys as (string | number)[]);
    const child = (node as Record<string | number, unknown>)[k];
    if (child !== null && typeof child === 'object' && rnd() < 0.6) {
      node = child as Record<string, unknown>;
      continue;
    }
    const r = rnd();
    if (r < 0.2 && !Array.isArray(node)) delete (node as Record<string, unknown>)[k as string];
    else if (r < 0.3 && !Array.isArray(node)) (node as Record<string, unknown>)[`extra${Math.floor(rnd() * 3)}`] = structuredClone(pick(ODD));
    else (node as Record<string | number, unknown>)[k] = structuredClone(pick(ODD));
    return;
  }
}

test('4,000 seeded mutations of real claims: the fast path never accepts what zod refuses, and agrees on output', () => {
  let fastAnswered = 0;
  for (let seed = 1; seed <= 4000; seed++) {
    const rnd = prng(seed);
    const v = JSON.parse(JSON.stringify(seed % 2 ? depth5() : root())) as Record<string, unknown>;
    const n = 1 + Math.floor(rnd() * 3);
    for (let i = 0; i < n; i++) mutate(v, rnd);
    check(v, `seed ${seed}: ${JSON.stringify(v).slice(0, 300)}`);
    if (fastTaskClaims(v)) fastAnswered++;
  }
  // Some mutations keep the claims valid (an extra key, a valid replacement): the fast path answered those.
  assert.ok(fastAnswered > 0);
});
