/**
 * `tessera k8s scan` (docs/k8s-scan.md): reads pods, secrets and network policies from
 * `kubectl get … -o json` files (or standard input) or from the Kubernetes API, and reports agent
 * pods given static credentials with a suggested Tessera replacement for each.
 * Exit codes: 0 no finding at or above --fail-on, 1 there are (TESSERA_K8S_SCAN_FINDINGS),
 * 2 usage or input error, 3 the Kubernetes API server could not be reached.
 */
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import { Option } from 'commander';
import { parseDuration, formatDuration } from '../config/duration.js';
import { TesseraError } from '../shared/errors.js';
import { systemClock } from '../shared/clock.js';
import { SEVERITIES, type Severity } from '../k8s/scan/severity.js';
// The scan's core (zod schemas, the YAML parser) and the Kubernetes client load when the command
// runs, so every other command starts without them (docs/cli.md "Which code runs").
import type { ClusterObjects, Report } from '../k8s/scan/index.js';
type Core = typeof import('../k8s/scan/index.js');
import { cell, table } from './format.js';
import { CliError, EXIT, requireLocalPath, usage, type CliIo } from './io.js';
import { count } from '../shared/plural.js';

export interface K8sScanDeps {
  readonly io: CliIo;
  readonly isJson: (cmd: Command) => boolean;
  readonly out: (s: string) => void;
  readonly info: (s: string) => void;
  readonly printJson: (v: unknown) => void;
}

interface Opts {
  file?: string[];
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  allNamespaces?: boolean;
  agentSelector?: string[];
  allPods?: boolean;
  includeSystemNamespaces?: boolean;
  tesseraNamespace: string;
  maxAge: string;
  failOn: Severity | 'none';
}

/** Above this size a file is announced on stderr (only on a terminal). */
const ANNOUNCE_BYTES = 8 * 1024 * 1024;
const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

export function registerK8sScanCommand(k8s: Command, deps: K8sScanDeps): Command {
  return k8s
    .command('scan')
    .description('report agent pods given static credentials (env values, Secret refs and mounts, old Secrets, open egress), with a Tessera replacement for each')
    .option('-f, --file <path>', 'kubectl get pods,secrets,networkpolicies -A -o json output (JSON or YAML; repeatable; - for stdin); without it, read the API', collect)
    .option('--kubeconfig <file>', 'kubeconfig for the API (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--context <name>', 'kubeconfig context')
    .option('-n, --namespace <ns>', 'only this namespace (API: list there; files: keep only it)')
    .option('-A, --all-namespaces', 'API: all namespaces (default: the context\'s namespace, as kubectl)')
    .option('--agent-selector <label=value>', 'pods with this label are agents too (repeatable); annotated pods (tessera.io/agent, tessera.io/inject) always are', collect)
    .option('--all-pods', 'treat every pod as an agent')
    .option('--include-system-namespaces', 'also scan kube-system, kube-public, kube-node-lease and Tessera\'s namespace')
    .option('--tessera-namespace <ns>', 'Tessera\'s own namespace (skipped like a system namespace; named in suggestions)', 'tessera')
    .option('--max-age <duration>', 'report Secrets used by agents and unchanged for longer (e.g. 90d, 720h)', '90d')
    .addOption(new Option('--fail-on <severity>', 'exit 1 when a finding is at or above this severity (none: never)').choices([...SEVERITIES, 'none']).default('high'))
    .action(async (given: Opts, cmd: Command) => {
      const { io } = deps;
      const opts = { ...given, file: given.file ?? [], agentSelector: given.agentSelector ?? [] };
      const maxAgeMs = parseDuration(opts.maxAge);
      if (maxAgeMs === null || maxAgeMs <= 0) throw usage(`--max-age ${opts.maxAge} is not a duration such as 90d or 720h`);
      const selectors = opts.agentSelector.map((s) => {
        const m = /^([A-Za-z0-9][A-Za-z0-9._/-]{0,316})=([A-Za-z0-9._-]{0,63})$/.exec(s);
        if (!m) throw usage(`--agent-selector ${s} is not LABEL=VALUE (a Kubernetes label key and value)`);
        return { key: m[1]!, value: m[2]! };
      });
      const fromFiles = opts.file.length > 0;
      if (opts.namespace && opts.allNamespaces) throw usage('--namespace and --all-namespaces exclude each other');
      if (fromFiles && (opts.kubeconfig || opts.context || opts.allNamespaces)) throw usage('-f/--file reads files; --kubeconfig, --context and --all-namespaces are for reading the API instead');
      if (opts.file.filter((f) => f === '-').length > 1) throw usage('standard input (-) can be read only once');
      for (const f of opts.file) if (f !== '-') requireLocalPath(f, 'file', '--file');

      const core: Core = await import('../k8s/scan/index.js');
      const { buildReport, emptyObjects, failsAt, scanObjects } = core;
      const progress = io.stderr.isTTY === true ? deps.info : undefined;
      const objects = emptyObjects();
      let source: Report['source'];
      try {
        if (fromFiles) {
          for (const f of opts.file) await readInput(core, f, objects, io, progress);
          source = { kind: 'files', files: opts.file.map((f) => (f === '-' ? '(stdin)' : f)) };
        } else {
          // @kubernetes/client-node loads only here: every other command starts without it.
          const { readFromApi } = await import('../k8s/scan/api.js');
          const r = await readFromApi(
            { ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}), ...(opts.namespace ? { namespace: opts.namespace } : {}), allNamespaces: opts.allNamespaces === true, ...(progress ? { onPage: (kind: string, n: number) => (n > 500 ? progress(`listed ${n} ${kind}…`) : undefined) } : {}) },
            objects,
          );
          source = { kind: 'api', context: r.context, ...(r.namespace ? { namespace: r.namespace } : {}) };
        }
      } catch (e) {
        throw inputError(e);
      }
      const scoped = fromFiles && opts.namespace ? onlyNamespace(objects, opts.namespace) : objects;
      const clock = systemClock;
      const result = scanObjects(scoped, {
        clock,
        maxAgeMs,
        agents: { allPods: opts.allPods === true, selectors },
        // Naming a namespace (or reading the context's one) is asking for it, system or not.
        includeSystem: opts.includeSystemNamespaces === true || opts.namespace !== undefined || (source.kind === 'api' && source.namespace !== undefined),
        tesseraNamespace: opts.tesseraNamespace,
        fingerprintKey: randomBytes(32),
      });
      const report = buildReport({
        result,
        source,
        options: { max_age: formatDuration(maxAgeMs), fail_on: opts.failOn, all_pods: opts.allPods === true, agent_selectors: opts.agentSelector, include_system_namespaces: opts.includeSystemNamespaces === true, tessera_namespace: opts.tesseraNamespace },
        ignored: scoped.ignored,
        generatedAt: clock.now(),
      });
      // With --json the notes are in the report, and stderr holds at most the one JSON error.
      if (deps.isJson(cmd)) deps.printJson(report);
      else {
        printHuman(core, report, deps);
        for (const n of report.notes) deps.info(`note: ${n}`);
      }
      if (report.summary.failed) {
        const at = report.findings.filter((f) => failsAt(f, opts.failOn)).length;
        throw new CliError('TESSERA_K8S_SCAN_FINDINGS', `${count(at, 'finding')} at or above ${opts.failOn} (--fail-on ${opts.failOn})`, EXIT.REFUSED);
      }
    });
}

function printHuman({ tableRows, TABLE_COLUMNS }: Core, r: Report, deps: K8sScanDeps): void {
  const s = r.summary;
  const scanned = `${count(s.agent_pods, 'agent pod')}${s.agent_templates ? ` and ${count(s.agent_templates, 'agent pod template')}` : ''} in ${count(s.workloads, 'workload')} scanned (${count(s.pods, 'pod')}, ${count(s.secrets, 'Secret')}, ${count(s.network_policies, 'NetworkPolicy', 'NetworkPolicies')} read${s.skipped_pods ? `; ${s.skipped_pods} in ${s.skipped_namespaces.join(', ')} skipped` : ''})`;
  if (r.findings.length === 0) {
    deps.out(`no findings: ${scanned}`);
    return;
  }
  const rows = tableRows(r.findings).map((row, i) => ({ '#': i + 1, ...row }));
  deps.out(table(rows, ['#', ...TABLE_COLUMNS]));
  deps.out('');
  r.findings.forEach((f, i) => {
    deps.out(`[${i + 1}] ${cell(f.severity)} ${cell(f.namespace)}/${cell(f.workload.kind)}/${cell(f.workload.name)}${f.pods.length ? ` (pods: ${f.pods.slice(0, 5).map(cell).join(', ')}${f.pods.length > 5 ? ', …' : ''})` : ''}`);
    deps.out(`    why: ${cell(f.why)}`);
    deps.out(`    instead: ${cell(f.suggestion.text)} (${cell(f.suggestion.docs)})${f.suggestion.annotations ? `; annotations: ${Object.entries(f.suggestion.annotations).map(([k, v]) => `${k}: "${v}"`).join(', ')}` : ''}`);
  });
  deps.out('');
  const counts = SEVERITIES.slice().reverse().filter((sev) => s.findings[sev] > 0).map((sev) => `${s.findings[sev]} ${sev}`).join(', ');
  deps.out(`${count(r.findings.length, 'finding')} (${counts}): ${scanned}`);
}

/** Reads one `-f` input (a path or `-`) into `objects`. */
async function readInput({ addDocument, docName, MAX_INPUT_BYTES, parseDocuments }: Core, f: string, objects: ClusterObjects, io: CliIo, progress: ((s: string) => void) | undefined): Promise<void> {
  const where = f === '-' ? 'standard input' : f;
  const bytes = f === '-' ? await readStdin(io, MAX_INPUT_BYTES) : await readFileBounded(f, MAX_INPUT_BYTES);
  if (bytes.length > ANNOUNCE_BYTES) progress?.(`reading ${where} (${Math.round(bytes.length / 1048576)} MiB)…`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new TesseraError('TESSERA_K8S_SCAN_INPUT_MALFORMED', `${where} is not UTF-8 text (JSON or YAML)`);
  }
  const docs = parseDocuments(text, where);
  docs.forEach((d, i) => addDocument(objects, d, docName(where, i, docs.length)));
}

const tooLarge = (where: string, max: number): TesseraError => new TesseraError('TESSERA_K8S_SCAN_INPUT_TOO_LARGE', `${where} is larger than ${max / 1048576} MiB; scan namespace by namespace`, { limit: max });

async function readFileBounded(path: string, max: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    // A regular file (requireLocalPath): its size is known before a byte is read.
    if ((await fh.stat()).size > max) throw tooLarge(path, max);
    const buf = await fh.readFile();
    if (buf.length > max) throw tooLarge(path, max);
    return buf;
  } finally {
    await fh.close();
  }
}

async function readStdin(io: CliIo, max: number): Promise<Buffer> {
  if (!io.stdin) throw usage('`-` means "read from standard input", but no input is available');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of io.stdin) {
    const b = typeof c === 'string' ? Buffer.from(c) : Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    size += b.length;
    if (size > max) throw tooLarge('standard input', max);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

function onlyNamespace(o: ClusterObjects, ns: string): ClusterObjects {
  return { ...o, pods: o.pods.filter((p) => p.namespace === ns), secrets: o.secrets.filter((s) => s.namespace === ns), networkPolicies: o.networkPolicies.filter((p) => p.namespace === ns) };
}

/** Input problems exit 2 (the API unreachable: 3), with the scan's own code. */
function inputError(e: unknown): unknown {
  if (e instanceof TesseraError) return new CliError(e.code, e.message, e.code === 'TESSERA_K8S_SCAN_API_UNREACHABLE' ? EXIT.CONNECT : EXIT.USAGE);
  if (e instanceof CliError) return e;
  return new CliError('TESSERA_K8S_SCAN_INPUT_MALFORMED', 'the input could not be read', EXIT.USAGE);
}
