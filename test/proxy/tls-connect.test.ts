import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { AGENT, TOKEN, basic, rawConnect, run, startHarness, until, type Harness } from './tls-harness.js';
import { parseConnectTarget } from '../../src/proxy/connect.js';

let h: Harness;
before(async () => {
  h = await startHarness({ permit: ['tunnel.example.test', 'internal.example.test', 'metadata.example.test', 'nowhere.example.test'], maxTunnels: 3 });
});
after(async () => {
  await h.close();
});

test('a CONNECT without credentials, or with a refused token, is answered 407 with both challenges', async () => {
  for (const headers of [{}, { 'Proxy-Authorization': 'Bearer wrong' }, { 'Proxy-Authorization': basic('wrong') }] as Record<string, string>[]) {
    const r = await rawConnect(h.port, 'api.example.test:443', headers);
    assert.equal(r.status, 407, JSON.stringify(headers));
    assert.match(r.head, /\r\nProxy-Authenticate: Bearer realm="tessera", Basic realm="tessera"(\r\n|$)/);
    assert.match(r.head, /\r\nConnection: close\r\n/);
    assert.equal(JSON.parse(r.body).error.code, 'TESSERA_PROXY_AUTH_REQUIRED');
    assert.equal(JSON.parse(r.body).error.details.cause, 'Proxy-Authorization' in headers ? 'TESSERA_TOKEN_SIGNATURE_INVALID' : 'TESSERA_TOKEN_MISSING');
    assert.ok(!r.body.includes('wrong'), 'the presented credential is not echoed');
    r.socket.destroy();
  }
  const curl = await run('curl', ['-sS', '-x', h.proxyUrl, '--cacert', h.caFile, 'https://api.example.test/']);
  assert.equal(curl.code, 56);
  assert.match(curl.stderr, /407/);
  assert.equal(h.served.length, 0);
});

test('a host without a route and without a permit: 403 TESSERA_PROXY_TUNNEL_DENIED, audited, nothing connected', async () => {
  const r = await rawConnect(h.port, 'elsewhere.example.test:443', { 'Proxy-Authorization': `Bearer ${TOKEN}` });
  assert.equal(r.status, 403);
  const err = JSON.parse(r.body).error;
  assert.equal(err.code, 'TESSERA_PROXY_TUNNEL_DENIED');
  assert.match(err.message, /elsewhere\.example\.test/);
  r.socket.destroy();
  const ev = h.audit.events.find((e) => e.kind === 'proxy.tunnel' && e.details?.host === 'elsewhere.example.test');
  assert.equal(ev?.result, 'deny');
  assert.deepEqual(ev?.details, { phase: 'refused', host: 'elsewhere.example.test', port: 443, mode: 'tunnel', code: 'TESSERA_PROXY_TUNNEL_DENIED' });
  const curl = await run('curl', ['-sS', '-x', h.proxyUrl, '--proxy-user', `agent:${TOKEN}`, 'https://elsewhere.example.test/']);
  assert.match(curl.stderr, /403/);
});

test('a host without a route but with a permit is tunnelled untouched to the vetted address (the upstream\'s own certificate), bytes audited', async () => {
  const before = h.audit.events.length;
  const url = `https://tunnel.example.test:${h.upstream.port}/through`;
  const r = await run('curl', ['-sS', '--fail-with-body', '-x', h.proxyUrl, '--proxy-user', `agent:${TOKEN}`, '--cacert', h.upstream.caFile, url]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'hello from the tunnelled upstream');
  // The Tessera CA does not verify it: the TLS session is end to end.
  const mitm = await run('curl', ['-sS', '-x', h.proxyUrl, '--proxy-user', `agent:${TOKEN}`, '--cacert', h.caFile, url]);
  assert.equal(mitm.code, 60);
  await until(() => h.audit.events.slice(before).filter((e) => e.kind === 'proxy.tunnel' && e.details?.phase === 'closed').length === 2, 'two closed tunnels');
  const events = h.audit.events.slice(before).filter((e) => e.kind === 'proxy.tunnel');
  const opened = events.find((e) => e.details?.phase === 'opened')!;
  assert.equal(opened.actor.id, AGENT);
  assert.equal(opened.resource, `tunnel.example.test:${h.upstream.port}`);
  assert.equal(opened.result, 'allow');
  const closed = events.find((e) => e.details?.phase === 'closed')!;
  const d = closed.details as { bytes_in: number; bytes_out: number; mode: string };
  assert.equal(d.mode, 'tunnel');
  assert.ok(d.bytes_in > 200 && d.bytes_out > 200, JSON.stringify(d));
  assert.equal(h.served.length, 0, 'never intercepted');
  await until(() => h.tunnels.count(AGENT) === 0, 'tunnels released');
});

test('the upstream of a permitted tunnel is unreachable: 502 TESSERA_PROXY_TUNNEL_CONNECT_FAILED, never a hang', async () => {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const closedPort = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  const r = await rawConnect(h.port, `tunnel.example.test:${closedPort}`, { 'Proxy-Authorization': `Bearer ${TOKEN}` });
  assert.equal(r.status, 502);
  assert.equal(JSON.parse(r.body).error.code, 'TESSERA_PROXY_TUNNEL_CONNECT_FAILED');
  assert.match(JSON.parse(r.body).error.message, /ECONNREFUSED/);
  r.socket.destroy();
  // Permitted by policy, refused by the SSRF guard: its code is the answer, audited, nothing connected.
  for (const [target, status, code] of [
    ['internal.example.test:443', 403, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['metadata.example.test:80', 403, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['nowhere.example.test:443', 502, 'TESSERA_PROXY_TARGET_UNRESOLVABLE'],
  ] as const) {
    const v = await rawConnect(h.port, target, { 'Proxy-Authorization': `Bearer ${TOKEN}` });
    assert.equal(v.status, status, `${target}: ${v.body}`);
    assert.equal(JSON.parse(v.body).error.code, code, target);
    v.socket.destroy();
  }
  assert.ok(h.audit.events.some((e) => e.kind === 'proxy.tunnel' && e.details?.host === 'metadata.example.test' && e.reason?.code === 'TESSERA_PROXY_TARGET_FORBIDDEN'));
});

test('malformed CONNECT targets: 400 TESSERA_PROXY_CONNECT_TARGET_INVALID', async () => {
  const cases: [string, RegExp][] = [
    ['api.example.test', /port is missing/],
    ['api.example.test:', /port "" is not/],
    ['api.example.test:0', /port "0"/],
    ['api.example.test:65536', /port "65536"/],
    ['api.example.test:080', /port "080"/],
    ['api.example.test:+443', /port "\+443"/],
    ['api.example.test:44a', /port "44a"/],
    [':443', /empty/],
    ['user@api.example.test:443', /userinfo/],
    ['user:pw@api.example.test:443', /userinfo/],
    ['api.example.test:443/path', /path, query or fragment/],
    ['api.example.test:443?q', /path, query or fragment/],
    ['api.example.test:443#f', /path, query or fragment/],
    ['http://api.example.test:443', /path, query or fragment|IPv6/],
    ['::1:443', /IPv6 address must be in brackets/],
    ['[::1]', /brackets and a port/],
    ['[::1]443', /brackets and a port/],
    ['[fe80::1%25eth0]:443', /zone ids/],
    ['[127.0.0.1]:443', /brackets are for IPv6/],
    ['[::g]:443', /not an IPv6 address/],
    ['*.example.test:443', /wildcards/],
    ['a..b:443', /label/],
    ['-a.example.test:443', /label/],
    ['host.123:443', /numeric/],
    ['under_score.test:443', /label/],
  ];
  for (const [target, why] of cases) {
    assert.throws(() => parseConnectTarget(target), (e: Error & { code?: string }) => e.code === 'TESSERA_PROXY_CONNECT_TARGET_INVALID' && why.test(e.message), target);
    const r = await rawConnect(h.port, target, { 'Proxy-Authorization': `Bearer ${TOKEN}` }).catch((e: Error) => ({ status: 0, body: e.message, head: '', socket: undefined }));
    // Node's HTTP parser refuses a few before the proxy sees them (400 from the server itself).
    assert.equal(r.status, 400, `${target}: ${r.body}`);
    if (r.body) assert.equal(JSON.parse(r.body).error.code, 'TESSERA_PROXY_CONNECT_TARGET_INVALID', target);
    r.socket?.destroy();
  }
  assert.deepEqual(parseConnectTarget('API.Example.Test:443'), { host: 'api.example.test', port: 443, ip: false });
  assert.deepEqual(parseConnectTarget('[FD00::1]:8443'), { host: 'fd00::1', port: 8443, ip: true });
  assert.deepEqual(parseConnectTarget('10.1.2.3:65535'), { host: '10.1.2.3', port: 65535, ip: true });
  assert.equal(h.served.length, 0);
});

test('proxy.max_tunnels_per_agent bounds open tunnels: 429 TESSERA_PROXY_TUNNEL_LIMIT, released on close', async () => {
  const open = [];
  for (let i = 0; i < 3; i++) {
    const r = await rawConnect(h.port, 'api.example.test:443', { 'Proxy-Authorization': `Bearer ${TOKEN}` });
    assert.equal(r.status, 200);
    open.push(r.socket);
  }
  assert.equal(h.tunnels.count(AGENT), 3);
  const over = await rawConnect(h.port, 'api.example.test:443', { 'Proxy-Authorization': `Bearer ${TOKEN}` });
  assert.equal(over.status, 429);
  assert.match(over.head, /\r\nRetry-After: 1(\r\n|$)/);
  assert.equal(JSON.parse(over.body).error.code, 'TESSERA_PROXY_TUNNEL_LIMIT');
  over.socket.destroy();
  open.pop()!.destroy();
  await until(() => h.tunnels.count(AGENT) === 2, 'a tunnel released');
  const again = await rawConnect(h.port, 'api.example.test:443', { 'Proxy-Authorization': `Bearer ${TOKEN}` });
  assert.equal(again.status, 200);
  open.push(again.socket);
  // A revoked agent's open tunnels are cut.
  assert.equal(h.tunnels.closeAgent(AGENT), 3);
  await Promise.all(open.map((s) => new Promise((r) => (s.destroyed ? r(null) : s.once('close', r)))));
  await until(() => h.tunnels.count(AGENT) === 0, 'all released');
});

test('an intercepted tunnel whose client sends no TLS after the 200, or leaves mid-handshake, is closed and released', async () => {
  const r = await rawConnect(h.port, 'api.example.test:443', { 'Proxy-Authorization': `Bearer ${TOKEN}` });
  assert.equal(r.status, 200);
  r.socket.write('this is not TLS\r\n\r\n');
  await new Promise((res) => r.socket.once('close', res));
  await until(() => h.tunnels.count(AGENT) === 0, 'released after the failed handshake');
  // A client that goes away mid-handshake.
  const r2 = await rawConnect(h.port, 'api.example.test:443', { 'Proxy-Authorization': `Bearer ${TOKEN}` });
  const tls = tlsConnect({ socket: r2.socket, servername: 'api.example.test', ca: h.ca.certificatePem });
  tls.on('error', () => undefined);
  r2.socket.destroy();
  await until(() => h.tunnels.count(AGENT) === 0, 'released after the client left');
});
