/**
 * Is a pod's egress restricted by Kubernetes NetworkPolicies? (ADR 0274, docs/k8s-scan.md
 * "Egress".) Semantics from the networking.k8s.io/v1 API reference and
 * https://kubernetes.io/docs/concepts/services-networking/network-policies/:
 *  - a policy selects pods of its own namespace by `spec.podSelector`; `{}` selects them all;
 *  - it governs egress when `policyTypes` contains `Egress`, or — `policyTypes` absent — when it
 *    has at least one egress rule (Ingress is then implied, Egress only with rules);
 *  - a pod selected by no egress policy may send anywhere; a selected pod may send what the
 *    union of the egress rules of all policies selecting it allows.
 * The scan counts egress as restricted only when the pod is selected by an egress policy AND
 * no rule of those policies opens the internet: a rule without `to` (any destination), or with
 * an `ipBlock` of prefix shorter than /8 (IPv4) or /16 (IPv6) — 0.0.0.0/0, ::/0 — whatever its
 * `except`, on any port but DNS (53) alone; or ipBlocks whose union (minus their `except`s)
 * spans more than MAX_PUBLIC_V4 public IPv4 addresses (a /8's worth: many /8s, or one public /8
 * plus more). Pure.
 */
import type { EgressRule, LabelSelector, NetworkPolicyInfo } from './objects.js';

/** Label selector match (meta/v1 LabelSelector): all `matchLabels` and all `matchExpressions`. An unknown operator matches nothing. */
export function selectorMatches(sel: LabelSelector | null | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    const ok =
      e.operator === 'In' ? has && values.includes(labels[e.key]!)
      : e.operator === 'NotIn' ? !has || !values.includes(labels[e.key]!)
      : e.operator === 'Exists' ? has
      : e.operator === 'DoesNotExist' ? !has
      : false;
    if (!ok) return false;
  }
  return true;
}

/** True when the policy governs egress (see the module comment). */
export function governsEgress(p: NetworkPolicyInfo): boolean {
  if (p.policyTypes) return p.policyTypes.includes('Egress');
  return (p.egress?.length ?? 0) > 0;
}

/** The shortest prefix that still counts as "not the internet". */
const MIN_PREFIX = { v4: 8, v6: 16 } as const;

/** True when an ipBlock CIDR spans a large part of the address space (or cannot be read: fail closed). */
export function isBroadCidr(cidr: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  if (!m) return true;
  const prefix = Number(m[2]);
  return m[1]!.includes(':') ? prefix < MIN_PREFIX.v6 : prefix < MIN_PREFIX.v4;
}

const onlyDns = (r: EgressRule): boolean =>
  (r.ports?.length ?? 0) > 0 && r.ports!.every((p) => (p.port === 53 || p.port === '53') && (p.endPort === null || p.endPort === undefined || p.endPort === 53));

/** True when the rule lets the pod reach the internet (see the module comment). */
export function ruleOpensInternet(r: EgressRule): boolean {
  const anywhere = !r.to || r.to.length === 0 || r.to.some((peer) => peer.ipBlock && isBroadCidr(peer.ipBlock.cidr));
  return anywhere && !onlyDns(r);
}

/** IPv4 ranges that are not the internet (RFC 6890 special-purpose: this network, private, CGNAT, loopback, link-local, multicast, reserved). */
const NON_PUBLIC_V4 = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '224.0.0.0/3'];
/** More public IPv4 addresses than this in the union of a pod's allowed ipBlocks is the internet: more than one /8's worth, the most one ipBlock may span without counting as open. */
export const MAX_PUBLIC_V4 = 2 ** 24;

type Range = [number, number];

/** An IPv4 CIDR as an inclusive address range; undefined when not a readable IPv4 CIDR. */
function v4Range(cidr: string): Range | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const addr = octets.reduce((a, o) => a * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  const start = Math.floor(addr / size) * size;
  return [start, start + size - 1];
}

/** `ranges` minus `cut`, both inclusive ranges. */
function subtract(ranges: readonly Range[], cut: readonly Range[]): Range[] {
  let out = [...ranges];
  for (const [cs, ce] of cut) {
    out = out.flatMap(([s, e]): Range[] => (ce < s || cs > e ? [[s, e]] : [...(s < cs ? [[s, cs - 1] as Range] : []), ...(e > ce ? [[ce + 1, e] as Range] : [])]));
  }
  return out;
}

/** Addresses in the union of `ranges`. */
function unionSize(ranges: readonly Range[]): number {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let cur: Range | undefined;
  for (const r of sorted) {
    if (cur && r[0] <= cur[1] + 1) cur[1] = Math.max(cur[1], r[1]);
    else {
      if (cur) total += cur[1] - cur[0] + 1;
      cur = [r[0], r[1]];
    }
  }
  return total + (cur ? cur[1] - cur[0] + 1 : 0);
}

/** The public IPv4 addresses the non-DNS-only rules' ipBlocks allow (each block minus its `except`). */
export function publicV4Allowed(rules: readonly EgressRule[]): number {
  const allowed: Range[] = [];
  for (const r of rules) {
    if (onlyDns(r)) continue;
    for (const peer of r.to ?? []) {
      const block = peer.ipBlock ? v4Range(peer.ipBlock.cidr) : undefined;
      if (!block) continue;
      const except = (peer.ipBlock!.except ?? []).flatMap((c): Range[] => {
        const x = v4Range(c);
        return x ? [x] : [];
      });
      allowed.push(...subtract([block], except));
    }
  }
  return unionSize(subtract(allowed, NON_PUBLIC_V4.map((c) => v4Range(c)!)));
}

export type EgressVerdict =
  | { readonly restricted: true; readonly policies: readonly string[] }
  | { readonly restricted: false; readonly reason: 'no-policy' | 'open-rule'; readonly policies: readonly string[]; readonly openBy?: string };

/** The egress verdict for a pod with these labels in `namespace`, given all policies read. */
export function egressOf(namespace: string, labels: Readonly<Record<string, string>>, policies: readonly NetworkPolicyInfo[]): EgressVerdict {
  const selecting = policies.filter((p) => p.namespace === namespace && governsEgress(p) && selectorMatches(p.podSelector, labels));
  const names = selecting.map((p) => p.name).sort();
  if (selecting.length === 0) return { restricted: false, reason: 'no-policy', policies: [] };
  const open = selecting.find((p) => (p.egress ?? []).some(ruleOpensInternet));
  if (open) return { restricted: false, reason: 'open-rule', policies: names, openBy: open.name };
  // Many narrower blocks can add up to the internet (1.0.0.0/8 … 223.0.0.0/8): judge their union.
  const rules: EgressRule[] = [];
  for (const p of [...selecting].sort((a, b) => a.name.localeCompare(b.name))) {
    rules.push(...(p.egress ?? []));
    if (publicV4Allowed(rules) > MAX_PUBLIC_V4) return { restricted: false, reason: 'open-rule', policies: names, openBy: p.name };
  }
  return { restricted: true, policies: names };
}
