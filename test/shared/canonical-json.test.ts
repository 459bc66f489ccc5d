/**
 * The two canonical JSON writers (the policy decision cache key, src/policy/cache.ts, and the
 * audit chain's hash input, src/audit/canonical.ts) are written as single loops for speed; both
 * must give exactly what their plain definitions give (sorted keys, undefined members dropped,
 * no whitespace), for every value — checked here on generated values of every JSON shape, with
 * odd keys (unicode, escapes, numeric-looking, __proto__) and undefined in objects and arrays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson } from '../../src/policy/cache.js';
import { canonicalize } from '../../src/audit/canonical.js';

/** The policy cache key as first written: the reference. */
function referenceKey(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(referenceKey).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${referenceKey(o[k])}`).join(',')}}`;
}

/** The audit canonical form as first written: the reference. */
function referenceAudit(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot represent a non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : referenceAudit(v))).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${referenceAudit(obj[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot represent a ${typeof value}`);
  }
}

/** A small deterministic PRNG (mulberry32), so a failure names a reproducible seed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = ['a', 'b', 'Z', '', ' ', '10', '9', '__proto__', 'constructor', 'é', '\u2028', 'a"b', 'a\\b', '\u0000', '😀', 'ü', 'path', 'attrs'];
const STRINGS = ['', 'x', 'spiffe://example.org/ns/a', '"quoted"', 'line\nbreak', '\u001f', '\ud800', 'é😀', '</script>'];

function value(r: () => number, depth: number, allowUndefined: boolean): unknown {
  const pick = Math.floor(r() * (depth > 3 ? 6 : 9));
  switch (pick) {
    case 0: return null;
    case 1: return r() < 0.5;
    case 2: return [0, -0, 1, -1.5, 1e21, 1e-7, 123456789012, 0.1 + 0.2][Math.floor(r() * 8)];
    case 3: return STRINGS[Math.floor(r() * STRINGS.length)];
    case 4: return allowUndefined ? undefined : 'u';
    case 5: return Math.floor(r() * 1000);
    case 6: return Array.from({ length: Math.floor(r() * 5) }, () => value(r, depth + 1, true));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(r() * 6); i > 0; i--) {
        const k = KEYS[Math.floor(r() * KEYS.length)]!;
        Object.defineProperty(o, k, { value: value(r, depth + 1, true), enumerable: true, configurable: true, writable: true });
      }
      return o;
    }
  }
}

test('the policy cache key equals its plain definition on 3,000 generated values', () => {
  for (let seed = 1; seed <= 3000; seed++) {
    const v = value(rng(seed), 0, true);
    assert.equal(canonicalJson(v), referenceKey(v), `seed ${seed}`);
  }
  assert.equal(canonicalJson({ b: 1, a: [undefined, () => 1], c: undefined }), '{"a":[null,null],"b":1}');
});

test('the audit canonical form equals its plain definition on 3,000 generated values, and refuses the same', () => {
  const outcome = (f: () => string): string => {
    try {
      return f();
    } catch (e) {
      return `threw ${(e as Error).name}: ${(e as Error).message}`;
    }
  };
  for (let seed = 1; seed <= 3000; seed++) {
    const v = value(rng(seed), 0, true);
    assert.equal(outcome(() => canonicalize(v)), outcome(() => referenceAudit(v)), `seed ${seed}`);
  }
  for (const bad of [{ x: Number.NaN }, [1, Infinity], { x: 1n }, { f: () => 1 }, Symbol('s')]) {
    assert.throws(() => canonicalize(bad), TypeError);
    assert.throws(() => referenceAudit(bad), TypeError);
  }
});
