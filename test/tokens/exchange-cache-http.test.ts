import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { attestorConfig } from '../../src/config/schema.js';
import { GRANT_TOKEN_EXCHANGE } from '../../src/tokens/exchange.js';
import { TOKEN_TYPE_JWT } from '../../src/identity/types.js';
import { makeKey, sign, type TestKey } from '../identity/keys.js';
import { startHarness, type Harness } from './helpers.js';

// A re-presented Kubernetes token hits the attestation cache (src/identity/attestation.ts); every
// other login step must still run per login: agent revocation, a new token, one audit event.
const ISS = 'https://kubernetes.default.svc.cluster.local';
const AGENT = 'spiffe://example.org/ns/prod/sa/reader';
let h: Harness;
let key: TestKey;
let dir: string;

before(async () => {
  key = await makeKey('ES256', 'k8s-1');
  dir = mkdtempSync(join(tmpdir(), 'tessera-exchange-cache-'));
  const file = join(dir, 'jwks.json');
  writeFileSync(file, JSON.stringify({ keys: [key.publicJwk] }));
  h = await startHarness({ attestors: [attestorConfig.parse({ kind: 'jwt', name: 'k8s', issuer: ISS, audience: 'tessera', jwks_file: file, template: 'kubernetes', algorithms: ['ES256'] })] });
});
after(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

async function exchange(subjectToken: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${h.base}/v1/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: GRANT_TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: TOKEN_TYPE_JWT }).toString(),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test('a re-presented attestation token: cache hit, yet a new token, one audit event per login, and agent revocation still applies', async () => {
  const nowS = Math.floor(h.clock.now() / 1000);
  const subject = await sign(key, {
    iss: ISS, aud: 'tessera', sub: 'system:serviceaccount:prod:reader', iat: nowS, exp: nowS + 3600,
    'kubernetes.io': { namespace: 'prod', serviceaccount: { name: 'reader' } },
  });
  const cache = (result: string) => h.metrics.counter('tessera_attestation_cache_total', '').get({ result });
  const auditBefore = h.audit.events.length;

  const first = await exchange(subject);
  const second = await exchange(subject);
  assert.equal(first.status, 200, JSON.stringify(first.json));
  assert.equal(second.status, 200, JSON.stringify(second.json));
  assert.equal(cache('miss'), 1);
  assert.equal(cache('hit'), 1);
  const a = decodeJwt(String(first.json.access_token));
  const b = decodeJwt(String(second.json.access_token));
  assert.equal(b.sub, AGENT);
  assert.notEqual(a.jti, b.jti, 'each login issues its own token');
  const logins = h.audit.events.slice(auditBefore).filter((e) => e.kind === 'auth.login' && e.result === 'success');
  assert.equal(logins.length, 2);
  assert.deepEqual(logins.map((e) => (e.details as { token_jti_hmac: string }).token_jti_hmac), [h.audit.hmac(a.jti!), h.audit.hmac(b.jti!)]);
  assert.ok(!h.audit.events.slice(auditBefore).some((e) => e.kind === 'token.issued'));

  h.revocations.agents.add(AGENT);
  try {
    const refused = await exchange(subject);
    assert.equal(refused.status, 400);
    assert.equal(refused.json.code, 'TESSERA_AGENT_REVOKED');
    assert.equal(cache('hit'), 2, 'refused although the attestation came from the cache');
  } finally {
    h.revocations.agents.delete(AGENT);
  }
});
