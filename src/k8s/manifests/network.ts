/**
 * NetworkPolicies. Tessera's pods: ingress on their own ports only; egress to DNS, PostgreSQL
 * (TCP 5432, any address: the database may be outside the cluster), the Kubernetes API (TCP 443
 * and 6443, any address: the API server is not a pod a selector can name) when a feature calls
 * it, the service-account issuer's JWKS port when the attestor is set. Upstreams (MCP servers,
 * proxied APIs) are NOT opened: each deployment adds its own rule (docs/kubernetes.md).
 * An agent namespace: its pods reach Tessera and DNS, nothing else.
 */
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { INetworkPolicyEgressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule';
import { NAMES, PORTS } from './names.js';
import { labels, selectorLabels } from './labels.js';
import type { ManifestOptions } from './options.js';

/** CoreDNS / kube-dns as most distributions label it (docs/kubernetes.md says how to adapt). */
export function dnsEgress(): INetworkPolicyEgressRule {
  return {
    to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
    ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }],
  };
}

function portOf(url: string): number {
  const u = new URL(url);
  return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
}

/** Tessera's own policy: the server and the init Pod (both talk to the database). */
export function tesseraNetworkPolicy(o: ManifestOptions): NetworkPolicy {
  const egress: INetworkPolicyEgressRule[] = [dnsEgress()];
  if (o.store === 'postgres') egress.push({ ports: [{ protocol: 'TCP', port: 5432 }] });
  const apiPorts = o.watchPods || o.tokenreview ? [443, 6443] : [];
  const jwksPort = o.saJwksUrl !== undefined ? [portOf(o.saJwksUrl)] : [];
  const https = [...new Set([...apiPorts, ...jwksPort])];
  if (https.length > 0) egress.push({ ports: https.map((port) => ({ protocol: 'TCP' as const, port })) });
  return new NetworkPolicy({
    metadata: { name: NAMES.networkPolicy, namespace: o.namespace, labels: labels(o, 'server') },
    spec: {
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'tessera' }, matchExpressions: [{ key: 'app.kubernetes.io/component', operator: 'In', values: ['server', 'init'] }] },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ ports: [{ protocol: 'TCP', port: PORTS.api }, ...(o.proxy ? [{ protocol: 'TCP' as const, port: PORTS.proxy }] : [])] }],
      egress,
    },
  });
}

/** The injector: the API server calls it on 8443; it calls nothing but DNS. */
export function injectorNetworkPolicy(o: ManifestOptions): NetworkPolicy {
  return new NetworkPolicy({
    metadata: { name: NAMES.injector, namespace: o.namespace, labels: labels(o, 'injector') },
    spec: {
      podSelector: { matchLabels: selectorLabels('injector') },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ ports: [{ protocol: 'TCP', port: PORTS.webhook }] }],
      egress: [dnsEgress()],
    },
  });
}

/** Every pod of the agent namespace may reach Tessera's API and proxy, and DNS; nothing else (egress). */
export function agentNetworkPolicy(o: ManifestOptions & { agentNamespace: string }): NetworkPolicy {
  return new NetworkPolicy({
    metadata: { name: NAMES.agentEgress, namespace: o.agentNamespace, labels: { 'app.kubernetes.io/part-of': 'tessera', 'app.kubernetes.io/managed-by': 'tessera-k8s-manifests' } },
    spec: {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': o.namespace } }, podSelector: { matchLabels: selectorLabels('server') } }],
          ports: [{ protocol: 'TCP', port: PORTS.api }, ...(o.proxy ? [{ protocol: 'TCP' as const, port: PORTS.proxy }] : [])],
        },
        dnsEgress(),
      ],
    },
  });
}
