/**
 * `tessera k8s scan -f` through the real command line (runCli, in-process): the table and the
 * `--json` report on the kubectl-shaped fixture, exit codes for CI (0 / 1 at --fail-on / 2 usage
 * or input), standard input and YAML, and hostile input — each refused with its exact stable
 * code and exit 2, never a crash. Every test asserts that no credential value of the fixture
 * (fixtures/secret-values.json) reaches stdout or stderr in any spelling.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { FIXTURE, cluster, leakedValues, run, type Run } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-scan-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Buffer): string => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};
const noLeak = (r: Run): void => assert.deepEqual(leakedValues(r.stdout + r.stderr), [], 'a credential value reached the output');
const ALL = ['--all-pods', '--include-system-namespaces'];

test('table: findings with severity, workload, container, subject and suggestion; exit 1 at the default --fail-on high; nothing leaks', async () => {
  const r = await run(['k8s', 'scan', '-f', FIXTURE, ...ALL]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^#\s+SEVERITY\s+NAMESPACE\s+WORKLOAD\s+CONTAINER\s+FINDING\s+SUGGESTION/);
  assert.match(r.stdout, /critical\s+agents\s+Deployment\/research-agent \(2 pods\)\s+agent\s+env OPENAI_API_KEY = <OpenAI API key \(sk-…\), 48 chars, hmac:[0-9a-f]{12}>\s+proxy-route: kv agents\/research-agent\/openai-api-key \(docs\/proxy\.md\)/);
  assert.match(r.stdout, /instead: a proxy route \(route `openai`, upstream https:\/\/api\.openai\.com\/v1\)/);
  assert.match(r.stdout, /annotations: tessera\.io\/inject: "true", tessera\.io\/agent: "true", tessera\.io\/proxy: "true"/);
  assert.match(r.stdout, /\d+ findings \(\d+ critical, \d+ high, \d+ medium, \d+ low\): 7 agent pods in 6 workloads scanned/);
  assert.match(r.stderr, /error: \d+ findings at or above high \(--fail-on high\) \[TESSERA_K8S_SCAN_FINDINGS\]/);
  noLeak(r);
});

test('--json: the documented schema; the error on stderr is JSON too; nothing leaks', async () => {
  const r = await run(['--json', 'k8s', 'scan', '-f', FIXTURE, ...ALL]);
  assert.equal(r.code, 1);
  const rep = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(rep), ['schema', 'generated_at', 'source', 'options', 'summary', 'notes', 'findings']);
  assert.equal(rep.schema, 'tessera.k8s.scan/v1');
  assert.deepEqual(rep.source, { kind: 'files', files: [FIXTURE] });
  assert.deepEqual(rep.options, { max_age: '90d', fail_on: 'high', all_pods: true, agent_selectors: [], include_system_namespaces: true, tessera_namespace: 'tessera' });
  assert.deepEqual(Object.keys(rep.summary), ['pods', 'agent_pods', 'workloads', 'secrets', 'network_policies', 'skipped_pods', 'agent_templates', 'findings', 'failed', 'skipped_namespaces', 'ignored_kinds']);
  assert.equal(rep.summary.failed, true);
  const allowed = new Set(['rule', 'severity', 'namespace', 'workload', 'pods', 'container', 'variable', 'secret', 'volume', 'value', 'age', 'egress', 'why', 'suggestion']);
  for (const f of rep.findings) {
    for (const k of Object.keys(f)) assert.ok(allowed.has(k), k);
    assert.deepEqual(Object.keys(f).slice(0, 5), ['rule', 'severity', 'namespace', 'workload', 'pods']);
    assert.ok(['env-literal', 'env-secret-ref', 'env-from-secret', 'secret-volume', 'secret-age', 'egress-unrestricted'].includes(f.rule));
    assert.ok(['low', 'medium', 'high', 'critical'].includes(f.severity));
    assert.ok(typeof f.why === 'string' && typeof f.suggestion.text === 'string' && typeof f.suggestion.docs === 'string');
    if (f.value) assert.deepEqual(Object.keys(f.value).filter((k) => k !== 'shape'), ['length', 'fingerprint']);
  }
  const sum = rep.summary.findings;
  assert.equal(sum.low + sum.medium + sum.high + sum.critical, rep.findings.length);
  assert.deepEqual(JSON.parse(r.stderr.trim()).error.code, 'TESSERA_K8S_SCAN_FINDINGS');
  noLeak(r);
});

test('exit codes: 0 below --fail-on, 1 at it, 0 with --fail-on none; "no findings" for a clean input', async () => {
  assert.equal((await run(['k8s', 'scan', '-f', FIXTURE, '-n', 'batch'])).code, 1);
  assert.equal((await run(['k8s', 'scan', '-f', FIXTURE, '-n', 'batch', '--fail-on', 'critical'])).code, 0);
  assert.equal((await run(['k8s', 'scan', '-f', FIXTURE, ...ALL, '--fail-on', 'none'])).code, 0);
  const low = await run(['k8s', 'scan', '-f', FIXTURE, '--fail-on', 'low']);
  assert.match(low.stderr, /findings at or above low/);
  const doc = cluster();
  doc.items = doc.items.filter((i) => i.kind !== 'Pod' || i.metadata.name.startsWith('injected-agent'));
  const clean = await run(['k8s', 'scan', '-f', file('clean.json', JSON.stringify(doc))]);
  assert.equal(clean.code, 0);
  assert.match(clean.stdout, /^no findings: 1 agent pod in 1 workload scanned \(1 pod, 5 Secrets, 4 NetworkPolicies read\)/);
});

test('standard input, YAML (several documents), and several files are read alike', async () => {
  const json = await run(['--json', 'k8s', 'scan', '-f', FIXTURE, '--fail-on', 'none']);
  const stdin = await run(['--json', 'k8s', 'scan', '-f', '-', '--fail-on', 'none'], { stdin: JSON.stringify(cluster()) });
  const strip = (s: string): unknown => {
    const r = JSON.parse(s);
    delete r.generated_at;
    delete r.source;
    for (const f of r.findings) if (f.value) f.value.fingerprint = 'x';
    return r;
  };
  assert.deepEqual(strip(stdin.stdout), strip(json.stdout));
  const items = cluster().items;
  const yaml = items.map((i) => stringify(i)).join('---\n');
  const y = await run(['--json', 'k8s', 'scan', '-f', file('cluster.yaml', yaml), '--fail-on', 'none']);
  assert.deepEqual(strip(y.stdout), strip(json.stdout));
  const pods = file('pods.json', JSON.stringify({ apiVersion: 'v1', kind: 'List', items: items.filter((i) => i.kind === 'Pod'), metadata: { resourceVersion: '' } }));
  const rest = file('rest.json', JSON.stringify({ apiVersion: 'v1', kind: 'List', items: items.filter((i) => i.kind !== 'Pod'), metadata: { resourceVersion: '' } }));
  const two = await run(['--json', 'k8s', 'scan', '-f', pods, '-f', rest, '--fail-on', 'none']);
  assert.deepEqual(strip(two.stdout), strip(json.stdout));
  // The same objects twice (two overlapping files) count once.
  const twice = await run(['--json', 'k8s', 'scan', '-f', FIXTURE, '-f', rest, '--fail-on', 'none']);
  assert.deepEqual(strip(twice.stdout), strip(json.stdout));
  noLeak(y);
});

test('usage errors exit 2 with TESSERA_CLI_USAGE', async () => {
  const cases: [string[], RegExp][] = [
    [['--max-age', 'soon'], /--max-age soon is not a duration/],
    [['--max-age', '0'], /--max-age 0 is not a duration/],
    [['--agent-selector', 'no-equals'], /--agent-selector no-equals is not LABEL=VALUE/],
    [['--kubeconfig', FIXTURE], /-f\/--file reads files/],
    [['-n', 'a', '-A'], /exclude each other/],
    [['-f', '-', '-f', '-'], /standard input \(-\) can be read only once/],
  ];
  for (const [args, msg] of cases) {
    const r = await run(['k8s', 'scan', '-f', FIXTURE, ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, msg);
    assert.match(r.stderr, /\[TESSERA_CLI_USAGE\]/);
  }
  const missing = await run(['k8s', 'scan', '-f', join(dir, 'nope.json')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--file .*nope\.json does not exist/);
  const badChoice = await run(['k8s', 'scan', '-f', FIXTURE, '--fail-on', 'severe']);
  assert.equal(badChoice.code, 2);
});

test('hostile and wrong input: each refused with its code and exit 2, no value echoed', async () => {
  const bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]', ...'bcdefghi'.split('').map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`)].join('\n');
  const hugeObjects = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: Array.from({ length: 200_001 }, () => ({ apiVersion: 'v1', kind: 'ConfigMap' })) });
  const sparse = join(dir, 'sparse.json');
  writeFileSync(sparse, '{');
  truncateSync(sparse, 128 * 1024 * 1024 + 1);
  const badPod = cluster().items.find((i) => i.kind === 'Pod')!;
  badPod.spec.containers[0].env = [{ name: 'X', value: { nested: 'hunter2-correct-horse' } }];
  const cases: [string, string | Buffer | null, string, RegExp][] = [
    ['empty.json', '', 'TESSERA_K8S_SCAN_INPUT_EMPTY', /empty\.json is empty/],
    ['comments.yaml', '# nothing\n---\n', 'TESSERA_K8S_SCAN_INPUT_EMPTY', /holds no document/],
    ['broken.json', '{"password": "hunter2-correct-horse",,}', 'TESSERA_K8S_SCAN_INPUT_MALFORMED', /broken\.json is not valid JSON/],
    ['broken.yaml', 'password: hunter2-correct-horse\n  bad: : [', 'TESSERA_K8S_SCAN_INPUT_MALFORMED', /broken\.yaml is not valid YAML at line \d+/],
    ['bomb.yaml', bomb, 'TESSERA_K8S_SCAN_INPUT_MALFORMED', /expands more than 100 YAML aliases/],
    ['tag.yaml', 'kind: !secret hunter2-correct-horse\n', 'TESSERA_K8S_SCAN_INPUT_MALFORMED', /custom YAML tag/],
    ['dup.yaml', 'kind: Pod\nkind: Secret\n', 'TESSERA_K8S_SCAN_INPUT_MALFORMED', /DUPLICATE_KEY/],
    ['binary.json', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'TESSERA_K8S_SCAN_INPUT_MALFORMED', /not UTF-8/],
    ['deep.json', '['.repeat(100_000) + ']'.repeat(100_000), 'TESSERA_K8S_SCAN_INPUT_TOO_DEEP', /nested deeper than 64 levels/],
    ['deep.yaml', 'a:\n' + Array.from({ length: 5000 }, (_, i) => ' '.repeat(i + 2) + '- ').join('\n'), 'TESSERA_K8S_SCAN_INPUT_TOO_DEEP', /indented more than 1000 columns/],
    ['dashes.yaml', '- '.repeat(20_000) + 'x', 'TESSERA_K8S_SCAN_INPUT_TOO_DEEP', /indented more than 1000 columns/],
    ['objects.json', hugeObjects, 'TESSERA_K8S_SCAN_INPUT_TOO_LARGE', /more than 200000 objects/],
    ['sparse.json', null, 'TESSERA_K8S_SCAN_INPUT_TOO_LARGE', /larger than 128 MiB/],
    ['other.json', '{"hello": "world"}', 'TESSERA_K8S_SCAN_INPUT_INVALID', /not a Kubernetes object/],
    ['array.json', '[1, 2, 3]', 'TESSERA_K8S_SCAN_INPUT_INVALID', /not a Kubernetes object/],
    ['scalar.yaml', 'hunter2-correct-horse\n', 'TESSERA_K8S_SCAN_INPUT_INVALID', /not a Kubernetes object/],
    ['noapi.json', '{"kind": "Pod", "metadata": {"name": "x"}}', 'TESSERA_K8S_SCAN_INPUT_INVALID', /the Pod has no "apiVersion"/],
    ['noitems.json', '{"kind": "List", "apiVersion": "v1"}', 'TESSERA_K8S_SCAN_INPUT_INVALID', /a List without "items"/],
    ['nested.json', JSON.stringify({ kind: 'List', apiVersion: 'v1', items: [{ kind: 'List', apiVersion: 'v1', items: [] }] }), 'TESSERA_K8S_SCAN_INPUT_INVALID', /inside a list/],
    ['nokind.json', JSON.stringify({ kind: 'List', apiVersion: 'v1', items: [{ apiVersion: 'v1' }] }), 'TESSERA_K8S_SCAN_INPUT_INVALID', /items\[0\] has no "kind"/],
    ['badpod.json', JSON.stringify({ kind: 'List', apiVersion: 'v1', items: [badPod] }), 'TESSERA_K8S_SCAN_INPUT_INVALID', /items\[0\]: the Pod has an invalid field \.spec\.containers\[0\]\.env\[0\]\.value/],
    ['badnp.json', JSON.stringify({ kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1', metadata: { name: 'n' }, spec: { egress: 'all' } }), 'TESSERA_K8S_SCAN_INPUT_INVALID', /\.spec\.egress/],
  ];
  for (const [name, content, code, msg] of cases) {
    const p = content === null ? join(dir, name) : file(name, content);
    const r = await run(['k8s', 'scan', '-f', p]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`\\[${code}\\]`), name);
    assert.match(r.stderr, msg, name);
    assert.doesNotMatch(r.stderr + r.stdout, /hunter2|lol/, name);
    assert.equal(r.stdout, '', name);
  }
  // Standard input beyond 128 MiB: refused as it streams in (one 1 MiB chunk, given 129 times).
  const mib = Buffer.alloc(1024 * 1024, 0x20);
  const endless = await run(['k8s', 'scan', '-f', '-'], { stdin: (async function* () { for (let i = 0; i < 129; i++) yield mib; })() });
  assert.equal(endless.code, 2);
  assert.match(endless.stderr, /standard input is larger than 128 MiB.*\[TESSERA_K8S_SCAN_INPUT_TOO_LARGE\]/);
  const j = await run(['--json', 'k8s', 'scan', '-f', '-'], { stdin: '{"kind": "Pod"' });
  assert.equal(j.code, 2);
  assert.equal(JSON.parse(j.stderr).error.code, 'TESSERA_K8S_SCAN_INPUT_MALFORMED');
});

test('progress on stderr only for a big input on a terminal', async () => {
  const doc = cluster();
  doc.items.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'big', namespace: 'agents' }, data: { blob: 'x'.repeat(9 * 1024 * 1024) } });
  const p = file('big.json', JSON.stringify(doc));
  const tty = await run(['k8s', 'scan', '-f', p, '--fail-on', 'none'], { tty: true });
  assert.match(tty.stderr, /reading .*big\.json \(9 MiB\)…/);
  const pipe = await run(['k8s', 'scan', '-f', p, '--fail-on', 'none']);
  assert.doesNotMatch(pipe.stderr, /reading/);
  const small = await run(['k8s', 'scan', '-f', FIXTURE, '--fail-on', 'none'], { tty: true });
  assert.doesNotMatch(small.stderr, /reading/);
  assert.match((await run(['--json', 'k8s', 'scan', '-f', p, '--fail-on', 'none'])).stdout, /"ignored_kinds": \{\n\s+"ConfigMap": 1/);
});

test('no credential value in any output, whatever the options', async () => {
  for (const args of [[], ALL, ['--json', ...ALL], ['--agent-selector', 'app=web'], ['--json', '--max-age', '1d', ...ALL]]) {
    const json = args[0] === '--json';
    const r = await run([...(json ? ['--json'] : []), 'k8s', 'scan', '-f', FIXTURE, ...args.filter((a) => a !== '--json')]);
    noLeak(r);
  }
});

test('names from the input cannot act on the terminal: control and bidi characters are escaped in the table and the details', async () => {
  const doc = cluster();
  const pod = doc.items.find((i) => i.kind === 'Pod' && i.metadata.annotations?.['tessera.io/agent'])!;
  pod.metadata.namespace = 'agents\u001b[2J';
  pod.spec.containers[0].name = 'agent\u202e';
  pod.spec.containers[0].env.push({ name: 'EVIL\u001b]0;owned\u0007_TOKEN', value: 'a-static-token-value-0001' });
  const r = await run(['k8s', 'scan', '-f', file('evil.json', JSON.stringify({ ...doc, items: [pod] })), '--fail-on', 'none']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /EVIL/);
  const raw = [...(r.stdout + r.stderr)].filter((c) => (c < ' ' && c !== '\n') || c === '\u007f' || c === '\u202e');
  assert.deepEqual(raw, [], 'a raw control or bidi character reached the output');
  assert.doesNotMatch(r.stdout, /a-static-token-value-0001/);
});
