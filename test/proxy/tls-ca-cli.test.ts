import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { runtime, type RunningTessera } from '../../src/main.js';
import { runCli } from '../../src/cli/index.js';
import type { CliIo } from '../../src/cli/io.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';

async function cli(argv: string[], addr: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: { write: (s: string) => (stdout += s), isTTY: false }, stderr: { write: (s: string) => (stderr += s) }, env: { TESSERA_ADDR: addr } };
  return { code: await runCli(argv, runtime, io), stdout, stderr };
}

test('`tessera init` creates the proxy CA (audited); the server serves it at GET /v1/proxy/ca.pem; `tessera proxy ca` prints and writes it; a restart keeps it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-proxy-ca-cli-'));
  try {
    const file = join(dir, 'tessera.yaml');
    writeFileSync(file, `data_dir: ${join(dir, 'data')}\ntrust_domain: ca-cli.example\nserver:\n  listen: 127.0.0.1:0\npolicy:\n  dir: ${resolve('examples/policies')}\n`);
    await runtime.init({ configPath: file });
    const store = openSqliteStore({ file: join(dir, 'data', 'tessera.db') });
    let pem: string;
    try {
      const row = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', ['proxy_ca_cert']);
      assert.ok(row, 'created at init');
      pem = row.value;
      assert.ok(await store.get('SELECT value FROM meta WHERE key = ?', ['sealed:proxy-ca']));
      const ev = await store.all<{ kind: string }>("SELECT kind FROM audit_events WHERE kind = 'proxy.ca_created'");
      assert.equal(ev.length, 1);
    } finally {
      await store.close();
    }
    const fingerprint = new X509Certificate(pem).fingerprint256;
    assert.match(new X509Certificate(pem).subject, /CN=Tessera proxy CA \(ca-cli\.example\)/);

    const server = (await runtime.server({ configPath: file })) as RunningTessera;
    try {
      const res = await fetch(`${server.localUrl}/v1/proxy/ca.pem`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/x-pem-file');
      assert.equal(res.headers.get('x-tessera-ca-fingerprint'), fingerprint);
      const body = await res.text();
      assert.equal(new X509Certificate(body).fingerprint256, fingerprint, 'the same CA as init made: not replaced at start');
      assert.equal(body.trim(), pem.trim());

      const printed = await cli(['proxy', 'ca'], server.localUrl);
      assert.equal(printed.code, 0, printed.stderr);
      assert.equal(printed.stdout.trim(), pem.trim());
      assert.match(printed.stderr, new RegExp(`SHA-256 fingerprint ${fingerprint}`));
      const out = join(dir, 'ca.pem');
      const written = await cli(['proxy', 'ca', '--out', out], server.localUrl);
      assert.equal(written.code, 0, written.stderr);
      assert.equal(written.stdout, '');
      assert.equal(readFileSync(out, 'utf8').trim(), pem.trim());
      assert.equal(statSync(out).mode & 0o777, 0o644);
      const json = await cli(['proxy', 'ca', '--json'], server.localUrl);
      assert.equal(JSON.parse(json.stdout).fingerprint_sha256, fingerprint);
      assert.equal(JSON.parse(json.stdout).subject, 'CN=Tessera proxy CA (ca-cli.example), O=Tessera', 'one line, as docs/proxy-tls.md writes it');
      const unwritable = await cli(['proxy', 'ca', '--out', join(dir, 'missing', 'ca.pem')], server.localUrl);
      assert.equal(unwritable.code, 1);
      assert.match(unwritable.stderr, /TESSERA_CLI_FILE_WRITE_FAILED/);
      // Not a Tessera server (a route that answers something else).
      const wrong = await cli(['proxy', 'ca', '--addr', `${server.localUrl}/healthz#`], server.localUrl);
      assert.notEqual(wrong.code, 0);
    } finally {
      await server.close();
    }
    const down = await cli(['proxy', 'ca'], 'http://127.0.0.1:9');
    assert.equal(down.code, 3);
    assert.match(down.stderr, /TESSERA_CLI_CONNECT_FAILED/);

    const dev = (await runtime.dev({ configPath: file })) as RunningTessera;
    try {
      const again = await (await fetch(`${dev.localUrl}/v1/proxy/ca.pem`)).text();
      assert.equal(new X509Certificate(again).fingerprint256, fingerprint, 'dev on the same data directory keeps the CA');
    } finally {
      await dev.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
