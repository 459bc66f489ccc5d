/**
 * The Kubernetes objects the scan reads, validated with zod and reduced to what the rules need
 * (docs/k8s-scan.md). Shapes follow the core/v1 Pod and Secret and networking.k8s.io/v1
 * NetworkPolicy API types, as `kubectl get … -o json` prints them (a `List` with `items`) or as
 * the API server lists them. Unknown fields are dropped; unknown kinds are counted, not read.
 *
 * Secret values never leave this module: a Secret is reduced to its metadata and the NAMES of
 * its `data`/`stringData` keys before anything else sees it (ADR 0272).
 *
 * Pure: no I/O. Errors: TESSERA_K8S_SCAN_INPUT_INVALID naming the source, the item and the field
 * path (never a value).
 */
import { z } from 'zod';
import { TesseraError } from '../../shared/errors.js';

const str = z.string();
const strMap = z.record(z.string(), z.string());
/** Env values are strings in the API; a hand-written YAML `value: 123` is read as its text. */
const scalarText = z.union([z.string(), z.number(), z.boolean()]).transform(String);

const labelSelector = z.object({
  matchLabels: strMap.nullish(),
  matchExpressions: z.array(z.object({ key: str, operator: str, values: z.array(str).nullish() })).nullish(),
});
export type LabelSelector = z.output<typeof labelSelector>;

const metadata = z.object({
  name: str,
  namespace: str.nullish(),
  uid: str.nullish(),
  labels: strMap.nullish(),
  annotations: strMap.nullish(),
  creationTimestamp: str.nullish(),
  ownerReferences: z.array(z.object({ kind: str, name: str, controller: z.boolean().nullish() })).nullish(),
  managedFields: z
    .array(z.object({ manager: str.nullish(), operation: str.nullish(), time: str.nullish(), fieldsV1: z.record(z.string(), z.unknown()).nullish() }))
    .nullish(),
});

const envVar = z.object({
  name: str,
  value: scalarText.nullish(),
  valueFrom: z.object({ secretKeyRef: z.object({ name: str.nullish(), key: str, optional: z.boolean().nullish() }).nullish() }).nullish(),
});
const container = z.object({
  name: str,
  env: z.array(envVar).nullish(),
  envFrom: z.array(z.object({ prefix: str.nullish(), secretRef: z.object({ name: str.nullish() }).nullish() })).nullish(),
  volumeMounts: z.array(z.object({ name: str, mountPath: str })).nullish(),
  command: z.array(scalarText).nullish(),
  args: z.array(scalarText).nullish(),
});
const volume = z.object({
  name: str,
  secret: z.object({ secretName: str.nullish() }).nullish(),
  projected: z
    .object({
      sources: z
        .array(z.object({ secret: z.object({ name: str.nullish() }).nullish(), serviceAccountToken: z.object({ audience: str.nullish(), path: str.nullish() }).nullish() }))
        .nullish(),
    })
    .nullish(),
  csi: z.object({ driver: str }).nullish(),
});

const podSpec = z.object({
  serviceAccountName: str.nullish(),
  containers: z.array(container),
  initContainers: z.array(container).nullish(),
  ephemeralContainers: z.array(container).nullish(),
  volumes: z.array(volume).nullish(),
});
const podSchema = z.object({ metadata, spec: podSpec });

/** A pod template (apps/v1 and batch/v1 workloads): what every pod of the workload will be. */
const template = z.object({ metadata: z.object({ labels: strMap.nullish(), annotations: strMap.nullish() }).nullish(), spec: podSpec });
const workloadSchema = z.object({ metadata, spec: z.object({ template }) });
const cronJobSchema = z.object({ metadata, spec: z.object({ jobTemplate: z.object({ spec: z.object({ template }) }) }) });
/** Workload kinds whose pod template is scanned (manifests before they are applied, `kubectl get deploy`). */
export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob'] as const;

const secretSchema = z.object({
  metadata,
  type: str.nullish(),
  // Only the key names are kept (below); the values are never read.
  data: z.record(z.string(), z.unknown()).nullish(),
  stringData: z.record(z.string(), z.unknown()).nullish(),
});

const peer = z.object({
  ipBlock: z.object({ cidr: str, except: z.array(str).nullish() }).nullish(),
  podSelector: labelSelector.nullish(),
  namespaceSelector: labelSelector.nullish(),
});
const netpolSchema = z.object({
  metadata,
  spec: z.object({
    podSelector: labelSelector.nullish(),
    policyTypes: z.array(str).nullish(),
    egress: z
      .array(z.object({ to: z.array(peer).nullish(), ports: z.array(z.object({ protocol: str.nullish(), port: z.union([z.number(), str]).nullish(), endPort: z.number().nullish() })).nullish() }))
      .nullish(),
  }),
});

export type EgressRule = NonNullable<z.output<typeof netpolSchema>['spec']['egress']>[number];

export interface ContainerInfo {
  readonly name: string;
  readonly kind: 'container' | 'init' | 'ephemeral';
  readonly env: readonly z.output<typeof envVar>[];
  readonly envFrom: readonly { readonly prefix?: string; readonly secret: string }[];
  readonly mounts: readonly { readonly volume: string; readonly path: string }[];
  /** `command[]` then `args[]`, each with where it is (`command[0]`, `args[2]`): scanned for literal credentials (rule args-literal). */
  readonly argv: readonly { readonly where: string; readonly value: string }[];
}
export interface PodInfo {
  readonly namespace: string;
  /** The pod's name; for a template, the workload's. */
  readonly name: string;
  /** Read from a workload's pod template, not a running pod: it names no pod. */
  readonly template?: true;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly owner?: { readonly kind: string; readonly name: string };
  readonly serviceAccount: string;
  readonly containers: readonly ContainerInfo[];
  readonly volumes: readonly z.output<typeof volume>[];
}
/** When a Secret last changed, as far as its metadata tells (ADR 0273). */
export interface SecretChange {
  readonly at: number;
  readonly source: 'managedFields:data' | 'managedFields' | 'creationTimestamp';
}
export interface SecretInfo {
  readonly namespace: string;
  readonly name: string;
  readonly type?: string;
  readonly keys: readonly string[];
  /** A legacy service-account token Secret (type or annotation). */
  readonly serviceAccountToken: boolean;
  readonly changed?: SecretChange;
}
export interface NetworkPolicyInfo {
  readonly namespace: string;
  readonly name: string;
  readonly podSelector: LabelSelector;
  readonly policyTypes?: readonly string[];
  readonly egress?: readonly EgressRule[];
}

/** Everything read from the input, merged across files (or API lists). */
export interface ClusterObjects {
  readonly pods: PodInfo[];
  readonly secrets: SecretInfo[];
  readonly networkPolicies: NetworkPolicyInfo[];
  /** Objects of other kinds, by kind (reported in the summary, not scanned). */
  readonly ignored: Record<string, number>;
  /** Which kinds were present at all (a List of zero pods counts): the report says what it could not check. */
  readonly kindsSeen: Set<'Pod' | 'Secret' | 'NetworkPolicy'>;
}

export const emptyObjects = (): ClusterObjects => ({ pods: [], secrets: [], networkPolicies: [], ignored: {}, kindsSeen: new Set() });

/** At most this many objects in one scan (all files together): TESSERA_K8S_SCAN_INPUT_TOO_LARGE beyond. */
export const MAX_OBJECTS = 200_000;

/** Typed lists (what the API server returns) and the kind of their items, which carry none. */
const LIST_KINDS: Record<string, string> = { PodList: 'Pod', SecretList: 'Secret', NetworkPolicyList: 'NetworkPolicy' };

/**
 * Adds one parsed document (an object, a `List`, or a typed list such as `PodList`) to `into`.
 * `where` names the document for messages (`cluster.json`, `cluster.yaml document 2`).
 * `defaultKind` is used for list items without `kind` (the API server omits it in lists).
 */
export function addDocument(into: ClusterObjects, doc: unknown, where: string): void {
  const head = z.object({ kind: str, apiVersion: str.optional(), items: z.array(z.unknown()).nullish() }).safeParse(doc);
  if (!head.success || typeof doc !== 'object' || Array.isArray(doc)) {
    throw invalid(`${where} is not a Kubernetes object (expected a JSON/YAML object with "kind" and "apiVersion", e.g. the output of kubectl get … -o json)`);
  }
  const { kind, apiVersion, items } = head.data;
  if (kind === 'List' || LIST_KINDS[kind]) {
    if (!items) throw invalid(`${where}: a ${kind} without "items"`);
    items.forEach((item, i) => addItem(into, item, `${where} items[${i}]`, LIST_KINDS[kind]));
    return;
  }
  if (apiVersion === undefined) throw invalid(`${where}: the ${kind} has no "apiVersion"`);
  addItem(into, doc, where, undefined);
}

function addItem(into: ClusterObjects, item: unknown, where: string, defaultKind: string | undefined): void {
  if (countOf(into) >= MAX_OBJECTS) {
    throw new TesseraError('TESSERA_K8S_SCAN_INPUT_TOO_LARGE', `the input holds more than ${MAX_OBJECTS} objects; scan namespace by namespace`, { limit: MAX_OBJECTS });
  }
  const k = z.object({ kind: str.optional() }).safeParse(item);
  const kind = (k.success ? k.data.kind : undefined) ?? defaultKind;
  if (kind === undefined) throw invalid(`${where} has no "kind"`);
  if (kind === 'List' || LIST_KINDS[kind]) throw invalid(`${where}: a ${kind} inside a list (lists do not nest in kubectl output)`);
  if (kind === 'Pod') into.pods.push(toPod(parse(podSchema, item, where, kind)));
  else if (kind === 'Secret') into.secrets.push(toSecret(parse(secretSchema, item, where, kind)));
  else if (kind === 'NetworkPolicy') into.networkPolicies.push(toNetpol(parse(netpolSchema, item, where, kind)));
  else if ((WORKLOAD_KINDS as readonly string[]).includes(kind)) {
    const t = toTemplate(kind, item, where);
    if (t) into.pods.push(t);
    return;
  } else {
    into.ignored[kind] = (into.ignored[kind] ?? 0) + 1;
    return;
  }
  into.kindsSeen.add(kind);
}

/** Marks a kind as present (an empty PodList from the API still says "there are no pods"). */
export function sawKind(into: ClusterObjects, kind: 'Pod' | 'Secret' | 'NetworkPolicy'): void {
  into.kindsSeen.add(kind);
}

const countOf = (o: ClusterObjects): number => o.pods.length + o.secrets.length + o.networkPolicies.length + Object.values(o.ignored).reduce((a, b) => a + b, 0);

function parse<T extends z.ZodType>(schema: T, item: unknown, where: string, kind: string): z.output<T> {
  const r = schema.safeParse(item);
  if (r.success) return r.data;
  // The path and the expected type only: zod messages can quote the received value.
  const issue = r.error.issues[0]!;
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  throw invalid(`${where}: the ${kind} has an invalid field ${path || '(root)'} (${issue.code})`);
}

const invalid = (message: string): TesseraError => new TesseraError('TESSERA_K8S_SCAN_INPUT_INVALID', message);

const nsOf = (m: z.output<typeof metadata>): string => m.namespace ?? 'default';

function toPod(p: z.output<typeof podSchema>): PodInfo {
  const m = p.metadata;
  const refs = m.ownerReferences ?? [];
  const owner = refs.find((r) => r.controller === true) ?? refs[0];
  const cont = (kind: ContainerInfo['kind']) => (c: z.output<typeof container>): ContainerInfo => ({
    name: c.name,
    kind,
    env: c.env ?? [],
    envFrom: (c.envFrom ?? []).flatMap((e) => (e.secretRef?.name ? [{ secret: e.secretRef.name, ...(e.prefix ? { prefix: e.prefix } : {}) }] : [])),
    mounts: (c.volumeMounts ?? []).map((v) => ({ volume: v.name, path: v.mountPath })),
    argv: [...(c.command ?? []).map((v, i) => ({ where: `command[${i}]`, value: String(v) })), ...(c.args ?? []).map((v, i) => ({ where: `args[${i}]`, value: String(v) }))],
  });
  return {
    namespace: nsOf(m),
    name: m.name,
    labels: m.labels ?? {},
    annotations: m.annotations ?? {},
    ...(owner ? { owner: { kind: owner.kind, name: owner.name } } : {}),
    serviceAccount: p.spec.serviceAccountName ?? 'default',
    containers: [...(p.spec.initContainers ?? []).map(cont('init')), ...p.spec.containers.map(cont('container')), ...(p.spec.ephemeralContainers ?? []).map(cont('ephemeral'))],
    volumes: p.spec.volumes ?? [],
  };
}

/**
 * A workload's pod template as a PodInfo of that workload. A workload owned by another controller
 * (the ReplicaSet of a Deployment, the Job of a CronJob) is skipped: its owner's template (or its
 * running pods) says the same, under the name people know.
 */
function toTemplate(kind: string, item: unknown, where: string): PodInfo | undefined {
  const w = kind === 'CronJob' ? parse(cronJobSchema, item, where, kind) : parse(workloadSchema, item, where, kind);
  if ((w.metadata.ownerReferences ?? []).some((r) => r.controller === true)) return undefined;
  const t = 'jobTemplate' in w.spec ? w.spec.jobTemplate.spec.template : w.spec.template;
  const pod = toPod({ metadata: { name: w.metadata.name, namespace: w.metadata.namespace, labels: t.metadata?.labels, annotations: t.metadata?.annotations }, spec: t.spec });
  return { ...pod, owner: { kind, name: w.metadata.name }, template: true };
}

function toSecret(s: z.output<typeof secretSchema>): SecretInfo {
  const m = s.metadata;
  const keys = [...new Set([...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})])].sort();
  const changed = lastChange(m);
  return {
    namespace: nsOf(m),
    name: m.name,
    ...(s.type ? { type: s.type } : {}),
    keys,
    serviceAccountToken: s.type === 'kubernetes.io/service-account-token' || m.annotations?.['kubernetes.io/service-account.name'] !== undefined,
    ...(changed ? { changed } : {}),
  };
}

/**
 * When the Secret last changed (ADR 0273): the latest `managedFields[].time` of a manager that
 * owns `f:data` or `f:stringData` (a write of the values); else the latest time of any manager;
 * else `creationTimestamp`. A manager's time moves on any write it makes, so this may be later
 * than the last change of the values — the age is never overstated.
 */
function lastChange(m: z.output<typeof metadata>): SecretChange | undefined {
  const entries = (m.managedFields ?? []).flatMap((e) => {
    const at = e.time ? Date.parse(e.time) : NaN;
    return Number.isFinite(at) ? [{ at, data: e.fieldsV1 !== null && e.fieldsV1 !== undefined && ('f:data' in e.fieldsV1 || 'f:stringData' in e.fieldsV1) }] : [];
  });
  const latest = (xs: { at: number }[]): number | undefined => (xs.length ? Math.max(...xs.map((x) => x.at)) : undefined);
  const data = latest(entries.filter((e) => e.data));
  if (data !== undefined) return { at: data, source: 'managedFields:data' };
  const any = latest(entries);
  if (any !== undefined) return { at: any, source: 'managedFields' };
  const created = m.creationTimestamp ? Date.parse(m.creationTimestamp) : NaN;
  return Number.isFinite(created) ? { at: created, source: 'creationTimestamp' } : undefined;
}

function toNetpol(n: z.output<typeof netpolSchema>): NetworkPolicyInfo {
  return {
    namespace: nsOf(n.metadata),
    name: n.metadata.name,
    podSelector: n.spec.podSelector ?? {},
    ...(n.spec.policyTypes ? { policyTypes: n.spec.policyTypes } : {}),
    ...(n.spec.egress ? { egress: n.spec.egress } : {}),
  };
}
