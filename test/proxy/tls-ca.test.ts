import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { rotateMasterKey } from '../../src/secrets/rotate.js';
import { loadOrCreateProxyCa, loadProxyCa, META_PROXY_CA_CERT, META_PROXY_CA_KEY, PROXY_CA_VALIDITY_MS } from '../../src/proxy/ca.js';
import { MemoryAuditWriter } from '../helpers/audit.js';

async function setup(file = ':memory:') {
  const store = openSqliteStore({ file });
  await store.migrate();
  return { store, clock: new ManualClock(Date.UTC(2026, 10, 30)), audit: new MemoryAuditWriter() };
}

test('the proxy CA: P-256, CA pathLen 0 critical, keyCertSign|cRLSign, 10 years, subject with the trust domain; audited once; key sealed', async () => {
  const { store, clock, audit } = await setup();
  const sealer = masterSealer(randomBytes(32));
  const ca = await loadOrCreateProxyCa({ store, sealer, clock, audit, trustDomain: 'example.org' });
  const cert = new X509Certificate(ca.certificatePem);
  assert.equal(cert.ca, true);
  assert.match(cert.subject, /CN=Tessera proxy CA \(example\.org\)/);
  assert.equal(cert.subject, cert.issuer);
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(Date.parse(cert.validTo) - clock.now(), PROXY_CA_VALIDITY_MS - (PROXY_CA_VALIDITY_MS % 1000));
  assert.ok(Date.parse(cert.validFrom) < clock.now(), 'backdated for clients whose clock runs behind');
  assert.equal(ca.fingerprint, cert.fingerprint256);
  assert.equal(ca.privateKey.extractable, false);
  // The extensions, read back with openssl's view through node: basicConstraints and keyUsage critical.
  const { execFileSync } = await import('node:child_process');
  const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: ca.certificatePem }).toString();
  assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
  assert.match(text, /Subject Key Identifier/);

  const created = audit.events.filter((e) => e.kind === 'proxy.ca_created');
  assert.equal(created.length, 1);
  assert.deepEqual(created[0]!.details, { fingerprint: ca.fingerprint, subject: 'Tessera proxy CA (example.org)', not_after: Date.parse(cert.validTo) });
  const sealedRow = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [META_PROXY_CA_KEY]);
  assert.ok(sealedRow);
  assert.ok(!sealedRow.value.includes('PRIVATE'), 'the key is stored sealed, not in PEM');
  assert.ok(sealer.open(Buffer.from(sealedRow.value, 'base64'), META_PROXY_CA_KEY).length > 100, 'AAD is the meta key');
  assert.ok(!JSON.stringify(audit.events).includes(sealedRow.value));

  // Loaded again: the same CA, no second event.
  const again = await loadOrCreateProxyCa({ store, sealer, clock, audit, trustDomain: 'example.org' });
  assert.equal(again.fingerprint, ca.fingerprint);
  assert.equal(audit.events.filter((e) => e.kind === 'proxy.ca_created').length, 1);
  await store.close();
});

test('two replicas creating the CA at once end with one CA and one audit event', async () => {
  const { store, clock, audit } = await setup();
  const sealer = masterSealer(randomBytes(32));
  const [a, b] = await Promise.all([loadOrCreateProxyCa({ store, sealer, clock, audit }), loadOrCreateProxyCa({ store, sealer, clock, audit })]);
  assert.equal(a.fingerprint, b.fingerprint);
  assert.equal(audit.events.filter((e) => e.kind === 'proxy.ca_created').length, 1);
  await store.close();
});

test('the CA survives a restart (same fingerprint) and a master-key rotation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-proxy-ca-'));
  try {
    const file = join(dir, 'tessera.db');
    const oldSealer = masterSealer(randomBytes(32));
    const first = await setup(file);
    const ca = await loadOrCreateProxyCa({ store: first.store, sealer: oldSealer, clock: first.clock, audit: first.audit });
    await first.store.close();

    const second = await setup(file);
    const restarted = await loadOrCreateProxyCa({ store: second.store, sealer: oldSealer, clock: second.clock, audit: second.audit });
    assert.equal(restarted.fingerprint, ca.fingerprint);
    assert.equal(second.audit.events.filter((e) => e.kind === 'proxy.ca_created').length, 0);

    const newSealer = masterSealer(randomBytes(32));
    const report = await rotateMasterKey({ store: second.store, oldSealer, newSealer, clock: second.clock });
    assert.equal(report.metaRows, 1, 'sealed:proxy-ca is re-wrapped');
    const rotated = await loadOrCreateProxyCa({ store: second.store, sealer: newSealer, clock: second.clock, audit: second.audit });
    assert.equal(rotated.fingerprint, ca.fingerprint, 'the same CA: clients keep trusting it');
    await assert.rejects(loadProxyCa(second.store, oldSealer), { code: 'TESSERA_PROXY_CA_UNAVAILABLE' });
    assert.equal(second.audit.events.filter((e) => e.kind === 'proxy.ca_created').length, 0, 'never silently replaced');
    await second.store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a CA that does not open or does not match is refused, never replaced', async () => {
  const { store, clock, audit } = await setup();
  const sealer = masterSealer(randomBytes(32));
  await loadOrCreateProxyCa({ store, sealer, clock, audit });
  // Wrong master key.
  await assert.rejects(loadOrCreateProxyCa({ store, sealer: masterSealer(randomBytes(32)), clock, audit }), { code: 'TESSERA_PROXY_CA_UNAVAILABLE', message: /cannot open sealed:proxy-ca/ });
  // Another CA's certificate put in place of ours.
  const other = await setup();
  const foreign = await loadOrCreateProxyCa({ store: other.store, sealer, clock, audit: other.audit });
  await store.run('UPDATE meta SET value = ? WHERE key = ?', [foreign.certificatePem, META_PROXY_CA_CERT]);
  await assert.rejects(loadOrCreateProxyCa({ store, sealer, clock, audit }), { code: 'TESSERA_PROXY_CA_UNAVAILABLE', message: /does not belong to the key/ });
  // Garbage and a missing certificate.
  await store.run('UPDATE meta SET value = ? WHERE key = ?', ['not a certificate', META_PROXY_CA_CERT]);
  await assert.rejects(loadProxyCa(store, sealer), { code: 'TESSERA_PROXY_CA_UNAVAILABLE', message: /not a readable X\.509/ });
  await store.run('DELETE FROM meta WHERE key = ?', [META_PROXY_CA_CERT]);
  await assert.rejects(loadOrCreateProxyCa({ store, sealer, clock, audit }), { code: 'TESSERA_PROXY_CA_UNAVAILABLE', message: /proxy_ca_cert is missing/ });
  assert.equal(audit.events.filter((e) => e.kind === 'proxy.ca_created').length, 1);
  await store.close();
  await other.store.close();
});

test('creation that cannot be audited stores nothing', async () => {
  const { store, clock, audit } = await setup();
  audit.failing = true;
  await assert.rejects(loadOrCreateProxyCa({ store, sealer: masterSealer(randomBytes(32)), clock, audit }), { code: 'TESSERA_AUDIT_UNAVAILABLE' });
  assert.equal(await store.get('SELECT value FROM meta WHERE key = ?', [META_PROXY_CA_KEY]), undefined);
  assert.equal(await store.get('SELECT value FROM meta WHERE key = ?', [META_PROXY_CA_CERT]), undefined);
  await store.close();
});
