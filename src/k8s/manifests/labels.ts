/** Recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/). */
import type { ManifestOptions } from './options.js';

export type Component = 'server' | 'init' | 'injector';

/** Selector labels: stable across versions (a Deployment's selector cannot change). */
export function selectorLabels(component: Component): Record<string, string> {
  return { 'app.kubernetes.io/name': 'tessera', 'app.kubernetes.io/component': component };
}

/** Every object's labels: the selector's, the version, and who manages it. */
export function labels(o: ManifestOptions, component: Component): Record<string, string> {
  return { ...selectorLabels(component), 'app.kubernetes.io/part-of': 'tessera', 'app.kubernetes.io/version': o.version, 'app.kubernetes.io/managed-by': 'tessera-k8s-manifests' };
}
