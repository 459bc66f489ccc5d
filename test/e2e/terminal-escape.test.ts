/**
 * An agent cannot write on the operator's terminal (issue 7, item 8). A real agent calls a
 * tool whose name carries ANSI escape sequences, a carriage return, a newline and a bidi
 * override through the real MCP gateway (official SDK client); the real `tessera` binary, run
 * as a separate process against the real server, then shows the audit event escaped on one
 * line, keeps `--json` valid and exact, and escapes a server error that echoes the input.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startGatewayHarness, type GatewayHarness } from '../gateway/harness.js';

const BIN = join(process.cwd(), 'bin', 'tessera.js');
/** What a hostile agent puts in a tool name: erase the line, return, fake a line, reverse the text. */
const HOSTILE = 'x\x1b[2K\r2026-01-01T00:00:00.000Z  server.started  system  OK\nforged\u202edesrever\u2066\x9b31m\x7f\u200b\u{e0041}';
/** Raw characters that must never reach a terminal (newlines are checked by counting lines). */
const RAW_UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const unsafe = (s: string): boolean => RAW_UNSAFE.test(s.replaceAll('\n', ''));

let h: GatewayHarness;
after(async () => {
  await h?.close();
});

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('a tool name with control and bidi characters is escaped by `tessera audit tail`, exact in --json', async () => {
  h = await startGatewayHarness({ gateway: {}, policies: '' });
  const token = await h.login('spiffe://example.org/agent/hostile');
  const client = await h.connect(token);
  // Refused (no such tool) — and audited with the name the agent sent.
  await assert.rejects(client.callTool({ name: HOSTILE, arguments: {} }), /no tool/);
  await h.tessera.audit.flush();

  const env = { TESSERA_ADDR: h.url, TESSERA_TOKEN: h.tessera.adminToken! };
  const human = await cli(['audit', 'tail', '--kind', 'gateway.tool_call'], env);
  assert.equal(human.code, 0, human.stderr);
  assert.ok(!unsafe(human.stdout), human.stdout);
  const lines = human.stdout.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `one event, one line: ${JSON.stringify(human.stdout)}`);
  assert.ok(lines[0]!.includes('x\\x1b[2K\\r2026-01-01T00:00:00.000Z  server.started  system  OK\\nforged\\u202edesrever\\u2066\\x9b31m\\x7f\\u200b\\u{e0041}'), lines[0]!);

  const json = await cli(['--json', 'audit', 'tail', '--kind', 'gateway.tool_call'], env);
  assert.equal(json.code, 0, json.stderr);
  assert.ok(!unsafe(json.stdout), json.stdout);
  const events = json.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: { resource: string } });
  assert.equal(events.length, 1);
  assert.equal(events[0]!.event.resource, HOSTILE, 'the JSON decodes to exactly what was stored');
});

test('a server error that echoes the request is escaped on stderr; --json errors stay valid', async () => {
  const env = { TESSERA_ADDR: h.url, TESSERA_TOKEN: h.tessera.adminToken! };
  // The server names the context key it refuses: the key is whatever the caller sent.
  const key = 'k\x1b[2K\rerror: forged\u202e';
  const args = ['policy', 'check', '--principal', 'spiffe://example.org/agent/a', '--action', 'secret.read', '--resource', 'Secret::a/b', '--context', JSON.stringify({ [key]: 1 })];
  const r = await cli(args, env);
  assert.equal(r.code, 1);
  assert.ok(!unsafe(r.stderr), r.stderr);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  assert.match(r.stderr, /^error: .*k\\x1b\[2K\\rerror: forged\\u202e.*\[TESSERA_[A-Z_]+\] \(request id [^)]+\)\n$/);
  const j = await cli(['--json', ...args], env);
  assert.equal(j.code, 1);
  assert.ok(!unsafe(j.stderr), j.stderr);
  const body = JSON.parse(j.stderr) as { error: { code: string; message: string } };
  assert.ok(body.error.message.includes(key), body.error.message);
});

test('kv list shows an operator-typed description with escapes visibly, in its table cell', async () => {
  const env = { TESSERA_ADDR: h.url, TESSERA_TOKEN: h.tessera.adminToken! };
  const put = await cli(['kv', 'put', 'esc/demo', 'v', '--mode', 'read', '--description', 'db\x1b]0;pwned\x07\nsecond line'], env);
  assert.equal(put.code, 0, put.stderr);
  const list = await cli(['kv', 'list', 'esc'], env);
  assert.equal(list.code, 0, list.stderr);
  assert.ok(!unsafe(list.stdout), list.stdout);
  assert.equal(list.stdout.split('\n').filter(Boolean).length, 2, list.stdout);
  assert.ok(list.stdout.includes('db\\x1b]0;pwned\\x07\\nsecond line'), list.stdout);
});
