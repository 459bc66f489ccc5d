export { podsConfigSchema, kubernetesApiSchema, type KubernetesApiConfig } from './config.js';
export { createPodRegistry, POD_WATCH_ACTOR, type PodRegistry, type PodRef, type PodRevokeCause } from './registry.js';
export { createPodWatcher, type PodWatcher, type PodSource, type PodWatchStatus } from './watcher.js';
// The API adapter (./api.js) is not re-exported: it loads @kubernetes/client-node (≈ 14 MB of
// module source), which the server imports only when kubernetes.watch_pods or a tokenreview
// attestor uses it (src/main.ts; docs/adr/0290-server-memory-lazy-kubernetes-client.md).
