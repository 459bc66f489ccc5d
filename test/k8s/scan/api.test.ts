/**
 * `tessera k8s scan` reading the Kubernetes API (src/k8s/scan/api.ts) with the real
 * `@kubernetes/client-node` client and a real kubeconfig file.
 *
 * No Kubernetes API server can run on the test machines, so a small HTTP server on 127.0.0.1
 * stands in for one: it answers the three list endpoints the scan calls (pods, secrets,
 * networkpolicies; cluster-wide and namespaced) the way the API server does — typed lists
 * (`PodList`…) whose items carry no `kind`, `metadata.continue` paging, a bearer token checked,
 * `Status` bodies for errors — with the objects of the kubectl-shaped fixture. What it cannot
 * show (TLS to a real API server, exec credential plugins, RBAC decisions) is said in
 * docs/k8s-scan.md.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { cluster, leakedValues, run } from './helpers.js';

const TOKEN = 'test-bearer-for-the-stand-in';
const dir = mkdtempSync(join(tmpdir(), 'tessera-scan-api-'));
let server: Server;
let port = 0;
const requests: { path: string; auth: string | undefined }[] = [];
/** resource → HTTP status to answer instead of the list. */
const failures = new Map<string, number>();
/** resource → a raw 200 body to answer instead of the list. */
const garbage = new Map<string, string>();

const ITEMS = cluster().items;
const LIST_KIND: Record<string, string> = { pods: 'PodList', secrets: 'SecretList', networkpolicies: 'NetworkPolicyList' };
const KIND: Record<string, string> = { pods: 'Pod', secrets: 'Secret', networkpolicies: 'NetworkPolicy' };

before(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({ path: url.pathname + url.search, auth: req.headers.authorization });
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(401, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    const m = /^\/(?:api\/v1|apis\/networking\.k8s\.io\/v1)(?:\/namespaces\/([^/]+))?\/(pods|secrets|networkpolicies)$/.exec(url.pathname);
    if (!m) return send(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
    const [, ns, resource] = m as unknown as [string, string | undefined, string];
    const raw = garbage.get(resource);
    if (raw !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(raw);
    }
    const status = failures.get(resource);
    if (status) return send(status, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `${resource} is forbidden: User "system:serviceaccount:ci:scanner" cannot list resource "${resource}"`, reason: 'Forbidden', code: status });
    // Two items per page, whatever `limit` asks: the client must follow `continue`.
    const all = ITEMS.filter((i) => i.kind === KIND[resource] && (!ns || i.metadata.namespace === ns)).map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
    const from = Number(url.searchParams.get('continue') ?? '0');
    const next = from + 2 < all.length ? String(from + 2) : undefined;
    send(200, { kind: LIST_KIND[resource], apiVersion: resource === 'networkpolicies' ? 'networking.k8s.io/v1' : 'v1', metadata: { resourceVersion: '48213', ...(next ? { continue: next } : {}) }, items: all.slice(from, from + 2) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** A kubeconfig for the stand-in; plain HTTP needs `insecure-skip-tls-verify` (client-node refuses it otherwise). */
function kubeconfig(opts: { token?: string; namespace?: string; port?: number; insecure?: boolean } = {}): string {
  const p = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    p,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: stand-in',
      '  cluster:',
      `    server: http://127.0.0.1:${opts.port ?? port}`,
      ...(opts.insecure === false ? [] : ['    insecure-skip-tls-verify: true']),
      'contexts:',
      '- name: scan',
      '  context:',
      '    cluster: stand-in',
      '    user: scanner',
      ...(opts.namespace ? [`    namespace: ${opts.namespace}`] : []),
      'current-context: scan',
      'users:',
      '- name: scanner',
      '  user:',
      `    token: ${opts.token ?? TOKEN}`,
      '',
    ].join('\n'),
  );
  return p;
}

test('-A: every page of pods, secrets and network policies is read; the same findings as from the kubectl file', async () => {
  requests.length = 0;
  const api = await run(['--json', 'k8s', 'scan', '--kubeconfig', kubeconfig(), '-A', '--all-pods', '--fail-on', 'none']);
  assert.equal(api.code, 0, api.stderr);
  const file = await run(['--json', 'k8s', 'scan', '-f', 'test/k8s/scan/fixtures/cluster.json', '--all-pods', '--fail-on', 'none']);
  const strip = (s: string): unknown => {
    const r = JSON.parse(s);
    delete r.generated_at;
    delete r.source;
    for (const f of r.findings) if (f.value) f.value.fingerprint = 'x';
    return r;
  };
  assert.deepEqual(strip(api.stdout), strip(file.stdout));
  assert.deepEqual(JSON.parse(api.stdout).source, { kind: 'api', context: 'scan' });
  assert.ok(requests.every((r) => r.auth === `Bearer ${TOKEN}`));
  assert.ok(requests.some((r) => r.path.startsWith('/api/v1/pods?') && r.path.includes('continue=2')), 'paged');
  assert.ok(requests.some((r) => r.path.startsWith('/apis/networking.k8s.io/v1/networkpolicies')));
  assert.deepEqual(leakedValues(api.stdout + api.stderr), []);
});

test('without -A: the context\'s namespace (as kubectl), or --namespace', async () => {
  requests.length = 0;
  const r = await run(['--json', 'k8s', 'scan', '--kubeconfig', kubeconfig({ namespace: 'batch' }), '--fail-on', 'none']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(requests.every((q) => q.path.includes('/namespaces/batch/')));
  const rep = JSON.parse(r.stdout);
  assert.deepEqual(rep.source, { kind: 'api', context: 'scan', namespace: 'batch' });
  assert.deepEqual(rep.findings.map((f: { rule: string }) => f.rule), ['env-secret-ref']);
  requests.length = 0;
  await run(['k8s', 'scan', '--kubeconfig', kubeconfig(), '-n', 'agents', '--fail-on', 'none']);
  assert.ok(requests.length > 0 && requests.every((q) => q.path.includes('/namespaces/agents/')));
});

test('refused (401, 403) exits 2 with TESSERA_K8S_SCAN_API_REFUSED naming the resource; unreachable exits 3', async () => {
  const bad = await run(['k8s', 'scan', '--kubeconfig', kubeconfig({ token: 'wrong' }), '-A']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /the Kubernetes API refused to list pods in all namespaces: HTTP 401 \(the credentials were not accepted\) \[TESSERA_K8S_SCAN_API_REFUSED\]/);
  failures.set('secrets', 403);
  try {
    const forbidden = await run(['--json', 'k8s', 'scan', '--kubeconfig', kubeconfig(), '-n', 'agents']);
    assert.equal(forbidden.code, 2);
    const e = JSON.parse(forbidden.stderr).error;
    assert.equal(e.code, 'TESSERA_K8S_SCAN_API_REFUSED');
    assert.match(e.message, /list secrets in namespace agents: HTTP 403 \(the credentials may not list secrets in namespace agents; see the ClusterRole in docs\/k8s-scan\.md\)/);
    assert.equal(forbidden.stdout, '');
  } finally {
    failures.clear();
  }
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const down = await run(['k8s', 'scan', '--kubeconfig', kubeconfig({ port: deadPort }), '-A']);
  assert.equal(down.code, 3);
  assert.match(down.stderr, /could not be reached to list pods.*\[TESSERA_K8S_SCAN_API_UNREACHABLE\]/);
});

test('a kubeconfig that cannot be used: exit 2, TESSERA_K8S_SCAN_KUBECONFIG_INVALID; an unknown --context too', async () => {
  const notYaml = join(dir, 'not-a-kubeconfig');
  writeFileSync(notYaml, '{ this is : not [ a kubeconfig');
  for (const args of [['--kubeconfig', notYaml], ['--kubeconfig', kubeconfig(), '--context', 'nope'], ['--kubeconfig', kubeconfig({ insecure: false })]]) {
    const r = await run(['k8s', 'scan', ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /\[TESSERA_K8S_SCAN_KUBECONFIG_INVALID\]/);
  }
  const missing = await run(['k8s', 'scan', '--kubeconfig', join(dir, 'missing')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /missing.*\[TESSERA_K8S_SCAN_KUBECONFIG_INVALID\]/);
});

test('an API server answering garbage: exit 2, TESSERA_K8S_SCAN_INPUT_INVALID, a 500: TESSERA_K8S_SCAN_API_REFUSED', async () => {
  const cases: [string, string, RegExp][] = [
    ['pods', 'not json at all', /the API server answered the pods list with something that is not JSON/],
    ['secrets', '{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":"nope"}', /the API's secrets list items\[0\]: the Secret has an invalid field \.metadata/],
    ['pods', '{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":5},"spec":{"containers":[]}}]}', /the Pod has an invalid field \.metadata\.name/],
  ];
  try {
    for (const [resource, body, msg] of cases) {
      garbage.clear();
      garbage.set(resource, body);
      const r = await run(['k8s', 'scan', '--kubeconfig', kubeconfig(), '-A']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /\[TESSERA_K8S_SCAN_INPUT_INVALID\]/);
      assert.match(r.stderr, msg);
    }
  } finally {
    garbage.clear();
  }
  failures.set('networkpolicies', 500);
  try {
    const r = await run(['k8s', 'scan', '--kubeconfig', kubeconfig(), '-A']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /refused to list networkpolicies in all namespaces: HTTP 500 \[TESSERA_K8S_SCAN_API_REFUSED\]/);
  } finally {
    failures.clear();
  }
});
