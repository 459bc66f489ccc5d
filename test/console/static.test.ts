/**
 * The console's files at /ui (src/console/static.ts): served from memory by exact path, with
 * the console's Content-Security-Policy and hardening headers; no URL spelling reaches a file
 * outside the built console; a missing build answers 503 TESSERA_CONSOLE_NOT_BUILT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness } from '../e2e/harness.js';
import { CONSOLE_CSP, loadConsoleFiles, registerConsoleStatic } from '../../src/console/static.js';
import { CONSOLE_DIR } from '../../src/main.js';
import { createApp } from '../../src/server/app.js';
import { silentLogger } from '../../src/shared/logger.js';

/** A GET with the request target exactly as given (fetch would normalise `..` and `%2e`). */
function rawGet(base: string, target: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: target, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the built console is served at /ui with its CSP and hardening headers; client routes get index.html', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const root = await rawGet(h.url, '/ui');
  assert.equal(root.status, 308);
  assert.equal(root.headers.location, '/ui/');
  const index = readFileSync(join(CONSOLE_DIR, 'index.html'), 'utf8');
  for (const path of ['/ui/', '/ui/agents', '/ui/tasks/txn_abc?x=1', '/ui/index.html']) {
    const r = await rawGet(h.url, path);
    assert.equal(r.status, 200, path);
    assert.equal(r.body, index, path);
    assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(r.headers['content-security-policy'], CONSOLE_CSP);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
    assert.equal(r.headers['cache-control'], 'no-cache');
  }
  const asset = readdirSync(join(CONSOLE_DIR, 'assets')).find((f) => f.endsWith('.js'))!;
  const js = await rawGet(h.url, `/ui/assets/${asset}`);
  assert.equal(js.status, 200);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
  const missing = await rawGet(h.url, '/ui/assets/index-deadbeef.js');
  assert.equal(missing.status, 404);
  assert.equal(JSON.parse(missing.body).error.code, 'TESSERA_NOT_FOUND');
});

test('the CSP forbids inline script and style, framing and foreign origins; index.html needs no inline code', () => {
  for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) {
    assert.ok(CONSOLE_CSP.includes(directive), directive);
  }
  assert.doesNotMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval|\*|https?:/);
  const index = readFileSync(join(CONSOLE_DIR, 'index.html'), 'utf8');
  assert.doesNotMatch(index, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline <script>');
  assert.doesNotMatch(index, /<style\b|\sstyle=|\son[a-z]+=/i, 'no inline style or event handler');
  assert.doesNotMatch(index, /https?:\/\//, 'nothing fetched from another origin');
});

test('no spelling of a path reaches a file outside the built console', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const pkg = readFileSync('package.json', 'utf8');
  const index = readFileSync(join(CONSOLE_DIR, 'index.html'), 'utf8');
  for (const target of [
    '/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/%2E%2E/%2E%2E/package.json', '/ui/assets/..%2f..%2f..%2fpackage.json',
    '/ui/assets/%2e%2e%2f%2e%2e%2fsrc%2fmain.ts', '/ui/..%5c..%5cpackage.json', '/ui//etc/passwd', '/ui/%00', '/ui/assets/%2e%2e/index.html',
    '/ui/./index.html', '/ui/assets/../../../../etc/passwd',
  ]) {
    const r = await rawGet(h.url, target);
    assert.ok(r.status < 500, `${target}: ${r.status}`);
    assert.ok(!r.body.includes('"name": "tessera-broker"') && r.body !== pkg, `${target} leaked package.json`);
    assert.doesNotMatch(r.body, /root:x:0:0/, target);
    if (r.status === 200) assert.equal(r.body, index, `${target} answers only index.html`);
  }
});

test('without a built console, /ui answers 503 TESSERA_CONSOLE_NOT_BUILT and the API keeps working', async (t) => {
  assert.equal(loadConsoleFiles(mkdtempSync(join(tmpdir(), 'no-console-'))), undefined);
  const app = createApp({ logger: silentLogger, replicaId: 'r', bodyLimit: 1024, admin: { authenticate: async () => { throw new Error('unused'); } }, agents: { authenticate: async () => { throw new Error('unused'); } } });
  registerConsoleStatic(app, undefined);
  app.get('/v1/ping', async () => ({ ok: true }));
  t.after(() => app.close());
  const r = await app.inject({ method: 'GET', url: '/ui/agents' });
  assert.equal(r.statusCode, 503);
  assert.equal(r.json().error.code, 'TESSERA_CONSOLE_NOT_BUILT');
  assert.match(r.json().error.message, /npm run build/);
  assert.equal((await app.inject({ method: 'GET', url: '/v1/ping' })).statusCode, 200);
});
