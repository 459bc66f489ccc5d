import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeMasterKey, generateMasterKeyFile, loadMasterKeyEnv, loadMasterKeyFile, masterKeyId, resolveMasterKey } from '../../src/secrets/master-key.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tessera-mk-'));
}

test('key file: 0600 loads; group- or world-readable is refused', { skip: process.platform === 'win32' }, () => {
  const dir = tempDir();
  try {
    const key = randomBytes(32);
    const file = join(dir, 'master.key');
    writeFileSync(file, key.toString('base64'), { mode: 0o600 });
    assert.deepEqual(loadMasterKeyFile(file), key);
    for (const mode of [0o640, 0o604, 0o644, 0o660]) {
      chmodSync(file, mode);
      assert.throws(() => loadMasterKeyFile(file), (e: Error & { code?: string }) => e.code === 'TESSERA_MASTER_KEY_INVALID' && /chmod 600/.test(e.message) && !e.message.includes(key.toString('base64')));
    }
    chmodSync(file, 0o400);
    assert.deepEqual(loadMasterKeyFile(file), key);
    assert.throws(() => loadMasterKeyFile(join(dir, 'missing')), { code: 'TESSERA_MASTER_KEY_INVALID' });
    mkdirSync(join(dir, 'adir'), { mode: 0o700 });
    assert.throws(() => loadMasterKeyFile(join(dir, 'adir')), { code: 'TESSERA_MASTER_KEY_INVALID' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generated key file has mode 0600 and is never overwritten', { skip: process.platform === 'win32' }, () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'sub', 'master.key');
    const key = generateMasterKeyFile(file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(decodeMasterKey(readFileSync(file, 'utf8'), file), key);
    assert.throws(() => generateMasterKeyFile(file), /EEXIST/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('decodeMasterKey accepts 32 bytes as base64, base64url or hex only', () => {
  const key = randomBytes(32);
  assert.deepEqual(decodeMasterKey(key.toString('base64'), 't'), key);
  assert.deepEqual(decodeMasterKey(key.toString('base64url'), 't'), key);
  assert.deepEqual(decodeMasterKey(`${key.toString('hex')}\n`, 't'), key);
  for (const bad of ['', 'short', randomBytes(16).toString('base64'), randomBytes(31).toString('hex'), randomBytes(33).toString('base64')]) {
    assert.throws(() => decodeMasterKey(bad, 't'), { code: 'TESSERA_MASTER_KEY_INVALID' });
  }
});

test('env source and resolveMasterKey precedence', { skip: process.platform === 'win32' }, () => {
  const dir = tempDir();
  try {
    const key = randomBytes(32);
    const env = { TESSERA_MASTER_KEY: key.toString('hex') };
    assert.deepEqual(loadMasterKeyEnv('TESSERA_MASTER_KEY', env), key);
    assert.throws(() => loadMasterKeyEnv('NOPE', env), { code: 'TESSERA_MASTER_KEY_INVALID' });

    const fromEnv = resolveMasterKey({ config: { env: 'TESSERA_MASTER_KEY' }, dataDir: dir, dev: false, env });
    assert.equal(fromEnv.keyId, masterKeyId(key));
    assert.equal(fromEnv.source, 'env:TESSERA_MASTER_KEY');

    // No key and not dev: refused (a fresh key would orphan every stored secret).
    assert.throws(() => resolveMasterKey({ config: {}, dataDir: dir, dev: false, env: {} }), /tessera init/);
    // Dev mode generates <data_dir>/master.key once, then reuses it.
    const dev = resolveMasterKey({ config: {}, dataDir: dir, dev: true, env: {} });
    assert.equal(dev.generated, true);
    assert.equal(statSync(join(dir, 'master.key')).mode & 0o777, 0o600);
    const again = resolveMasterKey({ config: {}, dataDir: dir, dev: true, env: {} });
    assert.equal(again.generated, false);
    assert.equal(again.keyId, dev.keyId);
    // The key id is a fingerprint, not the key.
    assert.match(dev.keyId, /^mk_[0-9a-f]{16}$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
