/**
 * The Kubernetes injector (docs/k8s-injector.md): a mutating admission webhook that gives pods
 * annotated `tessera.io/inject: "true"` a projected token for Tessera, the environment to reach
 * it and, on request, the `tessera agent` sidecar.
 */
export { injectorConfigSchema, DEFAULT_IMAGE, type InjectorConfig } from './config.js';
export { ANNOTATIONS, KNOWN_ANNOTATIONS, parseAnnotations, type InjectionRequest } from './annotations.js';
export { NAMES, PATHS, SIDECAR, type InjectorSettings } from './inject.js';
export { mutatePod, pointerToken } from './mutate.js';
export { API_VERSION, KIND, type AdmissionReviewResponse, type AdmissionResponse } from './review.js';
export { startInjector, MAX_BODY_BYTES, type InjectorServer } from './server.js';
export { loadTls } from './tls.js';
