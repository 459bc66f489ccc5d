/**
 * `kubernetes.watch_pods`, `kubernetes.pod_revocation_ttl` and `kubernetes.api` (docs/k8s-pods.md).
 * `api` is shared with the jwt attestor's `mode: tokenreview`; every field defaults to the
 * in-cluster values (KUBERNETES_SERVICE_HOST/PORT, /var/run/secrets/kubernetes.io/serviceaccount).
 */
import { z } from 'zod';
import { durationBetween } from '../../config/fields.js';

export const kubernetesApiSchema = z.object({
  /** The API server, e.g. https://10.96.0.1:443; default from KUBERNETES_SERVICE_HOST/PORT. */
  url: z.url().optional(),
  /** Tessera's own service-account token (re-read every minute: projected tokens rotate). */
  token_file: z.string().min(1).optional(),
  /** The cluster CA bundle (PEM) the API server's certificate must chain to. */
  ca_file: z.string().min(1).optional(),
  /** Watch pods of this namespace only (RBAC: a Role instead of a ClusterRole); default all namespaces. */
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a Kubernetes namespace name').optional(),
}).strict();

export type KubernetesApiConfig = z.output<typeof kubernetesApiSchema>;

export const podsConfigSchema = z.object({
  watch_pods: z.boolean().default(false),
  /** How long a deleted pod's revocation lasts at least (its service-account tokens must have expired by then). */
  pod_revocation_ttl: durationBetween(60_000, 366 * 86_400_000).prefault('24h'),
  api: kubernetesApiSchema.prefault({}),
});
