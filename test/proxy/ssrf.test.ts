/**
 * SSRF guard of the injection proxy (issue 10 item 4, ADR 0204): address classes by the IANA
 * special-purpose registries (IPv4 embedded in IPv6 included), every legacy spelling of an IP
 * literal, allow rules, Tessera's own resolution (an injected lookup: real DNS is not reachable
 * here; `localhost` and IP literals use the real one), and real undici requests through the
 * pinned dispatcher to loopback servers — refused without a rule, allowed with one, dialling only
 * the vetted address (no DNS rebinding), TLS keeping the host name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dc from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { promises as dnsPromises, type LookupAddress } from 'node:dns';
import type { Socket } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { classifyAddress, createSsrfGuard, describeAddress, normalizeHost, parseIpv4Literal, targetRuleProblem, type AddressClass, type Lookup } from '../../src/proxy/ssrf.js';
import { isTesseraError } from '../../src/shared/errors.js';

const ADDRESSES: readonly (readonly [string, AddressClass])[] = [
  // IPv4 (RFC 6890, IANA registry)
  ['8.8.8.8', 'public'], ['1.1.1.1', 'public'], ['93.184.215.14', 'public'], ['172.32.0.1', 'public'], ['100.128.0.1', 'public'], ['192.0.0.9', 'public'], ['192.31.196.1', 'public'],
  ['127.0.0.1', 'loopback'], ['127.255.255.254', 'loopback'], ['127.1.2.3', 'loopback'],
  ['10.0.0.1', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'], ['100.64.0.1', 'private'], ['100.127.255.254', 'private'],
  ['169.254.0.1', 'link-local'], ['169.254.169.123', 'link-local'],
  ['169.254.169.254', 'metadata'], ['169.254.170.2', 'metadata'], ['169.254.170.23', 'metadata'], ['100.100.100.200', 'metadata'], ['192.0.0.192', 'metadata'], ['168.63.129.16', 'metadata'], ['169.254.0.23', 'metadata'],
  ['0.0.0.0', 'unspecified'], ['0.1.2.3', 'unspecified'],
  ['224.0.0.1', 'multicast'], ['239.255.255.250', 'multicast'],
  ['255.255.255.255', 'reserved'], ['240.0.0.1', 'reserved'], ['192.0.2.1', 'reserved'], ['198.51.100.1', 'reserved'], ['203.0.113.1', 'reserved'], ['198.18.0.1', 'reserved'], ['198.19.255.255', 'reserved'], ['192.0.0.8', 'reserved'], ['192.88.99.1', 'reserved'],
  // IPv6
  ['2606:4700:4700::1111', 'public'], ['2001:4860:4860::8888', 'public'], ['2001:3::1', 'public'],
  ['::1', 'loopback'], ['0:0:0:0:0:0:0:1', 'loopback'], ['[::1]', 'loopback'],
  ['::', 'unspecified'],
  ['fe80::1', 'link-local'], ['febf::1', 'link-local'], ['fe80::1%eth0', 'link-local'],
  ['fc00::1', 'unique-local'], ['fd12:3456::1', 'unique-local'],
  ['fd00:ec2::254', 'metadata'], ['fd00:ec2::23', 'metadata'], ['fd20:ce::254', 'metadata'],
  ['ff02::1', 'multicast'], ['ff05::2', 'multicast'],
  ['fec0::1', 'private'],
  ['2001:db8::1', 'reserved'], ['3fff::1', 'reserved'], ['100::1', 'reserved'], ['2001:2::1', 'reserved'], ['2001:10::1', 'reserved'], ['5f00::1', 'reserved'], ['4000::1', 'reserved'], ['::2:3:4:5:6', 'reserved'],
  // IPv4 embedded in IPv6: classified by the IPv4 address
  ['::ffff:127.0.0.1', 'loopback'], ['::ffff:7f00:1', 'loopback'], ['::FFFF:7F00:0001', 'loopback'], ['::ffff:8.8.8.8', 'public'], ['::ffff:169.254.169.254', 'metadata'], ['::ffff:a9fe:a9fe', 'metadata'], ['::ffff:10.1.2.3', 'private'], ['::ffff:0.0.0.0', 'unspecified'],
  ['::ffff:0:127.0.0.1', 'loopback'], // SIIT (RFC 2765)
  ['::127.0.0.1', 'loopback'], ['::7f00:1', 'loopback'], ['::10.0.0.1', 'private'], ['::8.8.8.8', 'public'], // IPv4-compatible
  ['64:ff9b::127.0.0.1', 'loopback'], ['64:ff9b::a9fe:a9fe', 'metadata'], ['64:ff9b::8.8.8.8', 'public'], ['64:ff9b::a00:1', 'private'], // NAT64
  ['64:ff9b:1::10.0.0.1', 'private'], ['64:ff9b:1:abcd::8.8.8.8', 'public'], ['64:ff9b:1:7f00:0:100::', 'unspecified'], // local-use NAT64
  ['2002:7f00:1::', 'loopback'], ['2002:a9fe:a9fe::1', 'metadata'], ['2002:c0a8:101::1', 'private'], ['2002:808:808::1', 'public'], // 6to4
  ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'loopback'], ['2001:0:4136:e378:8000:63bf:f7f7:f7f7', 'public'], ['2001:0:7f00:1:8000:63bf:f7f7:f7f7', 'loopback'], // Teredo: client (inverted) and server
  // Not an IP address: fail closed
  ['example.com', 'reserved'], ['', 'reserved'], ['1.2.3.4.5', 'reserved'],
  // Legacy spellings are read as WHATWG URL reads them
  ['2130706433', 'loopback'], ['0177.0.0.1', 'loopback'], ['0x7f.1', 'loopback'], ['127.1', 'loopback'], ['0xa9fea9fe', 'metadata'], ['0251.0376.0251.0376', 'metadata'],
];

test('classifyAddress: every special-purpose block, embedded IPv4 and legacy spelling has its class', () => {
  const wrong = ADDRESSES.filter(([ip, cls]) => classifyAddress(ip) !== cls).map(([ip, cls]) => `${ip}: ${classifyAddress(ip)} (want ${cls})`);
  assert.deepEqual(wrong, []);
  assert.deepEqual(describeAddress('64:ff9b::a9fe:a9fe'), { class: 'metadata', block: '169.254.169.254/32', name: 'cloud instance metadata (AWS, GCP, Azure, OpenStack, DigitalOcean…)', embedded: '169.254.169.254' });
  assert.equal(describeAddress('100.64.1.1').name, 'shared address space, carrier-grade NAT (RFC 6598)');
});

test('legacy IPv4 spellings parse as WHATWG URL parses them; WHATWG URL already normalises http(s) URLs', () => {
  const rows: [string, string | undefined][] = [
    ['2130706433', '127.0.0.1'], ['0177.0.0.1', '127.0.0.1'], ['0x7f.1', '127.0.0.1'], ['0x7F.0.0.1', '127.0.0.1'], ['127.1', '127.0.0.1'], ['127.0.1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'], ['017700000001', '127.0.0.1'], ['127.0.0.1.', '127.0.0.1'], ['0', '0.0.0.0'], ['0x', '0.0.0.0'], ['169.254.43518', '169.254.169.254'],
    ['256.0.0.1', undefined], ['1.2.3.256', undefined], ['4294967296', undefined], ['08.0.0.1', undefined], ['0x1g', undefined], ['1.2.3.4.5', undefined], ['a.1', undefined], ['', undefined], ['1..2', undefined],
  ];
  for (const [host, want] of rows) {
    assert.equal(parseIpv4Literal(host), want, host);
    if (want) assert.equal(new URL(`http://${host}/`).hostname, want, `WHATWG URL agrees on ${host}`);
  }
});

test('normalizeHost: one spelling per host, tricks refused', () => {
  const ok: [string, string][] = [
    ['LOCALHOST', 'localhost'], ['localhost.', 'localhost'], ['Api.OpenAI.com.', 'api.openai.com'], ['[::1]', '::1'], ['[0:0::1]', '::1'], ['[::FFFF:127.0.0.1]', '::ffff:7f00:1'],
    ['2130706433', '127.0.0.1'], ['0x7F.1', '127.0.0.1'], ['bücher.example', 'xn--bcher-kva.example'], ['１２７.０.０.１', '127.0.0.1'], ['under_score.internal', 'under_score.internal'],
  ];
  for (const [raw, want] of ok) assert.deepEqual(normalizeHost(raw), { ok: true, host: want }, raw);
  const bad = ['', 'localhost..', '.localhost', 'a..b', '1.2.3.256', '09.0.0.1', 'a b', 'a/b', 'a\\b', 'a\tb', '[fe80::1%25eth0]', 'fe80::1%eth0', '[1.2.3.4]', '[::1', 'x'.repeat(64) + '.com', `${'a.'.repeat(130)}com`, 'a@b', 'host:80', '%41', 'a%2fb', 'a\r\nb', 'a\u0000b', 'a,b', 'a;b'];
  for (const raw of bad) assert.equal(normalizeHost(raw).ok, false, JSON.stringify(raw));
});

function lookupOf(table: Record<string, readonly string[] | Error>, calls: string[] = []): Lookup {
  return async (host) => {
    calls.push(host);
    const v = table[host];
    if (v === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    if (v instanceof Error) throw v;
    return v.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; status: number; message: string }> {
  try {
    await p;
  } catch (e) {
    assert.ok(isTesseraError(e), `not a TesseraError: ${String(e)}`);
    return { code: e.code, status: e.status, message: e.message };
  }
  assert.fail('expected a refusal');
}

const DNS = {
  'public.example': ['8.8.8.8', '2606:4700:4700::1111'],
  'v6only.example': ['2606:4700:4700::1111'],
  'rebind.example': ['8.8.8.8', '127.0.0.1'],
  'private.example': ['10.0.0.7'],
  'cgnat.example': ['100.64.3.4'],
  'meta.example': ['169.254.169.254'],
  'mapped-meta.example': ['::ffff:169.254.169.254'],
  'nat64-meta.example': ['64:ff9b::a9fe:a9fe'],
  '6to4-loop.example': ['2002:7f00:1::1'],
  'teredo-private.example': ['2001:0:4136:e378:8000:63bf:f5ff:fffe'], // client 10.0.0.1
  'ula.example': ['fd12::1'],
  'aws6.example': ['fd00:ec2::254'],
  'zero.example': ['0.0.0.0'],
  'multi.example': ['239.1.1.1'],
  'doc.example': ['192.0.2.10'],
  'svc.internal': ['10.1.2.3'],
  'mixed.internal': ['10.1.2.3', '127.0.0.1'],
  'garbage.example': ['not-an-ip'],
  'empty.example': [],
  'servfail.example': Object.assign(new Error('getaddrinfo EAI_AGAIN servfail.example'), { code: 'EAI_AGAIN' }),
} as const;

test('vet: hostile targets are refused with the exact code, and the message says how to allow one', async () => {
  const guard = createSsrfGuard({ lookup: lookupOf(DNS) });
  const none = { allow: [] };
  const rows: [host: string, port: number, code: string][] = [
    ['127.0.0.1', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['2130706433', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['0177.0.0.1', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['0x7f.1', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['127.1', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['[::1]', 443, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['::1', 443, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['[::ffff:127.0.0.1]', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['[::ffff:7f00:1]', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['[64:ff9b::7f00:1]', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['169.254.169.254', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['0xa9fea9fe', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['[fd00:ec2::254]', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['100.100.100.200', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['192.0.0.192', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['0.0.0.0', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['[::]', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['10.0.0.1', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['192.168.0.1', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['[fe80::1]', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['rebind.example', 443, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['REBIND.example.', 443, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['private.example', 443, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['cgnat.example', 443, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['meta.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['mapped-meta.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['nat64-meta.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['6to4-loop.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['teredo-private.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['ula.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['aws6.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['zero.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['multi.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['doc.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'], ['garbage.example', 80, 'TESSERA_PROXY_TARGET_FORBIDDEN'],
    ['nowhere.example', 443, 'TESSERA_PROXY_TARGET_UNRESOLVABLE'], ['empty.example', 443, 'TESSERA_PROXY_TARGET_UNRESOLVABLE'], ['servfail.example', 443, 'TESSERA_PROXY_TARGET_UNRESOLVABLE'],
    ['public.example', 0, 'TESSERA_PROXY_TARGET_INVALID'], ['public.example', 65536, 'TESSERA_PROXY_TARGET_INVALID'], ['public.example', -1, 'TESSERA_PROXY_TARGET_INVALID'],
    ['public.example', 80.5, 'TESSERA_PROXY_TARGET_INVALID'], ['public.example', Number.NaN, 'TESSERA_PROXY_TARGET_INVALID'],
    ['', 443, 'TESSERA_PROXY_TARGET_INVALID'], ['public.example..', 443, 'TESSERA_PROXY_TARGET_INVALID'], ['a..b', 443, 'TESSERA_PROXY_TARGET_INVALID'], ['1.2.3.256', 443, 'TESSERA_PROXY_TARGET_INVALID'],
    ['evil .example', 443, 'TESSERA_PROXY_TARGET_INVALID'], ['[fe80::1%25lo]', 443, 'TESSERA_PROXY_TARGET_INVALID'], ['a\r\nb', 443, 'TESSERA_PROXY_TARGET_INVALID'],
  ];
  const got: string[] = [];
  for (const [host, port, code] of rows) {
    const r = await refusal(guard.vet(host, port, none));
    if (r.code !== code) got.push(`${JSON.stringify(host)}:${port} → ${r.code} (want ${code}): ${r.message}`);
  }
  assert.deepEqual(got, []);
  const statuses = await Promise.all([refusal(guard.vet('meta.example', 80, none)), refusal(guard.vet('nowhere.example', 80, none)), refusal(guard.vet('x', 0, none))]);
  assert.deepEqual(statuses.map((s) => s.status), [403, 502, 400]);

  // The message names the address, its class and how to allow it.
  const loop = await refusal(guard.vet('rebind.example', 443, none));
  assert.match(loop.message, /^the proxy refuses rebind\.example: it resolves to 127\.0\.0\.1, a loopback address \(loopback \(RFC 1122\), 127\.0\.0\.0\/8\)\. /);
  assert.match(loop.message, /add "127\.0\.0\.1\/32" or "rebind\.example:443" to the route's allow_private \(proxy\.routes\[\]\.allow_private\)/);
  const meta = await refusal(guard.vet('nat64-meta.example', 80, none));
  assert.match(meta.message, /64:ff9b::a9fe:a9fe \(it embeds the IPv4 address 169\.254\.169\.254\), a metadata address/);
  assert.match((await refusal(guard.vet('0x7f.1', 80, none))).message, /^the proxy refuses 127\.0\.0\.1, a loopback address/);
  assert.match(meta.message, /add exactly "64:ff9b::a9fe:a9fe\/128"/);
  assert.match((await refusal(guard.vet('zero.example', 80, none))).message, /can never be an upstream/);
});

test('vet: a public name resolves once through the injected lookup with its normalised spelling and returns the first address', async () => {
  const calls: string[] = [];
  const guard = createSsrfGuard({ lookup: lookupOf(DNS, calls) });
  assert.deepEqual(await guard.vet('Public.EXAMPLE.', 443, { allow: [] }), { host: 'public.example', port: 443, address: '8.8.8.8', family: 4 });
  assert.deepEqual(await guard.vet('v6only.example', 80, { allow: [] }), { host: 'v6only.example', port: 80, address: '2606:4700:4700::1111', family: 6 });
  assert.deepEqual(calls, ['public.example', 'v6only.example']);
  // IP literals are not resolved.
  assert.deepEqual(await guard.vet('[2606:4700:4700::1111]', 443, { allow: [] }), { host: '2606:4700:4700::1111', port: 443, address: '2606:4700:4700::1111', family: 6 });
  assert.deepEqual(await guard.vet('0x08080808', 53, { allow: [] }), { host: '8.8.8.8', port: 53, address: '8.8.8.8', family: 4 });
  assert.equal(calls.length, 2);
});

test('vet with the real resolver: localhost and its spellings are loopback', async () => {
  // The contract's dependency type: node's own dns.promises.lookup is accepted as the resolver.
  const explicit = createSsrfGuard({ lookup: dnsPromises.lookup });
  assert.equal((await refusal(explicit.vet('localhost', 8080, { allow: [] }))).code, 'TESSERA_PROXY_TARGET_FORBIDDEN');
  const guard = createSsrfGuard();
  for (const host of ['localhost', 'LOCALHOST', 'localhost.']) assert.equal((await refusal(guard.vet(host, 8080, { allow: [] }))).code, 'TESSERA_PROXY_TARGET_FORBIDDEN', host);
  assert.equal((await guard.vet('localhost', 8080, { allow: ['localhost:8080'] })).host, 'localhost');
});

test('allow rules: CIDRs and host[:port] open exactly what they name; metadata needs its exact address; 0.0.0.0 and multicast never', async () => {
  const guard = createSsrfGuard({ lookup: lookupOf(DNS) });
  const rows: [host: string, port: number, allow: string[], allowed: boolean][] = [
    ['127.0.0.1', 8080, ['127.0.0.1/32'], true], ['127.0.0.2', 8080, ['127.0.0.1/32'], false], ['127.0.0.2', 8080, ['127.0.0.0/8'], true],
    ['127.0.0.1', 8080, ['127.0.0.1'], true], ['[::1]', 8080, ['::1'], true], ['[::1]', 8080, ['::1/128'], true], ['[::1]', 8080, ['127.0.0.1/32'], false],
    ['2130706433', 8080, ['127.0.0.1/32'], true], ['[::ffff:127.0.0.1]', 8080, ['127.0.0.1/32'], true],
    ['127.0.0.1', 8080, ['127.0.0.1:8080'], true], ['127.0.0.1', 8081, ['127.0.0.1:8080'], false], ['[::1]', 8443, ['[::1]:8443'], true],
    ['svc.internal', 8080, ['10.0.0.0/8'], true], ['svc.internal', 8080, ['svc.internal:8080'], true], ['svc.internal', 9090, ['svc.internal:8080'], false],
    ['svc.internal', 9090, ['svc.internal'], true], ['SVC.Internal.', 9090, ['svc.internal'], true], ['svc.internal', 9090, ['SVC.INTERNAL.'], true], ['svc.internal', 9090, ['other.internal'], false],
    ['mixed.internal', 80, ['10.0.0.0/8'], false], ['mixed.internal', 80, ['10.0.0.0/8', '127.0.0.1/32'], true], ['mixed.internal', 80, ['mixed.internal'], true],
    ['private.example', 80, ['10.0.0.0/8'], true], ['cgnat.example', 80, ['100.64.0.0/10'], true], ['ula.example', 80, ['fc00::/7'], true],
    ['meta.example', 80, ['169.254.0.0/16'], false], ['meta.example', 80, ['0.0.0.0/0'], false], ['meta.example', 80, ['meta.example'], false], ['meta.example', 80, ['169.254.169.254'], true],
    ['169.254.169.254', 80, ['169.254.169.254:80'], false], ['169.254.169.254', 80, ['169.254.169.254/32'], true], ['mapped-meta.example', 80, ['169.254.169.254/32'], true],
    ['aws6.example', 80, ['fd00::/8'], false], ['aws6.example', 80, ['fd00:ec2::254/128'], true],
    ['zero.example', 80, ['0.0.0.0/0'], false], ['0.0.0.0', 80, ['0.0.0.0/32'], false], ['[::]', 80, ['::/0'], false], ['multi.example', 80, ['224.0.0.0/4'], false],
    ['doc.example', 80, ['192.0.2.0/24'], true],
  ];
  const wrong: string[] = [];
  for (const [host, port, allow, allowed] of rows) {
    const r = await guard.vet(host, port, { allow }).then(() => 'allowed', (e: { code: string }) => e.code);
    if ((r === 'allowed') !== allowed) wrong.push(`${host}:${port} with ${JSON.stringify(allow)} → ${r}`);
  }
  assert.deepEqual(wrong, []);
});

test('allow rules are validated: targetRuleProblem for the schema, TESSERA_CONFIG_INVALID at use', async () => {
  for (const good of ['10.0.0.0/8', '127.0.0.1/32', '127.0.0.1', '::1', 'fd00::/8', '::/0', 'internal.svc', 'internal.svc:8080', '[::1]:8443', '127.0.0.1:8080', 'LOCALHOST.']) assert.equal(targetRuleProblem(good), undefined, good);
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/-1', '10.0.0.0/', 'host/8', 'a..b', 'host:0', 'host:65536', 'host:x', 'host:', '[::1', 'fe80::1%lo', '', 'a b', '1.2.3.256', 'http://x']) assert.ok(targetRuleProblem(bad), bad);
  const guard = createSsrfGuard({ lookup: lookupOf(DNS) });
  assert.equal((await refusal(guard.vet('svc.internal', 80, { allow: ['10.0.0.0/33'] }))).code, 'TESSERA_CONFIG_INVALID');
  assert.throws(() => guard.dispatcher({ allow: ['host:0'] }), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_CONFIG_INVALID');
});

// --- real requests through the dispatcher --------------------------------------------------

interface Upstream { server: Server; port: number; seen: IncomingMessage[] }
async function upstream(t: { after(fn: () => unknown): void }, options: { close?: boolean } = {}): Promise<Upstream> {
  const seen: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    seen.push(req);
    res.setHeader('content-type', 'application/json');
    if (options.close) res.setHeader('connection', 'close');
    res.end(JSON.stringify({ host: req.headers.host, local: req.socket.localAddress }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { server, port: (server.address() as { port: number }).port, seen };
}

/** Records the address of every TCP connection attempt this process makes to `port` (node's net diagnostics channel). */
function dialsTo(t: { after(fn: () => unknown): void }, port: number, cut: (ip: string) => boolean): string[] {
  const dialled: string[] = [];
  const onSocket = (msg: unknown): void => {
    const socket = (msg as { socket: Socket }).socket;
    socket.on('connectionAttempt', (ip: string, p: number) => {
      if (p !== port) return;
      dialled.push(ip);
      if (cut(ip)) setImmediate(() => socket.destroy(new Error(`test cut the connection to ${ip}`)));
    });
  };
  dc.subscribe('net.client.socket', onSocket);
  t.after(() => dc.unsubscribe('net.client.socket', onSocket));
  return dialled;
}

test('dispatcher: a real undici request to a loopback upstream is refused without a rule and allowed with one', async (t) => {
  const up = await upstream(t);
  const guard = createSsrfGuard();
  const refused = guard.dispatcher({ allow: [] });
  t.after(() => refused.close());
  for (const url of [`http://127.0.0.1:${up.port}/x`, `http://localhost:${up.port}/x`, `http://2130706433:${up.port}/x`, `http://0x7f.1:${up.port}/x`]) {
    const r = await refusal(request(url, { dispatcher: refused }));
    assert.equal(r.code, 'TESSERA_PROXY_TARGET_FORBIDDEN', url);
  }
  assert.equal(up.seen.length, 0);
  const allowed = guard.dispatcher({ allow: ['127.0.0.1/32'] });
  t.after(() => allowed.close());
  const res = await request(`http://127.0.0.1:${up.port}/x`, { dispatcher: allowed });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(await res.body.json(), { host: `127.0.0.1:${up.port}`, local: '127.0.0.1' });
  // A host rule with the port: localhost resolves (real resolver) to 127.0.0.1 here.
  const byName = guard.dispatcher({ allow: [`localhost:${up.port}`] });
  t.after(() => byName.close());
  const res2 = await request(`http://LOCALHOST:${up.port}/y`, { dispatcher: byName });
  assert.equal(res2.statusCode, 200);
  assert.equal(((await res2.body.json()) as { host: string }).host, `localhost:${up.port}`, 'Host is the name, not the address');
  assert.equal(up.seen.length, 2);
});

test('dispatcher: no DNS rebinding — the answer vetted is the address dialled; the name is never resolved again for that connection', async (t) => {
  const up = await upstream(t);
  // A rebinding resolver: a public-looking answer first, the reachable loopback upstream afterwards.
  const answers = ['93.184.215.14', '127.0.0.1'];
  const calls: string[] = [];
  const lookup: Lookup = async (host) => {
    calls.push(host);
    const address = answers[Math.min(calls.length - 1, answers.length - 1)]!;
    return [{ address, family: 4 }];
  };
  // The public address is unreachable here: the test cuts that attempt as soon as it is made.
  const dialled = dialsTo(t, up.port, (ip) => ip === '93.184.215.14');
  const d = createSsrfGuard({ lookup }).dispatcher({ allow: [] });
  t.after(() => d.close());
  // (Refused at once where the sandbox has no route, cut by the test otherwise: either way the error names the address.)
  await assert.rejects(request(`http://rebind.test:${up.port}/`, { dispatcher: d }), /93\.184\.215\.14/);
  assert.deepEqual(dialled, ['93.184.215.14'], 'only the vetted address was dialled');
  assert.deepEqual(calls, ['rebind.test'], 'one resolution per connection: no second lookup to rebind');
  assert.equal(up.seen.length, 0, 'the loopback upstream the second answer names was never reached');
});

test('dispatcher: every new connection is vetted again — an allowed answer is served, a rebound one is refused', async (t) => {
  const up = await upstream(t, { close: true });
  const answers = ['127.0.0.1', '127.0.0.2'];
  const calls: string[] = [];
  const lookup: Lookup = async (host) => {
    calls.push(host);
    return [{ address: answers[Math.min(calls.length - 1, 1)]!, family: 4 }];
  };
  const dialled = dialsTo(t, up.port, () => false);
  const d = createSsrfGuard({ lookup }).dispatcher({ allow: ['127.0.0.1/32'] }, { connections: 1 });
  t.after(() => d.close());
  const res = await request(`http://upstream.test:${up.port}/a`, { dispatcher: d });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(await res.body.json(), { host: `upstream.test:${up.port}`, local: '127.0.0.1' });
  // The upstream closed that connection: the next request resolves again and 127.0.0.2 is not allowed.
  const r = await refusal(request(`http://upstream.test:${up.port}/b`, { dispatcher: d }));
  assert.equal(r.code, 'TESSERA_PROXY_TARGET_FORBIDDEN');
  assert.match(r.message, /upstream\.test: it resolves to 127\.0\.0\.2/);
  assert.deepEqual(calls, ['upstream.test', 'upstream.test']);
  assert.deepEqual(dialled, ['127.0.0.1']);
  assert.equal(up.seen.length, 1);
});

test('dispatcher: when a vetted address cannot be reached, the next vetted address of the same answer is dialled (no new resolution)', async (t) => {
  const up = await upstream(t);
  const calls: string[] = [];
  const lookup: Lookup = async (host) => {
    calls.push(host);
    return [{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }];
  };
  const dialled = dialsTo(t, up.port, () => false);
  const d = createSsrfGuard({ lookup }).dispatcher({ allow: ['dual.test'] });
  t.after(() => d.close());
  const res = await request(`http://dual.test:${up.port}/`, { dispatcher: d });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(await res.body.json(), { host: `dual.test:${up.port}`, local: '127.0.0.1' });
  assert.deepEqual(dialled, ['::1', '127.0.0.1'], 'the upstream listens on 127.0.0.1 only');
  assert.deepEqual(calls, ['dual.test']);
  // Both must be allowed: one covered address is not enough.
  const half = createSsrfGuard({ lookup }).dispatcher({ allow: ['127.0.0.1/32'] });
  t.after(() => half.close());
  assert.equal((await refusal(request(`http://dual.test:${up.port}/`, { dispatcher: half }))).code, 'TESSERA_PROXY_TARGET_FORBIDDEN');
});

test('dispatcher: a redirect is never followed — a 302 to the metadata service comes back to the caller as it is', async (t) => {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' }).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const port = (server.address() as { port: number }).port;
  const dialled = dialsTo(t, 80, () => true);
  const d = createSsrfGuard().dispatcher({ allow: ['127.0.0.1/32'] });
  t.after(() => d.close());
  const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: d });
  await res.body.dump();
  assert.equal(res.statusCode, 302);
  assert.equal(res.headers.location, 'http://169.254.169.254/latest/meta-data/iam/security-credentials/');
  assert.equal(hits, 1);
  assert.deepEqual(dialled, []);
});

test('dispatcher over TLS: dials the vetted address, SNI and the certificate check keep the host name, `ca` is trusted besides the roots', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ssrf-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=upstream.test', '-addext', 'subjectAltName=DNS:upstream.test'], { stdio: 'ignore' });
  const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const seen: { sni: string | false | null; host: string | undefined }[] = [];
  const server = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
    seen.push({ sni: (req.socket as import('node:tls').TLSSocket).servername, host: req.headers.host });
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const port = (server.address() as { port: number }).port;
  const guard = createSsrfGuard({ lookup: lookupOf({ 'upstream.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] }) });
  const d = guard.dispatcher({ allow: ['127.0.0.1/32'] }, { ca: cert });
  t.after(() => d.close());
  const res = await request(`https://upstream.test:${port}/`, { dispatcher: d });
  assert.equal(await res.body.text(), 'ok');
  assert.deepEqual(seen, [{ sni: 'upstream.test', host: `upstream.test:${port}` }]);
  // Same address, another name: the certificate does not cover it, so the check used the name.
  await assert.rejects(request(`https://other.test:${port}/`, { dispatcher: d }), /other\.test|altnames|ERR_TLS_CERT_ALTNAME_INVALID/);
  // Without `ca`, the self-signed upstream is not trusted.
  const strict = guard.dispatcher({ allow: ['127.0.0.1/32'] });
  t.after(() => strict.close());
  await assert.rejects(request(`https://upstream.test:${port}/`, { dispatcher: strict }), /self-signed|SELF_SIGNED|unable to verify/i);
});
