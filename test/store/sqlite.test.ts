import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { TesseraError } from '../../src/shared/errors.js';

test('sqlite store migrates, runs portable SQL and serializes transactions', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-store-'));
  const store = openSqliteStore({ file: join(dir, 't.db') });
  await store.migrate();
  await store.migrate(); // idempotent
  await store.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['a', '1']);
  const row = await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', ['a']);
  assert.equal(row?.value, '1');
  await assert.rejects(store.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['a', '2']), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_STORE_CONFLICT');
  // A failing transaction rolls back; a concurrent plain write waits for it.
  const tx = store.transaction(async (t) => {
    await t.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['b', '1']);
    await new Promise((r) => setTimeout(r, 20));
    throw new Error('boom');
  });
  const plain = store.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['c', '1']);
  await assert.rejects(tx, /boom/);
  await plain;
  assert.equal(await store.get('SELECT 1 AS x FROM meta WHERE key = ?', ['b']), undefined);
  assert.ok(await store.get('SELECT 1 AS x FROM meta WHERE key = ?', ['c']));
  const blob = Buffer.from([1, 2, 3]);
  await store.run('INSERT INTO admin_tokens (id, token_hash, created_at) VALUES (?, ?, ?)', ['t', blob, 5]);
  const got = await store.get<{ token_hash: Buffer; created_at: number }>('SELECT token_hash, created_at FROM admin_tokens');
  assert.deepEqual(got?.token_hash, blob);
  assert.equal(got?.created_at, 5);
  await store.close();
});

test('a data directory that is not writable is a clear error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ro-'));
  // A regular file where a directory should be: fails even for root.
  writeFileSync(join(dir, 'file'), 'x');
  assert.throws(() => openSqliteStore({ file: join(dir, 'file', 'sub', 't.db') }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_DATA_DIR_NOT_WRITABLE');
  if (process.getuid?.() !== 0) {
    const ro = mkdtempSync(join(tmpdir(), 'tessera-ro-'));
    chmodSync(ro, 0o500);
    assert.throws(() => openSqliteStore({ file: join(ro, 'sub', 't.db') }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_DATA_DIR_NOT_WRITABLE');
  }
});
