import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, chmodSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { WAL_AUTOCHECKPOINT_PAGES } from '../../src/store/sqlite/engine.js';
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
  await store.run('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)', ['t', 'n-t', blob, 5]);
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

for (const engine of ['fsync-offload', 'main'] as const) {
  test(`${engine} engine: pooled Buffer slices and Uint8Array views round-trip as exact Buffers`, async () => {
    const store = openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'tessera-store-')), 'e.db'), engine });
    await store.migrate();
    // Buffer.from(string) is a view into Node's shared 8 KiB pool; the blob must be only its bytes.
    const pooled = Buffer.from('pooled-bytes');
    const bytes = new Uint8Array([9, 8, 7, 6, 5]);
    const view = new Uint8Array(bytes.buffer, 1, 3);
    await store.run('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)', ['p', 'n-p', pooled, 1]);
    await store.run('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)', ['v', 'n-v', view, 2]);
    const rows = await store.all<{ id: string; token_hash: Buffer }>('SELECT id, token_hash FROM admin_tokens ORDER BY id');
    assert.ok(rows.every((r) => Buffer.isBuffer(r.token_hash)));
    assert.deepEqual(rows.map((r) => [r.id, r.token_hash.toString('hex')]), [
      ['p', pooled.toString('hex')],
      ['v', '080706'],
    ]);
    await store.close();
  });

  test(`${engine} engine: statements issued without awaiting run in call order (each read sees exactly the writes before it)`, async () => {
    const store = openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'tessera-store-')), 'o.db'), engine });
    await store.migrate();
    const reads: Promise<{ n: number } | undefined>[] = [];
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 12; i++) {
      // Plain statements only: a transaction starts a tick after transaction() is called (as it
      // always did), so a statement issued in the same tick may run before it.
      writes.push(store.run('INSERT INTO meta (key, value) VALUES (?, ?)', [`o${i}`, 'plain']));
      reads.push(store.get<{ n: number }>('SELECT COUNT(*) AS n FROM meta WHERE key LIKE ?', ['o%']));
      // Every other round, issue the next ones a little later: while earlier commits still sync.
      if (i % 2) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(writes);
    assert.deepEqual((await Promise.all(reads)).map((r) => r?.n), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    await store.close();
  });

  test(`${engine} engine: an unbindable parameter is the driver's TypeError; the store keeps working`, async () => {
    const store = openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'tessera-store-')), 'e.db'), engine });
    await store.migrate();
    await assert.rejects(store.get('SELECT ? AS x', [true as unknown as string]), TypeError);
    await assert.rejects(store.transaction(async (tx) => tx.get('SELECT ? AS x', [false as unknown as string])), TypeError);
    await assert.rejects(store.get('SELECT ? AS x, ? AS y', [1]), RangeError);
    assert.deepEqual(await store.get('SELECT ? AS x', [1]), { x: 1 });
    await store.close();
  });

  test(`${engine} engine: a syntax error is TESSERA_STORE_UNAVAILABLE and a failed COMMIT leaves no open transaction`, async () => {
    const store = openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'tessera-store-')), 'e.db'), engine });
    await store.migrate();
    await assert.rejects(store.get('SELEC 1'), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_STORE_UNAVAILABLE' && /SQLITE_ERROR/.test(e.message));
    // A deferred foreign key fails at COMMIT, not at the statement.
    await store.run('CREATE TABLE parent (id TEXT PRIMARY KEY)');
    await store.run('CREATE TABLE child (pid TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)');
    await assert.rejects(
      store.transaction(async (tx) => tx.run('INSERT INTO child (pid) VALUES (?)', ['missing'])),
      (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_STORE_CONFLICT',
    );
    await store.transaction(async (tx) => tx.run('INSERT INTO parent (id) VALUES (?)', ['ok']));
    assert.deepEqual(await store.all('SELECT id FROM parent'), [{ id: 'ok' }]);
    assert.deepEqual(await store.all('SELECT pid FROM child'), []);
    await store.close();
  });
}

test('an unopenable database is TESSERA_STORE_UNAVAILABLE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-store-'));
  // The path is a directory: the directory check passes, SQLite cannot open it.
  assert.throws(() => openSqliteStore({ file: dir }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_STORE_UNAVAILABLE');
});

for (const engine of ['fsync-offload', 'main'] as const) test(`${engine} engine: writes issued before close() are kept; statements after it reject`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-store-'));
  const file = join(dir, 'c.db');
  const store = openSqliteStore({ file, engine });
  await store.migrate();
  const writes = Array.from({ length: 20 }, (_, i) => store.run('INSERT INTO meta (key, value) VALUES (?, ?)', [`k${i}`, 'v']));
  const closing = store.close(); // not awaited first: the writes already posted must complete
  await Promise.all(writes);
  await closing;
  await store.close(); // idempotent
  await assert.rejects(store.get('SELECT 1 AS x'));
  assert.equal(await store.ping(), false);
  const again = openSqliteStore({ file });
  assert.deepEqual(await again.get('SELECT COUNT(*) AS n FROM meta WHERE key LIKE ?', ['k%']), { n: 20 });
  await again.close();
});

for (const engine of ['fsync-offload', 'main'] as const) test(`${engine} engine: an idle store that is never closed does not keep the process alive`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-store-'));
  const url = new URL('../../src/store/sqlite/index.ts', import.meta.url).href;
  const script = `const { openSqliteStore } = await import(${JSON.stringify(url)});
const s = openSqliteStore({ file: ${JSON.stringify(join(dir, 'e.db'))}, engine: '${engine}' });
await s.migrate();
await s.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['done', 'yes']);
console.log('ok');`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.error, undefined, 'the child process hung');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'ok');
});

test('the WAL is checkpointed every WAL_AUTOCHECKPOINT_PAGES pages (4000), not SQLite\'s 1000; committed data survives a reopen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-store-wal-'));
  const file = join(dir, 't.db');
  const store = openSqliteStore({ file });
  await store.migrate();
  const page = 4096;
  const walPages = (): number => Math.floor(statSync(`${file}-wal`).size / (page + 24));
  let n = 0;
  // Each transaction writes ~100 pages (one 3,000-byte value per row, each on its own leaf page or so).
  const batch = async (): Promise<void> => {
    await store.transaction(async (tx) => {
      for (let i = 0; i < 100; i++) await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [`k${n++}`, 'v'.repeat(3000)]);
    });
  };
  for (let i = 0; i < 60 && walPages() < 2500; i++) await batch();
  // SQLite's default (1000 pages) would have checkpointed and reused the WAL from its start by now.
  assert.ok(walPages() >= 2500, `the WAL holds ${walPages()} pages`);
  for (let i = 0; i < 120 && n < 20_000; i++) await batch();
  // Checkpointed at 4000 (and reused from the start): the file never grew far beyond it.
  assert.ok(walPages() < WAL_AUTOCHECKPOINT_PAGES + 400, `the WAL holds ${walPages()} pages`);
  await store.close();
  const again = openSqliteStore({ file });
  assert.equal((await again.get<{ c: number }>('SELECT count(*) AS c FROM meta WHERE key LIKE ?', ['k%']))?.c, n);
  await again.close();
});
