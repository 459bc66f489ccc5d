/**
 * The scan itself (docs/k8s-scan.md): which pods are agents, what static credentials each was
 * given, which of those Secrets are old, whose egress is unrestricted; findings grouped by
 * workload. Pure: takes the objects read, a Clock and a per-scan fingerprint key.
 */
import type { Clock } from '../../shared/clock.js';
import { fingerprint, isInertValue, keyShapeOf, looksRandom, nameStrength } from './credentials.js';
import { egressOf } from './netpol.js';
import type { ClusterObjects, ContainerInfo, NetworkPolicyInfo, PodInfo, SecretInfo } from './objects.js';
import { kvPathOf, maybeCredential, suggestCertificate, suggestEgress, suggestFor, suggestRotation, type Suggestion } from './suggest.js';

import { severityRank, type Severity } from './severity.js';

export { SEVERITIES, severityRank, type Severity } from './severity.js';

export const RULES = ['env-literal', 'args-literal', 'env-secret-ref', 'env-from-secret', 'secret-volume', 'secret-age', 'egress-unrestricted'] as const;
export type RuleId = (typeof RULES)[number];

/** Namespaces skipped unless `includeSystem` (the Tessera namespace is added to these). */
export const SYSTEM_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'] as const;

export const AGENT_ANNOTATIONS = ['tessera.io/agent', 'tessera.io/inject'] as const;

export interface ScanOptions {
  readonly clock: Clock;
  /** Secrets unchanged for longer than this (ms) are reported (rule secret-age). */
  readonly maxAgeMs: number;
  /** Which pods are agents: annotated ones always; plus label matches; or every pod. */
  readonly agents: { readonly allPods: boolean; readonly selectors: readonly { readonly key: string; readonly value: string }[] };
  readonly includeSystem: boolean;
  readonly tesseraNamespace: string;
  /** HMAC key for value fingerprints, random per scan (credentials.ts `fingerprint`). */
  readonly fingerprintKey: Uint8Array;
}

export interface Finding {
  readonly rule: RuleId;
  readonly severity: Severity;
  readonly namespace: string;
  readonly workload: { readonly kind: string; readonly name: string };
  readonly pods: string[];
  readonly container: string | null;
  readonly variable?: string;
  readonly secret?: { readonly name: string; readonly key?: string; readonly keys?: readonly string[] };
  readonly volume?: { readonly name: string; readonly mount_path: string };
  readonly value?: { readonly shape?: string; readonly length: number; readonly fingerprint: string };
  readonly age?: { readonly days: number; readonly changed_at: string; readonly source: string };
  readonly egress?: { readonly policies: readonly string[]; readonly open_by?: string };
  readonly why: string;
  readonly suggestion: Suggestion;
}

export interface ScanResult {
  readonly findings: Finding[];
  readonly counts: {
    readonly pods: number;
    readonly agent_pods: number;
    readonly workloads: number;
    readonly secrets: number;
    readonly network_policies: number;
    readonly skipped_pods: number;
    /** Workload pod templates read as agents (Deployment, StatefulSet, DaemonSet, Job, CronJob manifests). */
    readonly agent_templates: number;
  };
  readonly skipped_namespaces: string[];
  /** What the input lacked for a full verdict (no NetworkPolicy objects, a referenced Secret missing…). */
  readonly notes: string[];
}

type Draft = Omit<Finding, 'namespace' | 'workload' | 'pods'>;

/** Runs every rule over `objects`. */
export function scanObjects(objects: ClusterObjects, opts: ScanOptions): ScanResult {
  const system = new Set<string>([...SYSTEM_NAMESPACES, opts.tesseraNamespace]);
  const skipped = new Set<string>();
  // The same object in two inputs (two files, a pod listed twice) counts once: the last read wins.
  const unique = [...new Map(objects.pods.map((p) => [`${p.namespace}/${p.template ? `${p.owner?.kind}/` : ''}${p.name}`, p])).values()];
  const pods = unique.filter((p) => {
    if (opts.includeSystem || !system.has(p.namespace)) return true;
    skipped.add(p.namespace);
    return false;
  });
  const agents = pods.filter((p) => isAgent(p, opts));
  const secrets = new Map(objects.secrets.map((s) => [`${s.namespace}/${s.name}`, s]));
  const policies = [...new Map(objects.networkPolicies.map((p) => [`${p.namespace}/${p.name}`, p])).values()];
  const policiesByNs = new Map<string, NetworkPolicyInfo[]>();
  for (const p of policies) policiesByNs.set(p.namespace, [...(policiesByNs.get(p.namespace) ?? []), p]);
  const merged = new Map<string, Finding>();
  const missingSecrets = new Set<string>();
  const add = (pod: PodInfo, d: Draft): void => {
    const workload = workloadOf(pod);
    const key = JSON.stringify([d.rule, d.severity, pod.namespace, workload.kind, workload.name, d.container, d.variable, d.secret?.name, d.secret?.key, d.volume, d.value?.fingerprint]);
    const f = merged.get(key);
    const names = pod.template ? [] : [pod.name];
    if (f) {
      for (const n of names) if (!f.pods.includes(n)) f.pods.push(n);
    } else {
      const { rule, severity, ...rest } = d;
      // Key order is the JSON schema's (docs/k8s-scan.md): who and where first, then what.
      merged.set(key, { rule, severity, namespace: pod.namespace, workload, pods: names, ...rest });
    }
  };
  const now = opts.clock.now();
  for (const pod of agents) {
    const ctx: PodCtx = { pod, secrets, opts, referenced: new Set(), missing: missingSecrets };
    for (const c of pod.containers) for (const d of containerFindings(c, ctx)) add(pod, d);
    for (const d of ageFindings(ctx, now)) add(pod, d);
    const eg = egressOf(pod.namespace, pod.labels, policiesByNs.get(pod.namespace) ?? []);
    if (!eg.restricted) add(pod, egressFinding(eg, opts));
  }
  const findings = [...merged.values()].map((f) => ({ ...f, pods: f.pods.sort() }));
  findings.sort(compareFindings);
  const notes: string[] = [];
  if (agents.length > 0 && !objects.kindsSeen.has('NetworkPolicy')) notes.push('the input holds no NetworkPolicy objects: egress was judged as if none existed (add networkpolicies to the kubectl get)');
  if (missingSecrets.size > 0) notes.push(`${missingSecrets.size} Secret(s) referenced by agent pods are not in the input, so their age and keys are unknown: ${[...missingSecrets].sort().slice(0, 10).join(', ')}${missingSecrets.size > 10 ? ', …' : ''}`);
  if (pods.length > 0 && agents.length === 0) notes.push(`no pod of the ${pods.length} given is an agent: annotate agent pods tessera.io/agent or tessera.io/inject, or pass --agent-selector LABEL=VALUE or --all-pods`);
  return {
    findings,
    counts: {
      pods: unique.filter((p) => !p.template).length,
      agent_pods: agents.filter((p) => !p.template).length,
      workloads: new Set(agents.map((p) => `${p.namespace}/${workloadOf(p).kind}/${workloadOf(p).name}`)).size,
      secrets: secrets.size,
      network_policies: policies.length,
      skipped_pods: unique.filter((p) => !p.template).length - pods.filter((p) => !p.template).length,
      agent_templates: agents.filter((p) => p.template).length,
    },
    skipped_namespaces: [...skipped].sort(),
    notes,
  };
}

function isAgent(p: PodInfo, opts: ScanOptions): boolean {
  if (opts.agents.allPods) return true;
  if (AGENT_ANNOTATIONS.some((a) => p.annotations[a] === 'true')) return true;
  return opts.agents.selectors.some((s) => p.labels[s.key] === s.value);
}

/**
 * The workload a pod belongs to: its controller owner, with a ReplicaSet named
 * `<deployment>-<pod-template-hash>` read as its Deployment; a bare pod is its own workload.
 */
export function workloadOf(p: PodInfo): { kind: string; name: string } {
  const o = p.owner;
  if (!o) return { kind: 'Pod', name: p.name };
  const hash = p.labels['pod-template-hash'];
  if (o.kind === 'ReplicaSet' && hash && o.name.endsWith(`-${hash}`)) return { kind: 'Deployment', name: o.name.slice(0, -hash.length - 1) };
  return { kind: o.kind, name: o.name };
}

interface PodCtx {
  readonly pod: PodInfo;
  readonly secrets: ReadonlyMap<string, SecretInfo>;
  readonly opts: ScanOptions;
  /** Secrets this pod's agent containers use (name → how), for the age rule. */
  readonly referenced: Set<string>;
  readonly missing: Set<string>;
}

const where = (c: ContainerInfo): string => (c.kind === 'container' ? `container ${c.name}` : `${c.kind} container ${c.name}`);

function* containerFindings(c: ContainerInfo, ctx: PodCtx): Generator<Draft> {
  for (const e of c.env) {
    if (e.value !== null && e.value !== undefined) {
      const d = literalFinding(c, e.name, e.value, ctx);
      if (d) yield d;
    } else if (e.valueFrom?.secretKeyRef?.name) {
      yield secretRefFinding(c, e.name, e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key, ctx);
    }
  }
  for (const ef of c.envFrom) yield envFromFinding(c, ef.secret, ef.prefix ?? '', ctx);
  for (const m of c.mounts) yield* mountFindings(c, m.volume, m.path, ctx);
  yield* argvFindings(c, ctx);
}

/** `--token=…`, `-p=…`, `--api-key` (the value then in the next item): a flag naming a credential. */
const FLAG = /^--?([A-Za-z][A-Za-z0-9_.-]*)(?:=(.*))?$/s;

/**
 * Rule args-literal: a credential in a container's `command`/`args` is as readable as one in its
 * env (the pod spec, `ps` inside the pod). `critical` for a known format anywhere in an item; `high`
 * for a non-inert value given to a flag whose name is a credential name (`--password hunter2`).
 */
function* argvFindings(c: ContainerInfo, ctx: PodCtx): Generator<Draft> {
  for (let i = 0; i < c.argv.length; i++) {
    const { where: at, value } = c.argv[i]!;
    const shape = keyShapeOf(value);
    let flagged: { flag: string; value: string; at: string } | undefined;
    const m = FLAG.exec(value.trim());
    if (!shape && m && nameStrength(m[1]!) === 'strong') {
      if (m[2] !== undefined) flagged = { flag: m[1]!, value: m[2], at };
      else if (i + 1 < c.argv.length && !c.argv[i + 1]!.value.startsWith('-') && !keyShapeOf(c.argv[i + 1]!.value)) flagged = { flag: m[1]!, value: c.argv[i + 1]!.value, at: c.argv[i + 1]!.where };
    }
    if (!shape && (!flagged || isInertValue(flagged.value))) continue;
    const secretValue = shape ? value : flagged!.value;
    const variable = shape ? at : flagged!.at;
    if (flagged && !shape) i++;
    yield {
      rule: 'args-literal',
      severity: shape ? 'critical' : 'high',
      container: c.name,
      variable,
      value: { ...(shape ? { shape: shape.label } : {}), ...fingerprint(secretValue, ctx.opts.fingerprintKey) },
      why: shape
        ? `a literal ${shape.label} in ${variable} of ${where(c)}: readable by anyone who can read the pod or its workload, and by every process in the pod (ps, /proc/1/cmdline)`
        : `a literal value for the credential flag --${flagged!.flag} in ${variable} of ${where(c)}: readable by anyone who can read the pod or its workload, and by every process in the pod`,
      suggestion: suggestFor(shape ? variable : flagged!.flag, shape, kvPathOf(ctx.pod.namespace, workloadOf(ctx.pod).name, shape ? (shape.vendor ?? shape.id) : flagged!.flag)),
    };
  }
}

function literalFinding(c: ContainerInfo, name: string, value: string, ctx: PodCtx): Draft | undefined {
  const shape = keyShapeOf(value);
  const strength = nameStrength(name);
  let severity: Severity;
  let why: string;
  if (shape) {
    severity = 'critical';
    why = `a literal ${shape.label} in the pod spec of ${where(c)}: anyone who can read the pod or its workload (get pods, describe, the Deployment's YAML, etcd backups) reads the credential`;
  } else if (isInertValue(value)) {
    return undefined;
  } else if (strength === 'strong' || (strength === 'weak' && looksRandom(value, 16))) {
    severity = 'high';
    why = `a literal value under the credential name ${name} in the pod spec of ${where(c)}: it is readable by anyone who can read the pod or its workload`;
  } else if (looksRandom(value)) {
    severity = 'medium';
    why = `a random-looking literal value (entropy rule) in ${where(c)}; it may be an id rather than a secret — check it`;
  } else return undefined;
  const kv = kvPathOf(ctx.pod.namespace, workloadOf(ctx.pod).name, name);
  return { rule: 'env-literal', severity, container: c.name, variable: name, value: { ...(shape ? { shape: shape.label } : {}), ...fingerprint(value, ctx.opts.fingerprintKey) }, why, suggestion: suggestFor(name, shape, kv) };
}

function secretRefFinding(c: ContainerInfo, name: string, secret: string, key: string, ctx: PodCtx): Draft {
  noteSecret(secret, ctx);
  const credential = nameStrength(name) !== 'none' || nameStrength(key) !== 'none' || key.toLowerCase() === 'key';
  const kv = kvPathOf(ctx.pod.namespace, secret, key);
  return {
    rule: 'env-secret-ref',
    severity: credential ? 'high' : 'low',
    container: c.name,
    variable: name,
    secret: { name: secret, key },
    why: credential
      ? `${name} in ${where(c)} holds key ${key} of Secret ${secret}: a static credential in the agent's environment, for as long as the pod lives, and inherited by every process it starts`
      : `${name} in ${where(c)} comes from Secret ${secret} (key ${key}); neither name looks like a credential, check whether it is one`,
    suggestion: credential ? suggestFor(`${name} ${key}`, undefined, kv) : maybeCredential(suggestFor(`${name} ${key}`, undefined, kv)),
  };
}

function envFromFinding(c: ContainerInfo, secret: string, prefix: string, ctx: PodCtx): Draft {
  const s = noteSecret(secret, ctx);
  const credKeys = s ? s.keys.filter((k) => nameStrength(prefix + k) !== 'none' || k.toLowerCase() === 'key') : undefined;
  const severity: Severity = credKeys === undefined ? 'medium' : credKeys.length > 0 ? 'high' : 'low';
  const why =
    credKeys === undefined ? `${where(c)} imports every key of Secret ${secret} as environment variables; the Secret is not in the input, so its keys are unknown`
    : credKeys.length > 0 ? `${where(c)} imports every key of Secret ${secret} as environment variables, credentials among them (${credKeys.join(', ')})`
    : `${where(c)} imports every key of Secret ${secret} as environment variables; no key name looks like a credential`;
  return {
    rule: 'env-from-secret',
    severity,
    container: c.name,
    secret: { name: secret, ...(credKeys && credKeys.length > 0 ? { keys: credKeys } : {}) },
    why,
    suggestion: severity === 'low' ? maybeCredential(suggestFor(secret, undefined, kvPathOf(ctx.pod.namespace, secret))) : suggestFor(`${secret} ${(credKeys ?? []).join(' ')}`, undefined, kvPathOf(ctx.pod.namespace, secret)),
  };
}

/** True for a legacy service-account token Secret: by type/annotation when read, else by its `<sa>-token-xxxxx` name. */
function isServiceAccountSecret(name: string, ctx: PodCtx): boolean {
  const s = ctx.secrets.get(`${ctx.pod.namespace}/${name}`);
  if (s) return s.serviceAccountToken;
  return new RegExp(`^${ctx.pod.serviceAccount.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-token-[a-z0-9]{5}$`).test(name);
}

function* mountFindings(c: ContainerInfo, volumeName: string, path: string, ctx: PodCtx): Generator<Draft> {
  const v = ctx.pod.volumes.find((x) => x.name === volumeName);
  if (!v) return;
  const secretNames = [...(v.secret?.secretName ? [v.secret.secretName] : []), ...(v.projected?.sources ?? []).flatMap((s) => (s.secret?.name ? [s.secret.name] : []))];
  for (const name of secretNames) {
    if (isServiceAccountSecret(name, ctx)) continue;
    const s = noteSecret(name, ctx);
    yield {
      rule: 'secret-volume',
      severity: 'high',
      container: c.name,
      secret: { name, ...(s && s.keys.length ? { keys: s.keys } : {}) },
      volume: { name: volumeName, mount_path: path },
      why: `Secret ${name}${s?.type && s.type !== 'Opaque' ? ` (${s.type})` : ''} is mounted as files at ${path} in ${where(c)}: static credentials on the agent's filesystem for the pod's lifetime`,
      suggestion: s?.type === 'kubernetes.io/tls' ? suggestCertificate() : suggestFor(`${name} ${(s?.keys ?? []).join(' ')}`, undefined, kvPathOf(ctx.pod.namespace, name)),
    };
  }
  if (v.csi?.driver === 'secrets-store.csi.k8s.io') {
    yield {
      rule: 'secret-volume',
      severity: 'medium',
      container: c.name,
      volume: { name: volumeName, mount_path: path },
      why: `a Secrets Store CSI volume is mounted at ${path} in ${where(c)}: secrets from an external store, but as static files the agent can read and leak`,
      suggestion: suggestFor(volumeName, undefined, kvPathOf(ctx.pod.namespace, volumeName)),
    };
  }
}

function noteSecret(name: string, ctx: PodCtx): SecretInfo | undefined {
  const id = `${ctx.pod.namespace}/${name}`;
  ctx.referenced.add(name);
  const s = ctx.secrets.get(id);
  if (!s) ctx.missing.add(id);
  return s;
}

const DAY = 86_400_000;

function* ageFindings(ctx: PodCtx, now: number): Generator<Draft> {
  for (const name of [...ctx.referenced].sort()) {
    const s = ctx.secrets.get(`${ctx.pod.namespace}/${name}`);
    if (!s?.changed || now - s.changed.at <= ctx.opts.maxAgeMs) continue;
    const days = Math.floor((now - s.changed.at) / DAY);
    const source = s.changed.source === 'creationTimestamp' ? 'its creationTimestamp (no managedFields in the input)' : s.changed.source === 'managedFields' ? 'the latest managedFields time' : 'the latest managedFields time of a manager that owns its data';
    yield {
      rule: 'secret-age',
      severity: 'medium',
      container: null,
      secret: { name },
      age: { days, changed_at: new Date(s.changed.at).toISOString(), source: s.changed.source },
      why: `Secret ${name}, used by this agent, has not changed for ${days} days (by ${source}), longer than --max-age`,
      suggestion: suggestRotation(kvPathOf(ctx.pod.namespace, name)),
    };
  }
}

function egressFinding(eg: Exclude<ReturnType<typeof egressOf>, { restricted: true }>, opts: ScanOptions): Draft {
  return {
    rule: 'egress-unrestricted',
    severity: 'high',
    container: null,
    egress: { policies: eg.policies, ...(eg.openBy ? { open_by: eg.openBy } : {}) },
    why:
      eg.reason === 'no-policy'
        ? 'no NetworkPolicy restricts this agent pod\'s egress: it can send anything it reads to any address'
        : `NetworkPolicy ${eg.openBy} allows egress to the internet (a rule without "to", or an ipBlock such as 0.0.0.0/0): the agent can send anything it reads to any address`,
    suggestion: suggestEgress(opts.tesseraNamespace),
  };
}

function compareFindings(a: Finding, b: Finding): number {
  return (
    severityRank(b.severity) - severityRank(a.severity) ||
    a.namespace.localeCompare(b.namespace) ||
    a.workload.name.localeCompare(b.workload.name) ||
    (a.container ?? '').localeCompare(b.container ?? '') ||
    RULES.indexOf(a.rule) - RULES.indexOf(b.rule) ||
    (a.variable ?? a.secret?.name ?? '').localeCompare(b.variable ?? b.secret?.name ?? '')
  );
}
