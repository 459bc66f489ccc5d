/**
 * `tessera k8s manifests` (src/k8s/manifests, src/cli/k8s-manifests.ts).
 *
 * No Kubernetes API server runs where Tessera is developed, so nothing here is applied to a
 * cluster. Instead every object of every option combination is validated against the Kubernetes
 * API schemas with kubernetes-models (JSON Schemas generated from Kubernetes' OpenAPI; each
 * object is re-created from the printed YAML and JSON, so what is validated is what kubectl
 * would receive), the restricted Pod Security Standard is asserted field by field, RBAC is
 * asserted exactly, the ConfigMap's tessera.yaml is parsed with Tessera's real configuration
 * schema, and every bad option gets its exact code. Unknown-field typos are caught at compile
 * time: the objects are built as typed kubernetes-models literals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Pod, Service, ServiceAccount } from 'kubernetes-models/v1';
import { manifestObjects, parseManifestOptions, plainObjects, renderManifests, validateAll, type KubeObject, type ManifestInput } from '../../../src/k8s/manifests/index.js';
import { parseConfig } from '../../../src/config/load.js';
import { runCli, type Runtime } from '../../../src/cli/index.js';
import { VERSION } from '../../../src/shared/package.js';
import { createTestCa } from '../../proxy/fixtures/test-ca.js';

type Obj = Record<string, any>;

/** Every kind the generator emits, re-created from plain JSON to be validated again. */
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  Namespace, ServiceAccount, ConfigMap, PersistentVolumeClaim, Pod, Service,
  Deployment, PodDisruptionBudget, NetworkPolicy, ClusterRole, ClusterRoleBinding, MutatingWebhookConfiguration,
};

const ISSUER = { saIssuer: 'https://kubernetes.default.svc.cluster.local', saJwksUrl: 'https://kubernetes.default.svc/openid/v1/jwks' };

/** All 64 combinations of the server's switches. */
function combinations(): ManifestInput[] {
  const out: ManifestInput[] = [];
  for (const store of ['postgres', 'sqlite'])
    for (const injector of [false, true])
      for (const watchPods of [false, true])
        for (const tokenreview of [false, true])
          for (const proxy of [true, false])
            // --tokenreview takes the issuer alone (no key set); without it, issuer and JWKS go together.
            for (const issuer of [false, true]) out.push({ store, injector, watchPods, tokenreview, proxy, ...(issuer ? (tokenreview ? { saIssuer: ISSUER.saIssuer } : ISSUER) : {}) });
  return out;
}

const generate = (input: ManifestInput): Obj[] => plainObjects(manifestObjects(parseManifestOptions(input, VERSION)));
const ofKind = (objs: Obj[], kind: string): Obj[] => objs.filter((o) => o.kind === kind);
const one = (objs: Obj[], kind: string, name: string): Obj => {
  const found = objs.filter((o) => o.kind === kind && o.metadata.name === name);
  assert.equal(found.length, 1, `${kind} ${name}`);
  return found[0]!;
};
const label = (i: ManifestInput): string => JSON.stringify(i);

/** The pod templates among the objects (Deployments' and bare Pods'). */
function podSpecs(objs: Obj[]): { where: string; spec: Obj }[] {
  return objs.flatMap((o) => (o.kind === 'Deployment' ? [{ where: `Deployment ${o.metadata.name}`, spec: o.spec.template.spec }] : o.kind === 'Pod' ? [{ where: `Pod ${o.metadata.name}`, spec: o.spec }] : []));
}

/**
 * The restricted Pod Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
 * each control of the baseline and restricted profiles, plus what Tessera adds (read-only root filesystem).
 */
function assertRestricted(where: string, spec: Obj): void {
  assert.equal(spec.hostNetwork, undefined, `${where}: hostNetwork`);
  assert.equal(spec.hostPID, undefined, `${where}: hostPID`);
  assert.equal(spec.hostIPC, undefined, `${where}: hostIPC`);
  assert.equal(spec.securityContext.runAsNonRoot, true, `${where}: pod runAsNonRoot`);
  assert.equal(spec.securityContext.runAsUser, 65532, `${where}: pod runAsUser`);
  assert.equal(spec.securityContext.runAsGroup, 65532, `${where}: pod runAsGroup`);
  assert.deepEqual(spec.securityContext.seccompProfile, { type: 'RuntimeDefault' }, `${where}: pod seccomp`);
  assert.equal(spec.securityContext.sysctls, undefined, `${where}: sysctls`);
  const allowedVolumes = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
  for (const v of spec.volumes ?? []) {
    const types = Object.keys(v).filter((k) => k !== 'name');
    assert.equal(types.length, 1, `${where}: volume ${v.name}`);
    assert.ok(allowedVolumes.has(types[0]!), `${where}: volume ${v.name} of type ${types[0]} is not allowed by the restricted profile`);
  }
  const containers = [...(spec.initContainers ?? []), ...spec.containers, ...(spec.ephemeralContainers ?? [])];
  assert.ok(containers.length > 0);
  for (const c of containers) {
    const at = `${where} container ${c.name}`;
    const sc = c.securityContext;
    assert.equal(sc.allowPrivilegeEscalation, false, `${at}: allowPrivilegeEscalation`);
    assert.equal(sc.privileged, false, `${at}: privileged`);
    assert.equal(sc.readOnlyRootFilesystem, true, `${at}: readOnlyRootFilesystem`);
    assert.equal(sc.runAsNonRoot, true, `${at}: runAsNonRoot`);
    assert.notEqual(sc.runAsUser, 0, `${at}: runAsUser`);
    assert.deepEqual(sc.capabilities, { drop: ['ALL'] }, `${at}: capabilities (drop ALL, add nothing)`);
    assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' }, `${at}: seccomp`);
    assert.equal(sc.procMount, undefined, `${at}: procMount`);
    assert.equal(sc.seLinuxOptions, undefined, `${at}: seLinuxOptions`);
    for (const p of c.ports ?? []) assert.equal(p.hostPort, undefined, `${at}: hostPort`);
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, `${at}: resources`);
    // The root filesystem is read-only: whatever must be written has a volume.
    const mounts = new Set((c.volumeMounts ?? []).map((m: Obj) => m.mountPath));
    if (c.name === 'tessera') for (const path of ['/var/lib/tessera', '/tmp']) assert.ok(mounts.has(path), `${at}: ${path} is mounted`);
    for (const m of c.volumeMounts ?? []) if (m.mountPath === '/etc/tessera') assert.equal(m.readOnly, true, `${at}: config mount read-only`);
  }
}

test('every object of every option combination validates against the Kubernetes API schemas, as printed (YAML and JSON)', () => {
  let count = 0;
  for (const input of combinations()) {
    const objects = manifestObjects(parseManifestOptions(input, VERSION));
    const { text } = renderManifests(input, VERSION, 'yaml');
    const docs: Obj[] = Array.from(parseAllDocuments(text), (d) => {
      assert.deepEqual(d.errors, [], label(input));
      return d.toJSON() as Obj;
    });
    assert.deepEqual(plainObjects(objects), docs, `${label(input)}: the YAML is the objects`);
    const list = JSON.parse(renderManifests(input, VERSION, 'json').text) as Obj;
    assert.equal(list.apiVersion, 'v1');
    assert.equal(list.kind, 'List');
    assert.deepEqual(list.items, docs, `${label(input)}: the JSON List holds the same objects`);
    for (const doc of docs) {
      const Model = MODELS[doc.kind];
      assert.ok(Model, `${doc.kind} has a model`);
      new Model(doc).validate();
      assert.match(doc.metadata.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${doc.kind} name`);
      count++;
    }
  }
  for (const input of [{ init: true }, { init: true, store: 'sqlite' }, { agentNamespace: 'agents' }, { agentNamespace: 'agents', proxy: false }]) {
    for (const doc of parseAllDocuments(renderManifests(input, VERSION, 'yaml').text).map((d) => d.toJSON() as Obj)) {
      new MODELS[doc.kind]!(doc).validate();
      count++;
    }
  }
  assert.ok(count > 500, `${count} objects validated`);
});

test('each pod runs under the restricted Pod Security Standard, field by field', () => {
  for (const input of [...combinations(), { init: true }, { init: true, store: 'sqlite' }]) {
    const objs = generate(input);
    const specs = podSpecs(objs);
    assert.ok(specs.length >= 1);
    for (const { where, spec } of specs) assertRestricted(`${label(input)} ${where}`, spec);
  }
  // The namespace enforces it too: the API server refuses a pod there that breaks it.
  const ns = one(generate({}), 'Namespace', 'tessera');
  assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
});

test('the server: image entrypoint args, probes on /healthz and /readyz, Secrets by reference, the config mounted read-only', () => {
  for (const store of ['postgres', 'sqlite']) {
    const d = one(generate({ store, image: 'registry.example/tessera@sha256:' + 'a'.repeat(64) }), 'Deployment', 'tessera');
    const c = d.spec.template.spec.containers[0];
    assert.equal(c.image, 'registry.example/tessera@sha256:' + 'a'.repeat(64));
    assert.deepEqual(c.args, ['server', '--config', '/etc/tessera/tessera.yaml']);
    assert.equal(c.command, undefined, 'the image entrypoint (tessera) runs');
    assert.deepEqual(c.ports.map((p: Obj) => [p.name, p.containerPort]), [['api', 8200], ['proxy', 8201]]);
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'api' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'api' });
    assert.deepEqual(c.startupProbe.httpGet, { path: '/healthz', port: 'api' });
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e]));
    assert.deepEqual(env.TESSERA_MASTER_KEY.valueFrom, { secretKeyRef: { name: 'tessera-master-key', key: 'master-key' } });
    if (store === 'postgres') assert.deepEqual(env.TESSERA_DATABASE_URL.valueFrom, { secretKeyRef: { name: 'tessera-database', key: 'url' } });
    else assert.equal(env.TESSERA_DATABASE_URL, undefined);
    for (const e of c.env) assert.ok(e.valueFrom || e.name === 'TMPDIR', `env ${e.name} holds no literal value but TMPDIR`);
    const spec = d.spec.template.spec;
    assert.equal(spec.serviceAccountName, 'tessera');
    assert.equal(spec.enableServiceLinks, false);
    const config = spec.volumes.find((v: Obj) => v.name === 'config');
    assert.deepEqual(config.projected.sources, [
      { configMap: { name: 'tessera-config', items: [{ key: 'tessera.yaml', path: 'tessera.yaml' }] } },
      { configMap: { name: 'tessera-policies', optional: true } },
    ]);
    assert.match(d.spec.template.metadata.annotations['tessera.io/config-sha256'], /^[0-9a-f]{64}$/);
  }
});

test('postgres: 2 replicas by default, rolling one at a time, a PDB; sqlite: exactly 1 replica, its volume, Recreate, no PDB', () => {
  const pg = generate({});
  const d = one(pg, 'Deployment', 'tessera');
  assert.equal(d.spec.replicas, 2);
  assert.deepEqual(d.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
  assert.deepEqual(one(pg, 'PodDisruptionBudget', 'tessera').spec, { maxUnavailable: 1, selector: { matchLabels: { 'app.kubernetes.io/name': 'tessera', 'app.kubernetes.io/component': 'server' } } });
  assert.deepEqual(ofKind(pg, 'PersistentVolumeClaim'), []);
  assert.deepEqual(d.spec.template.spec.volumes.find((v: Obj) => v.name === 'data'), { name: 'data', emptyDir: { sizeLimit: '64Mi' } });
  assert.equal(one(generate({ replicas: '5' }), 'Deployment', 'tessera').spec.replicas, 5);

  const lite = generate({ store: 'sqlite', storageSize: '5Gi', storageClass: 'fast-ssd' });
  const ld = one(lite, 'Deployment', 'tessera');
  assert.equal(ld.spec.replicas, 1);
  assert.deepEqual(ld.spec.strategy, { type: 'Recreate' });
  assert.deepEqual(ofKind(lite, 'PodDisruptionBudget'), []);
  assert.deepEqual(ld.spec.template.spec.volumes.find((v: Obj) => v.name === 'data'), { name: 'data', persistentVolumeClaim: { claimName: 'tessera-data' } });
  assert.deepEqual(one(lite, 'PersistentVolumeClaim', 'tessera-data').spec, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } }, storageClassName: 'fast-ssd' });
  assert.equal(one(generate({ store: 'sqlite', replicas: '1' }), 'Deployment', 'tessera').spec.replicas, 1);
});

test('RBAC is least privilege, exactly: none by default; pods get/list/watch with --watch-pods; system:auth-delegator with --tokenreview', () => {
  const rbacOf = (objs: Obj[]) => objs.filter((o) => ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)).map((o) => ({ kind: o.kind, name: o.metadata.name, rules: o.rules, roleRef: o.roleRef, subjects: o.subjects }));
  const sa = [{ kind: 'ServiceAccount', name: 'tessera', namespace: 'tessera' }];
  const watch = [
    { kind: 'ClusterRole', name: 'tessera', rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }], roleRef: undefined, subjects: undefined },
    { kind: 'ClusterRoleBinding', name: 'tessera', rules: undefined, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tessera' }, subjects: sa },
  ];
  const review = [{ kind: 'ClusterRoleBinding', name: 'tessera-auth-delegator', rules: undefined, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' }, subjects: sa }];
  for (const injector of [false, true]) {
    const none = generate({ injector });
    assert.deepEqual(rbacOf(none), []);
    // No API token in the pods when nothing calls the API.
    for (const { spec } of podSpecs(none)) assert.equal(spec.automountServiceAccountToken, false);
    for (const s of ofKind(none, 'ServiceAccount')) assert.equal(s.automountServiceAccountToken, false);
    assert.deepEqual(rbacOf(generate({ injector, watchPods: true })), watch);
    assert.deepEqual(rbacOf(generate({ injector, tokenreview: true })), review);
    const both = generate({ injector, watchPods: true, tokenreview: true });
    assert.deepEqual(rbacOf(both), [...watch, ...review]);
    assert.equal(one(both, 'Deployment', 'tessera').spec.template.spec.automountServiceAccountToken, true);
    if (injector) assert.equal(one(both, 'Deployment', 'tessera-injector').spec.template.spec.automountServiceAccountToken, false, 'the injector never gets an API token');
  }
  const ns = generate({ namespace: 'broker', tokenreview: true });
  assert.deepEqual(one(ns, 'ClusterRoleBinding', 'tessera-auth-delegator').subjects, [{ kind: 'ServiceAccount', name: 'tessera', namespace: 'broker' }]);
});

test("the ConfigMap's tessera.yaml is a configuration Tessera's schema accepts, naming secrets only by variable", () => {
  for (const input of combinations()) {
    const cm = one(generate(input), 'ConfigMap', 'tessera-config');
    const text = cm.data['tessera.yaml'] as string;
    const config = parseConfig(parseYaml(text), 'tessera.yaml');
    assert.equal(config.store.kind, input.store);
    if (config.store.kind === 'postgres') assert.deepEqual(config.store, { kind: 'postgres', url_env: 'TESSERA_DATABASE_URL' });
    assert.deepEqual(config.master_key, { env: 'TESSERA_MASTER_KEY' });
    assert.equal(config.data_dir, '/var/lib/tessera');
    assert.equal(config.policy.dir, '/etc/tessera');
    assert.equal(config.server.listen, '0.0.0.0:8200');
    assert.equal(config.server.public_url, 'http://tessera.tessera.svc:8200');
    assert.equal(config.proxy.listen, input.proxy === false ? undefined : '0.0.0.0:8201');
    assert.equal(config.kubernetes.watch_pods, input.watchPods === true);
    // The API connection is written (in-cluster defaults) exactly when a feature calls the API.
    const raw = parseYaml(text) as Obj;
    assert.deepEqual(raw.kubernetes?.api, input.watchPods || input.tokenreview ? {} : undefined, label(input));
    assert.deepEqual(config.kubernetes.api, {});
    const k8s = config.attestors.find((a) => a.name === 'kubernetes');
    const common = { kind: 'jwt', name: 'kubernetes', issuer: ISSUER.saIssuer, audience: 'tessera', template: 'kubernetes', algorithms: ['RS256', 'ES256'], label_claims: [] };
    if (input.tokenreview) assert.deepEqual(k8s && { ...k8s }, { ...common, mode: 'tokenreview' }, label(input));
    else if (input.saIssuer) assert.deepEqual(k8s && { ...k8s }, { ...common, jwks_url: ISSUER.saJwksUrl, mode: 'jwks' }, label(input));
    else assert.equal(k8s, undefined);
    if (input.tokenreview) assert.doesNotMatch(text, /jwks/, 'tokenreview: no key set anywhere');
    assert.doesNotMatch(text, /postgres:\/\/|password|BEGIN/i, 'no secret in the ConfigMap');
  }
});

test('Service and NetworkPolicies: the contract ports; egress only to DNS, PostgreSQL, the API when used, the JWKS port', () => {
  const svc = one(generate({}), 'Service', 'tessera');
  assert.deepEqual(svc.spec.ports, [{ name: 'api', port: 8200, targetPort: 'api', protocol: 'TCP' }, { name: 'proxy', port: 8201, targetPort: 'proxy', protocol: 'TCP' }]);
  assert.deepEqual(one(generate({ proxy: false }), 'Service', 'tessera').spec.ports, [{ name: 'api', port: 8200, targetPort: 'api', protocol: 'TCP' }]);
  const dns = { to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] };
  const tcp = (...ports: number[]) => ({ ports: ports.map((port) => ({ protocol: 'TCP', port })) });
  const egressOf = (i: ManifestInput) => one(generate(i), 'NetworkPolicy', 'tessera').spec.egress;
  assert.deepEqual(egressOf({}), [dns, tcp(5432)]);
  assert.deepEqual(egressOf({ store: 'sqlite' }), [dns]);
  assert.deepEqual(egressOf({ watchPods: true }), [dns, tcp(5432), tcp(443, 6443)]);
  assert.deepEqual(egressOf({ store: 'sqlite', tokenreview: true }), [dns, tcp(443, 6443)]);
  assert.deepEqual(egressOf({ store: 'sqlite', tokenreview: true, saIssuer: 'https://oidc.example:8443' }), [dns, tcp(443, 6443)], 'tokenreview reads no JWKS');
  assert.deepEqual(egressOf({ store: 'sqlite', saIssuer: 'https://oidc.example', saJwksUrl: 'https://oidc.example:8443/keys' }), [dns, tcp(8443)]);
  const np = one(generate({ proxy: false }), 'NetworkPolicy', 'tessera');
  assert.deepEqual(np.spec.policyTypes, ['Ingress', 'Egress']);
  assert.deepEqual(np.spec.ingress, [tcp(8200)]);
  assert.deepEqual(np.spec.podSelector, { matchLabels: { 'app.kubernetes.io/name': 'tessera' }, matchExpressions: [{ key: 'app.kubernetes.io/component', operator: 'In', values: ['server', 'init'] }] });
  assert.deepEqual(one(generate({}), 'NetworkPolicy', 'tessera').spec.ingress, [tcp(8200, 8201)]);

  const agents = generate({ agentNamespace: 'agents', namespace: 'broker' });
  assert.equal(agents.length, 1);
  assert.deepEqual(agents[0], {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'tessera-agents-egress', namespace: 'agents', labels: { 'app.kubernetes.io/part-of': 'tessera', 'app.kubernetes.io/managed-by': 'tessera-k8s-manifests' } },
    spec: {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [{ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'broker' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'tessera', 'app.kubernetes.io/component': 'server' } } }], ...tcp(8200, 8201) }, dns],
    },
  });
});

test('the injector: Deployment, Service 443 → 8443, TLS Secret in the config directory, the webhook configuration of the contract', async () => {
  const ca = await createTestCa('Tessera injector test CA');
  try {
    const objs = generate({ injector: true, injectorCaPem: ca.certPem, namespace: 'broker' });
    const svc = one(objs, 'Service', 'tessera-injector');
    assert.deepEqual(svc.spec.ports, [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }]);
    const d = one(objs, 'Deployment', 'tessera-injector');
    assert.equal(d.spec.template.spec.serviceAccountName, 'tessera-injector');
    const c = d.spec.template.spec.containers[0];
    assert.deepEqual(c.args, ['injector', '--config', '/etc/tessera/tessera.yaml']);
    assert.deepEqual(c.ports, [{ name: 'https', containerPort: 8443, protocol: 'TCP' }]);
    const sources = d.spec.template.spec.volumes[0].projected.sources;
    assert.deepEqual(sources[2], { secret: { name: 'tessera-injector-tls', items: [{ key: 'tls.crt', path: 'injector-tls/tls.crt' }, { key: 'tls.key', path: 'injector-tls/tls.key', mode: 0o400 }] } });
    assert.equal(d.spec.replicas, 2);
    assert.equal(one(objs, 'PodDisruptionBudget', 'tessera-injector').spec.maxUnavailable, 1);
    const mwc = one(objs, 'MutatingWebhookConfiguration', 'tessera-injector');
    assert.equal(objs[objs.length - 1], mwc, 'the webhook configuration comes last');
    assert.equal(mwc.webhooks.length, 1);
    const w = mwc.webhooks[0];
    assert.deepEqual({ ...w, clientConfig: undefined }, {
      name: 'inject.tessera.io',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      timeoutSeconds: 5,
      failurePolicy: 'Fail',
      reinvocationPolicy: 'Never',
      matchPolicy: 'Equivalent',
      clientConfig: undefined,
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
      namespaceSelector: {
        matchLabels: { 'tessera.io/injection': 'enabled' },
        matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'kube-node-lease', 'broker'] }],
      },
    });
    assert.deepEqual(w.clientConfig.service, { name: 'tessera-injector', namespace: 'broker', path: '/mutate', port: 443 });
    assert.equal(Buffer.from(w.clientConfig.caBundle, 'base64').toString(), ca.certPem.trim() + '\n');
    assert.equal(one(generate({ injector: true }), 'MutatingWebhookConfiguration', 'tessera-injector').webhooks[0].clientConfig.caBundle, undefined);
    const inp = one(objs, 'NetworkPolicy', 'tessera-injector');
    assert.deepEqual(inp.spec.ingress, [{ ports: [{ protocol: 'TCP', port: 8443 }] }]);
  } finally {
    ca.dispose();
  }
});

test('the init Pod runs `tessera init` once, with the server configuration and no API token', () => {
  for (const store of ['postgres', 'sqlite']) {
    const objs = generate({ init: true, store });
    assert.equal(objs.length, 1);
    const pod = objs[0]!;
    assert.equal(pod.kind, 'Pod');
    assert.equal(pod.metadata.name, 'tessera-init');
    assert.equal(pod.spec.restartPolicy, 'Never');
    assert.equal(pod.spec.automountServiceAccountToken, false);
    assert.deepEqual(pod.spec.containers[0].args, ['init', '--config', '/etc/tessera/tessera.yaml']);
    assert.equal(pod.spec.containers[0].livenessProbe, undefined);
    const server = one(generate({ store }), 'Deployment', 'tessera').spec.template.spec;
    assert.deepEqual(pod.spec.volumes, server.volumes, 'the same volumes (the same data volume)');
    assert.deepEqual(pod.spec.containers[0].env, server.containers[0].env);
  }
});

test('bad options: exact codes, and nothing generated', async () => {
  const cases: [ManifestInput, string][] = [
    [{ namespace: 'Tessera' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ namespace: 'a'.repeat(64) }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ namespace: 'kube-system' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ namespace: '' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ image: 'tessera:1; rm -rf /' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ image: 'with space' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ image: '' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ store: 'mysql' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ replicas: '0' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ replicas: '-1' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ replicas: '2.5' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ replicas: '101' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ replicas: 'two' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ store: 'sqlite', replicas: '2' }, 'TESSERA_K8S_MANIFEST_SQLITE_REPLICAS'],
    [{ store: 'sqlite', replicas: 3 }, 'TESSERA_K8S_MANIFEST_SQLITE_REPLICAS'],
    [{ store: 'sqlite', storageSize: '1TB' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ store: 'sqlite', storageClass: 'Fast_SSD' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ storageSize: '1Gi' }, 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [{ storageClass: 'fast' }, 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [{ cpu: '-1' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ cpu: '250mi' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ cpu: '0' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ memory: '512MB' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ memory: '0' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ injectorCaPem: 'x' }, 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [{ injector: true, injectorCaPem: 'not a certificate' }, 'TESSERA_K8S_MANIFEST_CA_INVALID'],
    [{ injector: true, injectorCaPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }, 'TESSERA_K8S_MANIFEST_CA_INVALID'],
    [{ saIssuer: ISSUER.saIssuer }, 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [{ saJwksUrl: ISSUER.saJwksUrl }, 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [{ tokenreview: true, saJwksUrl: ISSUER.saJwksUrl }, 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [{ tokenreview: true, ...ISSUER }, 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [{ tokenreview: true, saIssuer: 'http://issuer.example' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ saIssuer: 'http://issuer.example', saJwksUrl: ISSUER.saJwksUrl }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ saIssuer: ISSUER.saIssuer, saJwksUrl: 'https://user:pw@keys.example/jwks' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ saIssuer: ISSUER.saIssuer, saJwksUrl: 'not a url' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ init: true, agentNamespace: 'agents' }, 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [{ agentNamespace: 'tessera' }, 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [{ agentNamespace: 'kube-system' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [{ agentNamespace: 'Agents' }, 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
  ];
  for (const [input, code] of cases) {
    assert.throws(() => renderManifests(input, VERSION, 'yaml'), (e: { code?: string }) => e.code === code, `${label(input)} → ${code}`);
  }
  const ca = await createTestCa();
  try {
    // A bundle with a private key is refused even when its certificate is fine.
    assert.throws(() => renderManifests({ injector: true, injectorCaPem: `${ca.certPem}-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n` }, VERSION, 'yaml'), { code: 'TESSERA_K8S_MANIFEST_CA_INVALID' });
  } finally {
    ca.dispose();
  }
});

test('an object that fails the API schema is TESSERA_K8S_MANIFEST_OBJECT_INVALID, naming it', () => {
  const bad = new Deployment({ metadata: { name: 'x', namespace: 'n' }, spec: { selector: {}, template: { spec: { containers: [{ name: 'c', ports: [{ containerPort: 'api' as unknown as number }] }] } } } });
  assert.throws(() => validateAll([bad as unknown as KubeObject]), (e: { code?: string; message: string }) => e.code === 'TESSERA_K8S_MANIFEST_OBJECT_INVALID' && e.message.includes('Deployment n/x') && e.message.includes('containerPort'));
});

const notUsed = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: notUsed, server: notUsed, init: notUsed, rotateMasterKey: notUsed, verifyAuditOffline: notUsed };

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, runtime, { stdout: { write: (s: string) => void (stdout += s) }, stderr: { write: (s: string) => void (stderr += s) }, env: {} });
  return { code, stdout, stderr };
}

test('the CLI: YAML by default, a List with --json, notes on stderr; option errors exit 2 with their code and print nothing', async () => {
  const y = await cli(['k8s', 'manifests', '--store', 'sqlite', '--namespace', 'broker']);
  assert.equal(y.code, 0, y.stderr);
  assert.deepEqual(parseAllDocuments(y.stdout).map((d) => (d.toJSON() as Obj).kind), ['Namespace', 'ServiceAccount', 'ConfigMap', 'PersistentVolumeClaim', 'Deployment', 'Service', 'NetworkPolicy']);
  assert.match(y.stderr, /note: create the Secret tessera-master-key in namespace broker/);
  assert.match(y.stderr, /--sa-issuer/);
  const j = await cli(['k8s', 'manifests', '--json', '--watch-pods', '--tokenreview', '--injector', '--no-proxy']);
  assert.equal(j.code, 0, j.stderr);
  const list = JSON.parse(j.stdout) as Obj;
  assert.equal(list.kind, 'List');
  assert.deepEqual(list.items.map((o: Obj) => o.kind), ['Namespace', 'ServiceAccount', 'ConfigMap', 'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'Deployment', 'Service', 'PodDisruptionBudget', 'NetworkPolicy', 'ServiceAccount', 'Deployment', 'Service', 'PodDisruptionBudget', 'NetworkPolicy', 'MutatingWebhookConfiguration']);
  assert.match(j.stderr, /caBundle/);
  // The injector's settings are in the ConfigMap (test/k8s/deploy/injector-config.test.ts): nothing to set by hand.
  const other = await cli(['k8s', 'manifests', '--injector', '--namespace', 'broker', '--image', 'registry.example/tessera:1']);
  assert.equal(other.code, 0, other.stderr);
  assert.doesNotMatch(other.stderr, /kubernetes\.injector/);
  assert.doesNotMatch(j.stdout, /8201/, '--no-proxy: no proxy port anywhere');

  for (const [argv, code] of [
    [['--store', 'sqlite', '--replicas', '3'], 'TESSERA_K8S_MANIFEST_SQLITE_REPLICAS'],
    [['--store', 'oracle'], 'TESSERA_K8S_MANIFEST_OPTION_INVALID'],
    [['--init', '--agent-namespace', 'agents'], 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
    [['--injector', '--injector-ca-file', '/nonexistent/ca.pem'], 'TESSERA_K8S_MANIFEST_CA_INVALID'],
    [['--tokenreview', '--sa-jwks-url', ISSUER.saJwksUrl], 'TESSERA_K8S_MANIFEST_OPTION_CONFLICT'],
  ] as const) {
    const r = await cli(['k8s', 'manifests', ...argv]);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`\\[${code}\\]`));
    const rj = await cli(['k8s', 'manifests', '--json', ...argv]);
    assert.equal((JSON.parse(rj.stderr) as Obj).error.code, code);
  }

  const dir = mkdtempSync(join(tmpdir(), 'tessera-k8s-ca-'));
  const ca = await createTestCa();
  try {
    writeFileSync(join(dir, 'ca.pem'), ca.certPem);
    writeFileSync(join(dir, 'bad.pem'), 'hello');
    const ok = await cli(['k8s', 'manifests', '--injector', '--injector-ca-file', join(dir, 'ca.pem')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(ok.stderr, /caBundle/);
    const bad = await cli(['k8s', 'manifests', '--injector', '--injector-ca-file', join(dir, 'bad.pem')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /\[TESSERA_K8S_MANIFEST_CA_INVALID\]/);
    const init = await cli(['k8s', 'manifests', '--init', '--store', 'sqlite']);
    assert.deepEqual(parseAllDocuments(init.stdout).map((d) => (d.toJSON() as Obj).kind), ['Pod']);
    const agents = await cli(['k8s', 'manifests', '--agent-namespace', 'agents']);
    assert.deepEqual(parseAllDocuments(agents.stdout).map((d) => (d.toJSON() as Obj).metadata.name), ['tessera-agents-egress']);
  } finally {
    ca.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
