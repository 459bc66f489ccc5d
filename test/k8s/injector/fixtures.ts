/**
 * AdmissionReview objects shaped as the Kubernetes API server sends them to a mutating webhook
 * (admission.k8s.io/v1, "Dynamic Admission Control": request uid, kind/resource and their
 * request* twins, userInfo, options, dryRun), with Pods as they look at that point: after
 * defaulting (imagePullPolicy, terminationMessagePath, dnsPolicy, restartPolicy, schedulerName,
 * tolerations…) and after the built-in ServiceAccount admission plugin, which sets
 * `serviceAccountName: default` and adds the `kube-api-access-*` projected volume and its mount
 * unless `automountServiceAccountToken: false`. No API server can run on these machines; these
 * fixtures stand in for what it sends (shapes copied from `kubectl get pod -o json` output and
 * the webhook request example in the Kubernetes documentation).
 */
import { randomUUID } from 'node:crypto';

type Json = Record<string, unknown>;

/** A container after API-server defaulting. */
export function container(name: string, extra: Json = {}): Json {
  return {
    name,
    image: `registry.example.com/agents/${name}:1.4.2`,
    imagePullPolicy: 'IfNotPresent',
    resources: {},
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    ...extra,
  };
}

const KUBE_API_ACCESS = 'kube-api-access-8x2kq';

/** The volume the ServiceAccount admission plugin adds (Kubernetes ≥ 1.22 bound tokens). */
function kubeApiAccessVolume(): Json {
  return {
    name: KUBE_API_ACCESS,
    projected: {
      defaultMode: 420,
      sources: [
        { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}

const kubeApiMount = { name: KUBE_API_ACCESS, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true };

export interface PodShape {
  name?: string;
  generateName?: string;
  namespace?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  containers: Json[];
  initContainers?: Json[];
  volumes?: Json[];
  serviceAccountName?: string | null;
  automount?: boolean;
  hostNetwork?: boolean;
  ownerReferences?: Json[];
}

/** A Pod as admission sees it: defaulted, with the ServiceAccount plugin's volume unless automount is off. */
export function pod(shape: PodShape): Json {
  const automount = shape.automount !== false;
  const withApiMount = (c: Json): Json => (automount ? { ...c, volumeMounts: [...((c.volumeMounts as Json[] | undefined) ?? []), kubeApiMount] } : c);
  const volumes = [...(shape.volumes ?? []), ...(automount ? [kubeApiAccessVolume()] : [])];
  const sa = shape.serviceAccountName === null ? {} : { serviceAccountName: shape.serviceAccountName ?? 'default', serviceAccount: shape.serviceAccountName ?? 'default' };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(shape.name !== undefined ? { name: shape.name } : {}),
      ...(shape.generateName !== undefined ? { generateName: shape.generateName } : {}),
      namespace: shape.namespace ?? 'agents',
      ...(shape.labels ? { labels: shape.labels } : {}),
      ...(shape.annotations ? { annotations: shape.annotations } : {}),
      ...(shape.ownerReferences ? { ownerReferences: shape.ownerReferences } : {}),
    },
    spec: {
      ...(volumes.length > 0 ? { volumes } : {}),
      ...(shape.initContainers ? { initContainers: shape.initContainers.map(withApiMount) } : {}),
      containers: shape.containers.map(withApiMount),
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: shape.hostNetwork ? 'ClusterFirstWithHostNet' : 'ClusterFirst',
      ...sa,
      ...(shape.automount === false ? { automountServiceAccountToken: false } : {}),
      ...(shape.hostNetwork ? { hostNetwork: true } : {}),
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  };
}

/** The AdmissionReview the API server POSTs for `operation` on `object`. */
export function review(object: unknown, opts: { operation?: string; dryRun?: boolean; uid?: string; namespace?: string; kind?: string; resource?: string; subResource?: string; user?: string } = {}): Json {
  const kind = { group: '', version: 'v1', kind: opts.kind ?? 'Pod' };
  const resource = { group: '', version: 'v1', resource: opts.resource ?? 'pods' };
  const meta = (object as { metadata?: { name?: string; namespace?: string } } | null)?.metadata;
  const operation = opts.operation ?? 'CREATE';
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: opts.uid ?? randomUUID(),
      kind,
      resource,
      ...(opts.subResource ? { subResource: opts.subResource } : {}),
      requestKind: kind,
      requestResource: resource,
      ...(meta?.name ? { name: meta.name } : {}),
      namespace: opts.namespace ?? meta?.namespace ?? 'agents',
      operation,
      userInfo: { username: opts.user ?? 'system:serviceaccount:kube-system:replicaset-controller', uid: '3c5f1c9e-6b8e-4a53-9a3e-0e1c2b7d9f10', groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'] },
      object,
      oldObject: operation === 'UPDATE' ? object : null,
      dryRun: opts.dryRun ?? false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: operation === 'UPDATE' ? 'UpdateOptions' : 'CreateOptions' },
    },
  };
}

export const INJECT = { 'tessera.io/inject': 'true' } as const;
export const AGENT = { 'tessera.io/inject': 'true', 'tessera.io/agent': 'true' } as const;

/** A bare pod (`kubectl run`-style, a name, one container) asking for everything. */
export function barePod(annotations: Record<string, string> = { ...AGENT, 'tessera.io/proxy': 'true' }, extra: Partial<PodShape> = {}): Json {
  return pod({ name: 'support-agent', annotations, serviceAccountName: 'support-agent', containers: [container('agent', { args: ['--serve'] })], ...extra });
}

/** A pod made by a Deployment's ReplicaSet: generateName, no name, two containers with env and mounts. */
export function deploymentPod(annotations: Record<string, string> = AGENT): Json {
  return pod({
    generateName: 'patient-reader-7d9c8b6f5-',
    labels: { app: 'patient-reader', 'pod-template-hash': '7d9c8b6f5' },
    annotations,
    serviceAccountName: 'patient-reader',
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'patient-reader-7d9c8b6f5', uid: '0b9f3d1e-8a2f-4c55-b0a4-6f6a2d1c9e77', controller: true, blockOwnerDeletion: true }],
    volumes: [{ name: 'scratch', emptyDir: {} }, { name: 'config', configMap: { name: 'patient-reader-config', defaultMode: 420 } }],
    containers: [
      container('reader', {
        env: [{ name: 'LOG_LEVEL', value: 'info' }, { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }],
        volumeMounts: [{ name: 'scratch', mountPath: '/tmp' }, { name: 'config', mountPath: '/etc/reader', readOnly: true }],
        ports: [{ containerPort: 8080, name: 'http', protocol: 'TCP' }],
      }),
      container('log-shipper', { volumeMounts: [{ name: 'scratch', mountPath: '/logs', readOnly: true }] }),
    ],
  });
}

/** A pod with an init container (migrations) and a user's own native sidecar. */
export function initPod(annotations: Record<string, string> = AGENT): Json {
  return pod({
    name: 'indexer',
    annotations,
    serviceAccountName: 'indexer',
    initContainers: [container('migrate', { env: [{ name: 'DB_HOST', value: 'postgres.data.svc' }] }), container('istio-like-proxy', { restartPolicy: 'Always' })],
    containers: [container('indexer')],
  });
}
