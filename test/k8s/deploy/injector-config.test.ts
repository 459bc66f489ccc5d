/**
 * The injector as `tessera k8s manifests --injector` deploys it, run for real: the ConfigMap's
 * tessera.yaml carries the `kubernetes.injector` keys that follow from the options (Tessera's
 * addresses in its namespace, the sidecar image, Tessera's namespace excluded), so a non-default
 * namespace and image need no hand edit. The generated file is given to the real `tessera
 * injector` command (runCli, over real HTTPS on 127.0.0.1 with a throwaway CA); only the listen
 * address and the TLS files are overridden by its flags, because no kubelet mounts the Secret
 * here. No Kubernetes API server can run on these machines: the AdmissionReview posted is the
 * shape it sends (test/k8s/injector/fixtures.ts). The Deployment's mounts, ports and probes are
 * checked against the injector's own configuration defaults (src/k8s/injector/config.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { runCli, type Runtime } from '../../../src/cli/index.js';
import { parseConfig } from '../../../src/config/load.js';
import { injectorConfigSchema } from '../../../src/k8s/injector/index.js';
import { createTestCa } from '../../proxy/fixtures/test-ca.js';
import { barePod, review } from '../injector/fixtures.js';
import { applied } from '../injector/harness.js';

type Obj = Record<string, any>;

const noRuntime = new Proxy({}, { get: () => () => Promise.reject(new Error('not used')) }) as Runtime;

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, noRuntime, { stdout: { write: (s: string) => void (stdout += s) }, stderr: { write: (s: string) => void (stderr += s) }, env: {} });
  return { code, stdout, stderr };
}

/** `tessera k8s manifests --json <argv>`: the objects, and stderr. */
async function manifests(argv: string[]): Promise<{ items: Obj[]; stderr: string }> {
  const r = await cli(['k8s', 'manifests', '--json', ...argv]);
  assert.equal(r.code, 0, r.stderr);
  return { items: (JSON.parse(r.stdout) as { items: Obj[] }).items, stderr: r.stderr };
}

const one = (items: Obj[], kind: string, name: string): Obj => {
  const found = items.filter((o) => o.kind === kind && o.metadata.name === name);
  assert.equal(found.length, 1, `${kind} ${name}`);
  return found[0]!;
};

test('--namespace other --image x: the ConfigMap names the injector settings; no note asks for a hand edit', async () => {
  const { items, stderr } = await manifests(['--injector', '--namespace', 'other', '--image', 'x']);
  assert.doesNotMatch(stderr, /kubernetes\.injector/, 'nothing left to set by hand');
  const text = one(items, 'ConfigMap', 'tessera-config').data['tessera.yaml'] as string;
  assert.deepEqual((parseYaml(text) as Obj).kubernetes.injector, {
    tessera_addr: 'http://tessera.other.svc:8200',
    proxy_url: 'http://tessera.other.svc:8201',
    image: 'x',
    exclude_namespaces: ['kube-system', 'kube-public', 'kube-node-lease', 'other'],
  });
  const injector = parseConfig(parseYaml(text)).kubernetes.injector;
  assert.equal(injector.audience, 'tessera', 'the rest keeps its defaults');
  assert.equal(injector.native_sidecar, true);
  // The sidecar image is the server's image, and so is the injector's own.
  assert.equal(one(items, 'Deployment', 'tessera-injector').spec.template.spec.containers[0].image, 'x');
  assert.equal(one(items, 'Deployment', 'tessera').spec.template.spec.containers[0].image, 'x');

  // --no-proxy: no proxy to name, so proxy_url keeps the injector's default.
  const noProxy = await manifests(['--injector', '--namespace', 'other', '--no-proxy']);
  assert.equal((parseYaml(one(noProxy.items, 'ConfigMap', 'tessera-config').data['tessera.yaml']) as Obj).kubernetes.injector.proxy_url, undefined);
  // Without --injector the section is not written (only `tessera injector` reads it).
  const plain = await manifests(['--namespace', 'other']);
  assert.equal((parseYaml(one(plain.items, 'ConfigMap', 'tessera-config').data['tessera.yaml']) as Obj).kubernetes, undefined);
  // The default namespace and image: the same keys, with the defaults' values.
  const def = await manifests(['--injector']);
  const defaults = (parseYaml(one(def.items, 'ConfigMap', 'tessera-config').data['tessera.yaml']) as Obj).kubernetes.injector;
  const schemaDefaults = injectorConfigSchema.parse({});
  assert.equal(defaults.tessera_addr, schemaDefaults.tessera_addr);
  assert.equal(defaults.proxy_url, schemaDefaults.proxy_url);
  assert.equal(defaults.image, schemaDefaults.image);
  assert.deepEqual(defaults.exclude_namespaces, [...schemaDefaults.exclude_namespaces, 'tessera']);
});

test("the injector Deployment's mounts, port and args match the injector's configuration defaults; probes are HTTPS GET /healthz", async () => {
  const { items } = await manifests(['--injector']);
  const spec = one(items, 'Deployment', 'tessera-injector').spec.template.spec;
  const c = spec.containers[0];
  const settings = parseConfig(parseYaml(one(items, 'ConfigMap', 'tessera-config').data['tessera.yaml'])).kubernetes.injector;
  // --config names the file the ConfigMap becomes in the mounted directory.
  assert.deepEqual(c.args, ['injector', '--config', '/etc/tessera/tessera.yaml']);
  const mount = c.volumeMounts.find((m: Obj) => m.mountPath === '/etc/tessera');
  const sources: Obj[] = spec.volumes.find((v: Obj) => v.name === mount.name).projected.sources;
  const files = sources.flatMap((s) => (s.configMap ?? s.secret).items?.map((i: Obj) => `${mount.mountPath}/${i.path}`) ?? []);
  assert.ok(files.includes(settings.tls_cert_file), `${settings.tls_cert_file} in ${files.join(', ')}`);
  assert.ok(files.includes(settings.tls_key_file), `${settings.tls_key_file} in ${files.join(', ')}`);
  assert.ok(sources.some((s) => s.configMap?.name === 'tessera-config' && s.configMap.items.some((i: Obj) => i.key === 'tessera.yaml' && i.path === 'tessera.yaml')));
  assert.equal(c.ports[0].containerPort, Number(settings.listen.split(':')[1]));
  for (const probe of [c.readinessProbe, c.livenessProbe]) {
    assert.deepEqual(probe.httpGet, { path: '/healthz', port: 'https', scheme: 'HTTPS' });
    assert.equal(probe.tcpSocket, undefined);
  }
});

test('the real `tessera injector` on the generated tessera.yaml (--namespace other --image x): /healthz over HTTPS, and a pod gets the addresses of namespace other and image x', async () => {
  const { items } = await manifests(['--injector', '--namespace', 'other', '--image', 'x']);
  const dir = mkdtempSync(join(tmpdir(), 'tessera-k8s-injector-'));
  const ca = await createTestCa('Tessera injector test CA');
  const signals = new EventEmitter();
  let exit: Promise<number> | undefined;
  try {
    const leaf = await ca.issue(['127.0.0.1']);
    writeFileSync(join(dir, 'tls.crt'), leaf.certPem);
    writeFileSync(join(dir, 'tls.key'), leaf.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'tessera.yaml'), one(items, 'ConfigMap', 'tessera-config').data['tessera.yaml']);
    let out = '';
    let err = '';
    let urlSeen: (u: string) => void = () => {};
    const urlPromise = new Promise<string>((resolve) => (urlSeen = resolve));
    const stdout = { write: (s: string) => { out += s; const m = /"url":"([^"]+)"/.exec(out); if (m) urlSeen(m[1]!); return true; } };
    exit = runCli(['injector', '--config', join(dir, 'tessera.yaml'), '--listen', '127.0.0.1:0', '--tls-cert-file', join(dir, 'tls.crt'), '--tls-key-file', join(dir, 'tls.key'), '--json'], noRuntime, { stdout, stderr: { write: (s: string) => ((err += s), true) }, env: {}, signals });
    const url = await Promise.race([urlPromise, exit.then((code) => Promise.reject(new Error(`tessera injector exited with ${code}: ${err}`)))]);
    const dispatcher = new Agent({ connect: { ca: ca.certPem } });
    try {
      const health = await request(`${url}/healthz`, { dispatcher });
      await health.body.text();
      assert.equal(health.statusCode, 200, 'what the HTTPS probes ask');
      const post = async (body: unknown): Promise<Obj> => {
        const r = await request(`${url}/mutate`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        assert.equal(r.statusCode, 200);
        return ((await r.body.json()) as Obj).response;
      };
      const rv = review(barePod());
      const response = await post(rv);
      assert.equal(response.allowed, true, JSON.stringify(response.status));
      const pod = applied(rv, response);
      const sidecar = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((x: Obj) => x.name === 'tessera-agent');
      assert.equal(sidecar.image, 'x');
      const arg = (flag: string): string => sidecar.args[sidecar.args.indexOf(flag) + 1];
      assert.equal(arg('--addr'), 'http://tessera.other.svc:8200');
      assert.equal(arg('--proxy-url'), 'http://tessera.other.svc:8201');
      const app = pod.spec.containers.find((x: Obj) => x.name === 'agent');
      assert.equal(app.env.find((e: Obj) => e.name === 'TESSERA_ADDR').value, 'http://tessera.other.svc:8200');
      // Tessera's own namespace is never mutated, whatever its pods' annotations say.
      const own = await post(review(barePod(), { namespace: 'other' }));
      assert.equal(own.allowed, true);
      assert.equal(own.patch, undefined);
    } finally {
      await dispatcher.close();
    }
  } finally {
    signals.emit('SIGTERM');
    if (exit) assert.equal(await exit, 0);
    ca.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
