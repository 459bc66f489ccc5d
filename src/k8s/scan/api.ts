/**
 * Reads pods, secrets and network policies from a Kubernetes API server with
 * `@kubernetes/client-node` (kubeconfig, or in-cluster from the pod's service account), page by
 * page (`limit`/`continue`), into the same ClusterObjects the file reader fills — every item goes
 * through the same zod schemas (objects.ts). Secret values are dropped as each page arrives:
 * only key names go on (ADR 0272).
 *
 * The scanner needs `list` on pods, secrets and networkpolicies (cluster-wide, or in the
 * `--namespace`); docs/k8s-scan.md has the ClusterRole.
 *
 * Errors: TESSERA_K8S_SCAN_KUBECONFIG_INVALID, _API_REFUSED (the server's status, never its
 * body), _API_UNREACHABLE, and those of objects.ts.
 */
import { ApiException, CoreV1Api, KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import { TesseraError } from '../../shared/errors.js';
import { addDocument, MAX_OBJECTS, sawKind, type ClusterObjects } from './objects.js';

export interface ApiSource {
  /** A kubeconfig file; without it the default loading rules (KUBECONFIG, ~/.kube/config, in-cluster). */
  readonly kubeconfig?: string;
  readonly context?: string;
  /** One namespace (absent: the context's namespace, else `default`, as kubectl does) … */
  readonly namespace?: string;
  /** … or every namespace. */
  readonly allNamespaces?: boolean;
  /** Called after each page (for progress on a terminal). */
  readonly onPage?: (kind: string, total: number) => void;
}

const PAGE = 500;

/** Loads the kubeconfig; returns the context name used. */
export function loadKubeConfig(src: ApiSource): { kc: KubeConfig; context: string } {
  const kc = new KubeConfig();
  try {
    if (src.kubeconfig) kc.loadFromFile(src.kubeconfig);
    else kc.loadFromDefault();
    if (src.context) {
      if (!kc.getContextObject(src.context)) throw new Error('no such context');
      kc.setCurrentContext(src.context);
    }
  } catch (e) {
    throw new TesseraError('TESSERA_K8S_SCAN_KUBECONFIG_INVALID', `${src.kubeconfig ?? 'the Kubernetes configuration'} cannot be used${src.context ? ` with context ${src.context}` : ''}: ${e instanceof Error && /no such context|ENOENT|EACCES/.test(e.message) ? e.message.replace(/,.*$/, '') : 'not a kubeconfig'}`);
  }
  if (!kc.getCurrentCluster()) throw new TesseraError('TESSERA_K8S_SCAN_KUBECONFIG_INVALID', `${src.kubeconfig ?? 'the Kubernetes configuration'} names no current context with a cluster`);
  return { kc, context: kc.getCurrentContext() };
}

interface Page {
  items: unknown[];
  metadata?: { _continue?: string };
}

/** Reads everything into `into`. */
export async function readFromApi(src: ApiSource, into: ClusterObjects): Promise<{ context: string; namespace?: string }> {
  const { kc, context } = loadKubeConfig(src);
  const core = kc.makeApiClient(CoreV1Api);
  const net = kc.makeApiClient(NetworkingV1Api);
  const ns = src.allNamespaces ? undefined : (src.namespace ?? kc.getContextObject(context)?.namespace ?? 'default');
  const where = ns ? `in namespace ${ns}` : 'in all namespaces';
  await listAll('pods', (c) => (ns ? core.listNamespacedPod({ namespace: ns, limit: PAGE, _continue: c }) : core.listPodForAllNamespaces({ limit: PAGE, _continue: c })), 'Pod', into, src, where);
  await listAll('secrets', (c) => (ns ? core.listNamespacedSecret({ namespace: ns, limit: PAGE, _continue: c }) : core.listSecretForAllNamespaces({ limit: PAGE, _continue: c })), 'Secret', into, src, where);
  await listAll('networkpolicies', (c) => (ns ? net.listNamespacedNetworkPolicy({ namespace: ns, limit: PAGE, _continue: c }) : net.listNetworkPolicyForAllNamespaces({ limit: PAGE, _continue: c })), 'NetworkPolicy', into, src, where);
  return { context, ...(ns ? { namespace: ns } : {}) };
}

async function listAll(resource: string, page: (cont: string | undefined) => Promise<Page>, kind: 'Pod' | 'Secret' | 'NetworkPolicy', into: ClusterObjects, src: ApiSource, scope: string): Promise<void> {
  let cont: string | undefined;
  let total = 0;
  sawKind(into, kind);
  for (let n = 0; n <= MAX_OBJECTS / PAGE + 1; n++) {
    let p: Page;
    try {
      p = await page(cont);
    } catch (e) {
      throw apiError(e, resource, scope);
    }
    const items = (Array.isArray(p?.items) ? p.items : []).map((i) => plain(i, kind));
    addDocument(into, { kind: 'List', apiVersion: 'v1', items }, `the API's ${resource} list`);
    total += items.length;
    src.onPage?.(resource, total);
    cont = p.metadata?._continue || undefined;
    if (!cont) return;
  }
  throw new TesseraError('TESSERA_K8S_SCAN_INPUT_TOO_LARGE', `the API lists more than ${MAX_OBJECTS} ${resource}; scan namespace by namespace (--namespace)`, { limit: MAX_OBJECTS });
}

/** The item as plain JSON (the client's model classes hold Dates), with its kind; a Secret keeps only key names. */
function plain(item: unknown, kind: string): unknown {
  const o = (item ?? {}) as Record<string, unknown>;
  const base = kind === 'Secret' ? { metadata: o.metadata, type: o.type, data: keysOnly(o.data), stringData: keysOnly(o.stringData) } : o;
  return { ...(JSON.parse(JSON.stringify(base)) as Record<string, unknown>), kind, apiVersion: kind === 'NetworkPolicy' ? 'networking.k8s.io/v1' : 'v1' };
}

const keysOnly = (d: unknown): Record<string, string> | undefined => (d && typeof d === 'object' ? Object.fromEntries(Object.keys(d).map((k) => [k, ''])) : undefined);

function apiError(e: unknown, resource: string, scope: string): TesseraError {
  if (e instanceof ApiException) {
    const code = (e as ApiException<unknown>).code;
    const hint = code === 401 ? ' (the credentials were not accepted)' : code === 403 ? ` (the credentials may not list ${resource} ${scope}; see the ClusterRole in docs/k8s-scan.md)` : '';
    return new TesseraError('TESSERA_K8S_SCAN_API_REFUSED', `the Kubernetes API refused to list ${resource} ${scope}: HTTP ${code}${hint}`, { status: code, resource });
  }
  if (e instanceof TesseraError) return e;
  // client-node refuses a plain http:// server unless the cluster says insecure-skip-tls-verify.
  if (e instanceof Error && /HTTP protocol is not allowed/.test(e.message)) {
    return new TesseraError('TESSERA_K8S_SCAN_KUBECONFIG_INVALID', 'the kubeconfig names an http:// API server; the client only speaks plain HTTP to one marked insecure-skip-tls-verify (use https)');
  }
  // The client parses the body itself: a body that is not JSON is not a Kubernetes API's answer.
  if (e instanceof SyntaxError) return new TesseraError('TESSERA_K8S_SCAN_INPUT_INVALID', `the API server answered the ${resource} list with something that is not JSON; is the kubeconfig's server a Kubernetes API server?`);
  const cause = (e as { code?: unknown; cause?: { code?: unknown } })?.code ?? (e as { cause?: { code?: unknown } })?.cause?.code;
  return new TesseraError('TESSERA_K8S_SCAN_API_UNREACHABLE', `the Kubernetes API server could not be reached to list ${resource}${typeof cause === 'string' ? ` (${cause})` : ''}`, { resource });
}
