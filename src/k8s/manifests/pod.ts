/**
 * The pod of Tessera's server (the Deployment's template) and of the one-off `tessera init` Pod:
 * the image's entrypoint is `tessera`, so `args` choose the command. Restricted Pod Security
 * Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted):
 * non-root numeric user, no privilege escalation, every capability dropped, RuntimeDefault
 * seccomp, read-only root filesystem — the only writable paths are the data volume and /tmp.
 */
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';
import type { IPodSecurityContext } from 'kubernetes-models/v1/PodSecurityContext';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import { ENV, NAMES, NONROOT_UID, PATHS, PORTS } from './names.js';
import type { ManifestOptions } from './options.js';

/** The pod-level part of the restricted profile; fsGroup makes the data volume writable by the user. */
export function podSecurityContext(): IPodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: NONROOT_UID,
    runAsGroup: NONROOT_UID,
    fsGroup: NONROOT_UID,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** The container-level part of the restricted profile. */
export function containerSecurityContext(): ISecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: NONROOT_UID,
    runAsGroup: NONROOT_UID,
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/**
 * The configuration directory: tessera.yaml and the operator's `tessera-policies` ConfigMap
 * (optional: without it no policy exists and everything is denied) projected into one read-only
 * directory, so nothing is mounted inside a read-only ConfigMap mount.
 */
export function configVolume(extra: NonNullable<IVolume['projected']>['sources'] = []): IVolume {
  return {
    name: 'config',
    projected: {
      defaultMode: 0o444,
      sources: [
        { configMap: { name: NAMES.config, items: [{ key: NAMES.configKey, path: NAMES.configKey }] } },
        { configMap: { name: NAMES.policies, optional: true } },
        ...(extra ?? []),
      ],
    },
  };
}

/** The server's volumes: configuration, data (the SQLite PVC, or an emptyDir beside PostgreSQL), /tmp. */
export function serverVolumes(o: ManifestOptions): IVolume[] {
  return [
    configVolume(),
    o.store === 'sqlite'
      ? { name: 'data', persistentVolumeClaim: { claimName: NAMES.data } }
      // With PostgreSQL the data directory holds nothing durable; it must exist (`tessera server` checks).
      : { name: 'data', emptyDir: { sizeLimit: '64Mi' } },
    // SQLite's temporary files and Node's os.tmpdir(): the root filesystem is read-only.
    { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
  ];
}

/** Secrets as environment variables: files would be group-readable with fsGroup (mode 0440), which Tessera refuses for a key. */
export function serverEnv(o: ManifestOptions): IEnvVar[] {
  return [
    { name: ENV.masterKey, valueFrom: { secretKeyRef: { name: NAMES.masterKeySecret, key: NAMES.masterKeyKey } } },
    ...(o.store === 'postgres' ? [{ name: ENV.databaseUrl, valueFrom: { secretKeyRef: { name: NAMES.databaseSecret, key: NAMES.databaseKey } } }] : []),
    { name: 'TMPDIR', value: PATHS.tmp },
  ];
}

/** The tessera container running `args` (`server …` or `init …`). */
export function tesseraContainer(o: ManifestOptions, args: string[], withProbes: boolean): IContainer {
  const memory = { requests: { cpu: o.cpu, memory: o.memory }, limits: { memory: o.memory } };
  return {
    name: 'tessera',
    image: o.image,
    imagePullPolicy: 'IfNotPresent',
    args,
    env: serverEnv(o),
    ...(withProbes
      ? {
          ports: [
            { name: 'api', containerPort: PORTS.api, protocol: 'TCP' },
            ...(o.proxy ? [{ name: 'proxy', containerPort: PORTS.proxy, protocol: 'TCP' as const }] : []),
          ],
          // Up to 2 minutes to start (migrations on a new version), then liveness takes over.
          startupProbe: { httpGet: { path: '/healthz', port: 'api' }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 60 },
          livenessProbe: { httpGet: { path: '/healthz', port: 'api' }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
          readinessProbe: { httpGet: { path: '/readyz', port: 'api' }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
        }
      : {}),
    resources: memory,
    securityContext: containerSecurityContext(),
    volumeMounts: [
      { name: 'config', mountPath: PATHS.configDir, readOnly: true },
      { name: 'data', mountPath: PATHS.dataDir },
      { name: 'tmp', mountPath: PATHS.tmp },
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** The pod spec both the server and the init Pod use; the API token is mounted only when a feature calls the API. */
export function tesseraPodSpec(o: ManifestOptions, container: IContainer): IPodSpec {
  return {
    serviceAccountName: NAMES.serviceAccount,
    automountServiceAccountToken: o.watchPods || o.tokenreview,
    enableServiceLinks: false,
    securityContext: podSecurityContext(),
    containers: [container],
    volumes: serverVolumes(o),
  };
}
