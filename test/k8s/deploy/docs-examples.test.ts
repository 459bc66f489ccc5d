/**
 * The Kubernetes YAML shown in docs/kubernetes.md is valid: every document of every `yaml` block
 * with `apiVersion` and `kind` is validated against the Kubernetes API schemas (kubernetes-models;
 * no API server runs here). The agent pod example holds no secret — no Secret referenced or
 * mounted, no literal env value, no Kubernetes API token — and carries the injector's annotations;
 * the agent NetworkPolicy shown is the one `tessera k8s manifests --agent-namespace agents` prints;
 * the tessera.yaml shown is the one the ConfigMap holds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { Pod, ServiceAccount } from 'kubernetes-models/v1';
import { manifestObjects, parseManifestOptions, plainObjects } from '../../../src/k8s/manifests/index.js';
import { VERSION } from '../../../src/shared/package.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../../src/config/load.js';
import { runCli, type Runtime } from '../../../src/cli/index.js';
import { mutatePod } from '../../../src/k8s/injector/index.js';
import { createTestCa } from '../../proxy/fixtures/test-ca.js';
import { review } from '../injector/fixtures.js';
import { applied } from '../injector/harness.js';

const noRuntime = new Proxy({}, { get: () => () => Promise.reject(new Error('not used')) }) as Runtime;

type Obj = Record<string, any>;
const MODELS: Record<string, new (data: any) => { validate(): void }> = { Pod, ServiceAccount, NetworkPolicy };

const text = readFileSync('docs/kubernetes.md', 'utf8');
const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
const k8sDocs: Obj[] = blocks.flatMap((b) => Array.from(parseAllDocuments(b), (d) => d.toJSON() as Obj)).filter((d) => d && d.apiVersion && d.kind);

test('every Kubernetes object shown in docs/kubernetes.md validates against the API schemas', () => {
  assert.deepEqual(k8sDocs.map((d) => `${d.kind}/${d.metadata.name}`), ['ServiceAccount/research-agent', 'Pod/research-agent', 'NetworkPolicy/tessera-upstreams', 'NetworkPolicy/tessera-agents-egress']);
  for (const d of k8sDocs) {
    const Model = MODELS[d.kind];
    assert.ok(Model, d.kind);
    new Model(d).validate();
  }
});

test('the agent pod example holds no secret and asks the injector for the sidecar, the proxy and the CA', () => {
  const pod = k8sDocs.find((d) => d.kind === 'Pod')!;
  const json = JSON.stringify(pod);
  assert.doesNotMatch(json, /secretKeyRef|secretRef|"secret"|\bsk-|password/i);
  assert.equal(pod.spec.automountServiceAccountToken, false);
  assert.equal(k8sDocs.find((d) => d.kind === 'ServiceAccount')!.automountServiceAccountToken, false);
  assert.equal(pod.spec.volumes, undefined);
  for (const c of pod.spec.containers) {
    assert.equal(c.env, undefined, 'the injector adds the environment');
    assert.equal(c.envFrom, undefined);
    assert.equal(c.volumeMounts, undefined);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
  }
  const a = pod.metadata.annotations;
  for (const k of ['tessera.io/inject', 'tessera.io/agent', 'tessera.io/proxy', 'tessera.io/ca-bundle']) assert.equal(a[k], 'true', k);
  assert.equal(pod.metadata.namespace, 'agents');
});

test('the agent NetworkPolicy shown is the one the command prints; the tessera.yaml shown is the ConfigMap\'s', () => {
  const shown = k8sDocs.find((d) => d.metadata.name === 'tessera-agents-egress')!;
  const printed = plainObjects(manifestObjects(parseManifestOptions({ agentNamespace: 'agents' }, VERSION)))[0]!;
  assert.deepEqual(shown.spec, printed.spec);
  const cm = plainObjects(manifestObjects(parseManifestOptions({}, VERSION))).find((o) => o.kind === 'ConfigMap') as Obj;
  const shownConfig = blocks.find((b) => b.startsWith('# tessera.yaml in the ConfigMap'))!;
  assert.deepEqual(parseYaml(shownConfig), parseYaml(cm.data['tessera.yaml']));
});

test("the walkthrough's pod, admitted by the injector configured as the walkthrough's step 2 deploys it: its annotations are the real ones and it gets the sidecar", async () => {
  // Step 2's first `tessera k8s manifests` command as shown (continuation lines joined, the redirection dropped).
  const step2 = text.slice(text.indexOf('### 2. The manifests'), text.indexOf('### 3.'));
  const line = /```sh\n(tessera k8s manifests(?:[^\n]*\\\n)*[^\n]*)/.exec(step2)![1]!;
  const argv = line.replace(/\\\n\s*/g, ' ').replace(/>.*$/s, '').trim().split(/\s+/).slice(1);
  assert.ok(argv.includes('--injector'), argv.join(' '));
  const ca = await createTestCa();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-k8s-doc-'));
  try {
    writeFileSync(join(dir, 'injector-ca.pem'), ca.certPem);
    const args = argv.map((a) => (a === 'injector-ca.pem' ? join(dir, 'injector-ca.pem') : a));
    let stdout = '';
    let stderr = '';
    const code = await runCli([...args, '--json'], noRuntime, { stdout: { write: (s: string) => void (stdout += s) }, stderr: { write: (s: string) => void (stderr += s) }, env: {} });
    assert.equal(code, 0, stderr);
    const cm = (JSON.parse(stdout) as { items: Obj[] }).items.find((o) => o.kind === 'ConfigMap')!;
    const settings = { ...parseConfig(parseYaml(cm.data['tessera.yaml'])).kubernetes.injector, version: VERSION };
    assert.equal(settings.image, args[args.indexOf('--image') + 1], 'the sidecar runs the image step 2 deploys');
    const pod = k8sDocs.find((d) => d.kind === 'Pod')!;
    const rv = review(pod);
    const response = mutatePod(rv, settings) as { response: Obj };
    assert.equal(response.response.allowed, true, JSON.stringify(response.response.status));
    const patched = applied(rv, response.response);
    const sidecar = patched.spec.initContainers.find((c: Obj) => c.name === 'tessera-agent');
    const arg = (flag: string): string => sidecar.args[sidecar.args.indexOf(flag) + 1];
    assert.equal(arg('--task-scope'), pod.metadata.annotations['tessera.io/task-scope']);
    assert.equal(arg('--task-purpose'), pod.metadata.annotations['tessera.io/task-purpose']);
    assert.equal(arg('--addr'), 'http://tessera.tessera.svc:8200');
    const app = patched.spec.containers.find((c: Obj) => c.name === 'agent');
    const env = Object.fromEntries(app.env.map((e: Obj) => [e.name, e.value]));
    for (const k of ['TESSERA_ADDR', 'TESSERA_MCP_URL', 'HTTPS_PROXY', 'NODE_EXTRA_CA_CERTS']) assert.ok(env[k], `${k}: the walkthrough says the injector adds it`);
  } finally {
    ca.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
