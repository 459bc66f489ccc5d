/**
 * The pod watch with two replicas on PostgreSQL (docs/k8s-pods.md, ADR 0266): both replicas
 * watch a local HTTPS server that stands in for the Kubernetes API server (fake-api.ts; no API
 * server can run on these machines). A pod that logged in through replica b is deleted: exactly
 * one replica claims and records the pod revocation, and both refuse the pod's token within 1 s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../../e2e/harness.js';
import { createTestDatabase } from '../../helpers/postgres.js';
import { makeKey, sign } from '../../identity/keys.js';
import { startFakeApi } from './fake-api.js';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const POD = { name: 'reader-0', uid: '7c1d2e3f-4a5b-4c6d-8e9f-000000000001', namespace: 'healthcare' };

test('two replicas on PostgreSQL: one pod revocation, refused on both within 1 s', async (t) => {
  const db = await createTestDatabase('k8s_pods');
  const api = await startFakeApi();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pods-pg-'));
  const key = await makeKey('RS256', 'cluster-key-1');
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  process.env.TESSERA_TEST_MASTER_KEY = Buffer.alloc(32, 9).toString('base64');
  const config = (replica: string) => ({
    server: { listen: '127.0.0.1:0', public_url: 'https://tessera.test' },
    replica_id: replica,
    store: { kind: 'postgres', url: db.url },
    master_key: { env: 'TESSERA_TEST_MASTER_KEY' },
    attestors: [{ kind: 'jwt', name: 'k8s-prod', issuer: ISSUER, audience: 'tessera', jwks_file: jwksFile, template: 'kubernetes', algorithms: ['RS256'] }],
    kubernetes: { watch_pods: true, api: { url: api.url, token_file: api.tokenFile, ca_file: api.caFile } },
  });
  const rootToken = 'tsr_admin_k8s-pods-replicas-share-one-root-token';
  const a = await startHarness({ config: config('replica-a'), rootToken });
  const b = await startHarness({ config: config('replica-b'), rootToken });
  // Replicas first, then the API they watch, then the database.
  t.after(async () => {
    await b.close();
    await a.close();
    await api.close();
    await db.drop();
  });
  await api.watching(2);

  api.addPod(POD);
  const now = Math.floor(Date.now() / 1000);
  const sa = await sign(key, { iss: ISSUER, aud: ['tessera'], sub: 'system:serviceaccount:healthcare:patient-reader', iat: now, exp: now + 600, 'kubernetes.io': { namespace: POD.namespace, serviceaccount: { name: 'patient-reader' }, pod: { name: POD.name, uid: POD.uid } } });
  const res = await fetch(`${b.url}/v1/oauth/token`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: sa, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }),
  });
  const token = ((await res.json()) as { access_token: string }).access_token;
  for (const h of [a, b]) h.sensitive.add(sa).add(token);
  const active = async (h: Harness): Promise<boolean> => {
    const r = await fetch(`${h.url}/v1/oauth/introspect`, { method: 'POST', headers: { authorization: `Bearer ${h.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
    return ((await r.json()) as { active: boolean }).active;
  };
  assert.equal(await active(a), true);
  assert.equal(await active(b), true);

  api.deletePod(POD.uid);
  const start = performance.now();
  const pending = new Set([a, b]);
  while (pending.size > 0 && performance.now() - start < 1000) {
    for (const h of [...pending]) if (!(await active(h))) pending.delete(h);
    if (pending.size) await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(pending.size, 0, 'a replica still accepts the deleted pod\'s token 1 s after the DELETED event');
  t.diagnostic(`refused on both replicas after ${(performance.now() - start).toFixed(0)} ms`);
  // Claimed once: one pod revocation, though both replicas saw the event.
  await new Promise((r) => setTimeout(r, 200));
  const list = await a.admin("GET", "/v1/admin/revocations?kind=pod");
  assert.equal(list.status, 200);
  assert.equal(JSON.stringify(list.body).split(POD.uid).length - 1, 1, JSON.stringify(list.body));
});
