/**
 * The operator's life cycle with the real `tessera` binary: init (admin token shown once),
 * server from a config file, kv through the CLI, offline master-key rotation, restart on the new
 * key, offline audit verification — and the refusals on the way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(process.cwd(), 'bin', 'tessera.js');

function cli(args: string[], env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function startServer(config: string): Promise<{ stop(): Promise<void>; output(): string }> {
  const child = spawn(process.execPath, [BIN, 'server', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += String(d)));
  child.stderr.on('data', (d) => (out += String(d)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 30_000);
    const check = (): void => {
      if (/listening on/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code}:\n${out}`));
    });
  });
  return {
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners('exit');
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

test('init → server → kv → rotate-master-key → restart → audit verify', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-op-'));
  const port = await freePort();
  const yaml = (keyFile: string): string => `data_dir: ${join(dir, 'data')}
server:
  listen: 127.0.0.1:${port}
master_key:
  file: ${keyFile}
policy:
  dir: ${join(process.cwd(), 'examples', 'policies')}
log:
  level: warn
`;
  const config = join(dir, 'tessera.yaml');
  writeFileSync(config, yaml(join(dir, 'master.key')));

  // Not initialised yet: the server refuses to start.
  const early = cli(['server', '--config', config]);
  assert.equal(early.status, 1);
  assert.match(early.stderr, /\[TESSERA_NOT_INITIALIZED\]/);

  const init = cli(['init', '--config', config, '--json']);
  assert.equal(init.status, 0, init.stderr);
  const { admin_token: adminToken, master_key_file: keyFile } = JSON.parse(init.stdout) as { admin_token: string; master_key_file: string };
  assert.match(adminToken, /^tsr_admin_/);
  assert.equal(keyFile, join(dir, 'master.key'));
  const again = cli(['init', '--config', config]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /TESSERA_ALREADY_INITIALIZED/);

  const env = { TESSERA_ADDR: `http://127.0.0.1:${port}`, TESSERA_TOKEN: adminToken };
  const secret = `s3cr3t-${randomBytes(8).toString('hex')}`;
  let server = await startServer(config);
  try {
    const put = cli(['kv', 'put', 'team/app/db-password', secret, '--mode', 'read'], env);
    assert.equal(put.status, 0, put.stderr);
    const wrong = cli(['kv', 'get', 'team/app/db-password'], { ...env, TESSERA_TOKEN: 'tsr_admin_wrong-token-wrong-token-xx' });
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /TESSERA_ADMIN_TOKEN_INVALID/);
  } finally {
    await server.stop();
  }
  assert.ok(!server.output().includes(secret) && !server.output().includes(adminToken), 'the server printed a secret or the admin token');

  // Offline rotation to a new master key; the server then runs on the new key only.
  const newKey = join(dir, 'master-2.key');
  writeFileSync(newKey, randomBytes(32).toString('base64'), { mode: 0o600 });
  const rot = cli(['operator', 'rotate-master-key', '--config', config, '--new-key-file', newKey]);
  assert.equal(rot.status, 0, rot.stderr);
  assert.match(rot.stdout, /master key rotated: \d+ data keys re-wrapped/);
  writeFileSync(config, yaml(newKey));
  server = await startServer(config);
  try {
    const get = cli(['kv', 'get', 'team/app/db-password', '--json'], env);
    assert.equal(get.status, 0, get.stderr);
    assert.equal((JSON.parse(get.stdout) as { value: string }).value, secret);
  } finally {
    await server.stop();
  }
  // The old key no longer opens anything.
  writeFileSync(config, yaml(keyFile));
  const old = cli(['server', '--config', config]);
  assert.equal(old.status, 1);
  assert.match(old.stderr, /TESSERA_(SECRET_DECRYPT_FAILED|AUDIT_KEY_UNAVAILABLE|KEY_UNAVAILABLE)/);
  writeFileSync(config, yaml(newKey));

  const verify = cli(['audit', 'verify', '--offline', '--config', config]);
  assert.equal(verify.status, 0, verify.stderr + verify.stdout);
  assert.match(verify.stdout, /verified/);

  // Offline changes are audited too (ADR 0041), in the same verified chain: init's operator token
  // is the first event, the rotation is announced before any row changed and closed after.
  const kindsDb = new Database(join(dir, 'data', 'tessera.db'), { readonly: true });
  const kinds = (kindsDb.prepare('SELECT kind FROM audit_events ORDER BY seq').all() as { kind: string }[]).map((r) => r.kind);
  kindsDb.close();
  assert.equal(kinds[0], 'admin_token.created');
  assert.ok(kinds.indexOf('secret.master_key_rotation_started') > 0);
  assert.ok(kinds.indexOf('secret.master_key_rotated') > kinds.indexOf('secret.master_key_rotation_started'));

  // Tampering with the database: swapping the clear copy of the checkpoint public key does not
  // fool offline verification (the key is derived from the sealed private key), and an edited
  // event is found and named.
  const db = new Database(join(dir, 'data', 'tessera.db'));
  db.prepare("UPDATE meta SET value = ? WHERE key = 'audit.checkpoint_public_key'").run(generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('base64'));
  const seq = (db.prepare("SELECT seq FROM audit_events WHERE kind = 'secret.written' LIMIT 1").get() as { seq: number }).seq;
  db.prepare('UPDATE audit_events SET body = replace(body, ?, ?) WHERE seq = ?').run('secret.write', 'secret.WRITE', seq);
  db.close();
  const tampered = cli(['audit', 'verify', '--offline', '--config', config, '--json']);
  assert.notEqual(tampered.status, 0);
  assert.match(tampered.stdout + tampered.stderr, new RegExp(`"seq":\\s*${seq}`));
  assert.match(tampered.stdout + tampered.stderr, /modified/);
});
