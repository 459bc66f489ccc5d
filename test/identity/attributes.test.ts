/**
 * Attribute provenance (docs/adr/0021-identity-attributes.md), per attestor kind, with hostile
 * claim values: path separators, `..`, encoded slashes, Unicode look-alikes, look-alike prefixes
 * and trust domains. For each, what attestation yields AND what Cedar then sees (the Agent
 * entity), since the second is what decides access. Real signatures, real JWKS/bundle files,
 * real SQLite.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWTPayload } from 'jose';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { attestorConfig } from '../../src/config/schema.js';
import { createAttestation } from '../../src/identity/attestation.js';
import { createJoinTokenService, type JoinTokenService } from '../../src/identity/join-tokens.js';
import { parseSpiffeId } from '../../src/identity/spiffe-id.js';
import { TOKEN_TYPE_JOIN, TOKEN_TYPE_JWT, type Attestation, type AttestedIdentity } from '../../src/identity/types.js';
import { agentEntity } from '../../src/policy/entities.js';
import { makeKey, sign, type TestKey, failsWith } from './keys.js';

const TD = 'tessera.local';
const SPIRE_TD = 'spire.example';
const K8S_ISS = 'https://kubernetes.default.svc';
const CI_ISS = 'https://gitlab.example.com';
const meta = { requestId: 'r', source: '127.0.0.1', replica: 'r1' };
const now = Date.UTC(2026, 5, 1, 12);
const nowS = Math.floor(now / 1000);

let k8sKey: TestKey;
let ciKey: TestKey;
let spireKey: TestKey;
let store: Store;
let joinTokens: JoinTokenService;
let attestation: Attestation;
let dir: string;


/** What policy sees for an attested identity (the Cedar Agent entity's attrs and tags). */
function cedarView(id: AttestedIdentity) {
  const s = parseSpiffeId(id.spiffeId);
  const e = agentEntity({ spiffeId: id.spiffeId, trustDomain: s.trustDomain, path: s.path, attributes: id.attributes, attestor: id.attestor, attestorKind: id.attestorKind });
  return { attrs: e.attrs as Record<string, string>, tags: (e.tags ?? {}) as Record<string, string> };
}

function assertNoKubernetesFacts(id: AttestedIdentity, what: string): void {
  const v = cedarView(id);
  assert.equal(v.attrs.namespace, '', `${what}: namespace`);
  assert.equal(v.attrs.service_account, '', `${what}: service_account`);
  for (const k of ['namespace', 'service_account', 'pod']) {
    assert.equal(id.attributes[k], undefined, `${what}: attribute ${k}`);
    assert.equal(v.tags[k], undefined, `${what}: tag ${k}`);
  }
}

const k8sClaims = (ns: unknown, sa: unknown, pod?: unknown): JWTPayload => ({
  iss: K8S_ISS, aud: 'tessera', sub: 'system:serviceaccount:x:y', iat: nowS, exp: nowS + 600,
  'kubernetes.io': { namespace: ns, serviceaccount: { name: sa, uid: 'u' }, ...(pod !== undefined ? { pod: { name: pod, uid: 'p' } } : {}) },
});
const ciClaims = (over: JWTPayload): JWTPayload => ({ iss: CI_ISS, aud: 'tessera', iat: nowS, exp: nowS + 300, project_path: 'group/app', ref: 'main', ...over });
const svid = (sub: string): JWTPayload => ({ sub, aud: 'tessera', iat: nowS, exp: nowS + 300 });

before(async () => {
  k8sKey = await makeKey('RS256', 'k8s');
  ciKey = await makeKey('ES256', 'ci');
  spireKey = await makeKey('ES256', 'spire');
  dir = mkdtempSync(join(tmpdir(), 'tessera-attrs-'));
  const file = (name: string, doc: unknown) => {
    const f = join(dir, name);
    writeFileSync(f, JSON.stringify(doc));
    return f;
  };
  store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock(now);
  const audit = new MemoryAuditWriter();
  joinTokens = createJoinTokenService({ store, clock, audit, trustDomain: TD });
  attestation = createAttestation({
    attestors: [
      attestorConfig.parse({ kind: 'join_token', name: 'join_token' }),
      attestorConfig.parse({ kind: 'jwt', name: 'k8s-prod', issuer: K8S_ISS, audience: 'tessera', jwks_file: file('k8s.json', { keys: [k8sKey.publicJwk] }), template: 'kubernetes', algorithms: ['RS256'] }),
      // The documented GitLab template, with label claims named like Kubernetes attributes.
      attestorConfig.parse({
        kind: 'jwt', name: 'gitlab', issuer: CI_ISS, audience: 'tessera', jwks_file: file('ci.json', { keys: [ciKey.publicJwk] }),
        template: 'spiffe://{trust_domain}/ci/{claims.project_path|path}/{claims.ref}', algorithms: ['ES256'],
        label_claims: ['namespace', 'service_account', 'pod', 'attestor', 'team'],
      }),
      attestorConfig.parse({ kind: 'spiffe', name: 'spire', trust_domain: SPIRE_TD, audience: 'tessera', bundle_file: file('spire.json', { keys: [{ ...spireKey.publicJwk, alg: undefined, use: 'jwt-svid' }] }) }),
    ],
    trustDomain: TD, joinTokens, clock, audit, store,
  });
});

after(async () => {
  await store.close();
});

test('kubernetes: namespace, service account and pod come from the verified kubernetes.io claim', async () => {
  const id = await attestation.attest(await sign(k8sKey, k8sClaims('healthcare', 'patient-reader', 'reader-7d9f')), TOKEN_TYPE_JWT, meta);
  assert.equal(id.spiffeId, `spiffe://${TD}/ns/healthcare/sa/patient-reader`);
  assert.equal(id.attestorKind, 'kubernetes');
  const v = cedarView(id);
  assert.deepEqual(
    [v.attrs.namespace, v.attrs.service_account, v.attrs.attestor, v.attrs.attestor_kind, v.attrs.trust_domain, v.tags.pod],
    ['healthcare', 'patient-reader', 'k8s-prod', 'kubernetes', TD, 'reader-7d9f'],
  );
  // Service account names are RFC 1123 subdomains: dots are fine.
  const dotted = await attestation.attest(await sign(k8sKey, k8sClaims('a-1', 'build.bot')), TOKEN_TYPE_JWT, meta);
  assert.equal(dotted.spiffeId, `spiffe://${TD}/ns/a-1/sa/build.bot`);
});

test('kubernetes: hostile namespace / service account / pod names are refused, never mapped', async () => {
  const hostile = ['a/b', 'healthcare/sa/patient-reader', '..', '.', 'a%2Fb', '%2e%2e', 'Healthcare', 'h\u0435althcare' /* Cyrillic е */, 'health care', 'ns_x', '-x', 'x-', 'a'.repeat(64), 'a\u0000b', 'a?b', 'a#b', 'a:b'];
  for (const bad of hostile) {
    await assert.rejects(attestation.attest(await sign(k8sKey, k8sClaims(bad, 'reader')), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'spiffe_id'), `namespace ${JSON.stringify(bad)}`);
    if (bad !== 'a'.repeat(64)) {
      await assert.rejects(attestation.attest(await sign(k8sKey, k8sClaims('prod', bad)), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'spiffe_id'), `service account ${JSON.stringify(bad)}`);
      await assert.rejects(attestation.attest(await sign(k8sKey, k8sClaims('prod', 'reader', bad)), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'claims'), `pod ${JSON.stringify(bad)}`);
    }
  }
  for (const wrongType of [['prod'], { name: 'prod' }, 42, true]) {
    await assert.rejects(attestation.attest(await sign(k8sKey, k8sClaims(wrongType, 'reader')), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_CLAIM_MISSING'), JSON.stringify(wrongType));
  }
  await assert.rejects(attestation.attest(await sign(k8sKey, k8sClaims('prod', 'reader', 7)), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'claims'));
  await assert.rejects(attestation.attest(await sign(k8sKey, { ...k8sClaims('prod', 'r'), 'kubernetes.io': ['prod'] }), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_CLAIM_MISSING'));
});

test('jwt (GitLab template): a project path spelling ns/<x>/sa/<y> yields no Kubernetes attribute', async () => {
  // The reported attack: the documented template, project evilgroup/ns/healthcare/sa/patient-reader.
  const id = await attestation.attest(await sign(ciKey, ciClaims({ project_path: 'evilgroup/ns/healthcare/sa/patient-reader' })), TOKEN_TYPE_JWT, meta);
  assert.equal(id.spiffeId, `spiffe://${TD}/ci/evilgroup/ns/healthcare/sa/patient-reader/main`);
  assert.equal(id.attestorKind, 'jwt');
  assertNoKubernetesFacts(id, 'gitlab project path');
  // Look-alike prefixes and shapes: all stay under /ci/, none gets a namespace.
  for (const project of ['ns/healthcare/sa/patient-reader', 'ns/healthcare', 'nsx/healthcare/sa/x', 'x/ns/healthcare', 'ns-healthcare/sa-x', 'sa/x/ns/healthcare']) {
    const other = await attestation.attest(await sign(ciKey, ciClaims({ project_path: project })), TOKEN_TYPE_JWT, meta);
    assert.equal(other.spiffeId, `spiffe://${TD}/ci/${project}/main`);
    assertNoKubernetesFacts(other, project);
  }
});

test('jwt (GitLab template): claims named like Kubernetes attributes, or a kubernetes.io block, stay labels', async () => {
  const id = await attestation.attest(
    await sign(ciKey, ciClaims({ namespace: 'healthcare', service_account: 'break-glass', pod: 'p', attestor: 'k8s-prod', team: 'records', 'kubernetes.io': { namespace: 'healthcare', serviceaccount: { name: 'patient-reader' } } })),
    TOKEN_TYPE_JWT,
    meta,
  );
  assert.equal(id.attributes['label.namespace'], 'healthcare');
  assert.equal(id.attributes['label.service_account'], 'break-glass');
  assertNoKubernetesFacts(id, 'CI claims');
  const v = cedarView(id);
  assert.equal(v.attrs.attestor, 'gitlab', 'a label never replaces the attestor');
  assert.equal(v.tags.attestor, undefined);
  assert.equal(v.tags.team, 'records', 'ordinary labels are readable as plain tags');
  // A label value longer than an agent token can carry is left out rather than cut.
  const long = await attestation.attest(await sign(ciKey, ciClaims({ team: 'x'.repeat(1025) })), TOKEN_TYPE_JWT, meta);
  assert.equal(long.attributes['label.team'], undefined);
});

test('jwt (GitLab template): hostile claim values cannot add, climb or smuggle path segments', async () => {
  const refused: [JWTPayload, string][] = [
    [{ ref: 'feature/x' }, 'spiffe_id'], // "/" only where the template says |path
    [{ ref: '../../ns/healthcare/sa/patient-reader' }, 'spiffe_id'],
    [{ ref: '..' }, 'spiffe_id'],
    [{ ref: '.' }, 'spiffe_id'],
    [{ ref: 'a%2Fb' }, 'spiffe_id'],
    [{ ref: '%2e%2e' }, 'spiffe_id'],
    [{ ref: 'main\u2215x' }, 'spiffe_id'], // DIVISION SLASH look-alike
    [{ ref: 'ma\u0456n' }, 'spiffe_id'], // Cyrillic і
    [{ ref: 'a\\b' }, 'spiffe_id'],
    [{ ref: 'a b' }, 'spiffe_id'],
    [{ ref: 'a\nb' }, 'spiffe_id'],
    [{ project_path: 'group/../../ns/healthcare' }, 'spiffe_id'],
    [{ project_path: 'group//app' }, 'spiffe_id'],
    [{ project_path: '/ns/healthcare' }, 'spiffe_id'],
    [{ project_path: 'group/app/' }, 'spiffe_id'],
    [{ project_path: 'group/%2F/app' }, 'spiffe_id'],
    [{ project_path: 'group\uff0fapp' }, 'spiffe_id'], // FULLWIDTH SOLIDUS
    [{ project_path: { path: 'x' } }, 'claims'],
  ];
  for (const [over, check] of refused) {
    await assert.rejects(attestation.attest(await sign(ciKey, ciClaims(over)), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', check), JSON.stringify(over));
  }
});

test('jwt templates: a claim in the first segment, the reserved "ns" prefix, a shared prefix or a foreign trust domain are refused at startup', () => {
  const base = { kind: 'jwt', audience: 'a', jwks_file: '/nonexistent', algorithms: ['ES256'] };
  const build = (...templates: string[]) =>
    createAttestation({
      attestors: templates.map((template, i) => attestorConfig.parse({ ...base, name: `t${i}`, issuer: `https://i${i}.example`, template })),
      trustDomain: TD, clock: new ManualClock(now), audit: new MemoryAuditWriter(), store,
    });
  for (const bad of [
    ['spiffe://{trust_domain}/{claims.project_path|path}/{claims.ref}'],
    ['spiffe://{trust_domain}/{claims.sub}'],
    ['spiffe://{trust_domain}/ns/{claims.namespace}/sa/{claims.sa}'],
    ['spiffe://{trust_domain}/ci/{claims.a}', 'spiffe://{trust_domain}/ci/{claims.b|path}'],
    ['spiffe://other.example/ci/{claims.a}'],
    ['spiffe://tessera.local.evil/ci/{claims.a}'],
  ]) {
    assert.throws(() => build(...bad), failsWith('TESSERA_CONFIG_INVALID'), bad.join(' + '));
  }
  // Literal own trust domain and distinct prefixes are fine.
  build('spiffe://tessera.local/ci/{claims.a}', 'spiffe://{trust_domain}/github/{claims.repository|path}');
});

test('spiffe: a JWT-SVID yields its ID and trust domain, never Kubernetes attributes, even for /ns/<x>/sa/<y>', async () => {
  const id = await attestation.attest(await sign(spireKey, svid(`spiffe://${SPIRE_TD}/ns/healthcare/sa/patient-reader`)), TOKEN_TYPE_JWT, meta);
  assert.equal(id.attestorKind, 'spiffe');
  assertNoKubernetesFacts(id, 'SVID');
  assert.deepEqual([cedarView(id).attrs.trust_domain, cedarView(id).attrs.attestor], [SPIRE_TD, 'spire']);
});

test('spiffe: hostile subjects (traversal, encoding, look-alike trust domains, another domain) are refused', async () => {
  const cases: [string, string, string?][] = [
    [`spiffe://${SPIRE_TD}/ns/../sa/x`, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [`spiffe://${SPIRE_TD}/ns/a%2Fb`, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [`spiffe://${SPIRE_TD}/ns/h\u0435althcare`, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [`spiffe://${SPIRE_TD}/a/`, 'TESSERA_ATTEST_FAILED', 'spiffe_id'],
    [`spiffe://${SPIRE_TD}.evil/ns/x`, 'TESSERA_ATTEST_NO_ATTESTOR'],
    [`spiffe://x${SPIRE_TD}/ns/x`, 'TESSERA_ATTEST_NO_ATTESTOR'],
    [`spiffe://SPIRE.example/ns/x`, 'TESSERA_ATTEST_NO_ATTESTOR'],
    // A federated SPIRE cannot mint identities in Tessera's own trust domain.
    [`spiffe://${TD}/ns/healthcare/sa/patient-reader`, 'TESSERA_ATTEST_NO_ATTESTOR'],
  ];
  for (const [sub, code, check] of cases) {
    await assert.rejects(attestation.attest(await sign(spireKey, svid(sub)), TOKEN_TYPE_JWT, meta), failsWith(code, check), sub);
  }
});

test('join_token: the operator-chosen ID only; labels stay labels, even named like Kubernetes attributes', async () => {
  const { token } = await joinTokens.create({ spiffeId: `spiffe://${TD}/ns/healthcare/sa/patient-reader`, labels: { namespace: 'healthcare', service_account: 'break-glass', team: 'records' } });
  const id = await attestation.attest(token, TOKEN_TYPE_JOIN, meta);
  assert.equal(id.attestorKind, 'join_token');
  assert.deepEqual(id.attributes, { 'label.namespace': 'healthcare', 'label.service_account': 'break-glass', 'label.team': 'records' });
  assertNoKubernetesFacts(id, 'join token');
  assert.deepEqual([cedarView(id).attrs.attestor, cedarView(id).attrs.attestor_kind, cedarView(id).tags.team], ['join_token', 'join_token', 'records']);
});

test('join_token: a token stored for another trust domain (before this check existed) is refused at login and left unused', async () => {
  // Written the way an older server stored it: the create() check did not run.
  const foreign = await createJoinTokenService({ store, clock: new ManualClock(now), audit: new MemoryAuditWriter(), trustDomain: 'other.test' }).create({ spiffeId: 'spiffe://other.test/ns/healthcare/sa/patient-reader' });
  await assert.rejects(attestation.attest(foreign.token, TOKEN_TYPE_JOIN, meta), failsWith('TESSERA_ATTEST_FAILED', 'trust_domain'));
  const row = await store.get<{ used_at: number | null }>('SELECT used_at FROM join_tokens WHERE id = ?', [foreign.id]);
  assert.equal(row?.used_at, null);
});
