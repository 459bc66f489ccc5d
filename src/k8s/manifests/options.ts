/**
 * The options of `tessera k8s manifests` (docs/kubernetes.md "Options"), checked once: every bad
 * value is a stable error naming the option (TESSERA_K8S_MANIFEST_*), before anything is generated.
 * Pure: the CLI reads files (the injector CA) and passes their text.
 */
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { TesseraError } from '../../shared/errors.js';
import { SYSTEM_NAMESPACES } from './names.js';

/** What the command prints: Tessera itself, the one-off `tessera init` Pod, or an agent namespace's egress policy. */
export type ManifestPart = 'server' | 'init' | 'agent-network-policy';

/** Options as the command line gives them (strings, flags); `injectorCaPem` is the CA file's text. */
export interface ManifestInput {
  readonly namespace?: string;
  readonly image?: string;
  readonly store?: string;
  readonly replicas?: string | number;
  readonly storageSize?: string;
  readonly storageClass?: string;
  readonly injector?: boolean;
  readonly injectorCaPem?: string;
  readonly watchPods?: boolean;
  readonly tokenreview?: boolean;
  readonly proxy?: boolean;
  readonly cpu?: string;
  readonly memory?: string;
  readonly saIssuer?: string;
  readonly saJwksUrl?: string;
  /** Print the one-off init Pod instead of the server objects. */
  readonly init?: boolean;
  /** Print the egress NetworkPolicy of this agent namespace instead of the server objects. */
  readonly agentNamespace?: string;
}

/** Checked options, defaults applied. */
export interface ManifestOptions {
  readonly part: ManifestPart;
  readonly namespace: string;
  readonly image: string;
  readonly store: 'postgres' | 'sqlite';
  readonly replicas: number;
  readonly storageSize: string;
  readonly storageClass?: string;
  readonly injector: boolean;
  /** The webhook's CA bundle (PEM certificates), for `caBundle`; absent = filled in later (docs). */
  readonly injectorCaPem?: string;
  readonly watchPods: boolean;
  readonly tokenreview: boolean;
  readonly proxy: boolean;
  readonly cpu: string;
  readonly memory: string;
  /**
   * The cluster's service-account issuer and its JWKS: together they add the `kubernetes` attestor
   * (`mode: jwks`). With `tokenreview` the issuer alone (default DEFAULT_SA_ISSUER) and no JWKS:
   * the attestor is `mode: tokenreview`.
   */
  readonly saIssuer?: string;
  readonly saJwksUrl?: string;
  readonly agentNamespace?: string;
  /** The Tessera version the labels name (package.json). */
  readonly version: string;
}

/**
 * The service-account issuer most clusters use (kubeadm, kind, k3s: `--service-account-issuer`
 * default). With --tokenreview it only selects the attestor by the tokens' `iss`; the API server
 * validates them. Managed clusters (EKS, GKE, AKS) have their own: give --sa-issuer.
 */
export const DEFAULT_SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** RFC 1123 label: what Kubernetes accepts as a namespace name. */
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
/** An image reference: registry/path:tag or @sha256:digest; no spaces, no shell characters. */
const IMAGE = /^[a-z0-9][a-zA-Z0-9._\-/:@]{0,510}$/;
/** CPU: cores (`1`, `0.5`) or millicores (`250m`). */
const CPU = /^(?:[1-9]\d{0,3}(?:\.\d{1,3})?|0\.\d{1,3}|[1-9]\d{0,6}m)$/;
/** Memory and storage: bytes with a binary or decimal suffix (`512Mi`, `1Gi`, `2G`). */
const BYTES = /^[1-9]\d{0,6}(?:Ki|Mi|Gi|Ti|K|M|G|T)?$/;
/** A Kubernetes object name (StorageClass). */
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

function invalid(option: string, message: string): TesseraError {
  return new TesseraError('TESSERA_K8S_MANIFEST_OPTION_INVALID', `${option}: ${message}`, { option });
}

function conflict(message: string): TesseraError {
  return new TesseraError('TESSERA_K8S_MANIFEST_OPTION_CONFLICT', message);
}

function namespaceOf(option: string, value: string): string {
  if (!DNS_LABEL.test(value)) throw invalid(option, `expected a namespace name (lowercase letters, digits and "-", at most 63), got ${JSON.stringify(value)}`);
  if ((SYSTEM_NAMESPACES as readonly string[]).includes(value)) throw invalid(option, `${value} is a system namespace; choose a namespace of its own`);
  return value;
}

function matching(option: string, value: string | undefined, re: RegExp, expected: string): string | undefined {
  if (value === undefined) return undefined;
  if (!re.test(value)) throw invalid(option, `expected ${expected}, got ${JSON.stringify(value.slice(0, 80))}`);
  return value;
}

function httpsUrl(option: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const r = z.url({ protocol: /^https$/ }).safeParse(value);
  if (!r.success || new URL(value).username || new URL(value).password) throw invalid(option, `expected an https:// URL without user:password@, got ${JSON.stringify(value.slice(0, 120))}`);
  return value;
}

function replicasOf(value: string | number | undefined, store: 'postgres' | 'sqlite'): number {
  if (value === undefined) return store === 'postgres' ? 2 : 1;
  const n = typeof value === 'number' ? value : /^\d{1,3}$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 100) throw invalid('--replicas', `expected a whole number from 1 to 100, got ${JSON.stringify(String(value))}`);
  if (store === 'sqlite' && n > 1) {
    throw new TesseraError('TESSERA_K8S_MANIFEST_SQLITE_REPLICAS', `--replicas ${n} with --store sqlite: the embedded SQLite database lives on one volume that one process writes; run one replica, or use --store postgres for several`);
  }
  return n;
}

/** The PEM text holds at least one certificate and nothing else that is not one; returned as is. */
function caBundleOf(pem: string | undefined): string | undefined {
  if (pem === undefined) return undefined;
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  const bad = (reason: string): TesseraError => new TesseraError('TESSERA_K8S_MANIFEST_CA_INVALID', `--injector-ca-file: ${reason}; give the PEM CA certificate that signed the injector's serving certificate (docs/k8s-injector.md)`);
  if (blocks.length === 0) throw bad('holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  if (/PRIVATE KEY-----/.test(pem)) throw bad('holds a private key; the bundle is public, give the certificate only');
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch {
      throw bad('holds a block that is not a valid X.509 certificate');
    }
  }
  return `${blocks.join('\n')}\n`;
}

/**
 * Checks `input` (defaults: namespace `tessera`, image `ghcr.io/tessera-broker/tessera:<version>`,
 * store postgres with 2 replicas, proxy on, 250m CPU, 512Mi memory, 1Gi SQLite volume).
 * Throws TESSERA_K8S_MANIFEST_OPTION_INVALID, _OPTION_CONFLICT, _SQLITE_REPLICAS or _CA_INVALID.
 */
export function parseManifestOptions(input: ManifestInput, version: string): ManifestOptions {
  if (input.init && input.agentNamespace !== undefined) throw conflict('--init and --agent-namespace print different things; give one of them');
  const part: ManifestPart = input.init ? 'init' : input.agentNamespace !== undefined ? 'agent-network-policy' : 'server';
  const namespace = namespaceOf('--namespace', input.namespace ?? 'tessera');
  const store = input.store ?? 'postgres';
  if (store !== 'postgres' && store !== 'sqlite') throw invalid('--store', `expected postgres or sqlite, got ${JSON.stringify(store.slice(0, 40))}`);
  if (store === 'postgres' && (input.storageSize !== undefined || input.storageClass !== undefined)) throw conflict('--storage-size and --storage-class size the SQLite volume; with --store postgres there is none');
  if (!input.injector && input.injectorCaPem !== undefined) throw conflict('--injector-ca-file is the injector webhook\'s CA; add --injector');
  if (input.tokenreview && input.saJwksUrl !== undefined) throw conflict('--sa-jwks-url with --tokenreview: in TokenReview mode the API server checks each token and no key set is read; drop --sa-jwks-url (give --sa-issuer if the tokens\' issuer is not https://kubernetes.default.svc.cluster.local)');
  if (!input.tokenreview && (input.saIssuer === undefined) !== (input.saJwksUrl === undefined)) throw conflict('--sa-issuer and --sa-jwks-url go together: the kubernetes attestor needs the issuer and where its keys are (or use --tokenreview, which needs no keys)');
  let agentNamespace: string | undefined;
  if (input.agentNamespace !== undefined) {
    agentNamespace = namespaceOf('--agent-namespace', input.agentNamespace);
    if (agentNamespace === namespace) throw conflict(`--agent-namespace ${agentNamespace} is Tessera's own namespace; agents run in namespaces of their own`);
  }
  return {
    part,
    namespace,
    image: matching('--image', input.image, IMAGE, 'an image reference such as ghcr.io/tessera-broker/tessera:1.0.0 or …@sha256:<digest>') ?? `ghcr.io/tessera-broker/tessera:${version}`,
    store,
    replicas: replicasOf(input.replicas, store),
    storageSize: matching('--storage-size', input.storageSize, BYTES, 'a size such as 1Gi or 500Mi') ?? '1Gi',
    ...(input.storageClass !== undefined ? { storageClass: matching('--storage-class', input.storageClass, DNS_SUBDOMAIN, 'a StorageClass name') } : {}),
    injector: input.injector === true,
    ...(input.injectorCaPem !== undefined ? { injectorCaPem: caBundleOf(input.injectorCaPem) } : {}),
    watchPods: input.watchPods === true,
    tokenreview: input.tokenreview === true,
    proxy: input.proxy !== false,
    cpu: matching('--cpu', input.cpu, CPU, 'a CPU request such as 250m or 1') ?? '250m',
    memory: matching('--memory', input.memory, BYTES, 'a memory size such as 512Mi or 1Gi') ?? '512Mi',
    ...(input.tokenreview
      ? { saIssuer: httpsUrl('--sa-issuer', input.saIssuer) ?? DEFAULT_SA_ISSUER }
      : input.saIssuer !== undefined ? { saIssuer: httpsUrl('--sa-issuer', input.saIssuer), saJwksUrl: httpsUrl('--sa-jwks-url', input.saJwksUrl) } : {}),
    ...(agentNamespace !== undefined ? { agentNamespace } : {}),
    version,
  };
}
