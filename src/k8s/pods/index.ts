export { podsConfigSchema, kubernetesApiSchema, type KubernetesApiConfig } from './config.js';
export { createPodRegistry, POD_WATCH_ACTOR, type PodRegistry, type PodRef, type PodRevokeCause } from './registry.js';
export { createPodWatcher, type PodWatcher, type PodSource, type PodWatchStatus } from './watcher.js';
export { kubeConfigFor, podSourceFor, tokenReviewPostFor } from './api.js';
