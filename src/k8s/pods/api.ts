/**
 * The Kubernetes API through @kubernetes/client-node (1.4): the connection from `kubernetes.api`
 * (docs/k8s-pods.md), the pod list and Watch for the pod watch (PodSource), and the TokenReview
 * call for `mode: tokenreview` attestors (TokenReviewPost). TLS to the API server is verified
 * against `ca_file` (the in-cluster CA by default); the bearer token is Tessera's own
 * service-account token, re-read from `token_file` every minute by the library (projected
 * tokens rotate).
 */
import { existsSync } from 'node:fs';
import { AuthenticationV1Api, CoreV1Api, KubeConfig, Watch, type V1TokenReview } from '@kubernetes/client-node';
import { fail } from '../../shared/errors.js';
import type { KubernetesApiConfig } from './config.js';
import type { PodSource } from './watcher.js';
import type { TokenReviewPost } from '../../identity/tokenreview.js';

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The client configuration: `url` / `token_file` / `ca_file` where set, else the in-cluster
 * values (KUBERNETES_SERVICE_HOST/PORT, IN_CLUSTER_DIR/token, IN_CLUSTER_DIR/ca.crt). Throws
 * TESSERA_CONFIG_INVALID when no API server is named and Tessera does not run in a pod.
 */
export function kubeConfigFor(api: KubernetesApiConfig, env: NodeJS.ProcessEnv): KubeConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  const url = api.url ?? (host && port ? `https://${host.includes(':') ? `[${host}]` : host}:${port}` : undefined);
  if (!url) throw fail('TESSERA_CONFIG_INVALID', 'kubernetes.api.url is not set and KUBERNETES_SERVICE_HOST/PORT are not in the environment (Tessera is not running in a pod); set kubernetes.api.url, token_file and ca_file');
  const tokenFile = api.token_file ?? `${IN_CLUSTER_DIR}/token`;
  const caFile = api.ca_file ?? (existsSync(`${IN_CLUSTER_DIR}/ca.crt`) ? `${IN_CLUSTER_DIR}/ca.crt` : undefined);
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: 'tessera', server: url.replace(/\/$/, ''), skipTLSVerify: false, ...(caFile ? { caFile } : {}) },
    { name: 'tessera', authProvider: { name: 'tokenFile', config: { tokenFile } } },
  );
  return kc;
}

/** Pods of one namespace, or of all (`namespace` undefined): the list and the Watch. */
export function podSourceFor(kc: KubeConfig, namespace?: string): PodSource {
  const core = kc.makeApiClient(CoreV1Api);
  const watch = new Watch(kc);
  const path = namespace ? `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods` : '/api/v1/pods';
  return {
    async list({ limit, continue: cont }) {
      const params = { limit, ...(cont ? { _continue: cont } : {}) };
      const res = namespace ? await core.listNamespacedPod({ namespace, ...params }) : await core.listPodForAllNamespaces(params);
      return { items: res.items, resourceVersion: res.metadata?.resourceVersion ?? '', continue: res.metadata?._continue };
    },
    async watch(resourceVersion, onEvent, onDone) {
      // Bookmarks keep the resume point fresh; the server ends the stream after timeoutSeconds.
      const controller = await watch.watch(path, { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 }, (type: string, object: unknown) => onEvent(type, object), onDone);
      return { abort: () => controller.abort() };
    },
  };
}

/** POST /apis/authentication.k8s.io/v1/tokenreviews through the generated client. */
export function tokenReviewPostFor(kc: KubeConfig): TokenReviewPost {
  const auth = kc.makeApiClient(AuthenticationV1Api);
  return async (review) => auth.createTokenReview({ body: { apiVersion: review.apiVersion, kind: review.kind, spec: { token: review.spec.token, audiences: [...review.spec.audiences] } } as V1TokenReview });
}
