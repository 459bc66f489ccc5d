/**
 * A tool call's audit event survives a crash of the server once the call was answered, although
 * under `audit.flush: grouped` (the default) it is not fdatasync-ed before the answer (ADR 0185):
 * it is in the SQLite WAL, written with write() before the gateway answered. The real binary
 * (`tessera dev`, a separate process) runs a real stdio upstream; an official MCP SDK client
 * calls a tool; the server is killed with SIGKILL (no shutdown, no close(), no final flush) with
 * a group-flush window far longer than the test; the database then holds the event, and the
 * chain verifies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const BIN = join(process.cwd(), 'bin', 'tessera.js');
const ROOT = 'dev-root-token-for-crash-test-0123456789';

test('kill -9 right after a tools/call was answered: its gateway.tool_call event is in the store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-crash-'));
  const dataDir = join(dir, 'data');
  const config = join(dir, 'gateway.yaml');
  writeFileSync(config, `audit:
  flush: grouped
  flush_window: 10s
gateway:
  servers:
    - name: docs
      transport: stdio
      command: ${process.execPath}
      args: [${JSON.stringify(join(process.cwd(), 'test', 'gateway', 'fixtures', 'env-echo-server.mjs'))}]
log:
  level: warn
`);
  const child = spawn(process.execPath, [BIN, 'dev', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--root-token', ROOT, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += String(d)));
  child.stderr.on('data', (d) => (out += String(d)));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  let client: Client | undefined;
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tessera dev did not start:\n${out}`)), 60_000);
      child.stdout.on('data', () => {
        const m = /Ctrl-C to stop/.test(out) && /running at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      void exited.then(() => reject(new Error(`tessera dev exited:\n${out}`)));
    });
    const login = spawnSync(process.execPath, [BIN, 'login', '--join-token-file', join(dataDir, 'demo-join-token'), '--audience', `${url}/mcp`, '--print'], { encoding: 'utf8', env: { ...process.env, TESSERA_ADDR: url }, timeout: 60_000 });
    assert.equal(login.status, 0, login.stderr);
    const token = login.stdout.trim();

    client = new Client({ name: 'crash-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    const marker = `crash-marker-${process.pid}`;
    const result = await client.callTool({ name: 'docs__echo', arguments: { text: marker } });
    assert.equal(result.isError ?? false, false, JSON.stringify(result));
    assert.match(JSON.stringify(result.content), new RegExp(marker));

    // The call took the deferred path (written, not yet synced by a group flush).
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /tessera_audit_store_commits_total\{flush="deferred"\} [1-9]/);
  } finally {
    child.kill('SIGKILL');
    await client?.close().catch(() => undefined);
  }
  assert.equal(await exited, 'SIGKILL');

  const db = new Database(join(dataDir, 'tessera.db'), { readonly: true });
  try {
    const rows = db.prepare("SELECT seq, body FROM audit_events WHERE kind = 'gateway.tool_call'").all() as { seq: number; body: string }[];
    assert.equal(rows.length, 1, 'the answered call has its event');
    const event = JSON.parse(rows[0]!.body) as { resource: string; result: string; details: { outcome: string } };
    assert.equal(event.resource, 'docs/echo');
    assert.equal(event.result, 'allow');
    assert.equal(event.details.outcome, 'delivered');
  } finally {
    db.close();
  }
  // The chain (and its signed head, committed in the same transaction) is intact after the crash.
  const verify = spawnSync(process.execPath, [BIN, 'audit', 'verify', '--offline', '--data-dir', dataDir, '--json'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
});
