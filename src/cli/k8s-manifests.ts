/**
 * `tessera k8s manifests` (docs/kubernetes.md, docs/cli.md): prints the Kubernetes objects that
 * deploy Tessera — validated against the API schemas first — as multi-document YAML, or a List
 * with --json. `--init` prints the one-off `tessera init` Pod, `--agent-namespace NS` the egress
 * NetworkPolicy of an agent namespace. Option errors exit 2 with a TESSERA_K8S_MANIFEST_* code;
 * nothing is printed to stdout unless every object is valid. Contacts nothing.
 */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { CliError, EXIT, type CliIo } from './io.js';
import type { ManifestInput } from '../k8s/manifests/index.js';
import { VERSION } from '../shared/package.js';

interface Opts {
  namespace?: string;
  image?: string;
  store?: string;
  replicas?: string;
  storageSize?: string;
  storageClass?: string;
  cpu?: string;
  memory?: string;
  proxy?: boolean;
  injector?: boolean;
  injectorCaFile?: string;
  watchPods?: boolean;
  tokenreview?: boolean;
  saIssuer?: string;
  saJwksUrl?: string;
  init?: boolean;
  agentNamespace?: string;
}

const MAX_CA_BYTES = 256 * 1024;

async function readCa(path: string): Promise<string> {
  try {
    const buf = await readFile(path);
    if (buf.length > MAX_CA_BYTES) throw new CliError('TESSERA_K8S_MANIFEST_CA_INVALID', `--injector-ca-file: ${path} is larger than ${MAX_CA_BYTES} bytes; a CA bundle is a few certificates`, EXIT.USAGE);
    return buf.toString('utf8');
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError('TESSERA_K8S_MANIFEST_CA_INVALID', `--injector-ca-file: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.USAGE);
  }
}

export function registerK8sManifestsCommand(k8s: Command, deps: { io: CliIo; isJson: (cmd: Command) => boolean }): void {
  k8s
    .command('manifests')
    .description('print the Kubernetes objects that deploy Tessera (validated against the API schemas), for `kubectl apply -f -`; contacts nothing')
    .option('--namespace <ns>', 'namespace of Tessera (default tessera)')
    .option('--image <ref>', 'container image (default ghcr.io/tessera-broker/tessera:<this version>)')
    .option('--store <kind>', 'postgres (several replicas; URL from the Secret tessera-database) or sqlite (one replica on a volume)', 'postgres')
    .option('--replicas <n>', 'server replicas (postgres: default 2; sqlite: exactly 1)')
    .option('--storage-size <size>', 'sqlite: size of the data volume (default 1Gi)')
    .option('--storage-class <name>', 'sqlite: StorageClass of the data volume (default: the cluster default)')
    .option('--cpu <quantity>', 'CPU request of each server pod (default 250m)')
    .option('--memory <quantity>', 'memory request and limit of each server pod (default 512Mi)')
    .option('--no-proxy', 'no injection proxy (port 8201 is neither served nor opened)')
    .option('--injector', 'also the injector webhook: Deployment, Service, MutatingWebhookConfiguration (docs/k8s-injector.md)')
    .option('--injector-ca-file <file>', "the PEM CA of the injector's serving certificate, for the webhook's caBundle")
    .option('--watch-pods', 'revoke what a pod held when it is deleted: kubernetes.watch_pods and RBAC to watch pods (docs/k8s-pods.md)')
    .option('--tokenreview', 'the kubernetes attestor in mode: tokenreview (the API server checks each token; no JWKS) and the binding to system:auth-delegator (docs/k8s-pods.md)')
    .option('--sa-issuer <url>', "the cluster's service-account token issuer, for the kubernetes attestor (with --sa-jwks-url; with --tokenreview alone, default https://kubernetes.default.svc.cluster.local)")
    .option('--sa-jwks-url <url>', "where the issuer's public keys are (JWKS), for the kubernetes attestor (not with --tokenreview)")
    .option('--init', 'print instead the one-off Pod that runs `tessera init` in the cluster')
    .option('--agent-namespace <ns>', 'print instead the NetworkPolicy that lets the pods of this agent namespace reach only Tessera and DNS')
    .action(async (opts: Opts, cmd: Command) => {
      const input: ManifestInput = {
        ...opts,
        ...(opts.injectorCaFile !== undefined ? { injectorCaPem: await readCa(opts.injectorCaFile) } : {}),
      };
      let result: { text: string; notes: string[] };
      try {
        // The manifests' schemas (kubernetes-models, ≈ 650 modules) load with this command only.
        const { renderManifests } = await import('../k8s/manifests/index.js');
        result = renderManifests(input, VERSION, deps.isJson(cmd) ? 'json' : 'yaml');
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (typeof code === 'string' && code.startsWith('TESSERA_K8S_MANIFEST_')) {
          throw new CliError(code, (e as Error).message, code === 'TESSERA_K8S_MANIFEST_OBJECT_INVALID' ? EXIT.REFUSED : EXIT.USAGE);
        }
        throw e;
      }
      deps.io.stdout.write(result.text);
      for (const n of result.notes) deps.io.stderr.write(`note: ${n}\n`);
    });
}
