/**
 * The scan core (src/k8s/scan/scan.ts) on the kubectl-shaped fixture (fixtures/README.md) and on
 * variations of it: which findings, at which severity, grouped by workload; what is NOT a finding
 * (the default and Tessera's projected tokens, a Tessera-injected pod, inert values); agent
 * selection; system namespaces; the Secret age and the time it is read from. A ManualClock fixes
 * "now". No Kubernetes API server here: the objects are what `kubectl get -o json` prints.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/shared/clock.js';
import { addDocument, emptyObjects, scanObjects, type Finding, type ScanOptions } from '../../../src/k8s/scan/index.js';
import { cluster } from './helpers.js';

const NOW = Date.parse('2026-12-01T00:00:00Z');
const DAY = 86_400_000;

function scan(doc: unknown = cluster(), opts: Partial<ScanOptions> = {}) {
  const objects = emptyObjects();
  addDocument(objects, doc, 'cluster.json');
  return scanObjects(objects, {
    clock: new ManualClock(NOW),
    maxAgeMs: 90 * DAY,
    agents: { allPods: false, selectors: [] },
    includeSystem: false,
    tesseraNamespace: 'tessera',
    fingerprintKey: Buffer.alloc(32, 7),
    ...opts,
  });
}

const brief = (f: Finding): string => [f.severity, f.rule, `${f.namespace}/${f.workload.kind}/${f.workload.name}`, f.container ?? '-', f.variable ?? f.secret?.name ?? f.egress?.open_by ?? '-'].join(' ');

test('the annotated agents of the fixture: every finding, its severity, grouped by workload', () => {
  const r = scan();
  assert.deepEqual(r.findings.map(brief), [
    'critical env-literal agents/Deployment/research-agent agent OPENAI_API_KEY',
    'high egress-unrestricted agents/Deployment/research-agent - research-egress-anywhere',
    'high env-secret-ref agents/Deployment/research-agent agent GITHUB_TOKEN',
    'high env-from-secret agents/Deployment/research-agent agent agent-env',
    'high env-secret-ref batch/Job/nightly-report-29012345 report ANTHROPIC_API_KEY',
    'medium secret-age agents/Deployment/research-agent - github',
    'medium env-literal agents/Deployment/research-agent agent SESSION_COOKIE_SALT_X',
    'low env-secret-ref agents/Deployment/research-agent agent REGION',
  ]);
  // Two replicas of one Deployment: one finding each, both pods named.
  assert.deepEqual(r.findings[0]!.pods, ['research-agent-7d9f8c6b5d-k2j9q', 'research-agent-7d9f8c6b5d-x8m3w']);
  assert.equal(r.counts.agent_pods, 4);
  assert.equal(r.counts.workloads, 3);
  assert.deepEqual(r.skipped_namespaces, ['kube-system']);
});

test('a Tessera-injected pod with an egress policy to Tessera and DNS only has no finding', () => {
  const r = scan();
  assert.equal(r.findings.filter((f) => f.workload.name === 'injected-agent').length, 0);
  // … and it was scanned (an agent by its annotations).
  assert.ok(scan(undefined, { agents: { allPods: false, selectors: [{ key: 'app', value: 'injected-agent' }] } }).counts.agent_pods >= 1);
});

test('the default projected SA token, a legacy SA token Secret, Tessera\'s token and unmounted Secret volumes are no finding', () => {
  const r = scan(undefined, { agents: { allPods: true, selectors: [] } });
  const vols = r.findings.filter((f) => f.rule === 'secret-volume').map((f) => `${f.volume?.name}:${f.secret?.name}`);
  assert.deepEqual(vols.sort(), ['client-cert:client-cert', 'mixed:vendor-keys']);
});

test('--agent-selector adds labelled pods; --all-pods takes every pod outside system namespaces', () => {
  const sel = scan(undefined, { agents: { allPods: false, selectors: [{ key: 'app.kubernetes.io/component', value: 'agent' }] } });
  const batch = sel.findings.filter((f) => f.workload.name === 'batch-agent').map(brief);
  assert.deepEqual(batch, [
    'critical env-literal agents/Pod/batch-agent worker DATABASE_URL',
    'critical env-literal agents/Pod/batch-agent worker SIGNING_KEY',
    'critical env-literal agents/Pod/batch-agent worker UPSTREAM_JWT',
    'high egress-unrestricted agents/Pod/batch-agent - -',
    'high env-literal agents/Pod/batch-agent worker DB_PASSWORD',
    'high secret-volume agents/Pod/batch-agent worker client-cert',
    'high secret-volume agents/Pod/batch-agent worker vendor-keys',
    'medium secret-age agents/Pod/batch-agent - client-cert',
  ]);
  const all = scan(undefined, { agents: { allPods: true, selectors: [] } });
  assert.deepEqual(all.findings.filter((f) => f.workload.name === 'web' && f.rule === 'env-literal').map((f) => `${f.variable} ${f.value?.shape}`), ['AWS_ACCESS_KEY_ID AWS access key id (AKIA…/ASIA…)', 'SLACK_WEBHOOK_TOKEN Slack token (xoxb-/xoxp-…)']);
  assert.equal(all.findings.some((f) => f.namespace === 'kube-system'), false);
  const sys = scan(undefined, { includeSystem: true });
  assert.deepEqual(sys.findings.filter((f) => f.namespace === 'kube-system').map(brief), ['high egress-unrestricted kube-system/Pod/metrics-agent - -', 'high env-literal kube-system/Pod/metrics-agent m API_TOKEN']);
});

test('no agent pod: a note says how to select them, and nothing is reported', () => {
  const doc = cluster();
  doc.items = doc.items.filter((i) => i.kind !== 'Pod' || !i.metadata.annotations);
  const r = scan(doc);
  assert.equal(r.findings.length, 0);
  assert.match(r.notes.join('\n'), /no pod of the 2 given is an agent: annotate agent pods tessera\.io\/agent or tessera\.io\/inject, or pass --agent-selector/);
});

test('Secret age: the data owner\'s managedFields time, not a later label write; creationTimestamp without managedFields; --max-age', () => {
  const gh = scan().findings.find((f) => f.rule === 'secret-age' && f.secret?.name === 'github')!;
  assert.deepEqual(gh.age, { days: Math.floor((NOW - Date.parse('2025-01-10T09:00:00Z')) / DAY), changed_at: '2025-01-10T09:00:00.000Z', source: 'managedFields:data' });
  const cert = scan(undefined, { agents: { allPods: true, selectors: [] } }).findings.find((f) => f.rule === 'secret-age' && f.secret?.name === 'client-cert')!;
  assert.equal(cert.age?.source, 'creationTimestamp');
  // Without a data owner, the latest managedFields time of any manager.
  const doc = cluster();
  const s = doc.items.find((i) => i.kind === 'Secret' && i.metadata.name === 'github')!;
  s.metadata.managedFields = s.metadata.managedFields.filter((m: { manager: string }) => m.manager === 'kubectl-label');
  assert.equal(scan(doc).findings.some((f) => f.rule === 'secret-age' && f.secret?.name === 'github'), false, 'labelled 11 days ago: not old');
  // --max-age longer than the Secret's age: no finding.
  assert.equal(scan(undefined, { maxAgeMs: 1000 * DAY }).findings.some((f) => f.rule === 'secret-age'), false);
  // A Secret not in the input: its age is unknown, and a note says so.
  const noSecrets = cluster();
  noSecrets.items = noSecrets.items.filter((i) => i.kind !== 'Secret');
  const r = scan(noSecrets);
  assert.equal(r.findings.some((f) => f.rule === 'secret-age'), false);
  assert.match(r.notes.join('\n'), /not in the input, so their age and keys are unknown: agents\/agent-env, agents\/github, batch\/anthropic/);
  // envFrom of an unknown Secret: medium, keys unknown.
  assert.equal(r.findings.find((f) => f.rule === 'env-from-secret')?.severity, 'medium');
});

test('egress: no NetworkPolicy in the input is said in a note', () => {
  const doc = cluster();
  doc.items = doc.items.filter((i) => i.kind !== 'NetworkPolicy');
  const r = scan(doc);
  assert.match(r.notes.join('\n'), /no NetworkPolicy objects/);
  assert.ok(r.findings.some((f) => f.rule === 'egress-unrestricted' && f.workload.name === 'injected-agent'));
});

test('suggestions: proxy route with a kv path and annotations, a postgres lease, rotation, NetworkPolicy', () => {
  const all = scan(undefined, { agents: { allPods: true, selectors: [] } }).findings;
  const openai = all.find((f) => f.variable === 'OPENAI_API_KEY')!.suggestion;
  assert.equal(openai.replacement, 'proxy-route');
  assert.equal(openai.kv_path, 'agents/research-agent/openai-api-key');
  assert.deepEqual(openai.annotations, { 'tessera.io/inject': 'true', 'tessera.io/agent': 'true', 'tessera.io/proxy': 'true' });
  assert.match(openai.text, /route `openai`, upstream https:\/\/api\.openai\.com\/v1/);
  assert.equal(all.find((f) => f.variable === 'GITHUB_TOKEN')!.suggestion.kv_path, 'agents/github/token');
  assert.equal(all.find((f) => f.variable === 'DATABASE_URL')!.suggestion.replacement, 'postgres-lease');
  assert.equal(all.find((f) => f.variable === 'AWS_ACCESS_KEY_ID')!.suggestion.replacement, 'workload-identity');
  assert.equal(all.find((f) => f.variable === 'UPSTREAM_JWT')!.suggestion.replacement, 'tessera-identity');
  assert.equal(all.find((f) => f.secret?.name === 'client-cert' && f.rule === 'secret-volume')!.suggestion.replacement, 'short-lived-certificate');
  assert.equal(all.find((f) => f.rule === 'secret-age')!.suggestion.replacement, 'rotate-into-kv');
  assert.equal(all.find((f) => f.rule === 'egress-unrestricted')!.suggestion.replacement, 'network-policy');
  assert.match(all.find((f) => f.variable === 'REGION')!.suggestion.text, /^if it is a credential: .*; if not, a ConfigMap$/);
});

test('fingerprints: the same value in two pods is one fingerprint; another key gives another; never a part of the value', () => {
  const a = scan(undefined, { agents: { allPods: true, selectors: [] } }).findings.filter((f) => f.value);
  const b = scan(undefined, { agents: { allPods: true, selectors: [] }, fingerprintKey: Buffer.alloc(32, 8) }).findings.filter((f) => f.value);
  for (const f of a) assert.match(f.value!.fingerprint, /^hmac:[0-9a-f]{12}$/);
  assert.notEqual(a[0]!.value!.fingerprint, b.find((f) => f.variable === a[0]!.variable)!.value!.fingerprint);
  const openai = a.find((f) => f.variable === 'OPENAI_API_KEY')!;
  assert.equal(openai.pods.length, 2, 'both replicas merged: same value, same fingerprint');
});

test('a ReplicaSet whose name does not end in the pod-template-hash stays a ReplicaSet; other owners keep their kind', () => {
  const doc = cluster();
  const pod = doc.items.find((i) => i.metadata.name === 'research-agent-7d9f8c6b5d-k2j9q')!;
  pod.metadata.labels['pod-template-hash'] = 'other';
  const r = scan(doc);
  assert.ok(r.findings.some((f) => f.workload.kind === 'ReplicaSet' && f.workload.name === 'research-agent-7d9f8c6b5d'));
  assert.ok(r.findings.some((f) => f.workload.kind === 'Job'));
});

test('workload manifests: a Deployment\'s pod template is scanned as that Deployment (no pods named); with its running pods, one finding', () => {
  const pods = cluster().items.filter((i) => i.metadata.name.startsWith('research-agent'));
  const tpl = structuredClone(pods[0]!);
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'research-agent', namespace: 'agents', generation: 3, resourceVersion: '777', uid: 'd-1' },
    spec: { replicas: 2, selector: { matchLabels: { app: 'research-agent' } }, template: { metadata: { labels: { app: 'research-agent' }, annotations: tpl.metadata.annotations }, spec: tpl.spec } },
  };
  const alone = scan({ apiVersion: 'v1', kind: 'List', items: [deployment], metadata: {} });
  const literal = alone.findings.find((f) => f.variable === 'OPENAI_API_KEY')!;
  assert.deepEqual([literal.workload, literal.pods, literal.severity], [{ kind: 'Deployment', name: 'research-agent' }, [], 'critical']);
  assert.deepEqual([alone.counts.agent_pods, alone.counts.agent_templates, alone.counts.pods], [0, 1, 0]);
  // Its ReplicaSet (owned by the Deployment) adds nothing; with the running pods, the findings merge.
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'research-agent-7d9f8c6b5d', namespace: 'agents', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'research-agent', uid: 'd-1', controller: true }] }, spec: deployment.spec };
  const both = scan({ apiVersion: 'v1', kind: 'List', items: [deployment, rs, ...pods], metadata: {} });
  assert.deepEqual(both.findings.filter((f) => f.variable === 'OPENAI_API_KEY').map((f) => [f.workload.kind, f.pods.length]), [['Deployment', 2]]);
  assert.equal(both.findings.some((f) => f.workload.kind === 'ReplicaSet'), false);
  // A CronJob's job template; an un-annotated StatefulSet is no agent.
  const cron = { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'nightly', namespace: 'batch' }, spec: { schedule: '0 3 * * *', jobTemplate: { spec: { template: { metadata: { annotations: { 'tessera.io/inject': 'true' } }, spec: { restartPolicy: 'Never', containers: [{ name: 'r', env: [{ name: 'GITHUB_TOKEN', value: 'ghp_FakeGithubTokenForTesseraScanTest0123' }] }] } } } } } };
  const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db', namespace: 'batch' }, spec: { template: { spec: { containers: [{ name: 'pg', env: [{ name: 'POSTGRES_PASSWORD', value: 'x-literal-pw' }] }] } } } };
  const r = scan({ apiVersion: 'v1', kind: 'List', items: [cron, sts], metadata: {} });
  assert.deepEqual(r.findings.filter((f) => f.rule === 'env-literal').map((f) => `${f.workload.kind}/${f.workload.name} ${f.variable}`), ['CronJob/nightly GITHUB_TOKEN']);
  // A template with the wrong shape is refused like a pod.
  assert.throws(() => scan({ ...cron, spec: { jobTemplate: { spec: { template: { spec: { containers: 'x' } } } } } }), (e: Error & { code?: string }) => e.code === 'TESSERA_K8S_SCAN_INPUT_INVALID' && /the CronJob has an invalid field \.spec\.jobTemplate\.spec\.template\.spec\.containers/.test(e.message));
});

test('atk-13: a webhook URL, a Bearer header line and a connection string in an agent env are critical findings whose output holds no part of the value', () => {
  const doc = {
    kind: 'List', apiVersion: 'v1', metadata: {},
    items: [{
      kind: 'Pod', apiVersion: 'v1',
      metadata: { name: 'a', namespace: 'x', annotations: { 'tessera.io/agent': 'true' } },
      spec: { containers: [{ name: 'c', image: 'i', env: [
        { name: 'SLACK_WEBHOOK_URL', value: 'https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX' },
        { name: 'EXTRA_HEADERS', value: 'Authorization: Bearer ghp_FakeGithubTokenForTesseraScanTest0123' },
        { name: 'MSSQL', value: 'Server=db;User Id=sa;Password=S3cr3tP4ss;' },
      ] }] },
    }],
  };
  const r = scan(doc);
  const lit = r.findings.filter((f) => f.rule === 'env-literal');
  assert.deepEqual(lit.map((f) => `${f.severity} ${f.variable} ${f.value?.shape}`).sort(), [
    'critical EXTRA_HEADERS GitHub token (ghp_/gho_/ghu_/ghs_/ghr_…)',
    'critical MSSQL connection string with a password (…;Password=…)',
    'critical SLACK_WEBHOOK_URL Slack webhook URL (hooks.slack.com/…)',
  ]);
  const text = JSON.stringify(r);
  for (const secret of ['XXXXXXXXXXXXXXXXXXXXXXXX', 'FakeGithubToken', 'S3cr3tP4ss']) assert.equal(text.includes(secret), false, secret);
});

test('atk-13: credentials in command/args are findings (args-literal): a known format critical, a credential flag\'s value high; inert flag values and other args are not', () => {
  const doc = {
    kind: 'List', apiVersion: 'v1', metadata: {},
    items: [{
      kind: 'Pod', apiVersion: 'v1',
      metadata: { name: 'a', namespace: 'x', annotations: { 'tessera.io/agent': 'true' } },
      spec: { containers: [{
        name: 'c', image: 'i',
        command: ['sh', '-c', 'exec agent --key sk-ant-api03-FakeAnthropicKeyForTesseraScanTests000'],
        args: ['--password', 'hunter2-but-longer', '--db-token=S3cretTok', '--api-key', 'ghp_FakeGithubTokenForTesseraScanTest0123', '--token-file', '/run/t', '--password=$(DB_PASSWORD)', '--verbose', '--port', '8080'],
      }] },
    }],
  };
  const r = scan(doc);
  const found = r.findings.filter((f) => f.rule === 'args-literal');
  assert.deepEqual(found.map((f) => `${f.severity} ${f.variable} ${f.value?.shape ?? '-'} ${f.value?.length}`), [
    'critical args[4] GitHub token (ghp_/gho_/ghu_/ghs_/ghr_…) 41',
    'critical command[2] Anthropic API key (sk-ant-…) 68',
    'high args[1] - 18',
    'high args[2] - 9',
  ]);
  const text = JSON.stringify(r);
  for (const secret of ['FakeAnthropicKey', 'FakeGithubToken', 'hunter2', 'S3cretTok']) assert.equal(text.includes(secret), false, secret);
});
