/**
 * Tessera's own objects: Namespace (Pod Security `restricted` enforced), ServiceAccount,
 * ConfigMap `tessera-config`, the SQLite volume, Deployment, Service, PodDisruptionBudget.
 */
import { createHash } from 'node:crypto';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount } from 'kubernetes-models/v1';
import { NAMES, PATHS, PORTS } from './names.js';
import { labels, selectorLabels } from './labels.js';
import type { ManifestOptions } from './options.js';
import { tesseraContainer, tesseraPodSpec } from './pod.js';
import { tesseraYaml } from './tessera-yaml.js';

export function namespace(o: ManifestOptions): Namespace {
  return new Namespace({
    metadata: {
      name: o.namespace,
      labels: {
        'app.kubernetes.io/part-of': 'tessera',
        // The API server refuses any pod here that breaks the restricted profile (Tessera's own included).
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      },
    },
  });
}

export function serviceAccount(o: ManifestOptions, name: string, component: 'server' | 'injector'): ServiceAccount {
  return new ServiceAccount({ metadata: { name, namespace: o.namespace, labels: labels(o, component) }, automountServiceAccountToken: false });
}

export function configMap(o: ManifestOptions, yamlText: string): ConfigMap {
  return new ConfigMap({ metadata: { name: NAMES.config, namespace: o.namespace, labels: labels(o, 'server') }, data: { [NAMES.configKey]: yamlText } });
}

export function dataVolumeClaim(o: ManifestOptions): PersistentVolumeClaim {
  return new PersistentVolumeClaim({
    metadata: { name: NAMES.data, namespace: o.namespace, labels: labels(o, 'server') },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: o.storageSize } },
      ...(o.storageClass !== undefined ? { storageClassName: o.storageClass } : {}),
    },
  });
}

export function deployment(o: ManifestOptions, yamlText: string): Deployment {
  const sqlite = o.store === 'sqlite';
  return new Deployment({
    metadata: { name: NAMES.deployment, namespace: o.namespace, labels: labels(o, 'server') },
    spec: {
      replicas: o.replicas,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorLabels('server') },
      // SQLite: the old pod stops before the new one opens the volume. PostgreSQL: one new pod
      // at a time, none taken away before its replacement is ready.
      strategy: sqlite ? { type: 'Recreate' } : { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: labels(o, 'server'),
          // A changed tessera.yaml rolls the pods (a ConfigMap change alone does not).
          annotations: { 'tessera.io/config-sha256': createHash('sha256').update(yamlText).digest('hex') },
        },
        spec: {
          ...tesseraPodSpec(o, tesseraContainer(o, ['server', '--config', PATHS.configFile], true)),
          terminationGracePeriodSeconds: 30,
          ...(sqlite
            ? {}
            : { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selectorLabels('server') } }] }),
        },
      },
    },
  });
}

export function service(o: ManifestOptions): Service {
  return new Service({
    metadata: { name: NAMES.service, namespace: o.namespace, labels: labels(o, 'server') },
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels('server'),
      ports: [
        { name: 'api', port: PORTS.api, targetPort: 'api', protocol: 'TCP' },
        ...(o.proxy ? [{ name: 'proxy', port: PORTS.proxy, targetPort: 'proxy', protocol: 'TCP' as const }] : []),
      ],
    },
  });
}

/** Voluntary disruptions (node drains) take one replica at a time. Not for SQLite's single replica: it would block every drain or bound nothing. */
export function disruptionBudget(o: ManifestOptions): PodDisruptionBudget {
  return new PodDisruptionBudget({
    metadata: { name: NAMES.pdb, namespace: o.namespace, labels: labels(o, 'server') },
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels('server') } },
  });
}

/** The server's objects in apply order (Namespace first); the RBAC, policies and injector come from their modules. */
export function serverObjects(o: ManifestOptions): { head: (Namespace | ServiceAccount | ConfigMap | PersistentVolumeClaim)[]; workload: (Deployment | Service | PodDisruptionBudget)[] } {
  const yamlText = tesseraYaml(o);
  return {
    head: [namespace(o), serviceAccount(o, NAMES.serviceAccount, 'server'), configMap(o, yamlText), ...(o.store === 'sqlite' ? [dataVolumeClaim(o)] : [])],
    workload: [deployment(o, yamlText), service(o), ...(o.store === 'postgres' ? [disruptionBudget(o)] : [])],
  };
}
