/**
 * Attack on the gateway's one-timer-per-session idle expiry (ADR 0294): nothing but the
 * session's own requests may keep it alive — not an open GET stream, not requests naming its
 * Mcp-Session-Id from another agent or without a valid token — and a request late in the
 * timer's cycle still gets the whole timeout (no premature expiry).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGatewayHarness, rawMcp, INIT, PING_PROVIDER as provider } from '../gateway/harness.js';

const PROTOCOL = '2025-11-25';

test('session idle expiry: counts from the session\'s own last request only; never early', async () => {
  const h = await startGatewayHarness({
    policies: '@id("all") permit (principal, action == Tessera::Action::"tool.call", resource);',
    gateway: { session_idle_timeout: '1s' },
    providers: [provider],
  });
  try {
    const token = await h.login('spiffe://example.org/ns/idle/sa/agent');
    const other = await h.login('spiffe://example.org/ns/idle/sa/other');
    const init = await rawMcp(h.mcpUrl, token, INIT());
    const sid = init.headers.get('mcp-session-id')!;
    const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL };
    assert.equal((await rawMcp(h.mcpUrl, token, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), headers)).status, 202);
    const call = (t: string | undefined, id: number): ReturnType<typeof rawMcp> => rawMcp(h.mcpUrl, t, JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'local__ping', arguments: {} } }), headers);

    // No premature expiry: requests 750 ms apart (each late in the previous timer's cycle; the
    // gap is measured from the previous answer, and a gap the machine stretched past the
    // timeout is not counted against the gateway).
    let last = performance.now();
    for (let i = 0; i < 4; i++) {
      await sleep(750);
      const gap = performance.now() - last;
      last = performance.now();
      const r = await call(token, 10 + i);
      if (gap < 950) assert.equal(r.status, 200, `request ${i} ${Math.round(gap)} ms after the previous request: ${JSON.stringify(r.body)}`);
      else if (r.status !== 200) return; // the machine stalled past the timeout: nothing to judge
    }

    // From here only things that are not the session's requests: an open GET stream, another
    // agent naming the session, no token, a bad token — for three times the timeout.
    const stream = new AbortController();
    const get = fetch(h.mcpUrl, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers }, signal: stream.signal }).catch(() => undefined);
    const started = performance.now();
    let id = 100;
    while (performance.now() - started < 3000) {
      assert.equal((await call(other, id++)).status, 404, 'another agent gets "no such session"');
      assert.equal((await call(undefined, id++)).status, 401);
      assert.equal((await call(`${token.slice(0, -4)}AAAA`, id++)).status, 401);
      await sleep(200);
    }
    stream.abort();
    await get;
    const after = await call(token, id++);
    assert.equal(after.status, 404, `the session outlived its idle timeout without requests of its own: ${JSON.stringify(after.body)}`);
  } finally {
    await h.close();
  }
});
