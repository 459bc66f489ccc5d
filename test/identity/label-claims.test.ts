/**
 * CI claims (GitLab `ref_protected`, `pipeline_source`, `environment`; GitHub `ref`,
 * `environment`) reach Cedar only as the attestor's configuration declares them, from the
 * verified token, typed, labelled `label.<claim>` (pen-test F14, docs/adr/0068-typed-label-claims.md).
 * Real ES256 tokens, the real attestation and the real Cedar entity builder; hostile values.
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
import { attestorConfig, type AttestorConfig } from '../../src/config/schema.js';
import { createAttestation } from '../../src/identity/attestation.js';
import { TOKEN_TYPE_JWT, type Attestation } from '../../src/identity/types.js';
import { agentEntity } from '../../src/policy/entities.js';
import { TesseraError } from '../../src/shared/errors.js';
import { makeKey, sign, type TestKey, failsWith } from './keys.js';

const meta = { requestId: 'req-1', source: '127.0.0.1', replica: 'r1' };
const GL = 'https://gitlab.example.com';
const GH = 'https://token.actions.example.com';
const now = Date.UTC(2026, 0, 1);
const nowS = Math.floor(now / 1000);
let key: TestKey;
let store: Store;
let attestation: Attestation;

before(async () => {
  key = await makeKey('ES256', 'ci-1');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-labels-'));
  const jwks = join(dir, 'jwks.json');
  writeFileSync(jwks, JSON.stringify({ keys: [key.publicJwk] }));
  store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const attestors: AttestorConfig[] = [
    attestorConfig.parse({
      kind: 'jwt', name: 'gitlab', issuer: GL, audience: 'tessera', jwks_file: jwks, algorithms: ['ES256'],
      template: 'spiffe://{trust_domain}/ci/{claims.project_path|path}/{claims.ref}',
      label_claims: [{ claim: 'ref_protected', type: 'boolean' }, { claim: 'pipeline_source', type: 'string' }, { claim: 'environment', type: 'string' }, { claim: 'project_id', type: 'integer' }, 'namespace'],
    }),
    attestorConfig.parse({
      kind: 'jwt', name: 'github', issuer: GH, audience: 'tessera', jwks_file: jwks, algorithms: ['ES256'],
      template: 'spiffe://{trust_domain}/github/{claims.repository|path}',
      label_claims: [{ claim: 'ref', type: 'string' }, 'environment', 'groups'],
    }),
  ];
  attestation = createAttestation({ attestors, trustDomain: 'example.org', clock: new ManualClock(now), audit: new MemoryAuditWriter(), store });
});
after(async () => {
  await store.close();
});

const gitlab = (over: JWTPayload = {}): JWTPayload => ({
  iss: GL, aud: 'tessera', sub: 'project_path:group/app:ref_type:branch:ref:main', iat: nowS - 5, exp: nowS + 300,
  project_path: 'group/app', ref: 'main', ref_protected: 'true', pipeline_source: 'push', environment: 'production', project_id: 42, ...over,
});
const github = (over: JWTPayload = {}): JWTPayload => ({
  iss: GH, aud: 'tessera', sub: 'repo:org/app:ref:refs/heads/main', iat: nowS - 5, exp: nowS + 300,
  repository: 'org/app', ref: 'refs/heads/main', environment: 'prod', ...over,
});

test('declared claims become label.<claim> attributes, typed; undeclared claims never do', async () => {
  const id = await attestation.attest(await sign(key, gitlab({ namespace: 'healthcare', service_account: 'reader', tessera_admin: true, attestor_kind: 'kubernetes' })), TOKEN_TYPE_JWT, meta);
  assert.deepEqual(id.attributes, {
    'label.ref_protected': 'true',
    'label.pipeline_source': 'push',
    'label.environment': 'production',
    'label.project_id': '42',
    'label.namespace': 'healthcare',
    issuer: GL,
  });
  // What Cedar sees: the labels as tags (plain aliases only where they cannot shadow Tessera's
  // own attributes), namespace/service_account empty for a jwt identity.
  const e = agentEntity({ ...id, trustDomain: 'example.org', path: new URL(id.spiffeId).pathname });
  const attrs = e.attrs as Record<string, unknown>;
  assert.deepEqual([attrs.namespace, attrs.service_account, attrs.attestor, attrs.attestor_kind], ['', '', 'gitlab', 'jwt']);
  const tags = (e as { tags?: Record<string, unknown> }).tags ?? {};
  assert.equal(tags['label.namespace'], 'healthcare');
  assert.equal(tags.namespace, undefined, 'a label never shadows namespace');
  assert.equal(tags.ref_protected, 'true');
  assert.equal(tags.tessera_admin, undefined, 'an undeclared claim is not a tag');
  // A JSON boolean is the same label as GitLab's string form.
  const b = await attestation.attest(await sign(key, gitlab({ ref_protected: false })), TOKEN_TYPE_JWT, meta);
  assert.equal(b.attributes['label.ref_protected'], 'false');
  // A missing declared claim gives no label (policies test `has`).
  const none = gitlab();
  delete none.environment;
  assert.equal((await attestation.attest(await sign(key, none), TOKEN_TYPE_JWT, meta)).attributes['label.environment'], undefined);
});

test('a typed label claim with a hostile value fails the login with TESSERA_ATTEST_FAILED naming the claim', async () => {
  const cases: [JWTPayload, string][] = [
    [{ ref_protected: 'yes' }, 'ref_protected'],
    [{ ref_protected: 'TRUE' }, 'ref_protected'],
    [{ ref_protected: 1 }, 'ref_protected'],
    [{ ref_protected: ['true'] }, 'ref_protected'],
    [{ ref_protected: { value: true } }, 'ref_protected'],
    [{ pipeline_source: 7 }, 'pipeline_source'],
    [{ pipeline_source: ['push', 'web'] }, 'pipeline_source'],
    [{ environment: 'production\n2026-01-01 allow secret.read' }, 'environment'],
    [{ environment: 'prod\u001b[2K' }, 'environment'],
    [{ environment: 'prod\u202euction' }, 'environment'],
    [{ environment: 'p'.repeat(1025) }, 'environment'],
    [{ environment: true }, 'environment'],
    [{ project_id: '42abc' }, 'project_id'],
    [{ project_id: 4.5 }, 'project_id'],
    [{ project_id: '007' }, 'project_id'],
    [{ project_id: 2 ** 60 }, 'project_id'],
  ];
  for (const [over, claim] of cases) {
    await assert.rejects(attestation.attest(await sign(key, gitlab(over)), TOKEN_TYPE_JWT, meta), (e: unknown) => {
      failsWith('TESSERA_ATTEST_FAILED', 'claims')(e);
      assert.equal((e as TesseraError).details?.claim, claim, JSON.stringify(over));
      return true;
    }, JSON.stringify(over));
  }
});

test('a lenient label claim leaves hostile values out instead of passing them on', async () => {
  const cases: [JWTPayload, string | undefined][] = [
    [{ environment: 'prod' }, 'prod'],
    [{ environment: 3 }, '3'],
    [{ environment: { name: 'prod' } }, undefined],
    [{ environment: 'prod\r\nforged' }, undefined],
    [{ environment: 'x'.repeat(1025) }, undefined],
    [{ groups: ['a', 'b'] }, 'a,b'],
    [{ groups: ['a,b'] }, undefined], // would equal ["a","b"]
    [{ groups: ['a', 1] }, undefined],
    [{ groups: [] }, undefined],
  ];
  for (const [over, want] of cases) {
    const id = await attestation.attest(await sign(key, github(over)), TOKEN_TYPE_JWT, meta);
    const claim = Object.keys(over)[0]!;
    assert.equal(id.attributes[`label.${claim}`], want, JSON.stringify(over));
  }
  // GitHub's ref has "/" (refs/heads/main): fine as a label, never part of the SPIFFE ID.
  const id = await attestation.attest(await sign(key, github()), TOKEN_TYPE_JWT, meta);
  assert.deepEqual([id.spiffeId, id.attributes['label.ref']], ['spiffe://example.org/github/org/app', 'refs/heads/main']);
});

test('configuration: label_claims entries are claim names, each once, with a known type', () => {
  const base = { kind: 'jwt', name: 'x', issuer: 'https://i.example', audience: 'a', jwks_file: '/k.json', template: 'spiffe://{trust_domain}/x/{claims.sub}' };
  for (const bad of [[{ claim: 'ref', type: 'bool' }], [{ claim: 'ref' }], [{ claim: 'ref', type: 'string', extra: 1 }], [''], [42]]) {
    assert.equal(attestorConfig.safeParse({ ...base, label_claims: bad }).success, false, JSON.stringify(bad));
  }
  for (const [bad, why] of [[['ref', 'ref'], /twice/], [['a..b'], /not a claim name/], [['.a'], /not a claim name/], [['a b'], /not a claim name/]] as const) {
    const cfg = attestorConfig.parse({ ...base, label_claims: bad });
    assert.throws(() => createAttestation({ attestors: [cfg], trustDomain: 'example.org', clock: new ManualClock(now), audit: new MemoryAuditWriter(), store }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_INVALID' && why.test(e.message), JSON.stringify(bad));
  }
});
