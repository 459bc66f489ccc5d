/**
 * The bounded stdio transport (src/gateway/stdio-transport.ts) against real child processes
 * that write crafted lines: which request an oversized message fails, that the connection stays
 * usable, and that kill() ends the whole process group at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { BoundedStdioClientTransport, RESULT_TOO_LARGE } from '../../src/gateway/stdio-transport.js';

const LIMIT = 4096;

/**
 * A "server" that, for each request line it reads, writes what `script` returns for it
 * (`reply(msg)` → array of lines), in order.
 */
function server(script: string): BoundedStdioClientTransport {
  const src = `
    const rl = require('node:readline').createInterface({ input: process.stdin });
    const reply = ${script};
    rl.on('line', (l) => { for (const out of reply(JSON.parse(l))) process.stdout.write(out + '\\n'); });
  `;
  return new BoundedStdioClientTransport({ command: process.execPath, args: ['-e', src], env: {}, maxMessageBytes: LIMIT, graceMs: 200 });
}

async function started(t: BoundedStdioClientTransport): Promise<JSONRPCMessage[]> {
  const got: JSONRPCMessage[] = [];
  t.onmessage = (m) => got.push(m);
  await t.start();
  return got;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

const req = (id: number, big: boolean): JSONRPCMessage => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: big ? 'big' : 'small' } });
const tooLarge = (m: JSONRPCMessage): boolean => 'error' in m && (m.error.data as { code?: string } | undefined)?.code === RESULT_TOO_LARGE;

test('id at the start (Python SDK order): only that request fails, at once; the other is answered after', async () => {
  // Request 1 gets a huge answer with "id" first; request 2 a normal one.
  const t = server(`(m) => m.params.name === 'big' ? ['{"jsonrpc":"2.0","id":' + m.id + ',"result":{"text":"' + 'x'.repeat(${LIMIT * 3}) + '"}}'] : ['{"jsonrpc":"2.0","id":' + m.id + ',"result":{"text":"ok"}}']`);
  const got = await started(t);
  try {
    await t.send(req(1, true));
    await t.send(req(2, false));
    await until(() => got.length === 2, 'two answers');
    assert.ok(tooLarge(got[0]!) && (got[0] as { id: number }).id === 1);
    assert.deepEqual(got[1], { jsonrpc: '2.0', id: 2, result: { text: 'ok' } });
  } finally {
    await t.close();
  }
});

test('id at the end (TypeScript SDK order) with two requests in flight: the end of the line names the one to fail', async () => {
  const t = server(`(m) => m.params.name === 'big' ? ['{"result":{"text":"' + 'x'.repeat(${LIMIT * 3}) + '"},"jsonrpc":"2.0","id":' + m.id + '}'] : ['{"result":{"text":"ok"},"jsonrpc":"2.0","id":' + m.id + '}']`);
  const got = await started(t);
  try {
    // Both sent before the server answers the first: two in flight when the big line arrives.
    await Promise.all([t.send(req(5, true)), t.send(req(6, false))]);
    await until(() => got.length === 2, 'two answers');
    const byId = new Map(got.map((m) => [(m as { id: number }).id, m]));
    assert.ok(tooLarge(byId.get(5)!));
    assert.deepEqual(byId.get(6), { result: { text: 'ok' }, jsonrpc: '2.0', id: 6 });
  } finally {
    await t.close();
  }
});

test('an oversized message with no id while several requests are in flight fails all of them; the next line is read normally', async () => {
  const t = server(`(m) => m.id === 9 ? ['{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"' + 'x'.repeat(${LIMIT * 2}) + '"}}', '{"jsonrpc":"2.0","id":10,"result":{}}'] : []`);
  const got = await started(t);
  try {
    await t.send(req(8, false));
    await t.send(req(9, false));
    await until(() => got.length >= 3, 'answers');
    assert.deepEqual(got.slice(0, 2).map((m) => [(m as { id: number }).id, tooLarge(m)]).sort(), [[8, true], [9, true]]);
    assert.deepEqual(got[2], { jsonrpc: '2.0', id: 10, result: {} });
  } finally {
    await t.close();
  }
});

test('kill() ends the server and the processes it started (its process group) at once', async () => {
  // A wrapper that starts a grandchild (like npx → node) and reports its pid.
  const t = server(`(() => { const c = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); return (m) => ['{"jsonrpc":"2.0","id":' + m.id + ',"result":{"pid":' + c.pid + '}}']; })()`);
  const got = await started(t);
  let closed = false;
  t.onclose = () => (closed = true);
  await t.send(req(1, false));
  await until(() => got.length === 1, 'the pid');
  const grandchild = (got[0] as unknown as { result: { pid: number } }).result.pid;
  const pid = t.pid!;
  await t.kill();
  assert.ok(closed, 'onclose fired');
  const alive = (p: number): boolean => {
    try {
      process.kill(p, 0);
      return true;
    } catch {
      return false;
    }
  };
  assert.equal(alive(pid), false);
  await until(() => !alive(grandchild), 'the grandchild to be gone');
  await assert.rejects(t.send(req(2, false)), /Not connected/);
});
