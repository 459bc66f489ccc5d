/**
 * `audit.commit(store, change, events)`: a state change and its audit events commit in one store
 * transaction or not at all (ADR 0041). Real SQLite stores, real file sinks; failures are real
 * (a closed store, a file sink on /dev/full, a conflicting row), not mocks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { TesseraError } from '../../src/shared/errors.js';
import type { AuditEvent } from '../../src/audit/events.js';
import type { SqlExecutor, Store } from '../../src/store/port.js';
import { MemoryAuditWriter } from '../../src/audit/port.js';
import { ev, makeLog, openStore, tempDir } from './setup.js';

const isCode = (code: string) => (e: unknown) => {
  assert.ok(e instanceof TesseraError, `expected ${code}, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  return true;
};

const put = (key: string, value = 'v') => async (tx: SqlExecutor) => {
  await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [key, value]);
  return { key };
};

const written = (key: string): AuditEvent => ({ kind: 'secret.written', actor: { id: 'admin:t' }, action: 'secret.write', resource: `secret:${key}`, result: 'success', details: { version: 1, mode: 'inject' } });

async function metaValue(store: Store, key: string): Promise<string | undefined> {
  return (await store.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key]))?.value;
}

async function eventKinds(store: Store): Promise<{ kind: string; resource?: string }[]> {
  const rows = await store.all<{ body: string }>('SELECT body FROM audit_events ORDER BY seq');
  return rows.map((r) => JSON.parse(r.body) as AuditEvent).map((e) => ({ kind: e.kind, ...(e.resource ? { resource: e.resource } : {}) }));
}

test('commit: the change and its event commit together, and the change\'s result is returned', async () => {
  const { log, store } = await makeLog();
  const r = await log.commit(store, put('k1', 'one'), (res) => written(res.key));
  assert.deepEqual(r, { key: 'k1' });
  assert.equal(await metaValue(store, 'k1'), 'one');
  assert.deepEqual(await eventKinds(store), [{ kind: 'secret.written', resource: 'secret:k1' }]);
  assert.equal((await log.verify()).ok, true);
});

test('commit: concurrent commits share group commits; a failing change is rolled back alone, the others commit with their events', async () => {
  const { log, store } = await makeLog();
  await store.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['taken-7', 'x']);
  await store.run('INSERT INTO meta (key, value) VALUES (?, ?)', ['taken-13', 'x']);
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, (_, i) => {
      const key = i === 7 || i === 13 ? `taken-${i}` : `key-${i}`;
      // The conflicting changes write a first row before failing: that write must be undone too.
      return log.commit(
        store,
        async (tx) => {
          if (i === 7 || i === 13) await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [`partial-${i}`, 'x']);
          return put(key)(tx);
        },
        (res) => written(res.key),
      );
    }),
  );
  for (const [i, r] of results.entries()) {
    if (i === 7 || i === 13) {
      assert.equal(r.status, 'rejected');
      isCode('TESSERA_STORE_CONFLICT')((r as PromiseRejectedResult).reason);
      assert.equal(await metaValue(store, `partial-${i}`), undefined, 'the failed change left nothing behind');
    } else {
      assert.equal(r.status, 'fulfilled', String((r as PromiseRejectedResult).reason));
      assert.equal(await metaValue(store, `key-${i}`), 'v');
    }
  }
  const kinds = await eventKinds(store);
  assert.equal(kinds.length, 18);
  assert.ok(!kinds.some((k) => /taken/.test(k.resource ?? '')), 'no event for a change that did not happen');
  assert.equal((await log.verify()).ok, true);
});

test('commit: an invalid event given up front is refused before the change runs', async () => {
  const { log, store } = await makeLog();
  let ran = 0;
  const tokenShaped = `tsr_admin_${'A'.repeat(30)}`;
  await assert.rejects(
    log.commit(store, async (tx) => {
      ran++;
      return put('never')(tx);
    }, written(tokenShaped)),
    isCode('TESSERA_AUDIT_EVENT_INVALID'),
  );
  assert.equal(ran, 0);
  assert.equal(await metaValue(store, 'never'), undefined);
  assert.deepEqual(await eventKinds(store), []);
});

test('commit: an invalid event derived from the result undoes the change; the batch goes on', async () => {
  const { log, store } = await makeLog();
  const jwtShaped = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4In0.c2lnbmF0dXJl';
  const [bad, good] = await Promise.allSettled([
    log.commit(store, put('bad'), () => written(jwtShaped)),
    log.commit(store, put('good'), (r) => written(r.key)),
  ]);
  assert.equal(bad.status, 'rejected');
  isCode('TESSERA_AUDIT_EVENT_INVALID')((bad as PromiseRejectedResult).reason);
  assert.equal(good.status, 'fulfilled');
  assert.equal(await metaValue(store, 'bad'), undefined);
  assert.equal(await metaValue(store, 'good'), 'v');
  assert.deepEqual(await eventKinds(store), [{ kind: 'secret.written', resource: 'secret:good' }]);
});

test('commit: events derived as null record nothing; a list records every event, in order, with appends in the same batch', async () => {
  const { log, store } = await makeLog();
  const none = log.commit(store, put('quiet'), () => null);
  const two = log.commit(store, put('loud'), () => [written('loud-1'), written('loud-2')]);
  const plain = log.append(ev(1));
  await Promise.all([none, two, plain]);
  assert.equal(await metaValue(store, 'quiet'), 'v');
  const kinds = await eventKinds(store);
  assert.deepEqual(kinds.map((k) => k.resource), ['secret:loud-1', 'secret:loud-2', 'secret:db/1']);
  await assert.rejects(log.commit(store, put('empty'), []), isCode('TESSERA_AUDIT_EVENT_INVALID'));
});

test('commit: a store sink that fails rolls the change back; plain appends still reach the file sink', async () => {
  const dir = tempDir();
  const file = join(dir, 'a.db');
  const auditFile = join(dir, 'audit.jsonl');
  const { log, store } = await makeLog({ store: await openStore(file), sinks: [{ kind: 'store' }, { kind: 'file', path: auditFile }] });
  await log.commit(store, put('before'), (r) => written(r.key));
  await store.close();
  const [change, plain] = await Promise.allSettled([log.commit(store, put('after'), (r) => written(r.key)), log.append(ev(2))]);
  assert.equal(change.status, 'rejected');
  isCode('TESSERA_STORE_UNAVAILABLE')((change as PromiseRejectedResult).reason);
  assert.equal(plain.status, 'fulfilled', 'the file sink recorded the plain event');
  // Record lines carry no `type`; a head line follows each batch the store committed (docs/audit.md).
  const lines = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type?: string; seq: number; event: AuditEvent });
  assert.deepEqual(lines.filter((l) => l.type === undefined).map((l) => l.event.resource), ['secret:before', 'secret:db/2']);
  assert.deepEqual(lines.filter((l) => l.type !== undefined).map((l) => [l.type, l.seq]), [['tessera.audit.head', 1]], 'only the batch the store committed has a signed head');
  const reopened = await openStore(file);
  assert.equal(await metaValue(reopened, 'before'), 'v');
  assert.equal(await metaValue(reopened, 'after'), undefined);
  await reopened.close();
});

test('commit without a store sink: the event reaches the file before the change commits; an unwritable file undoes the change', { skip: existsSync('/dev/full') ? false : 'needs /dev/full' }, async () => {
  const dir = tempDir();
  const auditFile = join(dir, 'audit.jsonl');
  const { log, store } = await makeLog({ store: await openStore(join(dir, 'a.db')), sinks: [{ kind: 'file', path: auditFile }] });
  await log.commit(store, put('k1'), (r) => written(r.key));
  assert.match(readFileSync(auditFile, 'utf8'), /secret:k1/);
  assert.equal(await metaValue(store, 'k1'), 'v');

  rmSync(auditFile);
  symlinkSync('/dev/full', auditFile); // every write fails with ENOSPC
  await assert.rejects(log.commit(store, put('k2'), (r) => written(r.key)), isCode('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal(await metaValue(store, 'k2'), undefined, 'no event, no change');

  rmSync(auditFile);
  await log.commit(store, put('k3'), (r) => written(r.key));
  assert.equal(await metaValue(store, 'k3'), 'v');
  const lines = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seq: number; event: AuditEvent });
  assert.deepEqual(lines.map((l) => l.event.resource), ['secret:k3']);
  assert.equal(lines[0]!.seq, 2, 'the chain continues after the event the first file holds');
});

test('commit refuses another store than the audit log\'s own: they could not share a transaction', async () => {
  const { log } = await makeLog();
  const other = await openStore();
  await assert.rejects(log.commit(other, put('x'), written('x')), isCode('TESSERA_INTERNAL'));
  assert.equal(await metaValue(other, 'x'), undefined);
});

test('commit after close is refused and changes nothing', async () => {
  const { log, store } = await makeLog();
  await log.close();
  await assert.rejects(log.commit(store, put('late'), written('late')), isCode('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal(await metaValue(store, 'late'), undefined);
});

test('MemoryAuditWriter.commit (unit-test stand-in) has the same contract: failing audit or invalid event → change rolled back', async () => {
  const store = await openStore();
  const audit = new MemoryAuditWriter();
  assert.deepEqual(await audit.commit(store, put('m1'), (r) => written(r.key)), { key: 'm1' });
  audit.failing = true;
  await assert.rejects(audit.commit(store, put('m2'), (r) => written(r.key)), isCode('TESSERA_AUDIT_UNAVAILABLE'));
  audit.failing = false;
  await assert.rejects(audit.commit(store, put('m3'), () => written(`tsr_join_${'x'.repeat(24)}`)), isCode('TESSERA_AUDIT_EVENT_INVALID'));
  assert.equal(await metaValue(store, 'm1'), 'v');
  assert.equal(await metaValue(store, 'm2'), undefined);
  assert.equal(await metaValue(store, 'm3'), undefined);
  assert.deepEqual(audit.events.map((e) => e.resource), ['secret:m1']);
});
