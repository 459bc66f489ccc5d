/**
 * Origin and Host checks (src/server/origin.ts): parsing, the policy built from the listen
 * address, public_url and configuration, and every look-alike of an allowed origin or host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildOriginPolicy, checkOriginAndHost, parseHost, parseOrigin } from '../../src/server/origin.js';

test('parseOrigin accepts exactly one serialized origin and normalizes it (RFC 6454)', () => {
  assert.equal(parseOrigin('https://app.example.com'), 'https://app.example.com');
  assert.equal(parseOrigin('HTTPS://APP.Example.COM'), 'https://app.example.com');
  assert.equal(parseOrigin('https://app.example.com:443'), 'https://app.example.com', 'a default port is no port');
  assert.equal(parseOrigin('http://app.example.com:80'), 'http://app.example.com');
  assert.equal(parseOrigin('http://app.example.com:8080'), 'http://app.example.com:8080');
  assert.equal(parseOrigin('http://[0:0:0:0:0:0:0:1]:8200'), 'http://[::1]:8200');
  assert.equal(parseOrigin('chrome-extension://abcdefghijklmnop'), 'chrome-extension://abcdefghijklmnop');
  for (const bad of ['null', '', '*', 'https://*.example.com', 'https://app.example.com/', 'https://app.example.com/x', 'https://app.example.com?x', 'https://app.example.com#x',
    'https://user@app.example.com', 'https://app.example.com, https://evil.example.com', 'https://app.example.com https://evil', 'app.example.com', '//app.example.com',
    'https://app.example.com:99999', 'https://app.example.com:0443', 'https://[::g]', 'https://-app.example.com', 'https://app.example.com.', 'https://app_x.example.com', ' https://app.example.com', 'https://app.example.com\n']) {
    assert.equal(parseOrigin(bad), undefined, JSON.stringify(bad));
  }
});

test('parseHost: name or address with optional port, IPv6 in brackets, case-insensitive', () => {
  assert.deepEqual(parseHost('LOCALHOST:8200'), { name: 'localhost', port: 8200 });
  assert.deepEqual(parseHost('[0::1]:8200'), { name: '[::1]', port: 8200 });
  assert.deepEqual(parseHost('tessera.internal'), { name: 'tessera.internal' });
  for (const bad of ['', 'localhost:', 'localhost:99999', 'local host', 'a@b', 'localhost:8200/x', '::1', '[::1', 'localhost.']) assert.equal(parseHost(bad), undefined, JSON.stringify(bad));
});

const PORT = 8200;
const loopback = buildOriginPolicy({ issuer: `http://127.0.0.1:${PORT}`, listenHost: '127.0.0.1', listenPort: PORT, allowedOrigins: ['https://console.example.com', 'http://tool.example.com:3000'], allowedHosts: [] });

test('Origin: own origins and configured ones pass; no Origin passes; everything else is refused', () => {
  const ok = (origin?: string) => checkOriginAndHost(loopback, { host: `127.0.0.1:${PORT}`, ...(origin !== undefined ? { origin } : {}) });
  for (const good of [undefined, `http://127.0.0.1:${PORT}`, `http://localhost:${PORT}`, `http://[::1]:${PORT}`, 'https://console.example.com', 'HTTPS://CONSOLE.EXAMPLE.COM', 'https://console.example.com:443', 'http://tool.example.com:3000']) {
    assert.equal(ok(good), undefined, String(good));
  }
  for (const evil of ['http://evil.example.com', 'null', 'https://console.example.com.evil.com', 'https://evilconsole.example.com', 'https://console.example.co', 'https://xconsole.example.com',
    'http://console.example.com', 'https://console.example.com:8443', 'http://tool.example.com', 'http://tool.example.com:3001', `http://127.0.0.1:${PORT + 1}`, `https://127.0.0.1:${PORT}`,
    'https://console.example.com/', 'https://console.example.com, https://evil.example.com', `http://localhost.:${PORT}`, 'file://', 'https://console%2eexample.com']) {
    assert.equal(ok(evil), 'origin', evil);
  }
  assert.equal(checkOriginAndHost(loopback, { host: `127.0.0.1:${PORT}`, origin: ['https://console.example.com', 'https://console.example.com'] }), 'origin', 'a repeated Origin header');
});

test('Host on a loopback listener: the listen address and loopback names on its port only', () => {
  const host = (h?: string | string[]) => checkOriginAndHost(loopback, h === undefined ? {} : { host: h });
  for (const good of [`127.0.0.1:${PORT}`, `localhost:${PORT}`, `LOCALHOST:${PORT}`, `[::1]:${PORT}`, `[0:0::1]:${PORT}`]) assert.equal(host(good), undefined, good);
  for (const evil of [undefined, '', 'evil.example.com', `evil.example.com:${PORT}`, `127.0.0.1.evil.example.com:${PORT}`, `localhost.evil.example.com:${PORT}`, `evil-localhost:${PORT}`,
    `localhost:${PORT + 1}`, 'localhost', `localhost.:${PORT}`, `127.0.0.2:${PORT}`, `0.0.0.0:${PORT}`, `localhost:${PORT}@evil.example.com`, [`localhost:${PORT}`, 'evil']]) {
    assert.equal(host(evil), 'host', JSON.stringify(evil));
  }
});

test('public_url names are allowed Hosts and origins; default ports are handled; allowed_hosts with and without port', () => {
  const p = buildOriginPolicy({ issuer: 'https://tessera.example.com', listenHost: '127.0.0.1', listenPort: PORT, allowedOrigins: [], allowedHosts: ['tessera.internal', 'alias.internal:9000'] });
  const check = (host: string, origin?: string) => checkOriginAndHost(p, { host, ...(origin ? { origin } : {}) });
  assert.equal(check('tessera.example.com'), undefined, 'the public host on its default port (a TLS proxy in front)');
  assert.equal(check('tessera.example.com:443'), undefined);
  assert.equal(check('tessera.example.com:8443'), 'host');
  assert.equal(check('tessera.internal:1234'), undefined, 'an allowed_hosts name without port matches any port');
  assert.equal(check('alias.internal:9000'), undefined);
  assert.equal(check('alias.internal:9001'), 'host');
  assert.equal(check('tessera.example.com', 'https://tessera.example.com'), undefined);
  assert.equal(check('tessera.example.com', 'http://tessera.example.com'), 'origin', 'the scheme is part of the origin');
});

test('Host is checked on every listener: a wildcard listener (0.0.0.0, ::) allows public_url, allowed_hosts, loopback names and its own addresses on its port only (pen-test F11)', () => {
  for (const listenHost of ['0.0.0.0', '::']) {
    const open = buildOriginPolicy({ issuer: 'http://10.0.0.5:8200', listenHost, listenPort: 8200, allowedOrigins: [], allowedHosts: [], localAddresses: ['127.0.0.1', '10.0.0.5', '192.168.1.7', '::1', 'fe80::1%eth0'] });
    const host = (h: string) => checkOriginAndHost(open, { host: h });
    for (const good of ['10.0.0.5:8200', 'localhost:8200', '127.0.0.1:8200', '[::1]:8200', '192.168.1.7:8200', '[fe80::1]:8200']) assert.equal(host(good), undefined, `${listenHost} ${good}`);
    // DNS rebinding: a name the attacker controls resolving to one of our addresses.
    for (const evil of ['anything.example.com', 'anything.example.com:8200', 'rebind.127.0.0.1.nip.io:8200', 'localhost:8201', '192.168.1.7:8201', '10.0.0.6:8200', 'localhost.:8200', '0.0.0.0.evil.example:8200']) {
      assert.equal(host(evil), 'host', `${listenHost} ${evil}`);
    }
    assert.equal(checkOriginAndHost(open, {}), 'host', 'a request without Host');
    assert.equal(checkOriginAndHost(open, { host: '10.0.0.5:8200', origin: 'http://anything.example.com' }), 'origin', 'Origin is still checked');
  }
  const pinned = buildOriginPolicy({ issuer: 'https://tessera.example.com', listenHost: '0.0.0.0', listenPort: 8200, allowedOrigins: [], allowedHosts: ['tessera.internal'] });
  assert.equal(checkOriginAndHost(pinned, { host: 'anything.example.com' }), 'host');
  assert.equal(checkOriginAndHost(pinned, { host: 'tessera.internal:8200' }), undefined);
  assert.equal(checkOriginAndHost(pinned, { host: 'tessera.example.com' }), undefined, 'the public_url host (a TLS proxy in front)');
  // A specific non-loopback address: reachable from a LAN browser, so checked as well.
  const lan = buildOriginPolicy({ issuer: 'http://10.0.0.5:8200', listenHost: '10.0.0.5', listenPort: 8200, allowedOrigins: [], allowedHosts: [] });
  assert.equal(checkOriginAndHost(lan, { host: '10.0.0.5:8200' }), undefined);
  assert.equal(checkOriginAndHost(lan, { host: 'rebind.example.com:8200' }), 'host');
  assert.equal(checkOriginAndHost(lan, { host: 'localhost:8200' }), 'host', 'not a loopback listener');
  const v6 = buildOriginPolicy({ issuer: 'http://[::1]:8200', listenHost: '::1', listenPort: 8200, allowedOrigins: [], allowedHosts: [] });
  assert.equal(checkOriginAndHost(v6, { host: '[::1]:8200', origin: 'http://[::1]:8200' }), undefined);
  assert.equal(checkOriginAndHost(v6, { host: 'localhost:8200', origin: 'http://localhost:8200' }), undefined);
  assert.equal(checkOriginAndHost(v6, { host: 'evil.example.com:8200' }), 'host');
});

test('real HTTP: an app whose policy is built for a wildcard listener refuses rebinding Hosts with 403 and serves its own (listening on 127.0.0.1 only)', async (t) => {
  const { createApp } = await import('../../src/server/app.js');
  const { silentLogger } = await import('../../src/shared/logger.js');
  const { request } = await import('node:http');
  const app = createApp({
    logger: silentLogger,
    replicaId: 'r1',
    bodyLimit: 65536,
    admin: { authenticate: async () => ({ kind: 'admin', tokenId: 'a', name: 'test', role: 'admin', via: 'token' }) },
    agents: { authenticate: async () => { throw new Error('unused'); } },
    originPolicy: buildOriginPolicy({ issuer: 'http://10.0.0.5:8200', listenHost: '0.0.0.0', listenPort: 8200, allowedOrigins: [], allowedHosts: [], localAddresses: ['127.0.0.1', '10.0.0.5'] }),
  });
  app.get('/ping', async () => ({ ok: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const port = (app.server.address() as { port: number }).port;
  const get = (host: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/ping', headers: { host } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  for (const good of ['10.0.0.5:8200', 'localhost:8200', '127.0.0.1:8200']) assert.equal((await get(good)).status, 200, good);
  for (const evil of ['rebind.evil.example:8200', 'rebind.evil.example', `127.0.0.1:${port}`]) {
    const r = await get(evil);
    assert.equal(r.status, 403, evil);
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'TESSERA_REQUEST_HOST_NOT_ALLOWED', evil);
  }
});
