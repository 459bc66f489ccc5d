/**
 * Attack on the memoised Host/authority keys of the proxy's framing check (ADR 0298 §5,
 * src/proxy/hygiene.ts authorityKey): the cache key must tell the scheme apart for every
 * authority. Keyed `authority` for http and `s:authority` for https, the http authority `s:80`
 * (key `s:80`, value `s`) answered for the https authority `80` (key `s:80`): an absolute-form
 * `https://80/` with `Host: s` then passed the Host/target agreement check, which compares the
 * two normalised authorities.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { checkFraming } from '../../src/proxy/hygiene.js';

function req(url: string, host: string): IncomingMessage {
  return { url, method: 'GET', httpVersion: '1.1', rawHeaders: ['Host', host], headers: { host }, socket: new Socket() } as unknown as IncomingMessage;
}

const code = (f: () => void): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as { details?: { reason?: string } }).details?.reason ?? (e as Error).message;
  }
};

test('the authority cache keeps http and https apart: a collision never makes a Host agree with another target', () => {
  // The straightforward answers, each on a fresh spelling first.
  assert.equal(code(() => checkFraming(req('http://s:80/x', 's:80'))), undefined);
  // The https authority "80" is not "s": the Host must not agree.
  assert.equal(code(() => checkFraming(req('https://80/x', 's'))), 'host_mismatch');
  assert.equal(code(() => checkFraming(req('http://s:8080/x', 's:8080'))), undefined);
  assert.equal(code(() => checkFraming(req('https://8080/x', 's:8080'))), 'host_mismatch');
});
