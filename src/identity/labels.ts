import type { JWTPayload } from 'jose';
import { fail } from '../shared/errors.js';
import { lookupClaim } from './template.js';

/**
 * `label_claims` of a `jwt` attestor (docs/attestors.md#labels, docs/adr/0068-typed-label-claims.md).
 * Only claims of the verified token that the attestor's configuration names become attributes,
 * always as `label.<claim>`: never as an attribute Tessera sets itself. Pure.
 */

/** Longest label value kept (the agent token carries attribute values of at most 1024 characters). */
export const LABEL_VALUE_MAX = 1024;

export type LabelType = 'string' | 'boolean' | 'integer';

/** One `label_claims` entry as configured: a claim name (lenient) or `{ claim, type }` (checked). */
export type LabelClaimConfig = string | { readonly claim: string; readonly type: LabelType };

export interface LabelClaim {
  readonly claim: string;
  /** Undefined: lenient (strings, numbers, booleans as text; anything else left out). */
  readonly type?: LabelType;
}

/** A claim name as `label_claims` may name it: what `{claims.<name>}` accepts in a template. */
const CLAIM_NAME = /^[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*$/;

/**
 * Checks and normalizes the configured entries: valid claim names, no claim twice. Throws
 * TESSERA_CONFIG_INVALID naming the attestor and entry.
 */
export function compileLabelClaims(entries: readonly LabelClaimConfig[], attestor: string): LabelClaim[] {
  const seen = new Set<string>();
  return entries.map((e, i) => {
    const c: LabelClaim = typeof e === 'string' ? { claim: e } : { claim: e.claim, type: e.type };
    if (!CLAIM_NAME.test(c.claim)) throw fail('TESSERA_CONFIG_INVALID', `attestor "${attestor}": label_claims[${i}] ${JSON.stringify(c.claim)} is not a claim name (letters, digits, "_", ":", "-", dot-separated)`);
    if (seen.has(c.claim)) throw fail('TESSERA_CONFIG_INVALID', `attestor "${attestor}": label_claims names "${c.claim}" twice`);
    seen.add(c.claim);
    return c;
  });
}

/** Control, format and separator characters: never part of a label (they forge text on terminals and in logs). */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/**
 * The `label.<claim>` attributes of a verified token. A missing claim gives no label. A typed
 * entry whose claim has another type, an unprintable character or an over-long value fails
 * the login (TESSERA_ATTEST_FAILED, check `claims`, naming the claim: the issuer is not what the
 * configuration says it is, and a policy may depend on the label); a lenient entry leaves such a
 * value out. Booleans are `"true"`/`"false"`, integers decimal text.
 */
export function labelAttributes(claims: JWTPayload, labels: readonly LabelClaim[], attestor: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of labels) {
    const v = lookupClaim(claims, l.claim);
    if (v === undefined || v === null) continue;
    const text = l.type ? typed(v, l.type) : lenient(v);
    const bad = text === undefined ? `is not ${l.type === 'integer' ? 'an integer' : `a ${l.type ?? 'string, number or boolean'}`}` : text.length > LABEL_VALUE_MAX ? `is longer than ${LABEL_VALUE_MAX} characters` : UNPRINTABLE.test(text) ? 'contains a control or invisible character' : '';
    if (!bad) {
      out[`label.${l.claim}`] = text!;
      continue;
    }
    if (l.type) throw fail('TESSERA_ATTEST_FAILED', `attestation failed (claims): attestor "${attestor}": label claim "${l.claim}" ${bad}`, { check: 'claims', claim: l.claim });
  }
  return out;
}

function typed(v: unknown, type: LabelType): string | undefined {
  switch (type) {
    case 'string':
      return typeof v === 'string' ? v : undefined;
    case 'boolean':
      // GitLab sends `ref_protected` as the string "true"; other issuers as a JSON boolean.
      return v === true || v === 'true' ? 'true' : v === false || v === 'false' ? 'false' : undefined;
    case 'integer':
      if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
      return typeof v === 'string' && /^-?(0|[1-9][0-9]{0,15})$/.test(v) && Number.isSafeInteger(Number(v)) ? v : undefined;
  }
}

function lenient(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return String(v);
  // An array of strings, joined with "," — only when no element contains "," (else ["a,b"] and
  // ["a","b"] would be the same label).
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x !== '' && !x.includes(','))) return v.join(',');
  return undefined;
}
