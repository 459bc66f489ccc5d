/**
 * `tessera injector` mutating pods, end to end over HTTPS.
 *
 * No Kubernetes API server can run on these machines: the AdmissionReviews posted here stand in
 * for what it sends (fixtures.ts: shapes as the API server sends them, pods after defaulting and
 * the ServiceAccount plugin). What the API server would do with the answer is done here too:
 * the returned JSONPatch is applied with fast-json-patch (RFC 6902, every operation validated)
 * and the resulting Pod is validated against the Kubernetes API schema (kubernetes-models), then
 * asserted; the patched pod is posted again and gets no patch (idempotence).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT, INJECT, barePod, container, deploymentPod, initPod, pod, review } from './fixtures.js';
import { again, applied, opsOf, startInjectorCli, type Injector } from './harness.js';
import { VERSION } from '../../../src/shared/package.js';
import { pointerToken } from '../../../src/k8s/injector/index.js';

const TOKEN_FILE = '/var/run/secrets/tessera.io/serviceaccount/token';
let inj: Injector;
let legacy: Injector; // native_sidecar: false, other addresses and resources

before(async () => {
  inj = await startInjectorCli();
  legacy = await startInjectorCli({ native_sidecar: false, tessera_addr: 'https://tessera.platform.svc:8200', proxy_url: 'http://tessera.platform.svc:8201', audience: 'tessera-prod', token_expiration: '1h', image: 'registry.example.com/tessera:9.9.9', image_command: ['/usr/local/bin/tessera'], image_pull_policy: 'Always', resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } } }, { ca: undefined });
});
after(async () => {
  assert.equal(await inj.stop(), 0);
  assert.equal(await legacy.stop(), 0);
});

type Obj = Record<string, any>;
const envOf = (c: Obj): Record<string, unknown> => Object.fromEntries((c.env ?? []).map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
const mountsOf = (c: Obj): Record<string, string> => Object.fromEntries((c.volumeMounts ?? []).map((m: Obj) => [m.name, m.mountPath]));
const volumeNames = (p: Obj): string[] => (p.spec.volumes ?? []).map((v: Obj) => v.name);

/** Posts the patched pod again: the injector must leave it alone. */
async function assertIdempotent(i: Injector, r: Obj, patched: Obj): Promise<void> {
  const second = await i.admit(again(r, patched));
  assert.equal(second.allowed, true);
  assert.equal(second.patch, undefined, 'a pod already injected gets no second patch');
}

test('healthz answers 200 over HTTPS', async () => {
  const a = await inj.post(undefined, { path: '/healthz', method: 'GET' });
  assert.equal(a.status, 200);
  assert.deepEqual(a.json, { status: 'ok' });
});

test('a bare pod asking for everything: token, environment, native sidecar with the task defaults', async () => {
  const r = review(barePod({ ...AGENT, 'tessera.io/proxy': 'true', 'tessera.io/role': 'support', 'tessera.io/task-scope': 'tool:tickets/* secret:support/**', 'tessera.io/task-purpose': 'answer support tickets', 'tessera.io/task-ttl': '30m' }));
  const res = await inj.admit(r);
  assert.equal(res.allowed, true);
  assert.equal(res.uid, (r.request as Obj).uid, 'the response carries the request uid');
  const ops = opsOf(res);
  assert.ok(ops.every((o) => o.op === 'add'), 'only adds');
  assert.ok(ops.some((o) => o.path === `/metadata/annotations/${pointerToken('tessera.io/injected')}`), 'the annotation key is escaped (RFC 6901)');
  const p = applied(r, res);
  assert.equal(p.metadata.annotations['tessera.io/injected'], VERSION);
  // The ServiceAccount plugin's volume stays; ours are added after it.
  assert.deepEqual(volumeNames(p), ['kube-api-access-8x2kq', 'tessera-token', 'tessera-run']);
  const token = p.spec.volumes.find((v: Obj) => v.name === 'tessera-token');
  assert.deepEqual(token.projected.sources, [{ serviceAccountToken: { audience: 'tessera', expirationSeconds: 600, path: 'token' } }]);
  assert.deepEqual(p.spec.volumes.find((v: Obj) => v.name === 'tessera-run').emptyDir, { medium: 'Memory', sizeLimit: '1Mi' });
  const app = p.spec.containers[0];
  assert.deepEqual(envOf(app), {
    TESSERA_ADDR: 'http://tessera.tessera.svc:8200',
    TESSERA_TOKEN_FILE: TOKEN_FILE,
    TESSERA_MCP_URL: 'http://127.0.0.1:15002/mcp',
    HTTPS_PROXY: 'http://127.0.0.1:15001', HTTP_PROXY: 'http://127.0.0.1:15001', https_proxy: 'http://127.0.0.1:15001', http_proxy: 'http://127.0.0.1:15001',
    NO_PROXY: 'localhost,127.0.0.1,::1,.svc,.cluster.local', no_proxy: 'localhost,127.0.0.1,::1,.svc,.cluster.local',
  });
  assert.deepEqual(mountsOf(app), { 'kube-api-access-8x2kq': '/var/run/secrets/kubernetes.io/serviceaccount', 'tessera-token': '/var/run/secrets/tessera.io/serviceaccount' });
  assert.equal(app.volumeMounts.find((m: Obj) => m.name === 'tessera-token').readOnly, true);
  assert.equal(mountsOf(app)['tessera-run'], undefined, 'the sidecar\'s token storage is not the app\'s');
  // The native sidecar: the only (so first) init container, restartPolicy Always.
  assert.equal(p.spec.initContainers.length, 1);
  const sc = p.spec.initContainers[0];
  assert.equal(sc.name, 'tessera-agent');
  assert.equal(sc.restartPolicy, 'Always');
  assert.equal(sc.image, `ghcr.io/tessera-broker/tessera:${VERSION}`);
  assert.deepEqual(sc.args, ['agent', '--addr', 'http://tessera.tessera.svc:8200', '--token-file', TOKEN_FILE, '--proxy-url', 'http://tessera.tessera.svc:8201', '--listen-proxy', '127.0.0.1:15001', '--listen-mcp', '127.0.0.1:15002', '--role', 'support', '--task-scope', 'tool:tickets/* secret:support/**', '--task-purpose', 'answer support tickets', '--task-ttl', '1800s']);
  const env = envOf(sc);
  assert.deepEqual(Object.keys(env), ['TESSERA_ADDR', 'TESSERA_TOKEN_FILE', 'TESSERA_PROXY_URL']);
  assert.equal(env.TESSERA_ADDR, 'http://tessera.tessera.svc:8200');
  assert.equal(env.TESSERA_TOKEN_FILE, TOKEN_FILE);
  assert.equal(env.TESSERA_PROXY_URL, 'http://tessera.tessera.svc:8201', 'the sidecar\'s env fallbacks (contract)');
  assert.deepEqual(mountsOf(sc), { 'tessera-token': '/var/run/secrets/tessera.io/serviceaccount', 'tessera-run': '/var/run/tessera' });
  assert.deepEqual(sc.securityContext, { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
  assert.deepEqual(sc.resources, { requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } });
  assert.deepEqual(sc.startupProbe.exec.command, ['/nodejs/bin/node', '/app/bin/tessera.js', 'agent', 'probe', '--port', '15002'], 'Tessera\'s image: distroless, no shell, no tessera on PATH');
  assert.equal(res.warnings, undefined, 'a pod with its own service account gets no warning');
  await assertIdempotent(inj, r, p);
});

test('a Deployment-made pod (generateName, no name): every app container, existing env and mounts kept', async () => {
  const r = review(deploymentPod());
  assert.equal((r.request as Obj).name, undefined, 'the API server sends no name for a generateName pod');
  const res = await inj.admit(r);
  const p = applied(r, res);
  assert.equal(p.metadata.name, undefined);
  assert.equal(p.metadata.generateName, 'patient-reader-7d9c8b6f5-');
  assert.deepEqual(volumeNames(p), ['scratch', 'config', 'kube-api-access-8x2kq', 'tessera-token', 'tessera-run']);
  const [reader, shipper] = p.spec.containers;
  assert.deepEqual(Object.keys(envOf(reader)), ['LOG_LEVEL', 'POD_NAME', 'TESSERA_ADDR', 'TESSERA_TOKEN_FILE', 'TESSERA_MCP_URL']);
  assert.deepEqual(envOf(reader).POD_NAME, { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } });
  assert.deepEqual(Object.keys(mountsOf(reader)), ['scratch', 'config', 'kube-api-access-8x2kq', 'tessera-token']);
  assert.deepEqual(Object.keys(envOf(shipper)), ['TESSERA_ADDR', 'TESSERA_TOKEN_FILE', 'TESSERA_MCP_URL'], 'a container without env gets the array');
  assert.deepEqual(Object.keys(mountsOf(shipper)), ['scratch', 'kube-api-access-8x2kq', 'tessera-token']);
  assert.equal(envOf(reader).HTTPS_PROXY, undefined, 'no proxy variables without tessera.io/proxy');
  assert.equal(p.spec.containers.length, 2, 'the native sidecar is not a regular container');
  assert.equal(p.spec.initContainers[0].name, 'tessera-agent');
  await assertIdempotent(inj, r, p);
});

test('init containers: the sidecar goes first, they get the token but not the sidecar\'s variables', async () => {
  const r = review(initPod());
  const res = await inj.admit(r);
  const p = applied(r, res);
  assert.deepEqual(p.spec.initContainers.map((c: Obj) => c.name), ['tessera-agent', 'migrate', 'istio-like-proxy']);
  const [, migrate, ownSidecar] = p.spec.initContainers;
  assert.deepEqual(Object.keys(envOf(migrate)), ['DB_HOST', 'TESSERA_ADDR', 'TESSERA_TOKEN_FILE']);
  assert.equal(mountsOf(migrate)['tessera-token'], '/var/run/secrets/tessera.io/serviceaccount');
  assert.deepEqual(Object.keys(envOf(ownSidecar)), ['TESSERA_ADDR', 'TESSERA_TOKEN_FILE']);
  assert.equal(ownSidecar.restartPolicy, 'Always', 'the pod\'s own native sidecar is kept as it was');
  const env = envOf(p.spec.containers[0]);
  assert.deepEqual(Object.keys(env), ['TESSERA_ADDR', 'TESSERA_TOKEN_FILE', 'TESSERA_MCP_URL']);
  assert.equal(env.TESSERA_MCP_URL, 'http://127.0.0.1:15002/mcp', 'what the app reads to reach the sidecar\'s MCP endpoint');
  await assertIdempotent(inj, r, p);
});

test('token only (no sidecar), no service account token automount, the default service account: warned, still a projected token', async () => {
  const r = review(pod({ name: 'batch-1', annotations: INJECT, automount: false, serviceAccountName: null, containers: [container('job')] }));
  const res = await inj.admit(r);
  const p = applied(r, res);
  assert.equal(p.spec.automountServiceAccountToken, false);
  assert.deepEqual(volumeNames(p), ['tessera-token'], 'a pod without volumes gets the array');
  assert.equal(p.spec.initContainers, undefined, 'no sidecar without tessera.io/agent');
  assert.deepEqual(envOf(p.spec.containers[0]), { TESSERA_ADDR: 'http://tessera.tessera.svc:8200', TESSERA_TOKEN_FILE: TOKEN_FILE });
  assert.deepEqual(mountsOf(p.spec.containers[0]), { 'tessera-token': '/var/run/secrets/tessera.io/serviceaccount' });
  assert.equal(res.warnings?.length, 1);
  assert.match(res.warnings![0]!, /default service account/);
  const dflt = await inj.admit(review(pod({ name: 'batch-2', annotations: INJECT, containers: [container('job')] })));
  assert.match(dflt.warnings?.[0] ?? '', /default service account/, 'serviceAccountName: default (what the ServiceAccount plugin sets) is warned too');
  await assertIdempotent(inj, r, p);
});

test('ca-bundle: the tessera-ca ConfigMap mounted in app containers and the sidecar, NODE_EXTRA_CA_CERTS, --ca-file', async () => {
  const r = review(barePod({ ...AGENT, 'tessera.io/proxy': 'true', 'tessera.io/ca-bundle': 'true' }));
  const p = applied(r, await inj.admit(r));
  assert.deepEqual(p.spec.volumes.find((v: Obj) => v.name === 'tessera-ca'), { name: 'tessera-ca', configMap: { name: 'tessera-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
  const app = p.spec.containers[0];
  assert.equal(envOf(app).NODE_EXTRA_CA_CERTS, '/var/run/secrets/tessera.io/ca/ca.crt');
  assert.equal(mountsOf(app)['tessera-ca'], '/var/run/secrets/tessera.io/ca');
  const sc = p.spec.initContainers[0];
  assert.equal(mountsOf(sc)['tessera-ca'], '/var/run/secrets/tessera.io/ca');
  assert.deepEqual(sc.args.slice(-2), ['--ca-file', '/var/run/secrets/tessera.io/ca/ca.crt']);
  await assertIdempotent(inj, r, p);
});

test('native_sidecar: false and other settings: the sidecar is the last regular container, settings flow into the pod', async () => {
  const r = review(initPod({ ...AGENT, 'tessera.io/proxy': 'true' }));
  const res = await legacy.admit(r);
  const p = applied(r, res);
  assert.deepEqual(p.spec.containers.map((c: Obj) => c.name), ['indexer', 'tessera-agent']);
  assert.deepEqual(p.spec.initContainers.map((c: Obj) => c.name), ['migrate', 'istio-like-proxy'], 'no sidecar among the init containers');
  const sc = p.spec.containers[1];
  assert.equal(sc.restartPolicy, undefined);
  assert.equal(sc.image, 'registry.example.com/tessera:9.9.9');
  assert.equal(sc.imagePullPolicy, 'Always');
  assert.deepEqual(sc.startupProbe.exec.command, ['/usr/local/bin/tessera', 'agent', 'probe', '--port', '15002']);
  assert.deepEqual(sc.resources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } });
  assert.deepEqual(sc.args.slice(0, 6), ['agent', '--addr', 'https://tessera.platform.svc:8200', '--token-file', TOKEN_FILE, '--proxy-url']);
  assert.equal(sc.args[6], 'http://tessera.platform.svc:8201');
  assert.equal(envOf(sc).TESSERA_TOKEN_FILE, TOKEN_FILE);
  assert.deepEqual(p.spec.volumes.find((v: Obj) => v.name === 'tessera-token').projected.sources[0].serviceAccountToken, { audience: 'tessera-prod', expirationSeconds: 3600, path: 'token' });
  assert.equal(envOf(p.spec.containers[0]).TESSERA_ADDR, 'https://tessera.platform.svc:8200');
  assert.ok(res.warnings?.some((w) => /regular container/.test(w)), 'the author is told the app may start first');
  await assertIdempotent(legacy, r, p);
});

test('dryRun gets the same answer (the webhook has no side effects: sideEffects None)', async () => {
  const object = deploymentPod();
  const wet = await inj.admit(review(object));
  const dry = await inj.admit(review(object, { dryRun: true }));
  assert.equal(dry.allowed, true);
  assert.equal(dry.patch, wet.patch);
});

test('left alone, allowed without a patch: unannotated pods, inject "false", excluded namespaces, UPDATE, DELETE, subresources, other kinds', async () => {
  const cases: [string, Record<string, unknown>][] = [
    ['unannotated', review(pod({ name: 'web', annotations: { 'prometheus.io/scrape': 'true' }, containers: [container('web')] }))],
    ['no annotations at all', review(pod({ name: 'web', containers: [container('web')] }))],
    ['inject "false"', review(barePod({ 'tessera.io/inject': 'false', 'tessera.io/agent': 'true' }))],
    ['kube-system', review(barePod(AGENT, { namespace: 'kube-system' }))],
    ['kube-node-lease', review(barePod(AGENT, { namespace: 'kube-node-lease' }))],
    ['UPDATE', review(barePod(), { operation: 'UPDATE' })],
    ['DELETE', review(null, { operation: 'DELETE', namespace: 'agents' })],
    ['CONNECT pods/exec', review({ kind: 'PodExecOptions', apiVersion: 'v1', command: ['sh'] }, { operation: 'CONNECT', subResource: 'exec' })],
    ['CREATE pods/binding', review({ kind: 'Binding', apiVersion: 'v1', target: { kind: 'Node', name: 'n1' } }, { subResource: 'binding' })],
    ['CREATE of a Deployment (a webhook rule too wide)', review({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x', annotations: AGENT } }, { kind: 'Deployment', resource: 'deployments' })],
  ];
  for (const [name, r] of cases) {
    const res = await inj.admit(r);
    assert.equal(res.allowed, true, name);
    assert.equal(res.patch, undefined, name);
    assert.equal(res.patchType, undefined, name);
    assert.equal(res.uid, (r.request as Obj).uid, name);
  }
  // A pod that says it was injected already is not injected again, whoever wrote the marker.
  const marked = await inj.admit(review(barePod({ ...AGENT, 'tessera.io/injected': '0.0.1' })));
  assert.equal(marked.allowed, true);
  assert.equal(marked.patch, undefined);
});

test('exclude_namespaces replaces the defaults', async () => {
  const custom = await startInjectorCli({ exclude_namespaces: ['tessera', 'payments'] });
  try {
    assert.equal((await custom.admit(review(barePod(AGENT, { namespace: 'payments' })))).patch, undefined);
    assert.equal((await custom.admit(review(barePod(AGENT, { namespace: 'tessera' })))).patch, undefined);
    assert.ok((await custom.admit(review(barePod(AGENT, { namespace: 'kube-public' })))).patch, 'the defaults are replaced, not added to (the webhook\'s namespaceSelector keeps kube-* out)');
  } finally {
    assert.equal(await custom.stop(), 0);
  }
});
