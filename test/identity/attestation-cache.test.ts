import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { attestorConfig } from '../../src/config/schema.js';
import { createAttestation, VERIFIED_CACHE_MAX_AGE_MS, type AttestationDeps } from '../../src/identity/attestation.js';
import { createJoinTokenService } from '../../src/identity/join-tokens.js';
import { TOKEN_TYPE_JOIN, TOKEN_TYPE_JWT } from '../../src/identity/types.js';
import { makeKey, sign, type TestKey, failsWith } from './keys.js';

const meta = { requestId: 'req-1', source: '127.0.0.1', replica: 'r1' };
const ISS = 'https://kubernetes.default.svc.cluster.local';
const now = Date.UTC(2026, 5, 1, 12, 0, 0);
const nowS = Math.floor(now / 1000);
const SKEW = 30_000;
const AGENT = 'spiffe://example.org/ns/prod/sa/reader';

let key: TestKey;
let dir: string;
let store: Store;

const claims = (over: Record<string, unknown> = {}) => ({
  iss: ISS, aud: 'tessera', sub: 'system:serviceaccount:prod:reader', iat: nowS, exp: nowS + 3600,
  'kubernetes.io': { namespace: 'prod', serviceaccount: { name: 'reader' }, pod: { name: 'reader-1' } }, ...over,
});

/** A fresh attestation over a JWKS file written now (jwks file sources read the file once). */
function setup(keys: TestKey[], over: Partial<AttestationDeps> = {}) {
  const file = join(dir, `jwks-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ keys: keys.map((k) => k.publicJwk) }));
  const clock = new ManualClock(now);
  const metrics = new MetricsRegistry();
  const audit = new MemoryAuditWriter();
  const joinTokens = createJoinTokenService({ store, clock, audit, trustDomain: 'example.org' });
  const attestation = createAttestation({
    attestors: [
      attestorConfig.parse({ kind: 'jwt', name: 'k8s', issuer: ISS, audience: 'tessera', jwks_file: file, template: 'kubernetes', algorithms: ['ES256'] }),
      attestorConfig.parse({ kind: 'join_token', name: 'join' }),
    ],
    trustDomain: 'example.org', clock, audit, store, clockSkewMs: SKEW, metrics,
    joinTokens,
    ...over,
  });
  const count = (result: 'hit' | 'miss') => metrics.counter('tessera_attestation_cache_total', '').get({ result });
  return { attestation, clock, count, file, joinTokens };
}


const logins = async () => Number((await store.get<{ logins: number }>('SELECT logins FROM agents WHERE spiffe_id = ?', [AGENT]))?.logins ?? 0);

before(async () => {
  key = await makeKey('ES256', 'k1');
  dir = mkdtempSync(join(tmpdir(), 'tessera-attest-cache-'));
  store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a re-presented token is not verified again, but the agent inventory is still updated', async () => {
  const { attestation, count } = setup([key]);
  const token = await sign(key, claims());
  const before = await logins();
  const a = await attestation.attest(token, TOKEN_TYPE_JWT, meta);
  const b = await attestation.attest(token, TOKEN_TYPE_JWT, meta);
  assert.equal(a.spiffeId, AGENT);
  assert.deepEqual(b, a);
  assert.equal(count('miss'), 1);
  assert.equal(count('hit'), 1);
  assert.equal(await logins(), before + 2);
  // Another token of the same agent is its own entry: the key is the whole token.
  await attestation.attest(await sign(key, claims({ iat: nowS - 1 })), TOKEN_TYPE_JWT, meta);
  assert.equal(count('miss'), 2);
  // A tampered copy of a cached token (same header and payload, other signature) is verified and refused.
  const [h, p, s] = token.split('.') as [string, string, string];
  const sig = Buffer.from(s, 'base64url');
  sig[3] = sig[3]! ^ 1;
  await assert.rejects(attestation.attest(`${h}.${p}.${sig.toString('base64url')}`, TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'signature'));
});

test('key rotation: a cached token keeps logging in only until the max age; new tokens under the removed key fail at once', async () => {
  const rotated = await makeKey('ES256', 'k2');
  const { attestation, clock, count, file } = setup([key]);
  const token = await sign(key, claims());
  await attestation.attest(token, TOKEN_TYPE_JWT, meta);
  // The JWKS now only has k2. Rebuild the attestor's view: a new instance over the same store
  // sees the file as it is now, and so does the cached instance once its entry ages out.
  writeFileSync(file, JSON.stringify({ keys: [rotated.publicJwk] }));
  const fresh = createAttestation({
    attestors: [attestorConfig.parse({ kind: 'jwt', name: 'k8s', issuer: ISS, audience: 'tessera', jwks_file: file, template: 'kubernetes', algorithms: ['ES256'] })],
    trustDomain: 'example.org', clock, audit: new MemoryAuditWriter(), store, clockSkewMs: SKEW,
  });
  await assert.rejects(fresh.attest(token, TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'signature'));
  // The cached instance still accepts the exact token it verified, within the max age...
  clock.advance(VERIFIED_CACHE_MAX_AGE_MS - 1);
  assert.equal((await attestation.attest(token, TOKEN_TYPE_JWT, meta)).spiffeId, AGENT);
  assert.equal(count('hit'), 1);
  // ...and verifies again once it is reached.
  clock.advance(1);
  const hitsBefore = count('hit');
  await attestation.attest(token, TOKEN_TYPE_JWT, meta);
  assert.equal(count('hit'), hitsBefore);
  assert.equal(count('miss'), 2);
});

test('a cached token is never used past its own exp (minus skew): then it is verified again and refused', async () => {
  const { attestation, clock, count } = setup([key]);
  const token = await sign(key, claims({ exp: nowS + 120 }));
  await attestation.attest(token, TOKEN_TYPE_JWT, meta);
  clock.advance(120_000 - SKEW - 1);
  await attestation.attest(token, TOKEN_TYPE_JWT, meta);
  assert.equal(count('hit'), 1);
  // From exp - skew on the cache no longer vouches (jose's tolerance still accepts it once more).
  clock.advance(1);
  await attestation.attest(token, TOKEN_TYPE_JWT, meta);
  assert.equal(count('hit'), 1);
  assert.equal(count('miss'), 2);
  clock.advance(2 * SKEW);
  await assert.rejects(attestation.attest(token, TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'expired'));
  assert.equal(count('hit'), 1);
});

test('max_token_age bounds the cache too', async () => {
  const file = join(dir, 'aged.json');
  writeFileSync(file, JSON.stringify({ keys: [key.publicJwk] }));
  const clock = new ManualClock(now);
  const metrics = new MetricsRegistry();
  const a = createAttestation({
    attestors: [attestorConfig.parse({ kind: 'jwt', name: 'aged', issuer: ISS, audience: 'tessera', jwks_file: file, template: 'kubernetes', algorithms: ['ES256'], max_token_age: '60s' })],
    trustDomain: 'example.org', clock, audit: new MemoryAuditWriter(), store, clockSkewMs: SKEW, metrics,
  });
  const token = await sign(key, claims());
  await a.attest(token, TOKEN_TYPE_JWT, meta);
  clock.advance(60_000 - SKEW); // iat + max age - skew: no longer cached
  await a.attest(token, TOKEN_TYPE_JWT, meta);
  assert.equal(metrics.counter('tessera_attestation_cache_total', '').get({ result: 'hit' }), 0);
  clock.advance(2 * SKEW + 1000); // jose compares whole seconds
  await assert.rejects(a.attest(token, TOKEN_TYPE_JWT, meta), failsWith('TESSERA_ATTEST_FAILED', 'expired'));
});

test('the cache is bounded (least recently used goes first) and can be disabled', async () => {
  const small = setup([key], { verifiedCacheSize: 2 });
  const t = await Promise.all([1, 2, 3].map((i) => sign(key, claims({ iat: nowS - i }))));
  for (const x of t) await small.attestation.attest(x, TOKEN_TYPE_JWT, meta); // 3 misses; t[0] evicted
  await small.attestation.attest(t[2]!, TOKEN_TYPE_JWT, meta); // hit
  await small.attestation.attest(t[0]!, TOKEN_TYPE_JWT, meta); // miss: evicted; now evicts t[1]
  await small.attestation.attest(t[2]!, TOKEN_TYPE_JWT, meta); // hit
  assert.equal(small.count('hit'), 2);
  assert.equal(small.count('miss'), 4);

  const off = setup([key], { verifiedCacheSize: 0 });
  const token = await sign(key, claims());
  await off.attestation.attest(token, TOKEN_TYPE_JWT, meta);
  await off.attestation.attest(token, TOKEN_TYPE_JWT, meta);
  assert.equal(off.count('hit'), 0);
  assert.equal(off.count('miss'), 2);
});

test('join tokens are never cached: a second use is refused', async () => {
  const { attestation, count, joinTokens } = setup([key]);
  const { token } = await joinTokens.create({ spiffeId: 'spiffe://example.org/vm/build-1' });
  assert.equal((await attestation.attest(token, TOKEN_TYPE_JOIN, meta)).spiffeId, 'spiffe://example.org/vm/build-1');
  await assert.rejects(attestation.attest(token, TOKEN_TYPE_JOIN, meta), failsWith('TESSERA_JOIN_TOKEN_REUSED'));
  assert.equal(count('hit') + count('miss'), 0);
});
