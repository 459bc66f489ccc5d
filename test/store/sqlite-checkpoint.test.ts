/**
 * WAL checkpoints off the event loop (src/store/sqlite/checkpointer.ts, docs/adr/0123): the
 * offloaded engine's checkpoints run on a worker thread with its own connection; the data reaches
 * the database file, closing removes the WAL (the worker's connection closes first), and a worker
 * that cannot run hands checkpoints back to SQLite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MainThreadEngine } from '../../src/store/sqlite/engine.js';
import { WalCheckpointer } from '../../src/store/sqlite/checkpointer.js';

const fresh = (name: string): string => join(mkdtempSync(join(tmpdir(), 'tessera-ckpt-')), name);

test('the worker checkpoints the WAL into the database file while the engine writes; close removes the WAL', async () => {
  const file = fresh('c.db');
  const engine = new MainThreadEngine(file, { offloadFsync: true });
  await engine.exec('run', 'CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB NOT NULL)');
  assert.equal(engine.walCheckpointer, null, 'the worker starts at the first checkpoint ask, not with the store');
  const before = statSync(file).size;
  // 400 commits of 8 KiB each (≈ 3 pages): several checkpoint asks (the first after 64 commits).
  for (let i = 0; i < 400; i++) await engine.exec('run', 'INSERT INTO t (b) VALUES (randomblob(8192))');
  const ckpt = engine.walCheckpointer as WalCheckpointer | null; // (the getter changed since the check above)
  assert.ok(ckpt, 'an offloaded engine on a file runs a checkpoint worker');
  await ckpt.idle();
  assert.ok(ckpt.completed >= 1, 'at least one checkpoint ran on the worker');
  assert.ok(ckpt.active);
  assert.ok(statSync(file).size > before + 1_000_000, `the database file holds the checkpointed pages (${statSync(file).size} bytes)`);
  assert.deepEqual(await engine.exec('get', 'SELECT count(*) AS n FROM t'), { n: 400 });
  await engine.close();
  assert.equal(existsSync(`${file}-wal`), false, 'the last connection to close (the engine\'s) checkpointed and removed the WAL');
  // Everything is in the database file alone.
  const again = new MainThreadEngine(file, { offloadFsync: true, checkpointWorker: false });
  assert.deepEqual(await again.exec('get', 'SELECT count(*) AS n FROM t'), { n: 400 });
  await again.close();
});

test('no checkpoint worker for the main engine, for :memory:, or when turned off', async () => {
  for (const [file, options] of [[fresh('m.db'), { offloadFsync: false }], [':memory:', { offloadFsync: true }], [fresh('o.db'), { offloadFsync: true, checkpointWorker: false }]] as const) {
    const engine = new MainThreadEngine(file, options);
    await engine.exec('run', 'CREATE TABLE t (b BLOB)');
    for (let i = 0; i < 200; i++) await engine.exec('run', 'INSERT INTO t (b) VALUES (randomblob(64))');
    assert.equal(engine.walCheckpointer, null, `${file} ${JSON.stringify(options)}`);
    await engine.close();
  }
});

test('a worker that cannot open the database reports the failure once and ignores later asks', async () => {
  const failures: string[] = [];
  let failed!: () => void;
  const reported = new Promise<void>((resolve) => (failed = resolve));
  const ckpt = new WalCheckpointer({ file: fresh('missing.db'), onFailure: (m) => { failures.push(m); failed(); } });
  ckpt.request();
  await reported;
  assert.equal(ckpt.active, false);
  ckpt.request();
  await ckpt.idle();
  await ckpt.close();
  assert.equal(failures.length, 1);
  assert.equal(ckpt.completed, 0);
});
