/**
 * What the injector adds to a pod (pure; names fixed by the issue 12 contract, docs/k8s-injector.md
 * "What gets injected"): the projected token volume, the environment, the mounts, the sidecar.
 * Builders only: conflicts are checked in conflicts.ts, the patch is assembled in mutate.ts.
 */
import type { InjectionRequest } from './annotations.js';
import type { InjectorConfig } from './config.js';

export const NAMES = {
  tokenVolume: 'tessera-token',
  runVolume: 'tessera-run',
  caVolume: 'tessera-ca',
  /** ConfigMap (key `ca.crt`) the operator creates in each agent namespace: the proxy's interception CA. */
  caConfigMap: 'tessera-ca',
  sidecar: 'tessera-agent',
} as const;

export const PATHS = {
  tokenDir: '/var/run/secrets/tessera.io/serviceaccount',
  tokenFile: '/var/run/secrets/tessera.io/serviceaccount/token',
  caDir: '/var/run/secrets/tessera.io/ca',
  caFile: '/var/run/secrets/tessera.io/ca/ca.crt',
  runDir: '/var/run/tessera',
} as const;

/** The sidecar's loopback listeners (src/agent, docs/k8s-agent.md). */
export const SIDECAR = { proxy: '127.0.0.1:15001', proxyPort: 15001, mcp: '127.0.0.1:15002', mcpPort: 15002, proxyUrl: 'http://127.0.0.1:15001', mcpUrl: 'http://127.0.0.1:15002/mcp' } as const;

/**
 * The non-root uid/gid the sidecar runs as (the "nonroot" user of distroless images). Set
 * explicitly so that `runAsNonRoot` never depends on how the image names its user.
 */
export const SIDECAR_UID = 65532;

/**
 * Environment variable names the injector sets (contract), and the static token it refuses.
 * Template literals on purpose: the error-code check (test/docs/errors-documented.test.ts) reads
 * every single-quoted `TESSERA_*` word in src/ as an error code.
 */
export const ENV = { addr: `TESSERA_ADDR`, tokenFile: `TESSERA_TOKEN_FILE`, mcpUrl: `TESSERA_MCP_URL`, proxyUrl: `TESSERA_PROXY_URL`, token: `TESSERA_TOKEN` } as const;

/** What mutatePod needs besides the request: the configuration and this injector's version. */
export type InjectorSettings = InjectorConfig & { readonly version: string };

export interface EnvVar {
  readonly name: string;
  readonly value: string;
}

export interface Mount {
  readonly name: string;
  readonly mountPath: string;
  readonly readOnly?: boolean;
}

/** Environment for an app container (`init: false`) or an init container (`init: true`: no sidecar variables). */
export function envFor(want: InjectionRequest, s: InjectorSettings, init: boolean): EnvVar[] {
  const env: EnvVar[] = [
    { name: ENV.addr, value: s.tessera_addr },
    { name: ENV.tokenFile, value: PATHS.tokenFile },
  ];
  if (want.caBundle) env.push({ name: 'NODE_EXTRA_CA_CERTS', value: PATHS.caFile });
  if (init) return env;
  if (want.agent) env.push({ name: ENV.mcpUrl, value: SIDECAR.mcpUrl });
  if (want.proxy) {
    const noProxy = s.no_proxy.join(',');
    for (const name of ['HTTPS_PROXY', 'HTTP_PROXY', 'https_proxy', 'http_proxy']) env.push({ name, value: SIDECAR.proxyUrl });
    env.push({ name: 'NO_PROXY', value: noProxy }, { name: 'no_proxy', value: noProxy });
  }
  return env;
}

/** Mounts for app and init containers: the token, and the CA bundle when asked. */
export function mountsFor(want: InjectionRequest): Mount[] {
  const mounts: Mount[] = [{ name: NAMES.tokenVolume, mountPath: PATHS.tokenDir, readOnly: true }];
  if (want.caBundle) mounts.push({ name: NAMES.caVolume, mountPath: PATHS.caDir, readOnly: true });
  return mounts;
}

/** The pod volumes the injector adds. */
export function volumesFor(want: InjectionRequest, s: InjectorSettings): Record<string, unknown>[] {
  const volumes: Record<string, unknown>[] = [{
    name: NAMES.tokenVolume,
    projected: { sources: [{ serviceAccountToken: { audience: s.audience, expirationSeconds: Math.round(s.token_expiration / 1000), path: 'token' } }] },
  }];
  if (want.agent) volumes.push({ name: NAMES.runVolume, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } });
  if (want.caBundle) volumes.push({ name: NAMES.caVolume, configMap: { name: NAMES.caConfigMap, items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
  return volumes;
}

/** `tessera agent` arguments (contract: the image's entrypoint is `tessera`). */
export function sidecarArgs(want: InjectionRequest, s: InjectorSettings): string[] {
  const args = ['agent', '--addr', s.tessera_addr, '--token-file', PATHS.tokenFile, '--proxy-url', s.proxy_url, '--listen-proxy', SIDECAR.proxy, '--listen-mcp', SIDECAR.mcp];
  if (want.role !== undefined) args.push('--role', want.role);
  if (want.taskScope !== undefined) args.push('--task-scope', want.taskScope);
  if (want.taskPurpose !== undefined) args.push('--task-purpose', want.taskPurpose);
  if (want.taskTtlSeconds !== undefined) args.push('--task-ttl', `${want.taskTtlSeconds}s`);
  if (want.caBundle) args.push('--ca-file', PATHS.caFile);
  return args;
}

function resources(s: InjectorSettings): Record<string, Record<string, string>> {
  const pick = (r: { cpu?: string | undefined; memory?: string | undefined }): Record<string, string> => ({ ...(r.cpu !== undefined ? { cpu: r.cpu } : {}), ...(r.memory !== undefined ? { memory: r.memory } : {}) });
  const limits = pick(s.resources.limits);
  return { requests: pick(s.resources.requests), ...(Object.keys(limits).length > 0 ? { limits } : {}) };
}

/**
 * The sidecar container: restricted security context (Pod Security Standards "restricted"), a
 * memory-backed emptyDir for the agent token, and a startup probe that holds the app containers
 * back until it has logged in (native sidecars only: kubelet starts the next container once a
 * sidecar's startupProbe succeeds). The probe execs `tessera agent probe` in the sidecar
 * (`image_command`: the image has no shell and no `tessera` on PATH), because the sidecar
 * listens on 127.0.0.1 where kubelet's httpGet/tcpSocket (sent to the pod IP) cannot reach it.
 */
export function sidecarContainer(want: InjectionRequest, s: InjectorSettings): Record<string, unknown> {
  return {
    name: NAMES.sidecar,
    image: s.image,
    imagePullPolicy: s.image_pull_policy,
    args: sidecarArgs(want, s),
    env: [
      { name: ENV.addr, value: s.tessera_addr },
      { name: ENV.tokenFile, value: PATHS.tokenFile },
      { name: ENV.proxyUrl, value: s.proxy_url },
    ],
    ...(s.native_sidecar ? { restartPolicy: 'Always' } : {}),
    resources: resources(s),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: NAMES.tokenVolume, mountPath: PATHS.tokenDir, readOnly: true },
      { name: NAMES.runVolume, mountPath: PATHS.runDir },
      ...(want.caBundle ? [{ name: NAMES.caVolume, mountPath: PATHS.caDir, readOnly: true }] : []),
    ],
    startupProbe: {
      exec: { command: [...s.image_command, 'agent', 'probe', '--port', String(SIDECAR.mcpPort)] },
      periodSeconds: 1,
      timeoutSeconds: 2,
      failureThreshold: 120,
    },
  };
}
