/**
 * The injector (docs/k8s-injector.md): `tessera injector` behind Service `tessera-injector`
 * (443 → 8443) and the MutatingWebhookConfiguration of the K8S contract — pods, CREATE only,
 * v1 reviews, no side effects, 5 s, failurePolicy Fail, only in namespaces labelled
 * `tessera.io/injection: enabled` and never in the system namespaces or Tessera's own.
 * Two replicas and a PDB: with failurePolicy Fail an injector outage blocks pod creation in the
 * opted-in namespaces, so one replica must stay up through a drain.
 */
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Service, ServiceAccount } from 'kubernetes-models/v1';
import { INJECTION_LABEL, NAMES, PATHS, PORTS, SYSTEM_NAMESPACES } from './names.js';
import { labels, selectorLabels } from './labels.js';
import type { ManifestOptions } from './options.js';
import { configVolume, containerSecurityContext, podSecurityContext } from './pod.js';
import { serviceAccount } from './server.js';
import { injectorNetworkPolicy } from './network.js';
import type { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';

/** The injector container's arguments (the image's entrypoint is `tessera`). */
export const INJECTOR_ARGS = ['injector', '--config', PATHS.configFile] as const;
/** The webhook's name in the configuration (a fully qualified name, as the API requires). */
export const WEBHOOK_NAME = 'inject.tessera.io';

function injectorDeployment(o: ManifestOptions): Deployment {
  return new Deployment({
    metadata: { name: NAMES.injector, namespace: o.namespace, labels: labels(o, 'injector') },
    spec: {
      replicas: 2,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorLabels('injector') },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: labels(o, 'injector') },
        spec: {
          serviceAccountName: NAMES.injector,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: podSecurityContext(),
          // The TLS Secret joins the configuration directory as injector-tls/ (no mount inside a read-only mount).
          volumes: [configVolume([{ secret: { name: NAMES.injectorTls, items: [{ key: 'tls.crt', path: 'injector-tls/tls.crt' }, { key: 'tls.key', path: 'injector-tls/tls.key', mode: 0o400 }] } }])],
          containers: [{
            name: 'injector',
            image: o.image,
            imagePullPolicy: 'IfNotPresent',
            args: [...INJECTOR_ARGS],
            ports: [{ name: 'https', containerPort: PORTS.webhook, protocol: 'TCP' }],
            // GET /healthz over HTTPS (the kubelet does not verify the certificate): a listening
            // socket whose TLS or handler is broken is not ready, unlike with a tcpSocket probe.
            readinessProbe: { httpGet: { path: '/healthz', port: 'https', scheme: 'HTTPS' }, periodSeconds: 5, failureThreshold: 2 },
            livenessProbe: { httpGet: { path: '/healthz', port: 'https', scheme: 'HTTPS' }, periodSeconds: 10, failureThreshold: 3 },
            resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '128Mi' } },
            securityContext: containerSecurityContext(),
            volumeMounts: [{ name: 'config', mountPath: PATHS.configDir, readOnly: true }],
            terminationMessagePolicy: 'FallbackToLogsOnError',
          }],
        },
      },
    },
  });
}

function injectorService(o: ManifestOptions): Service {
  return new Service({
    metadata: { name: NAMES.injector, namespace: o.namespace, labels: labels(o, 'injector') },
    spec: { type: 'ClusterIP', selector: selectorLabels('injector'), ports: [{ name: 'https', port: PORTS.webhookService, targetPort: 'https', protocol: 'TCP' }] },
  });
}

function injectorBudget(o: ManifestOptions): PodDisruptionBudget {
  return new PodDisruptionBudget({
    metadata: { name: NAMES.injector, namespace: o.namespace, labels: labels(o, 'injector') },
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels('injector') } },
  });
}

/** The webhook; `caBundle` from --injector-ca-file, else left out (filled in later: docs/k8s-injector.md). */
export function webhookConfiguration(o: ManifestOptions): MutatingWebhookConfiguration {
  return new MutatingWebhookConfiguration({
    metadata: { name: NAMES.injector, labels: labels(o, 'injector') },
    webhooks: [{
      name: WEBHOOK_NAME,
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      timeoutSeconds: 5,
      failurePolicy: 'Fail',
      reinvocationPolicy: 'Never',
      matchPolicy: 'Equivalent',
      clientConfig: {
        service: { name: NAMES.injector, namespace: o.namespace, path: '/mutate', port: PORTS.webhookService },
        ...(o.injectorCaPem !== undefined ? { caBundle: Buffer.from(o.injectorCaPem).toString('base64') } : {}),
      },
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
      namespaceSelector: {
        matchLabels: { [INJECTION_LABEL]: 'enabled' },
        matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...SYSTEM_NAMESPACES, o.namespace] }],
      },
    }],
  });
}

/** The injector's objects; the webhook configuration comes last (applied once the injector exists). */
export function injectorObjects(o: ManifestOptions): { workload: (ServiceAccount | Deployment | Service | PodDisruptionBudget | NetworkPolicy)[]; webhook: MutatingWebhookConfiguration } {
  return {
    workload: [serviceAccount(o, NAMES.injector, 'injector'), injectorDeployment(o), injectorService(o), injectorBudget(o), injectorNetworkPolicy(o)],
    webhook: webhookConfiguration(o),
  };
}
