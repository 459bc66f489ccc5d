import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, UnsecuredJWT, type JWTPayload } from 'jose';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { attestorConfig, type AttestorConfig } from '../../src/config/schema.js';
import { createAttestation } from '../../src/identity/attestation.js';
import { TOKEN_TYPE_JWT, type Attestation } from '../../src/identity/types.js';
import { makeKey, serveJson, sign, type TestKey, failsWith } from './keys.js';

const meta = { requestId: 'req-1', source: '127.0.0.1', replica: 'r1' };
const K8S_ISS = 'https://kubernetes.default.svc.cluster.local';
const CI_ISS = 'https://gitlab.example.com';
const now = Date.UTC(2026, 5, 1, 12, 0, 0);
const nowS = Math.floor(now / 1000);


let rsa: TestKey;
let ec: TestKey;
let other: TestKey;
let server: Awaited<ReturnType<typeof serveJson>>;
let store: Store;
let clock: ManualClock;
let attestation: Attestation;
let jwksFile: string;

before(async () => {
  rsa = await makeKey('RS256', 'k8s-1');
  ec = await makeKey('ES256', 'ci-1');
  other = await makeKey('RS256', 'k8s-1'); // same kid, different key
  server = await serveJson({ '/openid/v1/jwks': { keys: [rsa.publicJwk] } });
  const dir = mkdtempSync(join(tmpdir(), 'tessera-jwks-'));
  jwksFile = join(dir, 'gitlab-jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [ec.publicJwk] }));
  store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  clock = new ManualClock(now);
  const attestors: AttestorConfig[] = [
    attestorConfig.parse({ kind: 'jwt', name: 'k8s-prod', issuer: K8S_ISS, audience: 'tessera', jwks_url: `${server.url}/openid/v1/jwks`, template: 'kubernetes', algorithms: ['RS256'], label_claims: ['kubernetes.io.node.name'] }),
    attestorConfig.parse({
      kind: 'jwt',
      name: 'gitlab',
      issuer: CI_ISS,
      audience: 'https://tessera.example.com',
      jwks_file: jwksFile,
      template: 'spiffe://{trust_domain}/ci/{claims.project_path|path}/{claims.ref}',
      algorithms: ['ES256'],
      label_claims: ['pipeline_source', 'ref_protected'],
    }),
  ];
  attestation = createAttestation({ attestors, trustDomain: 'example.org', clock, audit: new MemoryAuditWriter(), store });
});

after(async () => {
  await server.close();
  await store.close();
});

const k8sClaims = (over: JWTPayload = {}): JWTPayload => ({
  iss: K8S_ISS,
  aud: ['tessera'],
  sub: 'system:serviceaccount:prod:agent',
  iat: nowS - 10,
  nbf: nowS - 10,
  exp: nowS + 600,
  'kubernetes.io': { namespace: 'prod', serviceaccount: { name: 'agent', uid: 'u1' }, pod: { name: 'agent-7d9f', uid: 'p1' }, node: { name: 'node-a', uid: 'n1' } },
  ...over,
});

const ciClaims = (over: JWTPayload = {}): JWTPayload => ({
  iss: CI_ISS,
  aud: 'https://tessera.example.com',
  sub: 'project_path:group/sub/app:ref_type:branch:ref:main',
  iat: nowS - 5,
  exp: nowS + 300,
  project_path: 'group/sub/app',
  ref: 'main',
  pipeline_source: 'push',
  ref_protected: 'true',
  ...over,
});

test('Kubernetes projected SA token (RS256, JWKS over real loopback HTTP) → ns/sa SPIFFE ID, agent recorded', async () => {
  const id = await attestation.attest(await sign(rsa, k8sClaims()), TOKEN_TYPE_JWT, meta);
  assert.equal(id.spiffeId, 'spiffe://example.org/ns/prod/sa/agent');
  assert.equal(id.attestor, 'k8s-prod');
  assert.deepEqual(id.attributes, { namespace: 'prod', service_account: 'agent', pod: 'agent-7d9f', pod_uid: 'p1', 'label.kubernetes.io.node.name': 'node-a', issuer: K8S_ISS });
  assert.ok((server.hits['/openid/v1/jwks'] ?? 0) >= 1);
  // Without a pod claim there is no pod attribute.
  const noPod = k8sClaims();
  delete (noPod['kubernetes.io'] as Record<string, unknown>).pod;
  const id2 = await attestation.attest(await sign(rsa, noPod), TOKEN_TYPE_JWT, meta);
  assert.equal(id2.attributes.pod, undefined);
  const row = await store.get<{ logins: number; attributes: string; first_seen: number; last_seen: number }>('SELECT * FROM agents WHERE spiffe_id = ?', [id.spiffeId]);
  assert.equal(Number(row?.logins), 2);
  assert.equal(JSON.parse(row!.attributes).namespace, 'prod');
});

test('GitLab CI job token (ES256, JWKS file) → template SPIFFE ID with multi-segment project path and labels', async () => {
  const id = await attestation.attest(await sign(ec, ciClaims()), TOKEN_TYPE_JWT, meta);
  assert.equal(id.spiffeId, 'spiffe://example.org/ci/group/sub/app/main');
  assert.equal(id.attestor, 'gitlab');
  assert.equal(id.attributes['label.pipeline_source'], 'push');
  assert.equal(id.attributes['label.ref_protected'], 'true');
});

test('template claims cannot inject path traversal, extra segments or bad characters', async () => {
  const cases: [JWTPayload, string, string][] = [
    [{ ref: '../admin' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ ref: '..' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ ref: 'feature/x' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'], // "/" only where the template says |path
    [{ ref: 'a b' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ ref: 'a%2Fb' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ ref: 'a?x' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ project_path: 'group/../admin' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ project_path: 'group//app' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ project_path: '/group/app' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ project_path: 'group/app/' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ project_path: 'group/./app' }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [{ project_path: ['a'] }, 'TESSERA_ATTEST_FAILED', 'claims'],
    [{ project_path: 'x'.repeat(2100) }, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
  ];
  for (const [over, code, check] of cases) {
    await assert.rejects(attestation.attest(await sign(ec, ciClaims(over)), TOKEN_TYPE_JWT, meta), failsWith(code, check), JSON.stringify(over).slice(0, 80));
  }
  const missing = ciClaims();
  delete missing.ref;
  await assert.rejects(attestation.attest(await sign(ec, missing), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_CLAIM_MISSING'));
  await assert.rejects(attestation.attest(await sign(ec, ciClaims({ ref: '' })), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_CLAIM_MISSING'));
});

test('Kubernetes token without the kubernetes.io claim is TESSERA_ATTEST_CLAIM_MISSING', async () => {
  const c = k8sClaims();
  delete c['kubernetes.io'];
  await assert.rejects(attestation.attest(await sign(rsa, c), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_CLAIM_MISSING'));
  await assert.rejects(
    attestation.attest(await sign(rsa, k8sClaims({ 'kubernetes.io': { namespace: 'prod' } })), TOKEN_TYPE_JWT, meta),
    failsWith('TESSERA_ATTEST_CLAIM_MISSING'),
  );
});

test('every bad JWT is refused with the check that failed', async () => {
  const t = async (token: string | Promise<string>, code: string, check?: string) =>
    assert.rejects(attestation.attest(await token, TOKEN_TYPE_JWT, meta), failsWith(code, check));
  // Unknown issuer: no attestor.
  await t(sign(rsa, k8sClaims({ iss: 'https://evil.example' })), 'TESSERA_ATTEST_NO_ATTESTOR');
  await t(sign(rsa, k8sClaims({ iss: undefined })), 'TESSERA_ATTEST_NO_ATTESTOR');
  // Audience, time.
  await t(sign(rsa, k8sClaims({ aud: 'someone-else' })), 'TESSERA_ATTEST_FAILED', 'audience');
  await t(sign(rsa, k8sClaims({ aud: undefined })), 'TESSERA_ATTEST_FAILED');
  await t(sign(rsa, k8sClaims({ exp: nowS - 31 })), 'TESSERA_ATTEST_FAILED', 'expired');
  await t(sign(rsa, k8sClaims({ nbf: nowS + 120 })), 'TESSERA_ATTEST_FAILED', 'not_yet_valid');
  await t(sign(rsa, k8sClaims({ exp: undefined })), 'TESSERA_ATTEST_FAILED', 'claims');
  // Signature: unknown kid, right kid but wrong key, tampered payload.
  await t(sign(rsa, k8sClaims(), { kid: 'nope' }), 'TESSERA_ATTEST_FAILED', 'signature');
  await t(sign(other, k8sClaims()), 'TESSERA_ATTEST_FAILED', 'signature');
  const good = await sign(rsa, k8sClaims());
  const [h, , s] = good.split('.');
  const forged = Buffer.from(JSON.stringify(k8sClaims({ 'kubernetes.io': { namespace: 'kube-system', serviceaccount: { name: 'admin' } } }))).toString('base64url');
  await t(`${h}.${forged}.${s}`, 'TESSERA_ATTEST_FAILED', 'signature');
  // Algorithms: none, HS256 keyed with the public key (the classic confusion attack), and an allowed-elsewhere alg.
  await t(new UnsecuredJWT(k8sClaims()).encode(), 'TESSERA_ATTEST_FAILED', 'algorithm');
  for (const secret of [JSON.stringify(rsa.publicJwk), JSON.stringify(ec.publicJwk)]) {
    const hs = await new SignJWT(k8sClaims()).setProtectedHeader({ alg: 'HS256', kid: 'k8s-1' }).sign(new TextEncoder().encode(secret));
    await t(hs, 'TESSERA_ATTEST_FAILED', 'algorithm');
  }
  const esForK8s = await makeKey('ES256', 'k8s-1');
  await t(sign(esForK8s, k8sClaims()), 'TESSERA_ATTEST_FAILED', 'algorithm'); // k8s-prod allows RS256 only
  // Not a JWT at all.
  await t('not.a.jwt', 'TESSERA_ATTEST_FAILED', 'format');
  await t('garbage', 'TESSERA_ATTEST_FAILED', 'format');
  await t('x'.repeat(20_000), 'TESSERA_ATTEST_FAILED', 'format');
  // Messages name what was expected (configuration, not secret) and never a pseudo-attestor.
  const message = async (token: string | Promise<string>): Promise<{ message: string; details: Record<string, unknown> }> => {
    const e = await attestation.attest(await token, TOKEN_TYPE_JWT, meta).then(() => assert.fail('accepted'), (x: unknown) => x as { message: string; details: Record<string, unknown> });
    return e;
  };
  const aud = await message(sign(rsa, k8sClaims({ aud: 'someone-else' })));
  assert.match(aud.message, /attestation failed \(audience\) by attestor "k8s-prod": the token audience \(aud\) does not include "tessera", the audience this attestor expects \(attestors\[\]\.audience in tessera\.yaml/);
  assert.doesNotMatch(aud.message, /someone-else/, 'the token content is not echoed');
  for (const bad of ['garbage', 'x'.repeat(20_000), new UnsecuredJWT(k8sClaims()).encode()]) {
    const e = await message(bad);
    assert.match(e.message, /attestation failed \((format|algorithm)\) before an attestor could be chosen: /);
    assert.doesNotMatch(e.message, /selection/);
    assert.equal(e.details.attestor, null);
  }
  // Nothing was recorded for refused tokens.
  assert.equal(await store.get('SELECT 1 AS x FROM agents WHERE spiffe_id = ?', ['spiffe://example.org/ns/kube-system/sa/admin']), undefined);
});

test('an unreachable JWKS URL is TESSERA_BUNDLE_INVALID, not an attestation pass', async () => {
  const dead = await serveJson({});
  const url = `${dead.url}/jwks`;
  await dead.close();
  const a = createAttestation({
    attestors: [attestorConfig.parse({ kind: 'jwt', name: 'dead', issuer: 'https://dead.example', audience: 'tessera', jwks_url: url, template: 'kubernetes', algorithms: ['RS256'] })],
    trustDomain: 'example.org',
    clock,
    audit: new MemoryAuditWriter(),
    store,
  });
  await assert.rejects(a.attest(await sign(rsa, k8sClaims({ iss: 'https://dead.example' })), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_BUNDLE_INVALID'));
});

test('templates that could be ambiguous or inject identities are refused at configuration time', () => {
  const bad = [
    'spiffe://{trust_domain}/ci/{claims.a}-{claims.b}',
    'spiffe://{trust_domain}/ci/x{claims.a}',
    'spiffe://{trust_domain}/{claims.a|path}/{claims.b|path}',
    'spiffe://{trust_domain}/ci/static',
    'spiffe://{trust_domain}',
    'spiffe://{trust_domain}/../{claims.a}',
    'spiffe://{trust_domain}//{claims.a}',
    'spiffe://Bad/{claims.a}',
    'http://{trust_domain}/{claims.a}',
    'spiffe://{trust_domain}/{claims.}',
  ];
  for (const template of bad) {
    assert.throws(
      () => createAttestation({ attestors: [attestorConfig.parse({ kind: 'jwt', name: 'x', issuer: 'i', audience: 'a', jwks_file: '/nonexistent', template })], trustDomain: 'example.org', clock, audit: new MemoryAuditWriter(), store }),
      failsWith('TESSERA_CONFIG_INVALID'),
      template,
    );
  }
});

test('max_token_age refuses tokens whose iat is too old or missing', async () => {
  const a = createAttestation({
    attestors: [attestorConfig.parse({ kind: 'jwt', name: 'aged', issuer: 'https://aged.example', audience: 'tessera', jwks_file: jwksFile, template: 'spiffe://{trust_domain}/w/{claims.sub}', algorithms: ['ES256'], max_token_age: '60s' })],
    trustDomain: 'example.org',
    clock,
    audit: new MemoryAuditWriter(),
    store,
  });
  const claims = (iat: number | undefined): JWTPayload => ({ iss: 'https://aged.example', aud: 'tessera', sub: 'worker-1', exp: nowS + 600, ...(iat !== undefined ? { iat } : {}) });
  assert.equal((await a.attest(await sign(ec, claims(nowS - 30)), TOKEN_TYPE_JWT, meta)).spiffeId, 'spiffe://example.org/w/worker-1');
  await assert.rejects(a.attest(await sign(ec, claims(nowS - 600)), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'expired'));
  await assert.rejects(a.attest(await sign(ec, claims(undefined)), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'claims'));
  await assert.rejects(a.attest(await sign(ec, claims(nowS + 600)), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'not_yet_valid'));
});
