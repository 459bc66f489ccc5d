/**
 * A pre-compiled fast path for `taskClaimsSchema.safeParse` (claims.ts), the check every task
 * token's claims pass before Tessera signs them and after it verifies one with a cache miss
 * (docs/adr/0190-task-token-hot-path.md). zod stays the source of truth:
 *
 *   parseTaskClaims(v) = fastTaskClaims(v) ?? taskClaimsSchema.safeParse(v)
 *
 * `fastTaskClaims` only ever ACCEPTS: it returns the output zod would return (same keys, same
 * order, fresh objects, unknown keys dropped) when the value is in the common shape and every
 * bound holds with margin; anything else — a refusal, a `usr` claim, an explicit `undefined`, a
 * `__proto__` key, a non-plain object, a number that is not a positive safe integer — returns
 * undefined and zod decides, with its own error. So it can never accept what zod refuses, and
 * every refusal and its message are zod's. test/tasks/claims-fast.test.ts checks, over a table of
 * hostile values and thousands of mutations of real claims, that whenever the fast path answers,
 * zod accepts and returns a deep-equal value with the same key order.
 */
import { z } from 'zod';
import { ATTESTOR_KINDS, ROLE_NAME } from '../shared/principal.js';
import { JKT_PATTERN, LABEL_PATTERN, MAX_DEPTH_CEILING, TASK_LIMITS, TCTX_KEY_PATTERN, TXN_PATTERN, taskClaimsSchema, type Actor, type TaskClaims } from './claims.js';

type Obj = Record<string, unknown>;

/** The only keys zod's output may carry, per object (shape order: zod's output order). */
const TOP = ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'act', 'txn', 'ptxn', 'rtxn', 'anc', 'scope', 'purpose', 'depth', 'max_depth', 'tctx', 'cnf', 'tessera', 'usr'] as const;
const SCOPE_MAX = TASK_LIMITS.scopes * (TASK_LIMITS.scopeChars + 1);
const KINDS: readonly string[] = ATTESTOR_KINDS;

/** A plain, ordinary object (what JSON.parse and object literals make). */
function plain(v: unknown): v is Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v) as unknown;
  return p === Object.prototype || p === null;
}

const str = (v: unknown, min: number, max: number): v is string => typeof v === 'string' && v.length >= min && v.length <= max;
const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const smallInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_DEPTH_CEILING;
const txn = (v: unknown): v is string => typeof v === 'string' && TXN_PATTERN.test(v);

/** `key` absent, or present with a value (an explicit undefined is zod's to judge). */
function absentOrSet(o: Obj, key: string): boolean | undefined {
  if (!Object.hasOwn(o, key)) return false;
  return o[key] === undefined ? undefined : true;
}

/** A string → string record with bounded keys/values; undefined when zod must judge it. */
function record(v: unknown, keyOk: (k: string) => boolean, valueMax: number): Record<string, string> | undefined {
  if (!plain(v)) return undefined;
  const out: Record<string, string> = {};
  // Own keys only, all enumerable strings (symbols or hidden properties are not JSON: zod judges).
  for (const k of Reflect.ownKeys(v)) {
    if (typeof k !== 'string' || !Object.prototype.propertyIsEnumerable.call(v, k)) return undefined;
    const x = v[k];
    if (k === '__proto__' || !keyOk(k) || typeof x !== 'string' || x.length > valueMax) return undefined;
    out[k] = x;
  }
  return out;
}

function actor(v: unknown): Actor | undefined {
  // Iterative (the chain is at most MAX_DEPTH_CEILING + 1 deep in any valid token; deeper: zod).
  const chain: { sub: string; label?: string }[] = [];
  let a: unknown = v;
  for (;;) {
    if (!plain(a) || chain.length > MAX_DEPTH_CEILING + 1) return undefined;
    const sub = a['sub'];
    if (!str(sub, 1, 2048)) return undefined;
    const hasLabel = absentOrSet(a, 'label');
    const hasAct = absentOrSet(a, 'act');
    if (hasLabel === undefined || hasAct === undefined) return undefined;
    let label: string | undefined;
    if (hasLabel) {
      label = a['label'] as string;
      if (typeof label !== 'string' || !LABEL_PATTERN.test(label)) return undefined;
    }
    chain.push(label === undefined ? { sub } : { sub, label });
    if (!hasAct) break;
    a = a['act'];
  }
  let out: Actor | undefined;
  for (let i = chain.length - 1; i >= 0; i--) {
    const c = chain[i]!;
    out = c.label === undefined ? (out ? { sub: c.sub, act: out } : { sub: c.sub }) : out ? { sub: c.sub, label: c.label, act: out } : { sub: c.sub, label: c.label };
  }
  return out;
}

/**
 * zod's output for `v` when `v` is a well-formed task claims object in the common shape (no
 * `usr`), else undefined (then only zod may answer). Never throws.
 */
export function fastTaskClaims(v: unknown): TaskClaims | undefined {
  if (!plain(v)) return undefined;
  for (const k of TOP) if (absentOrSet(v, k) === undefined) return undefined;
  if (Object.hasOwn(v, 'usr')) return undefined;
  const { iss, sub, aud, exp, iat, nbf, jti, txn: id, ptxn, rtxn, anc, scope, purpose, depth, max_depth: maxDepth, tctx, cnf, tessera } = v;
  if (!str(iss, 1, Infinity) || !str(sub, 1, 2048) || !posInt(exp) || !posInt(iat) || !str(jti, 16, 128)) return undefined;
  if (nbf !== undefined && !posInt(nbf)) return undefined;
  let audOut: string | string[];
  if (typeof aud === 'string') {
    if (aud.length < 1) return undefined;
    audOut = aud;
  } else {
    if (!Array.isArray(aud) || aud.length < 1 || aud.length > 16) return undefined;
    audOut = [];
    for (let i = 0; i < aud.length; i++) {
      const a: unknown = aud[i];
      if (!Object.hasOwn(aud, i) || !str(a, 1, Infinity)) return undefined;
      audOut.push(a);
    }
  }
  const act = actor(v['act']);
  if (!act || !txn(id) || !txn(rtxn) || (ptxn !== undefined && !txn(ptxn))) return undefined;
  if (!Array.isArray(anc) || anc.length > MAX_DEPTH_CEILING) return undefined;
  const ancOut: string[] = [];
  for (let i = 0; i < anc.length; i++) {
    const a: unknown = anc[i];
    if (!Object.hasOwn(anc, i) || !txn(a)) return undefined;
    ancOut.push(a);
  }
  if (!str(scope, 1, SCOPE_MAX) || !str(purpose, 0, TASK_LIMITS.purposeChars) || !smallInt(depth) || !smallInt(maxDepth)) return undefined;
  let tctxOut: Record<string, string> | undefined;
  if (tctx !== undefined && !(tctxOut = record(tctx, (k) => TCTX_KEY_PATTERN.test(k), TASK_LIMITS.tctxValueChars))) return undefined;
  let cnfOut: { jkt: string } | undefined;
  if (cnf !== undefined) {
    if (!plain(cnf) || absentOrSet(cnf, 'jkt') !== true || typeof cnf['jkt'] !== 'string' || !JKT_PATTERN.test(cnf['jkt'])) return undefined;
    cnfOut = { jkt: cnf['jkt'] };
  }
  let tesseraOut: TaskClaims['tessera'];
  if (tessera !== undefined) {
    if (!plain(tessera)) return undefined;
    const t: { attestor?: string; kind?: (typeof ATTESTOR_KINDS)[number]; attrs?: Record<string, string>; role?: string } = {};
    for (const k of ['attestor', 'kind', 'attrs', 'role'] as const) if (absentOrSet(tessera, k) === undefined) return undefined;
    const { attestor, kind, attrs, role } = tessera;
    if (attestor !== undefined) {
      if (!str(attestor, 0, 128)) return undefined;
      t.attestor = attestor;
    }
    if (kind !== undefined) {
      if (typeof kind !== 'string' || !KINDS.includes(kind)) return undefined;
      t.kind = kind as (typeof ATTESTOR_KINDS)[number];
    }
    if (attrs !== undefined) {
      const r = record(attrs, (k) => k.length <= 256, 1024);
      if (!r) return undefined;
      t.attrs = r;
    }
    // The role the acting agent assumed at login (docs/policies.md#roles).
    if (role !== undefined) {
      if (typeof role !== 'string' || !ROLE_NAME.test(role)) return undefined;
      t.role = role;
    }
    tesseraOut = t;
  }
  // zod's output: shape order, optional keys only when present.
  const out: Obj = { iss, sub, aud: audOut, exp, iat };
  if (nbf !== undefined) out['nbf'] = nbf;
  out['jti'] = jti;
  out['act'] = act;
  out['txn'] = id;
  if (ptxn !== undefined) out['ptxn'] = ptxn;
  out['rtxn'] = rtxn;
  out['anc'] = ancOut;
  out['scope'] = scope;
  out['purpose'] = purpose;
  out['depth'] = depth;
  out['max_depth'] = maxDepth;
  if (tctxOut) out['tctx'] = tctxOut;
  if (cnfOut) out['cnf'] = cnfOut;
  if (tesseraOut) out['tessera'] = tesseraOut;
  return out as TaskClaims;
}

/** Drop-in for `taskClaimsSchema.safeParse(v)`: the fast path when it answers, else zod. */
export function parseTaskClaims(v: unknown): z.ZodSafeParseResult<TaskClaims> {
  const fast = fastTaskClaims(v);
  return fast ? { success: true, data: fast } : taskClaimsSchema.safeParse(v);
}
