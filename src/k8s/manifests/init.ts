/**
 * The one-off Pod `tessera-init` that runs `tessera init` in the cluster (schema, first admin
 * token, proxy CA) with the server's configuration, Secrets and volumes. It prints the first
 * admin token to its log once; docs/kubernetes.md says to read it, replace it with a new
 * operator token, revoke it and delete the Pod.
 */
import { Pod } from 'kubernetes-models/v1';
import { NAMES, PATHS } from './names.js';
import { labels } from './labels.js';
import type { ManifestOptions } from './options.js';
import { tesseraContainer, tesseraPodSpec } from './pod.js';

export function initPod(o: ManifestOptions): Pod {
  return new Pod({
    metadata: { name: NAMES.init, namespace: o.namespace, labels: labels(o, 'init') },
    spec: {
      ...tesseraPodSpec(o, tesseraContainer(o, ['init', '--config', PATHS.configFile], false)),
      restartPolicy: 'Never',
      activeDeadlineSeconds: 600,
      // init never calls the Kubernetes API.
      automountServiceAccountToken: false,
    },
  });
}
