/**
 * Trust domains a policy pins, and the policies that pin one this Tessera does not serve. A
 * permit or forbid that names `principal.trust_domain == "exmaple.org"` (a typo) or an agent
 * `spiffe://exmaple.org/…` can never match a token Tessera accepts: Cedar cannot know that, so
 * `tessera policy validate --config`, `tessera config validate` and the policy engine (at start
 * and at every reload) say so. Pure: no I/O.
 */
import { count } from '../shared/plural.js';

/** One policy pinning one trust domain. */
export interface PinnedTrustDomain {
  readonly policy: string;
  readonly file: string;
  readonly line: number;
  readonly trustDomain: string;
}

const POSITIVE_OPS = new Set(['==', 'contains', 'containsAll', 'containsAny', 'in']);
const SPIFFE = /^spiffe:\/\/([^/]+)/i;
const MAX_DEPTH = 64;

function isTrustDomainAttr(v: unknown): boolean {
  const dot = v && typeof v === 'object' ? (v as Record<string, unknown>)['.'] : undefined;
  return !!dot && typeof dot === 'object' && (dot as { attr?: unknown }).attr === 'trust_domain';
}

/** The string values of a Cedar JSON expression: `{"Value": s}` or `{"Set": [{"Value": s}, …]}`. */
function valuesOf(v: unknown): string[] {
  if (!v || typeof v !== 'object') return [];
  const o = v as Record<string, unknown>;
  if (typeof o.Value === 'string') return [o.Value];
  if (Array.isArray(o.Set)) return o.Set.flatMap(valuesOf);
  return [];
}

/**
 * The trust domains a policy's JSON form (Cedar's `policyToJson`) pins, lower-case: the strings
 * compared with a `.trust_domain` attribute (`==`, `in`, `contains…`), and the trust domain of
 * every `spiffe://` string (an `Agent::"spiffe://…"` entity, a `spiffe_id` comparison, a `like`
 * pattern).
 */
export function trustDomainsPinnedBy(json: unknown): string[] {
  const out = new Set<string>();
  const walk = (v: unknown, depth: number): void => {
    if (depth > MAX_DEPTH) return;
    if (typeof v === 'string') {
      const m = SPIFFE.exec(v);
      if (m && !m[1]!.includes('*')) out.add(m[1]!.toLowerCase());
      return;
    }
    if (Array.isArray(v)) {
      // A `like` pattern is one {"Literal": c} per character: its text up to the first wildcard
      // names a domain only when a "/" ends it (`spiffe://a.test/ci/*`, not `spiffe://a*`).
      if (v.some((x) => x === 'Wildcard')) {
        const stop = v.indexOf('Wildcard');
        const prefix = v.slice(0, stop).map((x) => (x && typeof x === 'object' && 'Literal' in x ? String((x as { Literal: unknown }).Literal) : '')).join('');
        const m = /^spiffe:\/\/([^/]+)\//i.exec(prefix);
        if (m) out.add(m[1]!.toLowerCase());
        return;
      }
      for (const x of v) walk(x, depth + 1);
      return;
    }
    if (!v || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (POSITIVE_OPS.has(k) && x && typeof x === 'object') {
        const { left, right } = x as { left?: unknown; right?: unknown };
        if (isTrustDomainAttr(left)) for (const s of valuesOf(right)) out.add(s.toLowerCase());
        if (isTrustDomainAttr(right)) for (const s of valuesOf(left)) out.add(s.toLowerCase());
      }
      walk(x, depth + 1);
    }
  };
  walk(json, 0);
  return [...out].sort();
}

/** Each (policy, trust domain) pair where the domain is not one of `served`. */
export function unservedTrustDomains(policies: Iterable<{ readonly id: string; readonly file: string; readonly line: number; readonly trustDomains?: readonly string[] }>, served: readonly string[]): PinnedTrustDomain[] {
  const ok = new Set(served.map((d) => d.toLowerCase()));
  const out: PinnedTrustDomain[] = [];
  for (const p of policies) for (const td of p.trustDomains ?? []) if (!ok.has(td)) out.push({ policy: p.id, file: p.file, line: p.line, trustDomain: td });
  return out;
}

/** `file:line: policy "id" pins trust domain "x", which this Tessera does not serve (it serves a, b): it can never match`. */
export function describeUnserved(u: PinnedTrustDomain, served: readonly string[]): string {
  return `${u.file}:${u.line}: policy "${u.policy}" pins trust domain "${u.trustDomain}", which this Tessera does not serve (it serves ${count(served.length, 'trust domain')}: ${served.join(', ')}): it can never match; a typo, or a trust_domain / spiffe attestor missing from the configuration?`;
}
