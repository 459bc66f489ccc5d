/**
 * The jwt attestor's `mode: tokenreview` (docs/attestors.md#tokenreview) against a real Tessera
 * (src/main.ts, SQLite) and a local HTTPS server that stands in for the Kubernetes API server's
 * TokenReview endpoint (test/k8s/pods/fake-api.ts; no API server can run on these machines). The
 * presented token's signature is NOT checked locally (the API server decides), so the test tokens
 * are signed with a key Tessera does not know.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../../e2e/harness.js';
import { makeKey, sign } from '../../identity/keys.js';
import { parseConfig } from '../../../src/config/index.js';
import { createTokenReviewer } from '../../../src/identity/tokenreview.js';
import { systemClock } from '../../../src/shared/clock.js';
import { startFakeApi, type FakeApi } from './fake-api.js';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const POD_UID = '3f0c2a9e-1d2b-4c5d-8e7f-000000000001';

const saUser = (ns: string, sa: string, pod?: { name: string; uid: string }) => ({
  username: `system:serviceaccount:${ns}:${sa}`,
  uid: 'f0c1c7a6-0000-4000-8000-000000000001',
  groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
  ...(pod ? { extra: { 'authentication.kubernetes.io/pod-name': [pod.name], 'authentication.kubernetes.io/pod-uid': [pod.uid] } } : {}),
});
const reviewOf = (status: Record<string, unknown>) => ({ status: 201, body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: {}, status } });

async function setup(t: { after(fn: () => Promise<void> | void): void }): Promise<{ h: Harness; api: FakeApi; token(label: string): Promise<string>; login(token: string): Promise<{ status: number; body: any }> }> {
  const api = await startFakeApi();
  t.after(() => api.close());
  const h = await startHarness({
    config: {
      attestors: [{ kind: 'jwt', name: 'k8s-tr', issuer: ISSUER, audience: 'tessera', template: 'kubernetes', mode: 'tokenreview' }],
      kubernetes: { api: { url: api.url, token_file: api.tokenFile, ca_file: api.caFile } },
    },
  });
  t.after(() => h.close());
  const key = await makeKey('ES256', 'unknown-to-tessera');
  return {
    h, api,
    async token(label) {
      const now = Math.floor(Date.now() / 1000);
      const tok = await sign(key, { iss: ISSUER, aud: ['tessera'], sub: label, iat: now, exp: now + 600 });
      h.sensitive.add(tok);
      return tok;
    },
    async login(token) {
      const res = await fetch(`${h.url}/v1/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }),
      });
      const body = (await res.json()) as any;
      if (body.access_token) h.sensitive.add(body.access_token);
      return { status: res.status, body };
    },
  };
}

test('tokenreview: the API server vouches → agent token with namespace, service account and pod; answers are cached briefly', async (t) => {
  const s = await setup(t);
  const good = await s.token('good');
  const seen: { token: string; audiences: readonly string[] }[] = [];
  s.api.review = (token, audiences) => {
    seen.push({ token, audiences });
    return token === good ? reviewOf({ authenticated: true, audiences: ['tessera'], user: saUser('healthcare', 'patient-reader', { name: 'reader-0', uid: POD_UID }) }) : reviewOf({ authenticated: false, error: `[invalid bearer token ${token}]` });
  };
  const r = await s.login(good);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const claims = JSON.parse(Buffer.from(r.body.access_token.split('.')[1], 'base64url').toString()) as { sub: string; tessera: { kind: string; attrs: Record<string, string> } };
  assert.equal(claims.sub, 'spiffe://tessera.local/ns/healthcare/sa/patient-reader');
  assert.equal(claims.tessera.kind, 'kubernetes');
  assert.equal(claims.tessera.attrs.pod, 'reader-0');
  assert.equal(claims.tessera.attrs.pod_uid, POD_UID);
  // The API got the token and this attestor's audience, authenticated with Tessera's own SA token.
  assert.equal(seen[0]?.token, good);
  assert.deepEqual(seen[0]?.audiences, ['tessera']);
  assert.equal(s.api.counts.unauthorized, 0);
  // A second login within the cache window does not ask again.
  const before = s.api.counts.review;
  assert.equal((await s.login(good)).status, 200);
  assert.equal(s.api.counts.review, before);

  // The API server's error text (which may quote the token) never reaches the client.
  const bad = await s.token('bad');
  const refused = await s.login(bad);
  assert.equal(refused.status, 400);
  assert.equal(refused.body.code, 'TESSERA_TOKENREVIEW_REJECTED');
  assert.ok(!JSON.stringify(refused.body).includes(bad));
});

test('tokenreview: wrong audience, not a service account, hostile names, API down or nonsense → exact codes', async (t) => {
  const s = await setup(t);
  const cases: { name: string; answer: () => { status: number; body: unknown }; status: number; code: string }[] = [
    { name: 'audience missing', answer: () => reviewOf({ authenticated: true, user: saUser('a', 'b') }), status: 400, code: 'TESSERA_TOKENREVIEW_AUDIENCE' },
    { name: 'other audience', answer: () => reviewOf({ authenticated: true, audiences: ['https://kubernetes.default.svc'], user: saUser('a', 'b') }), status: 400, code: 'TESSERA_TOKENREVIEW_AUDIENCE' },
    { name: 'a person', answer: () => reviewOf({ authenticated: true, audiences: ['tessera'], user: { username: 'alice@example.com' } }), status: 400, code: 'TESSERA_TOKENREVIEW_USER_INVALID' },
    { name: 'node', answer: () => reviewOf({ authenticated: true, audiences: ['tessera'], user: { username: 'system:node:worker-1' } }), status: 400, code: 'TESSERA_TOKENREVIEW_USER_INVALID' },
    { name: 'extra colon', answer: () => reviewOf({ authenticated: true, audiences: ['tessera'], user: { username: 'system:serviceaccount:a:b:c' } }), status: 400, code: 'TESSERA_TOKENREVIEW_USER_INVALID' },
    { name: 'two pod names', answer: () => reviewOf({ authenticated: true, audiences: ['tessera'], user: { username: 'system:serviceaccount:a:b', extra: { 'authentication.kubernetes.io/pod-name': ['x', 'y'] } } }), status: 400, code: 'TESSERA_TOKENREVIEW_USER_INVALID' },
    { name: 'hostile namespace', answer: () => reviewOf({ authenticated: true, audiences: ['tessera'], user: saUser('../etc', 'b') }), status: 400, code: 'TESSERA_ATTEST_FAILED' },
    { name: 'hostile pod name', answer: () => reviewOf({ authenticated: true, audiences: ['tessera'], user: saUser('a', 'b', { name: 'x/../y', uid: POD_UID }) }), status: 400, code: 'TESSERA_ATTEST_FAILED' },
    { name: 'hostile pod uid', answer: () => reviewOf({ authenticated: true, audiences: ['tessera'], user: saUser('a', 'b', { name: 'ok', uid: 'a b' }) }), status: 400, code: 'TESSERA_ATTEST_FAILED' },
    { name: 'forbidden (no auth-delegator)', answer: () => ({ status: 403, body: { kind: 'Status', code: 403 } }), status: 503, code: 'TESSERA_TOKENREVIEW_UNAVAILABLE' },
    { name: 'server error', answer: () => ({ status: 500, body: { kind: 'Status', code: 500 } }), status: 503, code: 'TESSERA_TOKENREVIEW_UNAVAILABLE' },
    { name: 'not a TokenReview', answer: () => ({ status: 201, body: { hello: 'world' } }), status: 503, code: 'TESSERA_TOKENREVIEW_UNAVAILABLE' },
  ];
  for (const c of cases) {
    s.api.review = c.answer;
    const r = await s.login(await s.token(c.name.replace(/\W/g, '-')));
    assert.equal(r.status, c.status, `${c.name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, c.code, c.name);
  }
  // The API server unreachable: fail closed.
  await s.api.close();
  const r = await s.login(await s.token('down'));
  assert.equal(r.status, 503);
  assert.equal(r.body.code, 'TESSERA_TOKENREVIEW_UNAVAILABLE');
});

test('tokenreview: the reviewer times out closed and bounds its cache; config refuses unsafe combinations', async () => {
  let calls = 0;
  const slow = createTokenReviewer({ post: () => new Promise(() => { calls++; }), clock: systemClock, timeoutMs: 50 });
  await assert.rejects(slow.review('t', 'tessera'), (e: any) => e.code === 'TESSERA_TOKENREVIEW_UNAVAILABLE');
  assert.equal(calls, 1);
  let asked = 0;
  const ok = { status: { authenticated: true, audiences: ['tessera'], user: { username: 'system:serviceaccount:a:b' } } };
  const small = createTokenReviewer({ post: async () => { asked++; return ok; }, clock: systemClock, cacheSize: 2 });
  for (const tok of ['t1', 't2', 't3', 't1']) await small.review(tok, 'tessera');
  assert.equal(asked, 4, 't1 was evicted by t3 (bounded at 2)');
  await small.review('t3', 'tessera');
  assert.equal(asked, 4);
  // Another audience is another question.
  await assert.rejects(small.review('t3', 'other'), (e: any) => e.code === 'TESSERA_TOKENREVIEW_AUDIENCE');
  assert.equal(asked, 5);

  const base = { kind: 'jwt', name: 'tr', issuer: ISSUER, audience: 'tessera', template: 'kubernetes', mode: 'tokenreview' };
  for (const extra of [{ jwks_file: '/x' }, { template: 'spiffe://{trust_domain}/ci/{claims.sub}' }, { label_claims: ['team'] }, { max_token_age: '10m' }]) {
    assert.throws(() => parseConfig({ attestors: [{ ...base, ...extra }] }), /tokenreview/, JSON.stringify(extra));
  }
  assert.throws(() => parseConfig({ attestors: [{ ...base, mode: 'oidc' }] }));
  assert.throws(() => parseConfig({ kubernetes: { api: { url: 'not a url' } } }));
  assert.throws(() => parseConfig({ kubernetes: { api: { namespace: 'Bad_NS' } } }));
  assert.throws(() => parseConfig({ kubernetes: { pod_revocation_ttl: '1s' } }));
  assert.equal(parseConfig({ attestors: [base] }).attestors[0]?.kind, 'jwt');
});
