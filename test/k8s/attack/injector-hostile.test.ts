/**
 * Attack (issue 12, security review) on `tessera injector` over real HTTPS (the CLI, as
 * test/k8s/injector does): pod specs that would take over what the injector adds. No Kubernetes
 * API server runs here; the AdmissionReviews stand in for what it sends (test/k8s/injector/fixtures.ts).
 *
 *  - a mount INSIDE the token or CA directory (a Secret with `subPath` at
 *    /var/run/secrets/tessera.io/serviceaccount/token, or a path spelled with `//` or `/./`): the
 *    container runtime mounts it over ours, so TESSERA_TOKEN_FILE would read a static credential
 *    the pod brought (or the CA bundle would be the pod's own);
 *  - an app container mounting a volume by one of the names the injector adds (`tessera-run`, the
 *    sidecar's memory volume, read-write) without defining it: once injected, the reference
 *    resolves and the app shares the sidecar's token directory;
 *  - `shareProcessNamespace: true` with the sidecar: the app can read the sidecar's memory and
 *    files through /proc when it runs as the same user: a warning, not a refusal (the app holds
 *    the pod's projected token anyway: same identity).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT, INJECT, container, pod, review } from '../injector/fixtures.js';
import { startInjectorCli, type Injector } from '../injector/harness.js';

let inj: Injector;
before(async () => {
  inj = await startInjectorCli();
});
after(async () => {
  assert.equal(await inj.stop(), 0);
});

type Obj = Record<string, any>;

async function conflict(object: Obj): Promise<string> {
  const res = await inj.admit(review(object));
  assert.equal(res.allowed, false, `expected a refusal: ${JSON.stringify(object.spec.containers)}`);
  assert.equal(res.patch, undefined);
  assert.equal(res.status?.code, 400);
  assert.ok(res.status!.message.endsWith('[TESSERA_INJECTOR_NAME_CONFLICT]'), res.status!.message);
  return res.status!.message;
}

test('a mount inside the injected token or CA directory (subPath over the token file, odd spellings) is refused', async () => {
  const secret = { name: 'static', secret: { secretName: 'tessera-static-token' } };
  const mounts: [string, Record<string, string>][] = [
    ['/var/run/secrets/tessera.io/serviceaccount/token', INJECT],
    ['/var/run/secrets/tessera.io/serviceaccount/sub/dir', INJECT],
    ['/var/run/secrets/tessera.io//serviceaccount', INJECT],
    ['/var/run/secrets/tessera.io/./serviceaccount/', INJECT],
    ['/var/run/secrets/tessera.io/ca/ca.crt', { ...INJECT, 'tessera.io/ca-bundle': 'true' }],
  ];
  for (const [mountPath, annotations] of mounts) {
    const m = await conflict(pod({ name: 'shadow', annotations, volumes: [secret], containers: [container('app', { volumeMounts: [{ name: 'static', mountPath, subPath: 'token', readOnly: true }] })] }));
    assert.match(m, /container "app" of pod "agents\/shadow" already mounts something at/);
  }
});

test('parent directories of ours stay allowed (the runtime mounts ours on top of them)', async () => {
  for (const mountPath of ['/var/run', '/var/run/secrets', '/var/run/secrets/tessera.io-other', '/var/run/tesseract']) {
    const res = await inj.admit(review(pod({ name: 'parent', annotations: AGENT, volumes: [{ name: 'scratch', emptyDir: {} }], containers: [container('app', { volumeMounts: [{ name: 'scratch', mountPath }] })] })));
    assert.equal(res.allowed, true, `${mountPath}: ${res.status?.message}`);
  }
});

test("an app container mounting the sidecar's memory volume (tessera-run) or another injected volume by name is refused", async () => {
  for (const [name, annotations] of [['tessera-run', AGENT], ['tessera-token', INJECT], ['tessera-ca', { ...INJECT, 'tessera.io/ca-bundle': 'true' }]] as const) {
    const m = await conflict(pod({ name: 'thief', annotations, containers: [container('app', { volumeMounts: [{ name, mountPath: '/data' }] })] }));
    assert.match(m, new RegExp(`container "app" of pod "agents/thief" mounts the volume "${name}", which the injector adds`));
  }
  const init = await conflict(pod({ name: 'thief', annotations: AGENT, initContainers: [container('copy', { volumeMounts: [{ name: 'tessera-run', mountPath: '/steal' }] })], containers: [container('app')] }));
  assert.match(init, /container "copy"/);
});

test('shareProcessNamespace with the sidecar: admitted with a warning naming the exposure', async () => {
  const p = pod({ name: 'shared', annotations: AGENT, serviceAccountName: 'bot', containers: [container('app')] }) as Obj;
  p.spec.shareProcessNamespace = true;
  const res = await inj.admit(review(p));
  assert.equal(res.allowed, true);
  assert.ok(res.warnings?.some((w) => /shareProcessNamespace/.test(w) && /\/proc/.test(w)), JSON.stringify(res.warnings));
  const noAgent = pod({ name: 'shared', annotations: INJECT, serviceAccountName: 'bot', containers: [container('app')] }) as Obj;
  noAgent.spec.shareProcessNamespace = true;
  const plain = await inj.admit(review(noAgent));
  assert.equal(plain.warnings, undefined, 'no sidecar, nothing to warn about');
});

test('a forged tessera.io/injected marker (no injected volume): left alone as the injector does for any marker, with a warning saying nothing was injected or checked', async () => {
  const forged = pod({ name: 'forged', annotations: { ...INJECT, 'tessera.io/injected': '0.0.1' }, containers: [container('app', { env: [{ name: 'TESSERA_TOKEN', value: 'static-token' }] })] });
  const res = await inj.admit(review(forged));
  assert.equal(res.allowed, true);
  assert.equal(res.patch, undefined);
  assert.deepEqual(res.warnings, ['tessera: pod "agents/forged" carries tessera.io/injected without the tessera-token volume the injector adds: nothing was injected or checked; remove the annotation (only the injector writes it)']);
  // A pod copied from an injected one (marker AND volume) is still left alone.
  const copied = pod({ name: 'copied', annotations: { ...INJECT, 'tessera.io/injected': '0.1.0' }, volumes: [{ name: 'tessera-token', projected: { sources: [{ serviceAccountToken: { audience: 'tessera', expirationSeconds: 600, path: 'token' } }] } }], containers: [container('app')] });
  const again = await inj.admit(review(copied));
  assert.equal(again.allowed, true);
  assert.equal(again.patch, undefined);
  assert.equal(again.warnings, undefined);
});

test('envFrom a Secret: injected, with a warning that a static TESSERA_TOKEN there cannot be seen', async () => {
  const res = await inj.admit(review(pod({ name: 'envfrom', annotations: INJECT, serviceAccountName: 'bot', containers: [container('app', { envFrom: [{ secretRef: { name: 'tessera-creds' } }, { configMapRef: { name: 'settings' } }] })] })));
  assert.equal(res.allowed, true);
  assert.ok(res.patch);
  assert.deepEqual(res.warnings, ['tessera: container "app" takes variables from a Secret (envFrom): the injector cannot see whether it holds TESSERA_TOKEN or another static credential; the injected variables take precedence over envFrom']);
});

test("the sidecar in an Istio-injected pod (istio-proxy present: Envoy binds 0.0.0.0:15001) is refused with TESSERA_INJECTOR_PORT_CONFLICT; token-only injection is fine", async () => {
  for (const shape of [{ containers: [container('app'), container('istio-proxy')] }, { initContainers: [container('istio-init'), container('istio-proxy', { restartPolicy: 'Always' })], containers: [container('app')] }]) {
    const res = await inj.admit(review(pod({ name: 'meshed', annotations: AGENT, ...shape })));
    assert.equal(res.allowed, false);
    assert.equal(res.status?.code, 409);
    assert.match(res.status!.message, /pod "agents\/meshed" has Istio's istio-proxy, whose outbound listener is 0\.0\.0\.0:15001.*\[TESSERA_INJECTOR_PORT_CONFLICT\]$/);
  }
  const tokenOnly = await inj.admit(review(pod({ name: 'meshed', annotations: INJECT, containers: [container('app'), container('istio-proxy')] })));
  assert.equal(tokenOnly.allowed, true);
  assert.ok(tokenOnly.patch);
});
