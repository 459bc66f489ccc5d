/**
 * The proxy core's pure parts: path checks, path templates, query keys, body fields, the
 * Proxy-Authorization forms, upstream failure mapping and the default streaming scrubber.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { checkPath, pathTemplate, queryKeys, upstreamFailure } from '../../src/proxy/request.js';
import { proxyAuthorizationToken } from '../../src/proxy/auth.js';
import { createScrubStream } from '../../src/proxy/scrub-stream.js';
import { fillFormat } from '../../src/proxy/credential.js';
import { createScrubber } from '../../src/gateway/scrub/index.js';
import { TesseraError } from '../../src/shared/errors.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return (e as TesseraError).code;
  }
  return undefined;
};

test('checkPath: dot segments (also encoded), backslash, controls, bad percent-encoding → TESSERA_PROXY_PATH_INVALID', () => {
  for (const p of ['/../x', '/a/..', '/a/%2e%2e/b', '/a/%2E/b', '/./a', '/a\\b', '/a b', '/a\x00', '/a%zz', '/a%4']) assert.equal(code(() => checkPath(p)), 'TESSERA_PROXY_PATH_INVALID', p);
  for (const p of ['', '/', '/v1/items', '/a/%2F/b', '/a..b/c.d', '/%41']) assert.equal(code(() => checkPath(p)), undefined, p);
});

test('pathTemplate: id-like segments become {id}', () => {
  assert.equal(pathTemplate('/v1/users/12345/orders'), '/v1/users/{id}/orders');
  assert.equal(pathTemplate('/v1/x/3f2504e0-4f89-11d3-9a0c-0305e82c3301'), '/v1/x/{id}');
  assert.equal(pathTemplate('/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/send'), '/{id}/send');
  assert.equal(pathTemplate('/v1/chat/completions'), '/v1/chat/completions');
});

test('queryKeys: names only, decoded, deduplicated', () => {
  assert.deepEqual(queryKeys(''), []);
  assert.deepEqual(queryKeys('?a=1&b=2&a=3&c&%64ebug=x&e+f=1'), ['a', 'b', 'c', 'debug', 'e f']);
});

test('Proxy-Authorization: Bearer, Basic with the token as password (percent-encoded too); malformed forms refused', () => {
  assert.equal(proxyAuthorizationToken(undefined), undefined);
  assert.equal(proxyAuthorizationToken('Bearer abc.def-ghi'), 'abc.def-ghi');
  assert.equal(proxyAuthorizationToken(`Basic ${Buffer.from('agent:abc.def').toString('base64')}`), 'abc.def');
  assert.equal(proxyAuthorizationToken(`basic ${Buffer.from(':abc').toString('base64')}`), 'abc');
  assert.equal(proxyAuthorizationToken(`Basic ${Buffer.from('agent:a%2Bb').toString('base64')}`), 'a+b');
  for (const v of ['Digest x', 'Bearer', 'Basic', 'Basic !!', `Basic ${Buffer.from('nocolon').toString('base64')}`, `Basic ${Buffer.from('a:').toString('base64')}`, `Basic ${Buffer.from('a:b c').toString('base64')}`]) {
    assert.equal(code(() => proxyAuthorizationToken(v)), 'TESSERA_PROXY_AUTH_MALFORMED', v);
  }
});

test('upstreamFailure: timeouts → 504, others → 502, a wrapped TesseraError is kept', () => {
  assert.equal(upstreamFailure(Object.assign(new Error('t'), { code: 'UND_ERR_HEADERS_TIMEOUT' }), 'r').code, 'TESSERA_PROXY_UPSTREAM_TIMEOUT');
  assert.equal(upstreamFailure(Object.assign(new Error('t'), { code: 'UND_ERR_BODY_TIMEOUT' }), 'r').code, 'TESSERA_PROXY_UPSTREAM_TIMEOUT');
  assert.equal(upstreamFailure(Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } }), 'r').code, 'TESSERA_PROXY_UPSTREAM_UNAVAILABLE');
  const inner = new TesseraError('TESSERA_PROXY_TARGET_FORBIDDEN', 'no');
  assert.equal(upstreamFailure(new Error('x', { cause: inner }), 'r'), inner);
});

test('fillFormat fills the placeholders', () => {
  assert.equal(fillFormat('Basic {username}:{password}', { username: 'u', password: 'p' }), 'Basic u:p');
  assert.equal(fillFormat('{value}', { value: 'v' }), 'v');
});

test('the proxy\'s streaming scrubber (createScrubStream): a value split across chunks at every position is redacted; other bytes pass unchanged', async () => {
  const secret = 'sk-test-0123456789abcdef';
  const scrubber = createScrubber([{ value: secret, label: 'kv/x' }], { shapes: false });
  const body = `before ${secret} middle ${Buffer.from(secret).toString('base64')} after \u00e9\u4e2d`;
  const bytes = Buffer.from(body, 'utf8');
  for (let cut = 1; cut < bytes.length; cut += 3) {
    let hits = 0;
    const out = await text(Readable.from([bytes.subarray(0, cut), bytes.subarray(cut)]).pipe(createScrubStream(scrubber, { onHits: (h) => (hits += h.length) })));
    assert.ok(!out.includes(secret), `cut ${cut}`);
    assert.ok(!out.includes(Buffer.from(secret).toString('base64')), `cut ${cut}`);
    assert.equal(hits, 2, `cut ${cut}`);
    assert.ok(out.startsWith('before [REDACTED') && out.endsWith(' after \u00e9\u4e2d'), out);
  }
});
