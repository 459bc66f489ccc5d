/**
 * How audit events reach the disk (ADR 0185): events of state changes are fdatasync-ed before
 * the caller is answered; events of pass-through actions (a gateway tool call, a secret read)
 * are written to the store's WAL before the answer and synced by one group flush within
 * `audit.flush_window`; `audit.flush: per_request` flushes every batch before its answer.
 *
 * The fdatasync calls are counted on node:fs itself (the real SQLite engine calls it; nothing is
 * replaced but the counter around it), so "which path a write took" is observed, not inferred.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs, { readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import type { Store, TransactionOptions } from '../../src/store/port.js';
import { PASS_THROUGH_KINDS } from '../../src/audit/log.js';
import { parseConfig } from '../../src/config/load.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { AuditEvent } from '../../src/audit/events.js';
import { ev, makeLog, openStore, tempDir } from './setup.js';

// Count fdatasync calls made through node:fs (the SQLite engine's WAL syncs and the file sink's).
const realFdatasync = fs.fdatasync;
let fdatasyncs = 0;
(fs as { fdatasync: typeof fs.fdatasync }).fdatasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
  fdatasyncs++;
  return realFdatasync(fd, cb);
}) as typeof fs.fdatasync;
syncBuiltinESMExports();
after(() => {
  (fs as { fdatasync: typeof fs.fdatasync }).fdatasync = realFdatasync;
  syncBuiltinESMExports();
});

/** Records the durability each transaction asked for (no behaviour change). */
function recordingStore(store: Store): { store: Store; asked: (TransactionOptions['durability'] | undefined)[] } {
  const asked: (TransactionOptions['durability'] | undefined)[] = [];
  const wrapped = Object.create(store) as Store;
  wrapped.transaction = (fn, options) => {
    asked.push(options?.durability);
    return store.transaction(fn, options);
  };
  return { store: wrapped, asked };
}

const toolCall = (i: number): AuditEvent => ev(i, {
  kind: 'gateway.tool_call', action: 'tool.call', resource: `docs/echo`, result: 'allow',
  details: { server: 'docs', tool: 'echo', args_sha256: 'a'.repeat(64), decision: 'allow', upstream_status: 'ok', latency_ms: 1, scrub_hits: 0 },
} as Partial<AuditEvent>);
const secretRead = (i: number): AuditEvent => ev(i, { kind: 'secret.read', result: 'success', details: { version: 1, mode: 'read' } } as Partial<AuditEvent>);
const secretWritten = (i: number): AuditEvent => ev(i, { kind: 'secret.written', action: 'secret.write', result: 'success', details: { version: 1, mode: 'read' } } as Partial<AuditEvent>);
const tokenIssued = (i: number): AuditEvent => ev(i, { kind: 'token.issued', action: 'token.issue', result: 'success', details: { token_type: 'agent', jti_hmac: 'h', expires_at: 1 } } as Partial<AuditEvent>);

/** Bounded polling for a condition (no timing assumption: waits as long as it takes, up to a bound). */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

test('config: audit.flush defaults to grouped with a 100ms window; per_request and windows parse; bad values name the key', () => {
  const d = parseConfig({});
  assert.equal(d.audit.flush, 'grouped');
  assert.equal(d.audit.flush_window, 100);
  const p = parseConfig({ audit: { flush: 'per_request', flush_window: '2s' } });
  assert.equal(p.audit.flush, 'per_request');
  assert.equal(p.audit.flush_window, 2000);
  assert.equal(parseConfig({ audit: { flush_window: '1ms' } }).audit.flush_window, 1);
  for (const [raw, key] of [
    [{ flush: 'sometimes' }, /audit\.flush/],
    [{ flush: true }, /audit\.flush/],
    [{ flush_window: '0ms' }, /audit\.flush_window/],
    [{ flush_window: '11s' }, /audit\.flush_window/],
    [{ flush_window: 'soon' }, /audit\.flush_window/],
    [{ flush_window: -1 }, /audit\.flush_window/],
  ] as const) {
    assert.throws(() => parseConfig({ audit: raw }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_INVALID' && key.test(e.message), JSON.stringify(raw));
  }
});

test('pass-through kinds are the gateway reads (tool call, resource read, prompt get, completion), the refused gateway request, the secret read and the proxy tunnel; nothing that changes state', () => {
  assert.deepEqual([...PASS_THROUGH_KINDS].sort(), ['gateway.completion', 'gateway.prompt_get', 'gateway.request_refused', 'gateway.resource_read', 'gateway.tool_call', 'proxy.tunnel', 'secret.read']);
});

test('grouped: a tool call and a secret read commit deferred (no fdatasync before the answer); one group flush syncs them and exports their head', async () => {
  const dir = tempDir();
  const { store, asked } = recordingStore(await openStore(join(dir, 'a.db')));
  const witness = join(dir, 'witness.jsonl');
  // A long window: the group flush below is the explicit sync(), not the timer.
  const { log, metrics } = await makeLog({ store, flush: { mode: 'grouped', windowMs: 10_000 }, sinks: [{ kind: 'store' }, { kind: 'stdout' }], stdout: { write: (c: string) => { fs.appendFileSync(witness, c); } } });
  const before = fdatasyncs;
  await log.append(toolCall(1));
  await log.append(secretRead(2));
  assert.equal(fdatasyncs, before, 'no fdatasync before either answer');
  assert.deepEqual(asked.slice(-2), ['deferred', 'deferred']);
  assert.deepEqual({ ...log.flushStats(), flushed: undefined }, { mode: 'grouped', windowMs: 10_000, flushed: undefined, deferred: 2, groupFlushes: 0, syncFailed: false });
  // Committed: visible in the store at once (durable against a crash of the process).
  assert.equal((await store.get<{ n: number }>('SELECT count(*) AS n FROM audit_events'))!.n, 2);
  // Their records reached the other sinks, but no head yet: a witness never holds a head the store could lose.
  assert.equal(readFileSync(witness, 'utf8').split('\n').filter((l) => l.includes('tessera.audit.head')).length, 0);
  await log.sync();
  assert.equal(fdatasyncs, before + 1, 'one fdatasync for both');
  assert.equal(log.flushStats().groupFlushes, 1);
  assert.equal(metrics.counter('tessera_audit_store_commits_total', '').get({ flush: 'deferred' }), 2);
  assert.equal(metrics.counter('tessera_audit_group_flushes_total', '').get({ result: 'ok' }), 1);
  const heads = readFileSync(witness, 'utf8').split('\n').filter((l) => l.includes('tessera.audit.head')).map((l) => JSON.parse(l) as { seq: number });
  assert.deepEqual(heads.map((h) => h.seq), [2], 'the synced head, once');
  const v = await log.verify();
  assert.equal(v.ok, true, JSON.stringify(v.problems));
  await log.close();
});

test('grouped: the window timer runs the group flush on its own', async () => {
  const { store } = recordingStore(await openStore(join(tempDir(), 'a.db')));
  const { log } = await makeLog({ store, flush: { mode: 'grouped', windowMs: 1 } });
  await log.append(toolCall(1));
  await until('the group flush', () => log.flushStats().groupFlushes >= 1);
  await log.close();
});

test('state changes flush before the answer under grouped: commit(), a credential issuance, and a batch mixing them with tool calls', async () => {
  const { store, asked } = recordingStore(await openStore(join(tempDir(), 'a.db')));
  await store.run('CREATE TABLE t (v TEXT)');
  const { log } = await makeLog({ store, flush: { mode: 'grouped', windowMs: 10_000 } });
  let before = fdatasyncs;
  await log.commit(store, (tx) => tx.run('INSERT INTO t (v) VALUES (?)', ['x']), secretWritten(1));
  assert.equal(asked.at(-1), undefined, 'commit() asks for the default (flush)');
  assert.ok(fdatasyncs > before, 'a state change is fdatasync-ed before commit() resolves');
  before = fdatasyncs;
  await log.append(tokenIssued(2));
  assert.equal(asked.at(-1), undefined);
  assert.ok(fdatasyncs > before, 'a credential issuance (not pass-through) is fdatasync-ed before append() resolves');
  // Issued in the same turn: one batch holding tool calls and a state change is flushed as a whole.
  const n = asked.length;
  before = fdatasyncs;
  await Promise.all([log.append(toolCall(3)), log.commit(store, (tx) => tx.run('INSERT INTO t (v) VALUES (?)', ['y']), secretWritten(4)), log.append(toolCall(5))]);
  assert.deepEqual(asked.slice(n), [undefined], 'one batch, flushed');
  assert.ok(fdatasyncs > before);
  assert.equal(log.flushStats().deferred, 0);
  await log.close();
});

test('per_request: every batch, pass-through ones too, is flushed before its answer', async () => {
  const { store, asked } = recordingStore(await openStore(join(tempDir(), 'a.db')));
  const { log } = await makeLog({ store, flush: { mode: 'per_request' } });
  const before = fdatasyncs;
  await log.append(toolCall(1));
  await log.append(secretRead(2));
  assert.deepEqual(asked.slice(-2), [undefined, undefined]);
  assert.equal(fdatasyncs, before + 2);
  assert.equal(log.flushStats().deferred, 0);
  assert.equal(log.flushStats().flushed, 2);
  await log.close();
});

test('a flushed batch after deferred ones exports its head; close() syncs whatever is still deferred', async () => {
  const dir = tempDir();
  const store = await openStore(join(dir, 'a.db'));
  const lines: string[] = [];
  const { log } = await makeLog({ store, flush: { mode: 'grouped', windowMs: 10_000 }, sinks: [{ kind: 'store' }, { kind: 'stdout' }], stdout: { write: (c: string) => lines.push(c) } });
  await log.append(toolCall(1));
  await log.append(tokenIssued(2)); // flushed: its head (seq 2) covers the deferred seq 1
  await log.append(toolCall(3));
  const heads = () => lines.join('').split('\n').filter((l) => l.includes('tessera.audit.head')).map((l) => (JSON.parse(l) as { seq: number }).seq);
  assert.deepEqual(heads(), [2]);
  const before = fdatasyncs;
  await log.close();
  assert.ok(fdatasyncs > before, 'close() synced the deferred tail');
  assert.equal(log.flushStats().syncFailed, false);
  assert.ok(heads().at(-1)! >= 3, `the last head covers seq 3: ${heads().join(',')}`);
});

test('a failing group flush is counted, shown by health() (/readyz) and retried; the head waits until a sync succeeds', async () => {
  const real = await openStore(join(tempDir(), 'a.db'));
  let failing = true;
  const store = Object.create(real) as Store;
  store.sync = async () => {
    if (failing) throw new TesseraError('TESSERA_STORE_UNAVAILABLE', 'cannot sync the SQLite WAL to disk (EIO): test');
    return real.sync();
  };
  const lines: string[] = [];
  const { log, metrics } = await makeLog({ store, flush: { mode: 'grouped', windowMs: 1 }, sinks: [{ kind: 'store' }, { kind: 'stdout' }], stdout: { write: (c: string) => lines.push(c) } });
  await log.append(toolCall(1));
  await until('a failed group flush', () => metrics.counter('tessera_audit_group_flushes_total', '').get({ result: 'failed' }) >= 1);
  assert.equal(log.health().ok, false);
  assert.equal(log.flushStats().syncFailed, true);
  assert.equal(lines.join('').includes('tessera.audit.head'), false, 'no head exported while unsynced');
  await assert.rejects(log.sync(), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_AUDIT_UNAVAILABLE');
  failing = false;
  await until('a retried group flush', () => log.flushStats().groupFlushes >= 1);
  await log.flush();
  assert.equal(log.health().ok, true);
  await until('the head exported', () => lines.join('').includes('tessera.audit.head'));
  await log.close();
});
