/**
 * Attack on issue 10 (finding A10-1, ADR 0221): the proxy scrubbed the injected credential from
 * response BODIES only; an upstream echoing it in a response header field (X-Echo,
 * WWW-Authenticate, Set-Cookie, a Location carrying a query-mode key) handed it to the agent.
 * scrubResponseHeaders is the fix for the whole kind, checked here with the real scrubber the
 * proxy builds per request (createScrubber(secrets, { shapes: false })) in every form the body
 * scrubber knows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createScrubber } from '../../src/gateway/scrub/index.js';
import { scrubResponseHeaders } from '../../src/proxy/hygiene.js';

const KEY = `sk-live-${randomBytes(16).toString('hex')}`;
const scrubber = createScrubber([{ value: KEY, label: 'kv/echo/key' }], { shapes: false });

function leaks(h: Record<string, string | string[]>): string[] {
  const forms = [KEY, Buffer.from(KEY).toString('base64'), Buffer.from(KEY).toString('hex'), encodeURIComponent(`${KEY} `)];
  return Object.entries(h).flatMap(([n, v]) => [n, ...(Array.isArray(v) ? v : [v])]).filter((x) => forms.some((f) => x.toLowerCase().includes(f.toLowerCase())));
}

test('A10-1 every header value that carries the key, in any form the body scrubber knows, is redacted', () => {
  const headers: Record<string, string | string[]> = {
    'x-echo': KEY,
    'www-authenticate': `Bearer error="invalid_token", error_description="bad key ${KEY}"`,
    'set-cookie': [`s=${KEY}; Path=/`, 'other=1', `b=${Buffer.from(KEY).toString('base64')}`],
    location: `/echoq/next?api_key=${encodeURIComponent(KEY)}&x=1`,
    'x-hex': Buffer.from(KEY).toString('hex').toUpperCase(),
    'x-json': JSON.stringify({ key: KEY }),
    'content-type': 'application/json',
  };
  const r = scrubResponseHeaders(headers, scrubber);
  assert.deepEqual(leaks(r.headers), [], JSON.stringify(r.headers));
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual((r.headers['set-cookie'] as string[])[1], 'other=1');
  assert.match(String(r.headers['x-echo']), /^\[REDACTED:/);
  assert.match(String(r.headers.location), /^\/echoq\/next\?api_key=\[REDACTED:[a-z0-9_-]+\]&x=1$/);
  assert.ok(r.hits.length >= 7, `hits: ${r.hits.length}`);
  assert.equal(headers['x-echo'], KEY, 'the input is not changed');
});

test('A10-1 a header whose NAME carries the key is dropped; clean headers pass unchanged with no hits', () => {
  const r = scrubResponseHeaders({ [`x-${KEY}`]: '1', 'x-ok': 'fine', vary: 'accept' }, scrubber);
  assert.deepEqual(Object.keys(r.headers), ['x-ok', 'vary']);
  const clean = scrubResponseHeaders({ 'x-ok': 'fine', 'set-cookie': ['a=1', 'b=2'] }, scrubber);
  assert.deepEqual(clean, { headers: { 'x-ok': 'fine', 'set-cookie': ['a=1', 'b=2'] }, hits: [] });
});

test('A10-1 every marker is a legal header value (no CR/LF/controls; node accepts it)', async () => {
  const { validateHeaderValue } = await import('node:http');
  const r = scrubResponseHeaders({ a: `x ${KEY} y`, b: [KEY, KEY] }, scrubber);
  for (const [n, v] of Object.entries(r.headers)) for (const x of Array.isArray(v) ? v : [v]) assert.doesNotThrow(() => validateHeaderValue(n, x));
});
