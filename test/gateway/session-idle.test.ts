/**
 * gateway.session_idle_timeout counts from a session's last request: one timer per session,
 * re-armed when it fires while the session is in use (ADR 0294), so a session in steady use
 * outlives its timeout, and one left alone is closed soon after it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGatewayHarness, rawMcp, INIT, PING_PROVIDER as provider } from './harness.js';

const PROTOCOL = '2025-11-25';

test('a session in use outlives session_idle_timeout; left alone it is closed', async () => {
  const h = await startGatewayHarness({
    policies: '@id("all") permit (principal, action == Tessera::Action::"tool.call", resource);',
    gateway: { session_idle_timeout: '1s' },
    providers: [provider],
  });
  try {
    const token = await h.login('spiffe://example.org/ns/idle/sa/agent');
    const init = await rawMcp(h.mcpUrl, token, INIT());
    const sid = init.headers.get('mcp-session-id')!;
    assert.ok(sid);
    const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL };
    assert.equal((await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), headers)).status, 202);
    const call = (id: number): ReturnType<typeof rawMcp> => rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'local__ping', arguments: {} } }), headers);
    // Three times the timeout, a request every quarter of it: the first timer fires while the
    // session is in use and is re-armed from the last request.
    const started = performance.now();
    let id = 1;
    while (performance.now() - started < 3000) {
      const r = await call(id++);
      assert.equal(r.status, 200, `request ${id - 1} after ${Math.round(performance.now() - started)} ms: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.result?.content?.[0]?.text, 'pong');
      await sleep(250);
    }
    // Left alone: closed after the timeout (polled, bounded).
    let status = 200;
    for (let i = 0; i < 100 && status !== 404; i++) {
      await sleep(100);
      const r = await fetch(`${h.url}/metrics`);
      const open = Number(/^tessera_gateway_sessions (\d+)/m.exec(await r.text())?.[1] ?? NaN);
      if (open === 0) status = (await call(id++)).status;
    }
    assert.equal(status, 404, 'the idle session was closed');
  } finally {
    await h.close();
  }
});
