import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, type DetailedPeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { AGENT, TOKEN, rawConnect, run, startHarness, until, type Harness } from './tls-harness.js';

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h.close();
});

/** CONNECT through the proxy, then TLS with the given SNI; resolves with the peer certificate chain. */
async function handshake(target: string, servername: string | undefined, ca: string): Promise<{ cert: DetailedPeerCertificate; alpn: string | false | null; authorized: boolean; close(): void }> {
  const r = await rawConnect(h.port, target, { 'Proxy-Authorization': `Bearer ${TOKEN}` });
  assert.equal(r.status, 200, r.body);
  const tls = tlsConnect({ socket: r.socket, ...(servername ? { servername } : {}), ca, ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false });
  await new Promise<void>((res, rej) => tls.once('secureConnect', res).once('error', rej));
  return { cert: tls.getPeerCertificate(true), alpn: tls.alpnProtocol, authorized: tls.authorized, close: () => tls.destroy() };
}

test('curl through the proxy: the leaf for the routed host chains to the Tessera CA; the request reaches the proxy server with the tunnel bound', async () => {
  const r = await run('curl', ['-sS', '--fail-with-body', '-x', h.proxyUrl, '--proxy-user', `agent:${TOKEN}`, '--cacert', h.caFile, 'https://api.example.test/v1/models?x=1']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const body = JSON.parse(r.stdout);
  assert.deepEqual(body, { host: 'api.example.test', path: '/v1/models?x=1', method: 'GET', agent: AGENT, route: 'example', alpn: 'http/1.1' });
  // curl over the proxy with Bearer in Proxy-Authorization (the other accepted scheme).
  const b = await run('curl', ['-sS', '--fail-with-body', '-x', h.proxyUrl, '--proxy-header', `Proxy-Authorization: Bearer ${TOKEN}`, '--cacert', h.caFile, 'https://api.example.test/bearer']);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(JSON.parse(b.stdout).path, '/bearer');
  // Without the CA, curl refuses the certificate: interception is visible to a client that does not trust Tessera.
  const untrusted = await run('curl', ['-sS', '-x', h.proxyUrl, '--proxy-user', `agent:${TOKEN}`, 'https://api.example.test/']);
  assert.equal(untrusted.code, 60, untrusted.stderr);
  // Each intercepted tunnel is audited opened and closed, with the decrypted (HTTP) bytes both ways.
  await until(() => h.audit.events.filter((e) => e.kind === 'proxy.tunnel' && e.details?.phase === 'closed' && e.details?.mode === 'intercept').length >= 2, 'closed intercepted tunnels');
  const closed = h.audit.events.find((e) => e.kind === 'proxy.tunnel' && e.details?.phase === 'closed' && e.details?.mode === 'intercept')!;
  const d = closed.details as { bytes_in: number; bytes_out: number; route: string; host: string };
  assert.equal(d.route, 'example');
  assert.equal(d.host, 'api.example.test');
  assert.ok(d.bytes_in > 60 && d.bytes_out > 200, JSON.stringify(d));
  assert.equal(closed.actor.id, AGENT);
  assert.equal(h.audit.events.filter((e) => e.kind === 'proxy.tunnel' && e.details?.phase === 'opened' && e.details?.mode === 'intercept').length, 2, 'the untrusted handshake never opened');
  assert.ok(!JSON.stringify(h.audit.events).includes(TOKEN), 'the token is never audited');
});

test('the leaf: SAN dNSName, EKU serverAuth, not a CA, 16-byte serial, valid within leaf_ttl and the CA, signed by the CA', async () => {
  const hs = await handshake('api.example.test:443', 'api.example.test', h.ca.certificatePem);
  try {
    assert.equal(hs.authorized, true, 'verifies against the CA and the host name');
    assert.equal(hs.alpn, 'http/1.1', 'only http/1.1 is offered');
    const leaf = new X509Certificate(hs.cert.raw);
    const caCert = new X509Certificate(h.ca.certificatePem);
    assert.equal(leaf.subjectAltName, 'DNS:api.example.test');
    assert.equal(leaf.checkHost('api.example.test'), 'api.example.test');
    assert.equal(leaf.checkHost('other.example.test'), undefined);
    assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.equal(leaf.ca, false);
    assert.equal(leaf.checkIssued(caCert), true);
    assert.equal(leaf.verify(caCert.publicKey), true);
    assert.ok(leaf.serialNumber.length >= 31 && leaf.serialNumber.length <= 32, `16-byte serial, got ${leaf.serialNumber}`);
    const notAfter = Date.parse(leaf.validTo);
    assert.ok(notAfter <= h.clock.now() + 24 * 3_600_000 && notAfter > h.clock.now() + 23 * 3_600_000, 'leaf_ttl');
    assert.ok(notAfter <= Date.parse(caCert.validTo));
    // The chain sent: leaf, then the CA.
    assert.equal(hs.cert.issuerCertificate?.fingerprint256, h.ca.fingerprint);
  } finally {
    hs.close();
  }
});

test('IP literals get an iPAddress SAN (IPv4 and IPv6); no SNI is needed for them', async () => {
  const v4 = await run('curl', ['-sS', '--fail-with-body', '-x', h.proxyUrl, '--proxy-user', `agent:${TOKEN}`, '--cacert', h.caFile, 'https://10.1.2.3/ip']);
  assert.equal(v4.code, 0, v4.stderr);
  assert.equal(JSON.parse(v4.stdout).host, '10.1.2.3');
  const v6 = await run('curl', ['-sS', '--fail-with-body', '-x', h.proxyUrl, '--proxy-user', `agent:${TOKEN}`, '--cacert', h.caFile, 'https://[fd00::1]:8443/ip6']);
  assert.equal(v6.code, 0, v6.stderr);
  assert.equal(JSON.parse(v6.stdout).path, '/ip6');
  const hs = await handshake('[fd00:0::1]:443', undefined, h.ca.certificatePem);
  try {
    assert.equal(new X509Certificate(hs.cert.raw).subjectAltName, 'IP Address:FD00:0:0:0:0:0:0:1');
  } finally {
    hs.close();
  }
});

test('an SNI that is not the CONNECT host is refused (TLS alert) and audited', async () => {
  const before = h.served.length;
  await assert.rejects(handshake('api.example.test:443', 'evil.example.test', h.ca.certificatePem));
  await assert.rejects(handshake('api.example.test:443', 'API.example.test.evil', h.ca.certificatePem));
  await until(() => h.audit.events.filter((e) => e.kind === 'proxy.tunnel' && e.reason?.code === 'TESSERA_PROXY_SNI_MISMATCH').length === 2, 'two audited SNI refusals');
  const ev = h.audit.events.find((e) => e.kind === 'proxy.tunnel' && e.reason?.code === 'TESSERA_PROXY_SNI_MISMATCH')!;
  assert.equal(ev.result, 'deny');
  assert.equal(ev.actor.id, AGENT);
  assert.equal(ev.txn, 'txn-1');
  assert.deepEqual(ev.details, { phase: 'refused', host: 'api.example.test', port: 443, mode: 'intercept', route: 'example', code: 'TESSERA_PROXY_SNI_MISMATCH' });
  assert.equal(h.served.length, before, 'nothing reached the proxy server');
  // The same SNI in another case or with a trailing dot is the same host.
  const ok = await handshake('api.example.test:443', 'API.Example.Test', h.ca.certificatePem);
  ok.close();
});

test('leaves are minted once per host and reused (cache hit), concurrent first requests share one minting', async () => {
  const host = 'once.example.test';
  const { createTlsInterceptor } = await import('../../src/proxy/intercept.js');
  const mints: string[] = [];
  const clock = h.clock;
  const icpt = createTlsInterceptor(h.ca, { clock, leafTtlMs: 4 * 3_600_000, cacheSize: 2, onMint: (x) => mints.push(x) });
  const contexts = await Promise.all(Array.from({ length: 20 }, () => icpt.secureContextFor(host)));
  assert.equal(mints.length, 1, 'single-flight');
  assert.ok(contexts.every((c) => c === contexts[0]));
  assert.equal(await icpt.secureContextFor('ONCE.example.test.'), contexts[0], 'normalized name hits the cache');
  assert.equal(mints.length, 1);
  // LRU bound 2: a third host evicts the least recently used.
  await icpt.secureContextFor('two.example.test');
  await icpt.secureContextFor(host);
  await icpt.secureContextFor('three.example.test');
  assert.deepEqual(mints, [host, 'two.example.test', 'three.example.test']);
  await icpt.secureContextFor(host);
  assert.equal(mints.length, 3, `${host} was used more recently than two.example.test`);
  await icpt.secureContextFor('two.example.test');
  assert.equal(mints.length, 4, 'two.example.test was evicted');
  // Reused until 1 h before expiry, then minted again.
  clock.advance(2 * 3_600_000 + 59 * 60_000);
  await icpt.secureContextFor(host);
  assert.equal(mints.length, 4);
  clock.advance(2 * 60_000);
  await icpt.secureContextFor(host);
  assert.equal(mints.length, 5);
  clock.set(Date.now());

  // Over the wire: two curl runs to a new host, one minting.
  const n = h.mints.filter((x) => x === 'api.example.test').length;
  for (let i = 0; i < 2; i++) {
    const r = await run('curl', ['-sS', '--fail-with-body', '-x', h.proxyUrl, '--proxy-user', `agent:${TOKEN}`, '--cacert', h.caFile, 'https://api.example.test/again']);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal(n, 1, 'minted once by the earlier tests');
  assert.equal(h.mints.filter((x) => x === 'api.example.test').length, 1, 'cached across connections');
});

test('host names to intercept are validated', async () => {
  const { normalizeInterceptHost } = await import('../../src/proxy/intercept.js');
  for (const bad of ['', '*.example.test', 'a..b', '-a.test', 'a-.test', 'a_b.test', 'x'.repeat(64) + '.test', `${'a.'.repeat(127)}bc`, 'host.123', '1.2.3', 'fe80::1%eth0', '::g', 'exa mple.test', 'é.test']) {
    assert.throws(() => normalizeInterceptHost(bad), { code: 'TESSERA_PROXY_HOST_INVALID' }, bad);
  }
  assert.deepEqual(normalizeInterceptHost('API.Example.TEST.'), { host: 'api.example.test', ip: false });
  assert.deepEqual(normalizeInterceptHost('[FD00:0:0::1]'), { host: 'fd00::1', ip: true });
  assert.deepEqual(normalizeInterceptHost('127.0.0.1'), { host: '127.0.0.1', ip: true });
  assert.deepEqual(normalizeInterceptHost('xn--bcher-kva.example'), { host: 'xn--bcher-kva.example', ip: false });
  await assert.rejects(h.interceptor.secureContextFor('*.example.test'), { code: 'TESSERA_PROXY_HOST_INVALID' });
});

test('Node https in a child process trusts the CA through NODE_EXTRA_CA_CERTS', async () => {
  const script = `
    const http = require('node:http'); const https = require('node:https');
    const req = http.request({ host: '127.0.0.1', port: ${h.port}, method: 'CONNECT', path: 'api.example.test:443', headers: { 'proxy-authorization': 'Bearer ' + process.env.T } });
    req.on('connect', (res, socket) => {
      if (res.statusCode !== 200) { console.error('CONNECT', res.statusCode); process.exit(2); }
      https.get({ host: 'api.example.test', path: '/node', socket, agent: false, createConnection: () => require('node:tls').connect({ socket, servername: 'api.example.test' }) }, (r) => {
        let b = ''; r.on('data', (c) => b += c); r.on('end', () => { console.log(b); process.exit(0); });
      }).on('error', (e) => { console.error(e.code || e.message); process.exit(3); });
    });
    req.on('error', (e) => { console.error(e.message); process.exit(4); });
    req.end();`;
  const ok = await run(process.execPath, ['-e', script], { NODE_EXTRA_CA_CERTS: h.caFile, T: TOKEN });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).path, '/node');
  const refused = await run(process.execPath, ['-e', script], { T: TOKEN });
  assert.equal(refused.code, 3);
  assert.match(refused.stderr, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
});

test('Python requests (Debian python3-requests) through HTTPS_PROXY with REQUESTS_CA_BUNDLE', async (t) => {
  const py = '/usr/bin/python3';
  if (!existsSync(py) || (await run(py, ['-c', 'import requests'])).code !== 0) {
    t.skip('Debian python3-requests is not installed (apt-get install python3-requests)');
    return;
  }
  const script = 'import requests,sys\nr = requests.get("https://api.example.test/py?q=1", timeout=20)\nprint(r.status_code)\nprint(r.text)';
  const r = await run(py, ['-c', script], { HTTPS_PROXY: `http://agent:${TOKEN}@127.0.0.1:${h.port}`, REQUESTS_CA_BUNDLE: h.caFile });
  assert.equal(r.code, 0, r.stderr);
  const [status, body] = r.stdout.split('\n');
  assert.equal(status, '200');
  assert.equal(JSON.parse(body!).path, '/py?q=1');
  assert.equal(JSON.parse(body!).agent, AGENT);
  // Without the CA bundle, requests refuses the certificate.
  const refused = await run(py, ['-c', script], { HTTPS_PROXY: `http://agent:${TOKEN}@127.0.0.1:${h.port}`, REQUESTS_CA_BUNDLE: '/etc/ssl/certs/ca-certificates.crt' });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /CERTIFICATE_VERIFY_FAILED|SSLError/);
  // A wrong token in the proxy URL: 407.
  const denied = await run(py, ['-c', script], { HTTPS_PROXY: `http://agent:wrong@127.0.0.1:${h.port}`, REQUESTS_CA_BUNDLE: h.caFile });
  assert.match(denied.stderr, /407/);
});

test('a client that sends its ClientHello right behind the CONNECT (head bytes) is served', async () => {
  // curl never does this; a raw client can: the bytes after CONNECT arrive as `head`.
  const { connect } = await import('node:net');
  const socket = connect({ host: '127.0.0.1', port: h.port });
  await new Promise<void>((r) => socket.once('connect', r));
  // Capture what a TLS client writes first (its ClientHello) on a throwaway listener.
  const { createServer } = await import('node:net');
  let hello: Buffer | undefined;
  const catcher = createServer((s) => s.once('data', (c: Buffer) => { hello = c; s.destroy(); }));
  await new Promise<void>((r) => catcher.listen(0, '127.0.0.1', r));
  const fake = tlsConnect({ host: '127.0.0.1', port: (catcher.address() as { port: number }).port, servername: 'api.example.test', ca: h.ca.certificatePem });
  fake.on('error', () => undefined);
  await until(() => hello !== undefined, 'ClientHello');
  fake.destroy();
  await new Promise((r) => catcher.close(r));
  assert.ok(hello && hello.length > 0);
  socket.write(Buffer.concat([Buffer.from(`CONNECT api.example.test:443 HTTP/1.1\r\nProxy-Authorization: Bearer ${TOKEN}\r\n\r\n`), hello]));
  let buf = Buffer.alloc(0);
  socket.on('data', (c: Buffer) => (buf = Buffer.concat([buf, c])));
  await until(() => buf.toString('latin1').startsWith('HTTP/1.1 200') && buf.length > 100, 'the 200 and the ServerHello');
  assert.equal(buf[buf.indexOf('\r\n\r\n') + 4], 0x16, 'a TLS handshake record follows the 200');
  socket.destroy();
});
