/**
 * Issue 9 fix: the remaining second spellings of one URI (RFC 3986 §6.2.2.1 case of hosts and
 * of percent-escape hex digits, §6.2.3 default and empty ports) are refused, never rewritten, as
 * the earlier rules are (ADR 0170): Cedar would see another string than the upstream resolves.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTesseraError } from '../../src/shared/errors.js';
import { gatewayUri, parseGatewayUri, upstreamUriFault } from '../../src/gateway/resources/uri.js';

const servers = new Set(['docs']);

function code(uri: string): string | undefined {
  try {
    parseGatewayUri(gatewayUri('docs', uri), servers);
    return undefined;
  } catch (e) {
    return isTesseraError(e) ? e.code : 'other';
  }
}

test('non-canonical host case, hex case and ports are refused with TESSERA_GATEWAY_RESOURCE_URI_INVALID', () => {
  for (const uri of [
    'https://EXAMPLE.com/x', 'https://Example.com/x', 'http://user@HOST/x', 'https://[::ABCD]/x',
    'https://h/a%3ab', 'https://h/a%3Ab%2a', 'https://h/?q=%e2%82%ac', 'docs://x/%c3%a9',
    'https://h:443/', 'http://h:80/x', 'wss://h:443/x', 'ws://h:80/', 'ftp://h:21/f', 'https://h:/x', 'https://h:0443/x',
  ]) {
    assert.equal(code(uri), 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', uri);
    assert.notEqual(upstreamUriFault('docs', uri), undefined, uri);
  }
});

test('the canonical spellings stay served, byte for byte', () => {
  for (const uri of ['https://example.com/x', 'https://h/a%3Ab', 'https://h:8443/x', 'http://h:443/x', 'https://[::abcd]:8080/x', 'docs://public/page/1', 'file:///tmp/A.txt', 'mailto:User@Example.com', 'https://h/Path/UPPER', 'urn:isbn:0451450523']) {
    assert.equal(upstreamUriFault('docs', uri), undefined, uri);
    assert.deepEqual(parseGatewayUri(gatewayUri('docs', uri), servers), { server: 'docs', uri });
  }
});

test('a file URI is served only as file:///<path>: file:/p (the same file) and file://host/p (read as /p, scoped as file:/host/p) are refused', async () => {
  const { authorizeWithScope } = await import('../../src/policy/scope.js');
  for (const uri of ['file:/srv/secret/a.md', 'file://srv/etc/passwd', 'file://SRV/etc/passwd', 'file://127.0.0.1/etc/passwd', 'file:/etc/passwd', 'file://srv:21/etc/passwd']) {
    assert.equal(code(uri), 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', uri);
    assert.notEqual(upstreamUriFault('docs', uri), undefined, uri);
  }
  // Why: a task scoped to files under /srv covers the scope name of file://srv/etc/passwd.
  const permitAll = { authorize: () => ({ allowed: true, policies: ['p'], errors: [], cached: false }) };
  const task = { spiffeId: 'spiffe://example.org/a', trustDomain: 'example.org', path: '/a', attributes: {}, jti: 'j', expiresAt: 0, scope: ['resource:docs/file:/srv/**'] };
  assert.equal(authorizeWithScope(permitAll, { principal: task, action: 'resource.read', resource: { type: 'Resource', server: 'docs', uri: 'file://srv/etc/passwd' } }).allowed, true, 'the scope alone would let it through');
  for (const uri of ['file:///srv/a.md', 'file:///tmp/A.txt']) assert.equal(code(uri), undefined, uri);
});

test('an http(s), ws(s) or ftp URI is served only with //<host>: the forms WHATWG URL reads as the same URL are refused', () => {
  for (const uri of ['https:///api.example.com/secret', 'https:api.example.com/secret', 'https:/api.example.com/secret', 'http:///h/x', 'wss:/h/x', 'ftp:h/f', 'https://', 'https:', 'https://?q', 'https:///']) {
    assert.equal(code(uri), 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', uri);
    assert.notEqual(upstreamUriFault('docs', uri), undefined, uri);
  }
  for (const uri of ['https://api.example.com/secret', 'http://h/x', 'wss://h:8443/x', 'https://user@h/x']) assert.equal(code(uri), undefined, uri);
});

test('an http(s)/ws(s)/ftp URI is served only in the spelling WHATWG URL gives it (numeric host forms, characters it encodes)', () => {
  for (const uri of ['https://0x7f.1/x', 'https://2130706433/x', 'https://127.1/x', 'http://0177.0.0.1/x', "https://h/x?a='b", 'https://h/a"b']) {
    assert.equal(code(uri), 'TESSERA_GATEWAY_RESOURCE_URI_INVALID', uri);
  }
  for (const uri of ['https://127.0.0.1/x', 'https://h', 'https://h/x#frag', 'https://h/x?a=%27b']) assert.equal(code(uri), undefined, uri);
});
