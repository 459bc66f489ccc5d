/**
 * `tessera injector`'s certificate handling and configuration, through the real command:
 * cert-manager-style rotation (the files replaced in place, picked up without a restart), a bad
 * rotation keeping the previous certificate, and refusals at start (unreadable or mismatched
 * files, invalid `kubernetes.injector` values) with their codes.
 *
 * No Kubernetes API server or cert-manager can run here: the rotation writes the files the way
 * a Secret volume update replaces them (new content at the same paths).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type Runtime } from '../../../src/cli/index.js';
import { createTestCa } from '../../proxy/fixtures/test-ca.js';
import { barePod, review } from './fixtures.js';
import { startInjectorCli } from './harness.js';

const noRuntime = new Proxy({}, { get: () => () => Promise.reject(new Error('the injector must not use the server runtime')) }) as Runtime;

/** The SHA-256 fingerprint of the certificate the server presents now. */
function presented(url: string, caPem: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), ca: caPem, servername: undefined }, () => {
      resolve(s.getPeerX509Certificate()!.fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a rotated certificate is served without a restart; a broken rotation keeps the previous one', async () => {
  const inj = await startInjectorCli({ tls_reload_interval: '100ms' });
  try {
    const first = await presented(inj.url, inj.ca.certPem);
    const next = await inj.ca.issue(['127.0.0.1']);
    writeFileSync(join(inj.dir, 'tls.key'), next.keyPem);
    writeFileSync(join(inj.dir, 'tls.crt'), next.certPem);
    const want = new X509Certificate(next.certPem).fingerprint256;
    assert.notEqual(want, first);
    assert.equal(await until(() => presented(inj.url, inj.ca.certPem), (f) => f === want), want, 'the new certificate is presented');
    assert.match(inj.stderr(), /injector certificate reloaded/);
    // A half-written rotation (a key of another certificate): logged, the current pair stays.
    const other = await inj.ca.issue(['127.0.0.1']);
    writeFileSync(join(inj.dir, 'tls.key'), other.keyPem);
    await until(async () => inj.stderr(), (e) => /certificate not reloaded/.test(e));
    assert.match(inj.stderr(), /"code":"TESSERA_INJECTOR_TLS_INVALID".*does not belong to the certificate/);
    assert.doesNotMatch(inj.stderr(), /PRIVATE KEY/, 'the key never reaches the log');
    assert.equal(await presented(inj.url, inj.ca.certPem), want);
    assert.equal((await inj.admit(review(barePod()))).allowed, true, 'still serving');
  } finally {
    assert.equal(await inj.stop(), 0);
  }
});

async function startFails(files: { cert?: string; key?: string }, injector: Record<string, unknown> = {}, args: string[] = []): Promise<{ code: number; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-injector-bad-'));
  try {
    if (files.cert !== undefined) writeFileSync(join(dir, 'tls.crt'), files.cert);
    if (files.key !== undefined) writeFileSync(join(dir, 'tls.key'), files.key);
    const config = join(dir, 'tessera.yaml');
    writeFileSync(config, JSON.stringify({ kubernetes: { injector: { listen: '127.0.0.1:0', tls_cert_file: join(dir, 'tls.crt'), tls_key_file: join(dir, 'tls.key'), ...injector } } }));
    let err = '';
    const code = await runCli(['injector', '--config', config, ...args], noRuntime, { stdout: { write: () => true }, stderr: { write: (s: string) => ((err += s), true) }, env: {} });
    return { code, stderr: err };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('refusals at start: TLS files and configuration, with their codes (exit 1)', async () => {
  const ca = await createTestCa('injector start CA');
  try {
    const a = await ca.issue(['127.0.0.1']);
    const b = await ca.issue(['127.0.0.1']);
    const missing = await startFails({});
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read the certificate \(kubernetes\.injector\.tls_cert_file\) .*ENOENT.*\[TESSERA_INJECTOR_TLS_INVALID\]/);
    const notPem = await startFails({ cert: 'hello', key: a.keyPem });
    assert.match(notPem.stderr, /is not a PEM certificate \[TESSERA_INJECTOR_TLS_INVALID\]/);
    const mismatch = await startFails({ cert: a.certPem, key: b.keyPem });
    assert.match(mismatch.stderr, /does not belong to the certificate \S+ \[TESSERA_INJECTOR_TLS_INVALID\]/);
    const badKey = await startFails({ cert: a.certPem, key: 'not a key' });
    assert.match(badKey.stderr, /not a usable PEM private key .*\[TESSERA_INJECTOR_TLS_INVALID\]/);
    for (const [injector, re] of [
      [{ token_expiration: '5m' }, /kubernetes\.injector\.token_expiration: expected a duration between 10m and 1d/],
      [{ tessera_addr: 'http://user:pw@tessera:8200' }, /kubernetes\.injector\.tessera_addr: expected an http\(s\) URL without user/],
      [{ exclude_namespaces: ['Kube-System'] }, /kubernetes\.injector\.exclude_namespaces\.0: expected a namespace name/],
      [{ resources: { limits: { memory: 'lots' } } }, /kubernetes\.injector\.resources\.limits\.memory: expected a Kubernetes quantity/],
      [{ no_proxy: ['a,b'] }, /kubernetes\.injector\.no_proxy\.0/],
      [{ sidecar: true }, /kubernetes\.injector: Unrecognized key/],
    ] as const) {
      const r = await startFails({ cert: a.certPem, key: a.keyPem }, injector);
      assert.equal(r.code, 1, JSON.stringify(injector));
      assert.match(r.stderr, re);
      assert.match(r.stderr, /\[TESSERA_CONFIG_INVALID\]/);
    }
    const badLevel = await startFails({ cert: a.certPem, key: a.keyPem }, {}, ['--log-level', 'loud']);
    assert.equal(badLevel.code, 2, 'a usage error');
    assert.match(badLevel.stderr, /Allowed choices are error, warn, info, debug/);
    const badListen = await startFails({ cert: a.certPem, key: a.keyPem }, {}, ['--listen', 'everywhere']);
    assert.match(badListen.stderr, /kubernetes\.injector\.listen: expected host:port.*\[TESSERA_CONFIG_INVALID\]/s);
  } finally {
    ca.dispose();
  }
});

test('--listen and the TLS flags replace the configuration', async () => {
  const ca = await createTestCa('injector flags CA');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-injector-flags-'));
  try {
    const leaf = await ca.issue(['127.0.0.1']);
    writeFileSync(join(dir, 'c.pem'), leaf.certPem);
    writeFileSync(join(dir, 'k.pem'), leaf.keyPem);
    let out = '';
    const signals = new (await import('node:events')).EventEmitter();
    const exit = runCli(['injector', '--listen', '127.0.0.1:0', '--tls-cert-file', join(dir, 'c.pem'), '--tls-key-file', join(dir, 'k.pem')], noRuntime, { stdout: { write: (s: string) => ((out += s), true) }, stderr: { write: () => true }, env: {}, signals });
    const line = await until(async () => out, (o) => o.includes('listening'));
    const url = /listening on (https:\/\/\S+)/.exec(line)![1]!;
    assert.equal(await presented(url, ca.certPem), new X509Certificate(leaf.certPem).fingerprint256);
    signals.emit('SIGINT');
    assert.equal(await exit, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    ca.dispose();
  }
});
