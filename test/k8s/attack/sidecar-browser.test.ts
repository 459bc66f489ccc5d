/**
 * Attack (issue 12, security review): the sidecar turns the pod's identity into an ambient
 * credential on 127.0.0.1 — anything that can make the app's process send a request there gets
 * it used. An AI agent often drives a browser (Playwright, headless Chrome) in the same pod: a
 * web page it loads can send `fetch('http://127.0.0.1:15001/<route>/…', {method: 'POST', mode:
 * 'no-cors'})` (a "simple" cross-origin request: no preflight, the side effect happens) or, after
 * DNS rebinding (its own name resolving to 127.0.0.1), a same-origin request with
 * `Host: evil.example:15001`. The sidecar must refuse what a browser marks as coming from a page
 * (`Origin` other than the endpoint's own loopback origin, `Sec-Fetch-Site` other than
 * same-origin/none) and a `Host` that is not a loopback name (MCP transports 2025-11-25
 * "Security Warning"; Tessera's own API does the same, src/server/origin.ts).
 *
 * Real Tessera and real upstreams on loopback (test/k8s/agent/harness.ts); the browser is
 * simulated by the exact headers a browser sends (no browser runs here).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, until, PLAIN_KEY, type Stack } from '../agent/harness.js';
import { sidecar, viaProxy, type TestSidecar } from '../agent/clients.js';

let stack: Stack;
let s: TestSidecar;

before(async () => {
  stack = await startStack();
  s = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, proxyUrl: stack.proxyUrl });
  await until(() => s.keeper.current() !== undefined, 'the first login');
});

after(async () => {
  await s?.close();
  await stack?.close();
});

const code = (body: string): string => (JSON.parse(body) as { error: { code: string } }).error.code;
const portOf = (addr: string): string => new URL(addr).port;

describe('local proxy, origin-form (reverse routes): requests from a web page are refused', () => {
  test('a cross-site page (Origin + Sec-Fetch-Site: cross-site) gets 403 TESSERA_AGENT_ORIGIN_NOT_ALLOWED; nothing reaches the upstream', async () => {
    const before = stack.plain.seen.length;
    for (const headers of <Record<string, string>[]>[
      { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' },
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' }, // <img src> / no-cors GET: no Origin, but Fetch Metadata
      { 'sec-fetch-site': 'same-site' },
      { origin: `http://127.0.0.1:${Number(portOf(s.proxyAddress!)) + 1}` }, // another loopback port is another origin
    ]) {
      const r = await viaProxy(s.proxyAddress!, '/plain/v1/send', headers, 'POST', 'hello');
      assert.equal(r.status, 403, `${JSON.stringify(headers)}: ${r.body}`);
      assert.equal(code(r.body), 'TESSERA_AGENT_ORIGIN_NOT_ALLOWED');
    }
    assert.equal(stack.plain.seen.length, before, 'the upstream saw none of them');
  });

  test('DNS rebinding (Host: evil.example:<port>) gets 403 TESSERA_AGENT_HOST_NOT_ALLOWED', async () => {
    const before = stack.plain.seen.length;
    for (const host of [`evil.example:${portOf(s.proxyAddress!)}`, 'evil.example', `10.0.0.7:${portOf(s.proxyAddress!)}`, `127.0.0.1:${Number(portOf(s.proxyAddress!)) + 1}`]) {
      const r = await viaProxy(s.proxyAddress!, '/plain/v1/models', { host });
      assert.equal(r.status, 403, `${host}: ${r.body}`);
      assert.equal(code(r.body), 'TESSERA_AGENT_HOST_NOT_ALLOWED');
    }
    assert.equal(stack.plain.seen.length, before);
  });

  test('what the app itself sends is still relayed: loopback Host names, same-origin / none fetch metadata, own origin', async () => {
    const port = portOf(s.proxyAddress!);
    for (const headers of <Record<string, string>[]>[
      { host: `127.0.0.1:${port}` },
      { host: `localhost:${port}` },
      { host: `LOCALHOST:${port}` },
      { host: `[::1]:${port}` },
      { host: `127.0.0.1:${port}`, 'sec-fetch-site': 'none' },
      { host: `127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin', origin: `http://127.0.0.1:${port}` },
      { host: `localhost:${port}`, origin: `http://localhost:${port}` },
    ]) {
      const r = await viaProxy(s.proxyAddress!, '/plain/v1/models', headers);
      assert.equal(r.status, 200, `${JSON.stringify(headers)}: ${r.body}`);
      assert.equal(stack.plain.seen.at(-1)!.headers.authorization, `Bearer ${PLAIN_KEY}`);
    }
  });

  test('absolute-form (the app using HTTP_PROXY) is not affected: the Host is the target, Origin goes to Tessera', async () => {
    const r = await viaProxy(s.proxyAddress!, 'http://plain.test/items', { origin: 'https://app.example' });
    assert.equal(r.status, 200, r.body);
  });
});

describe('local MCP endpoint: requests from a web page are refused', () => {
  test('cross-site Origin / Sec-Fetch-Site → 403 TESSERA_AGENT_ORIGIN_NOT_ALLOWED; rebinding Host → TESSERA_AGENT_HOST_NOT_ALLOWED', async () => {
    const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'evil', version: '1' } } });
    const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const cross = await viaProxy(s.mcpAddress!, '/mcp', { ...mcpHeaders, 'sec-fetch-site': 'cross-site' }, 'POST', init);
    assert.equal(cross.status, 403, cross.body);
    assert.equal(code(cross.body), 'TESSERA_AGENT_ORIGIN_NOT_ALLOWED');
    const originOnly = await viaProxy(s.mcpAddress!, '/mcp', { ...mcpHeaders, origin: 'http://evil.example' }, 'POST', init);
    assert.equal(code(originOnly.body), 'TESSERA_AGENT_ORIGIN_NOT_ALLOWED');
    const rebound = await viaProxy(s.mcpAddress!, '/mcp', { ...mcpHeaders, host: `evil.example:${portOf(s.mcpAddress!)}` }, 'GET');
    assert.equal(rebound.status, 403, rebound.body);
    assert.equal(code(rebound.body), 'TESSERA_AGENT_HOST_NOT_ALLOWED');
    // The app's own MCP client (no Origin, loopback Host) still initializes.
    const ok = await viaProxy(s.mcpAddress!, '/mcp', mcpHeaders, 'POST', init);
    assert.equal(ok.status, 200, ok.body);
  });
});
