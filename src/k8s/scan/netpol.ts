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
 * `except`, on any port but DNS (53) alone. Pure.
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
  return { restricted: true, policies: names };
}
