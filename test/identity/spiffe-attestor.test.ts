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
import { attestorConfig } from '../../src/config/schema.js';
import { createAttestation } from '../../src/identity/attestation.js';
import { parseSpiffeBundle } from '../../src/identity/bundle.js';
import { TOKEN_TYPE_JWT, type Attestation } from '../../src/identity/types.js';
import { makeKey, serveJson, sign, type TestKey, failsWith } from './keys.js';

const meta = { requestId: 'req-1', source: '127.0.0.1', replica: 'r1' };
const now = Date.UTC(2026, 5, 1, 12, 0, 0);
const nowS = Math.floor(now / 1000);
const TD = 'spire.example';


const bundleOf = (keys: TestKey[], use = 'jwt-svid', extra: Record<string, unknown> = {}) => ({
  spiffe_sequence: 7,
  spiffe_refresh_hint: 60,
  keys: keys.map((k) => ({ ...k.publicJwk, alg: undefined, use })),
  ...extra,
});

const svid = (over: JWTPayload = {}): JWTPayload => ({ sub: `spiffe://${TD}/ns/prod/sa/planner`, aud: ['tessera', 'other'], exp: nowS + 300, iat: nowS, ...over });

let ec: TestKey;
let rsa: TestKey;
let rotated: TestKey;
let server: Awaited<ReturnType<typeof serveJson>>;
let docs: Record<string, unknown>;
let store: Store;
let clock: ManualClock;
let viaUrl: Attestation;
let dir: string;

before(async () => {
  ec = await makeKey('ES256', 'spire-ec');
  rsa = await makeKey('RS256', 'spire-rsa');
  rotated = await makeKey('ES256', 'spire-ec-2');
  docs = { '/bundle': bundleOf([ec, rsa]) };
  server = await serveJson(docs);
  dir = mkdtempSync(join(tmpdir(), 'tessera-bundle-'));
  store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  clock = new ManualClock(now);
  viaUrl = createAttestation({
    attestors: [attestorConfig.parse({ kind: 'spiffe', name: 'spire', trust_domain: TD, audience: 'tessera', bundle_url: `${server.url}/bundle`, bundle_refresh: '5m' })],
    trustDomain: 'example.org',
    clock,
    audit: new MemoryAuditWriter(),
    store,
  });
});

after(async () => {
  await server.close();
  await store.close();
});

function fromFile(bundle: unknown, name = 'b.json'): Attestation {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(bundle));
  return createAttestation({
    attestors: [attestorConfig.parse({ kind: 'spiffe', name: 'spire-file', trust_domain: TD, audience: 'tessera', bundle_file: file })],
    trustDomain: 'example.org',
    clock,
    audit: new MemoryAuditWriter(),
    store,
  });
}

test('JWT-SVIDs (ES256 and RS256) verify against a bundle served over real loopback HTTP', async () => {
  const a = await viaUrl.attest(await sign(ec, svid()), TOKEN_TYPE_JWT, meta);
  assert.deepEqual(a, { spiffeId: `spiffe://${TD}/ns/prod/sa/planner`, attestor: 'spire', attestorKind: 'spiffe', attributes: { trust_domain: TD } });
  const b = await viaUrl.attest(await sign(rsa, svid({ sub: `spiffe://${TD}/batch` })), TOKEN_TYPE_JWT, meta);
  assert.equal(b.spiffeId, `spiffe://${TD}/batch`);
  assert.equal(server.hits['/bundle'], 1, 'the bundle is cached until its refresh time');
  assert.ok(await store.get('SELECT 1 AS x FROM agents WHERE spiffe_id = ?', [`spiffe://${TD}/batch`]));
});

test('the bundle is refreshed after spiffe_refresh_hint and picks up a rotated key; a failed refresh keeps the last good bundle', async () => {
  docs['/bundle'] = bundleOf([rotated]);
  await assert.rejects(viaUrl.attest(await sign(rotated, svid()), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'signature'));
  clock.advance(61_000); // hint is 60 s, shorter than bundle_refresh (5 m)
  assert.equal((await viaUrl.attest(await sign(rotated, svid()), TOKEN_TYPE_JWT, meta)).attestor, 'spire');
  await assert.rejects(viaUrl.attest(await sign(ec, svid({ exp: nowS + 3600 })), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'signature'));
  delete docs['/bundle'];
  clock.advance(61_000);
  assert.equal((await viaUrl.attest(await sign(rotated, svid({ exp: nowS + 3600 })), TOKEN_TYPE_JWT, meta)).attestor, 'spire');
  docs['/bundle'] = bundleOf([ec, rsa]);
});

test('bundle from a file; keys whose use is not jwt-svid never verify a JWT-SVID', async () => {
  const good = fromFile(bundleOf([ec]), 'good.json');
  assert.equal((await good.attest(await sign(ec, svid()), TOKEN_TYPE_JWT, meta)).attestor, 'spire-file');
  for (const use of ['x509-svid', 'sig', '']) {
    const wrong = fromFile(bundleOf([ec], use), `wrong-${use}.json`);
    await assert.rejects(wrong.attest(await sign(ec, svid()), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'signature'), use);
  }
  // A jwt-svid key without kid is ignored (JWT-SVID bundle keys MUST have a kid).
  assert.equal(parseSpiffeBundle({ keys: [{ ...ec.publicJwk, kid: undefined, use: 'jwt-svid' }] }, 'x').jwtKeys.length, 0);
  assert.deepEqual(parseSpiffeBundle(bundleOf([ec]), 'x').refreshHintMs, 60_000);
  const broken = fromFile('not a bundle', 'broken.json');
  await assert.rejects(broken.attest(await sign(ec, svid()), TOKEN_TYPE_JWT, meta), failsWith('TESSERA_BUNDLE_INVALID'));
});

test('every bad JWT-SVID is refused with the check that failed', async () => {
  clock.set(now);
  const fresh = createAttestation({
    attestors: [attestorConfig.parse({ kind: 'spiffe', name: 'spire', trust_domain: TD, audience: 'tessera', bundle_url: `${server.url}/bundle` })],
    trustDomain: 'example.org',
    clock,
    audit: new MemoryAuditWriter(),
    store,
  });
  const t = async (token: string | Promise<string>, code: string, check?: string) =>
    assert.rejects(fresh.attest(await token, TOKEN_TYPE_JWT, meta), failsWith(code, check));
  assert.equal((await fresh.attest(await sign(ec, svid()), TOKEN_TYPE_JWT, meta)).attestor, 'spire');
  await t(sign(ec, svid({ aud: 'not-tessera' })), 'TESSERA_ATTEST_FAILED', 'audience');
  await t(sign(ec, svid({ aud: undefined })), 'TESSERA_ATTEST_FAILED', 'claims');
  await t(sign(ec, svid({ exp: undefined })), 'TESSERA_ATTEST_FAILED', 'claims');
  await t(sign(ec, svid({ exp: nowS - 60 })), 'TESSERA_ATTEST_FAILED', 'expired');
  await t(sign(ec, svid({ nbf: nowS + 600 })), 'TESSERA_ATTEST_FAILED', 'not_yet_valid');
  await t(sign(ec, svid(), { kid: 'unknown' }), 'TESSERA_ATTEST_FAILED', 'signature');
  await t(sign(await makeKey('ES256', 'spire-ec'), svid()), 'TESSERA_ATTEST_FAILED', 'signature');
  await t(new UnsecuredJWT(svid()).encode(), 'TESSERA_ATTEST_FAILED', 'algorithm');
  const hs = await new SignJWT(svid()).setProtectedHeader({ alg: 'HS256', kid: 'spire-ec' }).sign(new TextEncoder().encode(JSON.stringify(ec.publicJwk)));
  await t(hs, 'TESSERA_ATTEST_FAILED', 'algorithm');
  // sub: in the trust domain but not a valid SPIFFE ID → verified, then refused by the sub check.
  await t(sign(ec, svid({ sub: `spiffe://${TD}/a//b` })), 'TESSERA_ATTEST_FAILED', 'spiffe_id');
  await t(sign(ec, svid({ sub: `spiffe://${TD}/../admin` })), 'TESSERA_ATTEST_FAILED', 'spiffe_id');
  await t(sign(ec, svid({ sub: `spiffe://${TD}/x?y` })), 'TESSERA_ATTEST_FAILED', 'spiffe_id');
  await t(sign(ec, svid({ sub: `spiffe://${TD}:443/x` })), 'TESSERA_ATTEST_NO_ATTESTOR');
  // sub in another trust domain, or not a SPIFFE ID at all: no attestor vouches for it.
  await t(sign(ec, svid({ sub: 'spiffe://other.example/ns/prod/sa/planner' })), 'TESSERA_ATTEST_NO_ATTESTOR');
  await t(sign(ec, svid({ sub: 'planner' })), 'TESSERA_ATTEST_NO_ATTESTOR');
  await t(sign(ec, svid({ sub: undefined })), 'TESSERA_ATTEST_NO_ATTESTOR');
});
