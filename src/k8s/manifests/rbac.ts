/**
 * The API rights of Tessera's ServiceAccount, least privilege: nothing by default; pods
 * get/list/watch cluster-wide with --watch-pods (pod-deletion revocation, docs/k8s-pods.md);
 * the built-in `system:auth-delegator` (TokenReview create) with --tokenreview. The injector's
 * ServiceAccount has no rights at all.
 */
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { NAMES } from './names.js';
import { labels } from './labels.js';
import type { ManifestOptions } from './options.js';

const subject = (o: ManifestOptions) => [{ kind: 'ServiceAccount', name: NAMES.serviceAccount, namespace: o.namespace }];

export function rbacObjects(o: ManifestOptions): (ClusterRole | ClusterRoleBinding)[] {
  const out: (ClusterRole | ClusterRoleBinding)[] = [];
  if (o.watchPods) {
    out.push(
      new ClusterRole({
        metadata: { name: NAMES.clusterRole, labels: labels(o, 'server') },
        rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
      }),
      new ClusterRoleBinding({
        metadata: { name: NAMES.clusterRole, labels: labels(o, 'server') },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: NAMES.clusterRole },
        subjects: subject(o),
      }),
    );
  }
  if (o.tokenreview) {
    out.push(new ClusterRoleBinding({
      metadata: { name: NAMES.authDelegatorBinding, labels: labels(o, 'server') },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
      subjects: subject(o),
    }));
  }
  return out;
}
