/**
 * The verified-attestation cache ends with the auth epoch (docs/adr/0061) and holds at most its
 * quota per identity (src/identity/attestation.ts on AuthCache).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import { createAuthEpoch } from '../../src/shared/auth-epoch.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { attestorConfig } from '../../src/config/schema.js';
import { createAttestation } from '../../src/identity/attestation.js';
import { TOKEN_TYPE_JWT } from '../../src/identity/types.js';
import { makeKey, sign, type TestKey } from './keys.js';

const meta = { requestId: 'req-1', source: '127.0.0.1', replica: 'r1' };
const ISS = 'https://ci.example.com';
const now = Date.UTC(2026, 5, 1, 12, 0, 0);
const nowS = Math.floor(now / 1000);

let key: TestKey;
let dir: string;
let store: Store;

before(async () => {
  key = await makeKey('ES256', 'k1');
  dir = mkdtempSync(join(tmpdir(), 'tessera-attest-epoch-'));
  store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function setup() {
  const file = join(dir, 'jwks.json');
  writeFileSync(file, JSON.stringify({ keys: [key.publicJwk] }));
  const metrics = new MetricsRegistry();
  const epoch = createAuthEpoch();
  const attestation = createAttestation({
    attestors: [attestorConfig.parse({ kind: 'jwt', name: 'ci', issuer: ISS, audience: 'tessera', jwks_file: file, template: 'spiffe://{trust_domain}/ci/{claims.project}', algorithms: ['ES256'] })],
    trustDomain: 'example.org', clock: new ManualClock(now), audit: new MemoryAuditWriter(), store, metrics, epoch, verifiedCachePerAgent: 2,
  });
  const count = (result: 'hit' | 'miss') => metrics.counter('tessera_attestation_cache_total', '').get({ result });
  return { attestation, epoch, count };
}

const token = (project: string, jti: string) => sign(key, { iss: ISS, aud: 'tessera', sub: project, project, jti, iat: nowS, exp: nowS + 3600 });

test('an epoch bump makes the next login verify the attestation again', async () => {
  const { attestation, epoch, count } = setup();
  const t = await token('p', 'j1');
  await attestation.attest(t, TOKEN_TYPE_JWT, meta);
  await attestation.attest(t, TOKEN_TYPE_JWT, meta);
  assert.deepEqual([count('miss'), count('hit')], [1, 1]);
  epoch.bump('revocation');
  await attestation.attest(t, TOKEN_TYPE_JWT, meta);
  assert.deepEqual([count('miss'), count('hit')], [2, 1]);
});

test('one identity holds at most its quota of cached attestations; another identity keeps its own', async () => {
  const { attestation, count } = setup();
  const other = await token('other', 'o1');
  await attestation.attest(other, TOKEN_TYPE_JWT, meta);
  for (let i = 0; i < 5; i++) await attestation.attest(await token('busy', `b${i}`), TOKEN_TYPE_JWT, meta);
  const misses = count('miss');
  await attestation.attest(other, TOKEN_TYPE_JWT, meta);
  assert.equal(count('miss'), misses, "the other identity's attestation is still cached");
});
