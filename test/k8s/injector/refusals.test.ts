/**
 * Every bad input to `tessera injector` gets a clear answer with its stable code, over real
 * HTTPS: malformed AdmissionReviews (HTTP 400/413 JSON errors, or an AdmissionReview denial when
 * the uid could be read), unknown and hostile annotations, static credentials in the variables
 * the injector sets, name conflicts, hostNetwork. Never a 5xx.
 *
 * No Kubernetes API server can run on these machines: the AdmissionReviews posted here stand in
 * for what it sends (fixtures.ts); a denial is asserted the way the API server reads it
 * (`allowed: false`, `status.code`, `status.message`, shown by kubectl).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT, INJECT, barePod, container, deploymentPod, pod, review } from './fixtures.js';
import { startInjectorCli, type Injector } from './harness.js';
import { KNOWN_ANNOTATIONS, MAX_BODY_BYTES } from '../../../src/k8s/injector/index.js';
import { ERROR_CATALOGUE } from '../../../src/shared/errors.js';

let inj: Injector;
before(async () => {
  inj = await startInjectorCli();
});
after(async () => {
  assert.equal(await inj.stop(), 0);
});

type Obj = Record<string, any>;

/** Posts and expects an AdmissionReview denial with `code`; returns the message. */
async function denied(r: Obj, code: keyof typeof ERROR_CATALOGUE, status: number): Promise<string> {
  const res = await inj.admit(r);
  assert.equal(res.allowed, false, `expected a denial with ${code}`);
  assert.equal(res.uid, r.request.uid);
  assert.equal(res.patch, undefined);
  assert.equal(res.status?.code, status);
  assert.ok(res.status!.message.endsWith(`[${code}]`), `message ends with [${code}]: ${res.status!.message}`);
  assert.ok(res.status!.message.startsWith('tessera injector: '));
  assert.doesNotMatch(res.status!.message, /[\p{Cc}\u202e]/u, 'no raw control or bidi character in what kubectl prints');
  return res.status!.message;
}

/** Posts and expects an HTTP error (no AdmissionReview possible) with `code`. */
async function httpError(opts: Parameters<Injector['post']>[1] & { body?: unknown }, status: number, code: string): Promise<string> {
  const a = await inj.post(opts.body, opts);
  assert.equal(a.status, status, JSON.stringify(a.json));
  const err = a.json.error as { code: string; message: string };
  assert.equal(err.code, code);
  assert.ok(err.message.length > 10);
  return err.message;
}

test('bodies that are not an AdmissionReview: 400 with a stable code, never 5xx', async () => {
  assert.match(await httpError({ raw: '{"apiVersion": "admission.k8s.io/v1", ' }, 400, 'TESSERA_INJECTOR_REVIEW_MALFORMED'), /not valid JSON/);
  assert.match(await httpError({ raw: '', contentType: 'application/json' }, 400, 'TESSERA_INJECTOR_REVIEW_MALFORMED'), /not valid JSON/);
  assert.match(await httpError({ raw: '{}', contentType: 'text/plain' }, 400, 'TESSERA_INJECTOR_REVIEW_MALFORMED'), /Content-Type/);
  assert.match(await httpError({ raw: '[1,2]' }, 400, 'TESSERA_INJECTOR_REVIEW_INVALID'), /not an AdmissionReview/);
  assert.match(await httpError({ raw: '"AdmissionReview"' }, 400, 'TESSERA_INJECTOR_REVIEW_INVALID'), /not an AdmissionReview/);
  assert.match(await httpError({ raw: 'null' }, 400, 'TESSERA_INJECTOR_REVIEW_INVALID'), /not an AdmissionReview/);
  const r = review(barePod());
  assert.match(await httpError({ body: { ...r, request: undefined } }, 400, 'TESSERA_INJECTOR_REVIEW_INVALID'), /request/);
  assert.match(await httpError({ body: { ...r, request: { ...r.request as Obj, uid: undefined } } }, 400, 'TESSERA_INJECTOR_REVIEW_INVALID'), /request\.uid/);
  assert.match(await httpError({ body: { ...r, request: { ...r.request as Obj, uid: '' } } }, 400, 'TESSERA_INJECTOR_REVIEW_INVALID'), /request\.uid/);
  assert.match(await httpError({ body: { ...r, request: { ...r.request as Obj, uid: 'u'.repeat(129) } } }, 400, 'TESSERA_INJECTOR_REVIEW_INVALID'), /request\.uid/);
  // Deeply nested JSON: parsed or refused, never a crash.
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const a = await inj.post(undefined, { raw: deep });
  assert.ok(a.status === 400, `deep nesting: ${a.status}`);
});

test('a wrong envelope with a readable uid is answered as an AdmissionReview denial', async () => {
  const r = review(barePod());
  const msg = await denied({ ...r, apiVersion: 'admission.k8s.io/v1beta1' }, 'TESSERA_INJECTOR_REVIEW_INVALID', 400);
  assert.match(msg, /admissionReviewVersions: \[v1\]/);
  assert.match(await denied({ ...r, kind: 'TokenReview' }, 'TESSERA_INJECTOR_REVIEW_INVALID', 400), /kind must be "AdmissionReview"/);
  assert.match(await denied({ ...r, request: { ...r.request as Obj, operation: 7 } }, 'TESSERA_INJECTOR_REVIEW_INVALID', 400), /request\.operation/);
});

test('the object of a pod CREATE that is not a Pod is refused, naming the field', async () => {
  const base = review(barePod());
  const withObject = (object: unknown): Obj => ({ ...base, request: { ...base.request as Obj, object } });
  assert.match(await denied(withObject(undefined), 'TESSERA_INJECTOR_REVIEW_INVALID', 400), /request\.object must be the Pod/);
  assert.match(await denied(withObject([]), 'TESSERA_INJECTOR_REVIEW_INVALID', 400), /request\.object must be the Pod/);
  assert.match(await denied(withObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: {} }), 'TESSERA_INJECTOR_REVIEW_INVALID', 400), /request\.object\.kind must be "Pod"|request\.object\.spec/);
  const p = barePod() as Obj;
  assert.match(await denied(withObject({ ...p, spec: { ...p.spec, containers: [] } }), 'TESSERA_INJECTOR_REVIEW_INVALID', 400), /request\.object\.spec\.containers/);
  assert.match(await denied(withObject({ ...p, metadata: { ...p.metadata, annotations: { 'tessera.io/inject': true } } }), 'TESSERA_INJECTOR_REVIEW_INVALID', 400), /annotations/);
  assert.match(await denied(withObject({ ...p, spec: { ...p.spec, containers: [{ name: 'a', env: [{ value: 'x' }] }] } }), 'TESSERA_INJECTOR_REVIEW_INVALID', 400), /env\.0\.name/);
  const noNs = review(barePod());
  delete (noNs.request as Obj).namespace;
  delete ((noNs.request as Obj).object as Obj).metadata.namespace;
  assert.match(await denied(noNs, 'TESSERA_INJECTOR_REVIEW_INVALID', 400), /namespace/);
});

test('a body over the limit: 413, the server goes on serving', async () => {
  const big = JSON.stringify(review(barePod(AGENT, { labels: { pad: 'x'.repeat(60) } }))).replace('"pad"', `"pad":"x","filler":"${'y'.repeat(MAX_BODY_BYTES)}","pad2"`);
  assert.match(await httpError({ raw: big }, 413, 'TESSERA_INJECTOR_BODY_TOO_LARGE'), /larger than/);
  const ok = await inj.admit(review(barePod()));
  assert.equal(ok.allowed, true);
});

test('routes and methods other than POST /mutate and GET /healthz', async () => {
  await httpError({ path: '/mutate', method: 'GET' }, 405, 'TESSERA_METHOD_NOT_ALLOWED');
  await httpError({ path: '/healthz', method: 'PUT', body: {} }, 405, 'TESSERA_METHOD_NOT_ALLOWED');
  await httpError({ path: '/validate', body: review(barePod()) }, 404, 'TESSERA_NOT_FOUND');
});

test('unknown tessera.io annotations are refused with the list of known ones (a typo must not disable anything)', async () => {
  const msg = await denied(review(barePod({ ...INJECT, 'tessera.io/agnet': 'true' })), 'TESSERA_INJECTOR_ANNOTATION_UNKNOWN', 400);
  assert.match(msg, /"tessera\.io\/agnet"/);
  for (const k of KNOWN_ANNOTATIONS) assert.ok(msg.includes(k), `lists ${k}`);
  // Also when the pod opts out, and with a hostile name (escaped in the message).
  await denied(review(barePod({ 'tessera.io/inject': 'false', 'tessera.io/Inject': 'true' })), 'TESSERA_INJECTOR_ANNOTATION_UNKNOWN', 400);
  const hostile = await denied(review(barePod({ ...AGENT, 'tessera.io/x\u202egpj.exe': 'true' })), 'TESSERA_INJECTOR_ANNOTATION_UNKNOWN', 400);
  assert.match(hostile, /\\u202e/);
  // Other prefixes are not ours: left alone.
  const other = await inj.admit(review(barePod({ ...AGENT, 'sidecar.istio.io/inject': 'false', 'example.com/tessera.io': 'x' })));
  assert.equal(other.allowed, true);
});

test('annotation values: flags, dependencies, role names', async () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ 'tessera.io/inject': 'yes' }, /tessera\.io\/inject: must be "true" or "false".*"yes"/],
    [{ 'tessera.io/inject': 'True' }, /must be "true" or "false"/],
    [{ 'tessera.io/inject': 'true\n' }, /must be "true" or "false" \(quoted in YAML\), got "true\\n"/],
    [{ ...INJECT, 'tessera.io/agent': '1' }, /tessera\.io\/agent: must be "true" or "false"/],
    [{ ...INJECT, 'tessera.io/proxy': 'true' }, /tessera\.io\/proxy: needs tessera\.io\/agent: "true": the app's HTTPS_PROXY is the sidecar's/],
    [{ ...INJECT, 'tessera.io/proxy': 'true', 'tessera.io/agent': 'false' }, /tessera\.io\/proxy: needs tessera\.io\/agent/],
    [{ ...INJECT, 'tessera.io/role': 'support' }, /tessera\.io\/role: needs tessera\.io\/agent/],
    [{ ...INJECT, 'tessera.io/task-purpose': 'triage' }, /tessera\.io\/task-purpose: needs tessera\.io\/agent/],
    [{ 'tessera.io/agent': 'true' }, /tessera\.io\/agent: needs tessera\.io\/inject: "true"/],
    [{ ...AGENT, 'tessera.io/role': 'support agents' }, /tessera\.io\/role: must be 1 to 63 lowercase letters/],
    [{ ...AGENT, 'tessera.io/role': '../admin' }, /tessera\.io\/role: must be/],
    [{ ...AGENT, 'tessera.io/role': 'Support' }, /tessera\.io\/role: must be/],
    [{ ...AGENT, 'tessera.io/role': 'db/reader' }, /tessera\.io\/role: must be/],
    [{ ...AGENT, 'tessera.io/role': 'r'.repeat(64) }, /tessera\.io\/role: must be/],
    [{ ...AGENT, 'tessera.io/role': '' }, /tessera\.io\/role: must be/],
    [{ ...AGENT, 'tessera.io/role': 'admin\u0000' }, /tessera\.io\/role: must be.*\\u0000/],
  ];
  for (const [annotations, re] of bad) assert.match(await denied(review(barePod(annotations)), 'TESSERA_INJECTOR_ANNOTATION_INVALID', 400), re);
});

test('task defaults are checked by the server\'s own rules (scope algebra, purpose text, durations)', async () => {
  const P = { ...AGENT, 'tessera.io/task-scope': 'tool:tickets/*' };
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl';
  const bad: [Record<string, string>, RegExp][] = [
    [{ ...P, 'tessera.io/task-scope': 'bogus:x' }, /tessera\.io\/task-scope: scope "bogus:x" must start with one of .*TESSERA_OAUTH_INVALID_SCOPE at login/],
    [{ ...P, 'tessera.io/task-scope': 'secret:../etc' }, /invalid segment/],
    [{ ...P, 'tessera.io/task-scope': 'secret:a*' }, /invalid segment/],
    [{ ...P, 'tessera.io/task-scope': 'secret:a\nsecret:b' }, /separated by single spaces/],
    [{ ...P, 'tessera.io/task-scope': 'secret:a  secret:b' }, /separated by single spaces/],
    [{ ...P, 'tessera.io/task-scope': 'tool:only-server' }, /must be tool:<server>\/<tool>/],
    [{ ...P, 'tessera.io/task-scope': `secret:${'a/'.repeat(2100)}b` }, /longer than 4096/],
    [{ ...P, 'tessera.io/task-scope': `secret:${jwt}` }, /credential.*TESSERA_REQUEST_CREDENTIAL_LIKE/],
    [{ ...P, 'tessera.io/task-purpose': 'line one\nline two' }, /tessera\.io\/task-purpose: purpose: contains a control/],
    [{ ...P, 'tessera.io/task-purpose': 'read \u202eevil' }, /contains a control, format/],
    [{ ...P, 'tessera.io/task-purpose': ' padded' }, /white space/],
    [{ ...P, 'tessera.io/task-purpose': 'p'.repeat(513) }, /longer than 512/],
    [{ ...P, 'tessera.io/task-purpose': '' }, /must not be empty/],
    [{ ...AGENT, 'tessera.io/task-purpose': 'triage' }, /tessera\.io\/task-purpose: needs tessera\.io\/task-scope/],
    [{ ...AGENT, 'tessera.io/task-ttl': '15m' }, /tessera\.io\/task-ttl: needs tessera\.io\/task-scope/],
    [{ ...P, 'tessera.io/task-ttl': 'forever' }, /tessera\.io\/task-ttl: must be a duration.*"forever"/],
    [{ ...P, 'tessera.io/task-ttl': '0s' }, /whole seconds from 10s to 24h/],
    [{ ...P, 'tessera.io/task-ttl': '9s' }, /whole seconds from 10s to 24h/],
    [{ ...P, 'tessera.io/task-ttl': '1500ms' }, /whole seconds/],
    [{ ...P, 'tessera.io/task-ttl': '25h' }, /whole seconds from 10s to 24h/],
    [{ ...P, 'tessera.io/task-ttl': ' 5m' }, /must be a duration/],
    [{ ...P, 'tessera.io/task-ttl': '9'.repeat(40) }, /longer than 32/],
  ];
  for (const [annotations, re] of bad) assert.match(await denied(review(barePod(annotations)), 'TESSERA_INJECTOR_ANNOTATION_INVALID', 400), re);
  // A plain number is seconds, as everywhere in Tessera.
  const ok = await inj.admit(review(barePod({ ...P, 'tessera.io/task-ttl': '900', 'tessera.io/task-scope': 'secret:a/** secret:a/**' })));
  assert.equal(ok.allowed, true);
  // A scope without a purpose: the sidecar's default purpose; duplicates dropped as the server does.
  const sidecar = (r: { patch?: string }): string[] => (JSON.parse(Buffer.from(r.patch!, 'base64').toString()) as { path: string; value: { args: string[] }[] }[]).find((o) => o.path === '/spec/initContainers')!.value[0]!.args;
  assert.deepEqual(sidecar(ok).slice(-4), ['--task-scope', 'secret:a/**', '--task-ttl', '900s']);
});

test('hostNetwork pods are refused the sidecar (its 127.0.0.1 would be the node\'s), not the token', async () => {
  const msg = await denied(review(barePod(AGENT, { hostNetwork: true })), 'TESSERA_INJECTOR_HOST_NETWORK', 403);
  assert.match(msg, /hostNetwork: true.*node's/);
  const tokenOnly = await inj.admit(review(barePod(INJECT, { hostNetwork: true })));
  assert.equal(tokenOnly.allowed, true);
  assert.ok(tokenOnly.patch);
});

test('a container already setting a variable the injector sets, or a static TESSERA_TOKEN, is refused', async () => {
  const withEnv = (env: Obj[], annotations: Record<string, string> = AGENT): Obj => review(pod({ name: 'p', annotations, serviceAccountName: 'p', containers: [container('app'), container('worker', { env })] }));
  const cases: [Obj, RegExp][] = [
    [withEnv([{ name: 'TESSERA_ADDR', value: 'http://evil.example' }]), /container "worker" of pod "agents\/p" already sets TESSERA_ADDR \(a value\)/],
    [withEnv([{ name: 'TESSERA_TOKEN_FILE', value: '/tmp/token' }]), /TESSERA_TOKEN_FILE/],
    [withEnv([{ name: 'TESSERA_MCP_URL', value: 'http://attacker:1/mcp' }]), /TESSERA_MCP_URL/],
    [withEnv([{ name: 'TESSERA_TOKEN', valueFrom: { secretKeyRef: { name: 'agent-token', key: 'token' } } }], INJECT), /sets TESSERA_TOKEN \(valueFrom\): a static Tessera token/],
    [withEnv([{ name: 'TESSERA_TOKEN', value: '' }], INJECT), /static Tessera token/],
    [withEnv([{ name: 'HTTPS_PROXY', value: 'http://corp-proxy:3128' }], { ...AGENT, 'tessera.io/proxy': 'true' }), /already sets HTTPS_PROXY/],
    [withEnv([{ name: 'no_proxy', value: '*' }], { ...AGENT, 'tessera.io/proxy': 'true' }), /already sets no_proxy/],
    [withEnv([{ name: 'NODE_EXTRA_CA_CERTS', value: '/etc/ssl/evil.pem' }], { ...INJECT, 'tessera.io/ca-bundle': 'true' }), /NODE_EXTRA_CA_CERTS/],
    [review(pod({ name: 'i', annotations: INJECT, initContainers: [container('setup', { env: [{ name: 'TESSERA_TOKEN_FILE', value: '/x' }] })], containers: [container('app')] })), /container "setup".*TESSERA_TOKEN_FILE/],
  ];
  for (const [r, re] of cases) assert.match(await denied(r, 'TESSERA_INJECTOR_STATIC_CREDENTIAL', 403), re);
  // A variable the injector does not set in that pod is the author's business.
  const corpProxy = await inj.admit(withEnv([{ name: 'HTTPS_PROXY', value: 'http://corp-proxy:3128' }]));
  assert.equal(corpProxy.allowed, true, 'HTTPS_PROXY without tessera.io/proxy is kept');
  const initProxy = await inj.admit(review(pod({ name: 'i', annotations: { ...AGENT, 'tessera.io/proxy': 'true' }, initContainers: [container('fetch', { env: [{ name: 'HTTPS_PROXY', value: 'http://corp:3128' }] })], containers: [container('app')] })));
  assert.equal(initProxy.allowed, true, 'init containers do not get the proxy variables, so theirs are kept');
});

test('names the injector adds must be free: volumes, the sidecar container, mount paths', async () => {
  const d = deploymentPod() as Obj;
  const cases: [Obj, RegExp][] = [
    [pod({ name: 'v', annotations: AGENT, volumes: [{ name: 'tessera-token', emptyDir: {} }], containers: [container('app')] }), /volume named "tessera-token"/],
    [pod({ name: 'v', annotations: INJECT, volumes: [{ name: 'tessera-run', emptyDir: {} }], containers: [container('app')] }), /volume named "tessera-run"/],
    [pod({ name: 'v', annotations: AGENT, containers: [container('app'), container('tessera-agent')] }), /container named tessera-agent/],
    [pod({ name: 'v', annotations: INJECT, initContainers: [container('tessera-agent')], containers: [container('app')] }), /container named tessera-agent/],
    [pod({ name: 'v', annotations: INJECT, volumes: [{ name: 'mine', emptyDir: {} }], containers: [container('app', { volumeMounts: [{ name: 'mine', mountPath: '/var/run/secrets/tessera.io/serviceaccount/' }] })] }), /container "app" of pod "agents\/v" already mounts something at/],
    [{ ...d, spec: { ...d.spec, containers: [...d.spec.containers, container('x', { volumeMounts: [{ name: 'scratch', mountPath: '/var/run/tessera' }] })] } }, /pod "agents\/patient-reader-7d9c8b6f5-<generated>"/],
  ];
  for (const [object, re] of cases) assert.match(await denied(review(object), 'TESSERA_INJECTOR_NAME_CONFLICT', 400), re);
});

test('every refusal code used here is in the catalogue with the status the denial carries', () => {
  for (const [code, status] of [['TESSERA_INJECTOR_REVIEW_INVALID', 400], ['TESSERA_INJECTOR_ANNOTATION_UNKNOWN', 400], ['TESSERA_INJECTOR_ANNOTATION_INVALID', 400], ['TESSERA_INJECTOR_STATIC_CREDENTIAL', 403], ['TESSERA_INJECTOR_NAME_CONFLICT', 400], ['TESSERA_INJECTOR_HOST_NETWORK', 403], ['TESSERA_INJECTOR_BODY_TOO_LARGE', 413], ['TESSERA_INJECTOR_REVIEW_MALFORMED', 400]] as const) {
    assert.equal(ERROR_CATALOGUE[code].status, status);
  }
});
