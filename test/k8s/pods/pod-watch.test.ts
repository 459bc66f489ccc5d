/**
 * Pod lifecycle revocation (docs/k8s-pods.md) end to end: a real Tessera (src/main.ts, SQLite)
 * with `kubernetes.watch_pods: true`, agents logging in with service-account-shaped JWTs
 * (signed with jose; the "cluster" JWKS in a file) that carry `kubernetes.io.pod.{name,uid}`,
 * and the pod watch reading a local HTTPS server that stands in for the Kubernetes API server
 * (test/k8s/pods/fake-api.ts: no API server can run on these machines). Deleting a pod there
 * must refuse its agent's tokens at introspection, the credential API and the gateway within
 * 1 s, and revoke its leases; a pod deleted while the watch was down is found by the relist;
 * 410 Gone relists; malformed watch lines are survived.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../../e2e/harness.js';
import { makeKey, sign, type TestKey } from '../../identity/keys.js';
import { MemoryEngine } from '../../helpers/memory-engine.js';
import { startFakeApi, type FakeApi } from './fake-api.js';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const NS = 'healthcare';
const SA = 'patient-reader';
const AGENT = `spiffe://tessera.local/ns/${NS}/sa/${SA}`;

const uid = (n: number): string => `0b6a3c1e-5f7d-4b39-9a51-${String(n).padStart(12, '0')}`;

const LEASE_POLICY = `@id("memdb-pods")
permit (principal, action == Tessera::Action::"cred.issue", resource == Tessera::Role::"memdb/readonly")
when { principal.attestor_kind == "kubernetes" && principal.namespace == "${NS}" };`;

function policies(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pod-policies-'));
  for (const f of readdirSync('examples/policies')) if (f.endsWith('.cedar')) copyFileSync(join('examples/policies', f), join(dir, f));
  writeFileSync(join(dir, 'memdb.cedar'), LEASE_POLICY);
  return dir;
}

interface World {
  h: Harness;
  api: FakeApi;
  key: TestKey;
  saToken(pod: { name: string; uid: string }, extra?: Record<string, unknown>): Promise<string>;
  login(saToken: string): Promise<{ status: number; body: any }>;
  introspect(token: string): Promise<boolean>;
}

async function world(t: { after(fn: () => Promise<void> | void): void }): Promise<World> {
  const api = await startFakeApi();
  t.after(() => api.close());
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pods-'));
  const key = await makeKey('RS256', 'cluster-key-1');
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  const engine = new MemoryEngine('memdb', { readonly: { defaultTtlMs: 60_000, maxTtlMs: 120_000, renewable: true } });
  const h = await startHarness({
    engines: [engine],
    policyDir: policies(),
    config: {
      attestors: [{ kind: 'jwt', name: 'k8s-prod', issuer: ISSUER, audience: 'tessera', jwks_file: jwksFile, template: 'kubernetes', algorithms: ['RS256'] }],
      kubernetes: { watch_pods: true, api: { url: api.url, token_file: api.tokenFile, ca_file: api.caFile } },
    },
  });
  t.after(() => h.close());
  await api.watching();
  const w: World = {
    h, api, key,
    async saToken(pod, extra = {}) {
      const now = Math.floor(Date.now() / 1000);
      const token = await sign(key, {
        iss: ISSUER, aud: ['tessera'], sub: `system:serviceaccount:${NS}:${SA}`, iat: now, nbf: now, exp: now + 600,
        'kubernetes.io': { namespace: NS, serviceaccount: { name: SA, uid: 'f0c1c7a6-0000-4000-8000-000000000001' }, pod, ...extra },
      });
      h.sensitive.add(token);
      return token;
    },
    async login(saToken) {
      const res = await fetch(`${h.url}/v1/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: saToken, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }),
      });
      const body = (await res.json()) as any;
      if (body.access_token) h.sensitive.add(body.access_token);
      return { status: res.status, body };
    },
    async introspect(token) {
      const res = await fetch(`${h.url}/v1/oauth/introspect`, { method: 'POST', headers: { authorization: `Bearer ${h.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
      return ((await res.json()) as { active: boolean }).active;
    },
  };
  return w;
}

/** Polls until `check` holds; returns the ms it took (fails after `maxMs`). */
async function within(maxMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return performance.now() - start;
    if (performance.now() - start > maxMs) assert.fail(`not within ${maxMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a deleted pod: tokens refused within 1 s everywhere, leases revoked, no new login, audited', async (t) => {
  const w = await world(t);
  const pod = { name: 'patient-reader-7d9f-abcde', uid: uid(1) };
  const other = { name: 'patient-reader-7d9f-fghij', uid: uid(2) };
  w.api.addPod({ ...pod, namespace: NS });
  w.api.addPod({ ...other, namespace: NS });
  const sa = await w.saToken(pod);
  const login = await w.login(sa);
  assert.equal(login.status, 200, JSON.stringify(login.body));
  const token = login.body.access_token as string;
  // The agent token records the pod (attributes pod, pod_uid of the kubernetes attestor).
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string; tessera: { attrs: Record<string, string> } };
  assert.equal(claims.sub, AGENT);
  assert.equal(claims.tessera.attrs.pod, pod.name);
  assert.equal(claims.tessera.attrs.pod_uid, pod.uid);
  const otherLogin = await w.login(await w.saToken(other));
  const otherToken = otherLogin.body.access_token as string;

  // A lease and a task of the pod's agent.
  const lease = await w.h.agent(token, 'POST', '/v1/creds/memdb/readonly', {});
  assert.equal(lease.status, 201, JSON.stringify(lease.body));
  const otherLease = await w.h.agent(otherToken, 'POST', '/v1/creds/memdb/readonly', {});
  assert.equal(otherLease.status, 201);

  // The login is audited with the pod.
  const logins = await w.h.admin('GET', '/v1/admin/audit?kind=auth.login&limit=10');
  assert.ok(logins.body.events.some((e: any) => e.event.details?.pod_uid === pod.uid && e.event.details?.pod === pod.name), JSON.stringify(logins.body));

  assert.equal(await w.introspect(token), true);
  // The kill switch's dry run sees the pod's open token window and its lease (exposure windows carry the pod uid).
  const preview = async () => (await w.h.admin('POST', '/v1/admin/revocations', { kind: 'pod', target: pod.uid, dry_run: true })).body.would_revoke as { agent_tokens: number; leases: number };
  assert.deepEqual({ ...(await preview()) }, { agent_tokens: 1, task_tokens: 0, leases: 1, tasks: 0 });
  w.api.deletePod(pod.uid);
  const ms = await within(1000, async () => !(await w.introspect(token)));
  t.diagnostic(`refused at introspection ${ms.toFixed(0)} ms after the DELETED event`);
  // Credential API and gateway refuse it too.
  const read = await w.h.agent(token, 'GET', '/v1/secrets/healthcare/prod/agents/patient-reader/db-url');
  assert.equal(read.status, 401);
  assert.equal(read.body.error.code, 'TESSERA_TOKEN_REVOKED');
  const mcp = await fetch(`${w.h.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }) });
  assert.equal(mcp.status, 401);
  // Its lease is revoked; the other pod's token and lease are untouched.
  const stateOf = async (id: string): Promise<string> => ((await w.h.admin('GET', '/v1/admin/leases?limit=100')).body.leases as { lease_id: string; state: string }[]).find((l) => l.lease_id === id)?.state ?? 'missing';
  await within(2000, async () => (await stateOf(lease.body.lease_id)) === 'revoked');
  assert.equal(await stateOf(otherLease.body.lease_id), 'active');
  // Its token window was closed by the revocation (nothing left open for the pod).
  assert.deepEqual({ ...(await preview()) }, { agent_tokens: 0, task_tokens: 0, leases: 0, tasks: 0 });
  assert.equal(await w.introspect(otherToken), true);
  // The deleted pod's service-account token cannot log in again.
  const again = await w.login(sa);
  assert.equal(again.status, 400);
  assert.equal(again.body.error, 'invalid_grant');
  assert.equal(again.body.code, 'TESSERA_K8S_WATCH_POD_DELETED');
  // Audited: a pod revocation by the watch, with the pod uid in clear.
  const revs = await w.h.admin('GET', '/v1/admin/audit?kind=revocation.created&limit=10');
  const ev = revs.body.events.map((e: any) => e.event).find((e: any) => e.details?.kind === "pod");
  assert.ok(ev, JSON.stringify(revs.body));
  assert.equal(ev.details.pod_uid, pod.uid);
  assert.equal(ev.actor.id, 'system:k8s-pod-watch');
  // The revocation is listed like any other, and can be lifted by an operator.
  const listed = await w.h.admin('GET', '/v1/admin/revocations?kind=pod');
  assert.equal(listed.status, 200);
  assert.equal(listed.body.revocations?.[0]?.target ?? listed.body[0]?.target, pod.uid);
  // Readiness shows the watch.
  const ready = await fetch(`${w.h.url}/readyz`);
  const readyBody = (await ready.json()) as any;
  assert.match(JSON.stringify(readyBody), /kubernetes_pod_watch/);
});

test('a pod deleted while the watch is down is revoked by the relist; 410 Gone relists; malformed lines are survived', async (t) => {
  const w = await world(t);
  const a = { name: 'agent-a', uid: uid(11) };
  const b = { name: 'agent-b', uid: uid(12) };
  const c = { name: 'agent-c', uid: uid(13) };
  for (const p of [a, b, c]) w.api.addPod({ ...p, namespace: NS });
  const ta = (await w.login(await w.saToken(a))).body.access_token as string;
  const tb = (await w.login(await w.saToken(b))).body.access_token as string;
  const tc = (await w.login(await w.saToken(c))).body.access_token as string;

  // Network cut, API unavailable for a while; pod a goes meanwhile.
  w.api.failWith(503);
  w.api.dropWatches();
  w.api.deleteSilently(a.uid);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await w.introspect(ta), true, 'nothing is known yet');
  w.api.failWith(null);
  await within(10_000, async () => !(await w.introspect(ta)));
  assert.equal(await w.introspect(tb), true);
  const reasons = await w.h.admin('GET', '/v1/admin/revocations?kind=pod');
  assert.match(JSON.stringify(reasons.body), /absent from the pod list/);

  // 410 Gone: history compacted; the watcher lists again and keeps watching.
  await w.api.watching();
  const lists = w.api.counts.list;
  w.api.compact();
  await within(5000, async () => w.api.counts.list > lists);
  await w.api.watching();

  // Malformed lines, an unknown type, a DELETED without uid: logged and skipped.
  w.api.sendRaw('{not json');
  w.api.sendRaw(JSON.stringify({ type: 'EXPLODE', object: {} }));
  w.api.sendRaw(JSON.stringify({ type: 'DELETED', object: { metadata: { name: 'no-uid' } } }));
  w.api.sendRaw(JSON.stringify({ type: 'DELETED', object: 'x'.repeat(1000) }));
  w.api.deletePod(b.uid);
  await within(1000, async () => !(await w.introspect(tb)));
  assert.equal(await w.introspect(tc), true);

  // A pod Tessera never issued to is ignored (no revocation row for it).
  w.api.addPod({ name: 'unrelated', uid: uid(99), namespace: 'other' });
  w.api.deletePod(uid(99));
  await new Promise((r) => setTimeout(r, 200));
  const all = await w.h.admin('GET', '/v1/admin/revocations?kind=pod');
  assert.ok(!JSON.stringify(all.body).includes(uid(99)));
});

test('hostile pod claims are refused at login; bad pod revocation targets are refused', async (t) => {
  const w = await world(t);
  for (const pod of [
    { name: '../../etc', uid: uid(21) },
    { name: 'ok-name', uid: 'uid with spaces' },
    { name: 'ok-name', uid: 'x'.repeat(65) },
    { name: 'ok-name', uid: '-leading-dash' },
    { name: 'Caps_And_Underscores', uid: uid(22) },
    { name: 'a'.repeat(254), uid: uid(23) },
    { name: 'ok-name', uid: 12345 as unknown as string },
  ]) {
    const r = await w.login(await w.saToken(pod));
    assert.equal(r.status, 400, JSON.stringify(pod));
    assert.equal(r.body.code, 'TESSERA_ATTEST_FAILED', JSON.stringify(r.body));
  }
  for (const target of ['../x', 'a b', '', 'x'.repeat(65)]) {
    const r = await w.h.admin('POST', '/v1/admin/revocations', { kind: 'pod', target });
    assert.equal(r.status, 400, target);
    assert.equal(r.body.error.code, 'TESSERA_REVOCATION_INVALID');
  }
  // An operator may revoke a pod by uid through the admin API too (the watch's own kind).
  const pod = { name: 'manual', uid: uid(31) };
  w.api.addPod({ ...pod, namespace: NS });
  const token = (await w.login(await w.saToken(pod))).body.access_token as string;
  const r = await w.h.admin('POST', '/v1/admin/revocations', { kind: 'pod', target: pod.uid, reason: 'manual' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(await w.introspect(token), false);
});

test('a deleted pod ends the task trees its agent opened, also the parts delegated to agents of other pods', async (t) => {
  const w = await world(t);
  const a = { name: 'orchestrator-0', uid: uid(41) };
  const b = { name: 'worker-0', uid: uid(42) };
  for (const p of [a, b]) w.api.addPod({ ...p, namespace: NS });
  const ta = (await w.login(await w.saToken(a))).body.access_token as string;
  const tb = (await w.login(await w.saToken(b))).body.access_token as string;
  const exchange = async (params: Record<string, string>): Promise<string> => {
    const res = await fetch(`${w.h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', ...params }) });
    const body = (await res.json()) as any;
    assert.equal(res.status, 200, JSON.stringify(body));
    w.h.sensitive.add(body.access_token);
    return body.access_token as string;
  };
  const root = await exchange({ subject_token: ta, scope: 'secret:healthcare/**', purpose: 'triage' });
  const child = await exchange({ subject_token: root, actor_token: tb, actor_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'secret:healthcare/prod/**', purpose: 'read' });
  // The child acts as pod b's agent: only the task revocation of its parent reaches it.
  const childClaims = JSON.parse(Buffer.from(child.split('.')[1]!, 'base64url').toString()) as { tessera: { attrs: Record<string, string> } };
  assert.equal(childClaims.tessera.attrs.pod_uid, b.uid);
  for (const tok of [root, child]) assert.equal(await w.introspect(tok), true);
  w.api.deletePod(a.uid);
  await within(1000, async () => !(await w.introspect(root)) && !(await w.introspect(child)));
  // Pod b itself is untouched.
  assert.equal(await w.introspect(tb), true);
  const revs = await w.h.admin('GET', '/v1/admin/revocations?kind=task');
  assert.match(JSON.stringify(revs.body), /orchestrator-0 deleted/);
});
