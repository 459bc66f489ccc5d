/**
 * The Store conformance suite (DESIGN.md, Storage: "one conformance test suite runs against
 * every adapter"). Each adapter's test file calls runStoreConformance with a factory that opens
 * a NEW store on ONE shared database each time it is called (two calls = two replicas).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TesseraError } from '../../src/shared/errors.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import type { Store } from '../../src/store/port.js';
import { withSavepoint } from '../../src/store/savepoint.js';

export interface ConformanceOptions {
  /**
   * Opens a store on a brand-new empty database (for the concurrent-migration test), or
   * undefined to skip it.
   */
  readonly openFreshStore?: () => Promise<Store>;
  /** True when two stores on the same database may run transactions concurrently (PostgreSQL). */
  readonly concurrentReplicas: boolean;
}

export function isCode(code: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof TesseraError, `expected TesseraError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

/** Resolves with the first value `pred` accepts; rejects after a generous bound (a hang guard, not a timing assertion). */
function waitFor<T>(register: (push: (v: T) => void) => void, pred: (v: T) => boolean, what: string, ms = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    register((v) => {
      if (pred(v)) {
        clearTimeout(timer);
        resolve(v);
      }
    });
  });
}

let uniq = 0;
const key = (p: string): string => `${p}-${process.pid}-${++uniq}`;

export function runStoreConformance(name: string, openStore: () => Promise<Store>, options: ConformanceOptions): void {
  describe(`Store conformance: ${name}`, () => {
    let a: Store;
    let b: Store;
    before(async () => {
      a = await openStore();
      await a.migrate();
      b = await openStore();
      await b.migrate();
    });
    after(async () => {
      await a?.close();
      await b?.close();
    });

    test('? placeholders are bound in order, and ? inside literals and comments is left alone', async () => {
      const k = key('ph');
      await a.run("INSERT INTO meta (key, value) VALUES (?, '?') -- trailing comment?", [k]);
      const row = await a.get<{ key: string; value: string; lit: string }>(
        "SELECT key, value, 'it''s a ?' AS lit /* a ? in a comment */ FROM meta WHERE key = ? AND value = '?'",
        [k],
      );
      assert.deepEqual(row, { key: k, value: '?', lit: "it's a ?" });
      const k2 = key('ph2');
      await a.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k2, 'x?y']);
      const rows = await a.all<{ key: string }>('SELECT key FROM meta WHERE key IN (?, ?) AND value <> ? ORDER BY key', [k, k2, 'nope']);
      assert.deepEqual(rows.map((r) => r.key).sort(), [k, k2].sort());
      assert.equal(await a.get('SELECT key FROM meta WHERE key = ?', [key('absent')]), undefined);
    });

    test('a deferred-durability transaction commits like any other (visible to both connections, rolled back on throw); sync() resolves, also with nothing owed (ADR 0185)', async () => {
      const k = key('deferred');
      await a.transaction((tx) => tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k, 'd']), { durability: 'deferred' });
      assert.deepEqual(await a.get('SELECT value FROM meta WHERE key = ?', [k]), { value: 'd' });
      assert.deepEqual(await b.get('SELECT value FROM meta WHERE key = ?', [k]), { value: 'd' });
      const k2 = key('deferred');
      await assert.rejects(a.transaction(async (tx) => {
        await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k2, 'x']);
        throw new Error('undo');
      }, { durability: 'deferred' }), /undo/);
      assert.equal(await a.get('SELECT value FROM meta WHERE key = ?', [k2]), undefined);
      await a.sync();
      await a.sync();
      // A flushed commit after a deferred one.
      await a.transaction((tx) => tx.run('UPDATE meta SET value = ? WHERE key = ?', ['f', k]), { durability: 'flush' });
      assert.deepEqual(await b.get('SELECT value FROM meta WHERE key = ?', [k]), { value: 'f' });
    });

    test('blobs round-trip as Buffer (all byte values, empty, Uint8Array input)', async () => {
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const id1 = key('blob');
      const id2 = key('blob');
      await a.run('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)', [id1, `n-${id1}`, all, 1]);
      await a.run('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)', [id2, `n-${id2}`, new Uint8Array([9, 8, 7]), 2]);
      const r1 = await a.get<{ token_hash: Buffer }>('SELECT token_hash FROM admin_tokens WHERE id = ?', [id1]);
      assert.ok(Buffer.isBuffer(r1?.token_hash));
      assert.deepEqual(r1?.token_hash, all);
      const r2 = await a.get<{ token_hash: Buffer }>('SELECT token_hash FROM admin_tokens WHERE token_hash = ?', [Buffer.from([9, 8, 7])]);
      assert.deepEqual(r2?.token_hash, Buffer.from([9, 8, 7]));
      const id3 = key('blob');
      await a.run('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)', [id3, `n-${id3}`, Buffer.alloc(0), 3]);
      const r3 = await a.get<{ token_hash: Buffer }>('SELECT token_hash FROM admin_tokens WHERE id = ?', [id3]);
      assert.deepEqual(r3?.token_hash, Buffer.alloc(0));
    });

    test('BIGINT columns and aggregates read as numbers; beyond 2^53-1 is an error, not a rounded value', async () => {
      const path = key('big');
      const max = Number.MAX_SAFE_INTEGER;
      await a.run(
        'INSERT INTO secrets (path, current_version, mode, created_at, updated_at, rotation_period_s) VALUES (?, ?, ?, ?, ?, ?)',
        [path, 5n, 'static', max, -max, 0],
      );
      const row = await a.get<Record<string, unknown>>('SELECT current_version, created_at, updated_at, rotation_period_s FROM secrets WHERE path = ?', [path]);
      assert.deepEqual(row, { current_version: 5, created_at: max, updated_at: -max, rotation_period_s: 0 });
      const agg = await a.get<{ n: unknown; s: unknown; m: unknown }>('SELECT COUNT(*) AS n, SUM(current_version) AS s, MAX(created_at) AS m FROM secrets WHERE path = ?', [path]);
      assert.deepEqual(agg, { n: 1, s: 5, m: max });
      const huge = key('huge');
      await a.run('INSERT INTO secrets (path, current_version, mode, created_at, updated_at) VALUES (?, ?, ?, ?, ?)', [huge, 2n ** 62n, 'static', 1, 1]);
      await assert.rejects(a.get('SELECT current_version FROM secrets WHERE path = ?', [huge]), isCode('TESSERA_STORE_VALUE_OUT_OF_RANGE'));
      await a.run('DELETE FROM secrets WHERE path = ?', [huge]);
    });

    test('NULL round-trips as null', async () => {
      const path = key('null');
      await a.run('INSERT INTO secrets (path, current_version, mode, description, owner, rotation_period_s, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
        path, 1, 'static', null, null, null, 1, 1,
      ]);
      const row = await a.get<Record<string, unknown>>('SELECT description, owner, rotation_period_s FROM secrets WHERE path = ?', [path]);
      assert.deepEqual(row, { description: null, owner: null, rotation_period_s: null });
      const isNull = await a.get('SELECT path FROM secrets WHERE path = ? AND description IS NULL', [path]);
      assert.ok(isNull);
    });

    test('RETURNING works with get/all, and run() reports the number of changed rows', async () => {
      const id = key('ret');
      const ins = await a.get<{ id: string; created_at: number }>('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id, created_at', [id, `n-${id}`, Buffer.from(id), 7]);
      assert.deepEqual(ins, { id, created_at: 7 });
      const upd = await a.all<{ id: string; revoked_at: number }>('UPDATE admin_tokens SET revoked_at = ? WHERE id = ? RETURNING id, revoked_at', [9, id]);
      assert.deepEqual(upd, [{ id, revoked_at: 9 }]);
      assert.deepEqual(await a.run('UPDATE admin_tokens SET revoked_at = ? WHERE id = ?', [10, id]), { changes: 1 });
      assert.deepEqual(await a.run('UPDATE admin_tokens SET revoked_at = ? WHERE id = ?', [10, key('none')]), { changes: 0 });
      assert.deepEqual(await a.run('DELETE FROM admin_tokens WHERE id = ?', [id]), { changes: 1 });
    });

    test('ON CONFLICT ... DO UPDATE upserts (excluded.*, table-qualified old value)', async () => {
      const id = key('spiffe://example.org/agent');
      const upsert = 'INSERT INTO agents (spiffe_id, attestor, first_seen, last_seen, logins) VALUES (?, ?, ?, ?, 1) ON CONFLICT (spiffe_id) DO UPDATE SET last_seen = excluded.last_seen, logins = agents.logins + 1 RETURNING logins';
      assert.deepEqual(await a.get(upsert, [id, 'join_token', 100, 100]), { logins: 1 });
      assert.deepEqual(await a.get(upsert, [id, 'join_token', 200, 200]), { logins: 2 });
      const row = await a.get('SELECT first_seen, last_seen, logins FROM agents WHERE spiffe_id = ?', [id]);
      assert.deepEqual(row, { first_seen: 100, last_seen: 200, logins: 2 });
      await a.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', [id, 'first']);
      await a.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', [id, 'second']);
      assert.deepEqual(await a.get('SELECT value FROM meta WHERE key = ?', [id]), { value: 'first' });
    });

    test('unique and NOT NULL violations are TESSERA_STORE_CONFLICT, outside and inside transactions', async () => {
      const k = key('dup');
      await a.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k, '1']);
      await assert.rejects(a.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k, '2']), isCode('TESSERA_STORE_CONFLICT'));
      await assert.rejects(b.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k, '3']), isCode('TESSERA_STORE_CONFLICT'));
      await assert.rejects(a.run('INSERT INTO meta (key, value) VALUES (?, ?)', [key('nn'), null]), isCode('TESSERA_STORE_CONFLICT'));
      const other = key('dup-tx');
      await assert.rejects(
        a.transaction(async (tx) => {
          await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [other, '1']);
          await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k, '4']);
        }),
        isCode('TESSERA_STORE_CONFLICT'),
      );
      assert.equal(await a.get('SELECT key FROM meta WHERE key = ?', [other]), undefined, 'the failed transaction rolled back');
      assert.deepEqual(await a.get('SELECT value FROM meta WHERE key = ?', [k]), { value: '1' });
    });

    test('a transaction commits when fn resolves and rolls back (rethrowing) when it throws', async () => {
      const k1 = key('tx');
      const out = await a.transaction(async (tx) => {
        await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k1, 'a']);
        const inside = await tx.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [k1]);
        return inside?.value;
      });
      assert.equal(out, 'a');
      assert.deepEqual(await b.get('SELECT value FROM meta WHERE key = ?', [k1]), { value: 'a' }, 'committed data is visible to another replica');
      const k2 = key('tx');
      const boom = new Error('boom');
      await assert.rejects(
        a.transaction(async (tx) => {
          await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k2, 'b']);
          await tx.run('UPDATE meta SET value = ? WHERE key = ?', ['changed', k1]);
          throw boom;
        }),
        (e) => e === boom,
      );
      assert.equal(await a.get('SELECT key FROM meta WHERE key = ?', [k2]), undefined);
      assert.deepEqual(await a.get('SELECT value FROM meta WHERE key = ?', [k1]), { value: 'a' });
    });

    test('withSavepoint: a failing step (even a constraint violation) is undone alone; the transaction commits the rest', async () => {
      const [k1, k2, k3] = [key('sp'), key('sp'), key('sp')];
      await a.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k3, 'taken']);
      const outcomes = await a.transaction(async (tx) => {
        const ok = await withSavepoint(tx, 'step', async () => {
          await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k1, 'kept']);
          return 1;
        });
        const failed = await withSavepoint(tx, 'step', async () => {
          await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k2, 'undone']);
          await tx.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k3, 'duplicate']);
        });
        await tx.run('UPDATE meta SET value = ? WHERE key = ?', ['after', k1]);
        return { ok, failed };
      });
      assert.deepEqual(outcomes.ok, { ok: true, value: 1 });
      assert.equal(outcomes.failed.ok, false);
      assert.ok(!outcomes.failed.ok && isCode('TESSERA_STORE_CONFLICT')(outcomes.failed.error));
      assert.deepEqual(await b.get('SELECT value FROM meta WHERE key = ?', [k1]), { value: 'after' });
      assert.equal(await b.get('SELECT value FROM meta WHERE key = ?', [k2]), undefined);
      assert.deepEqual(await b.get('SELECT value FROM meta WHERE key = ?', [k3]), { value: 'taken' });
      await assert.rejects(a.transaction((tx) => withSavepoint(tx, 'bad name;', async () => 1)), isCode('TESSERA_STORE_INVALID_ARGUMENT'));
    });

    test('50 concurrent read-modify-write transactions lose no update', async () => {
      const k = key('counter');
      await a.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k, '0']);
      const stores = options.concurrentReplicas ? [a, b] : [a];
      const increment = (s: Store): Promise<void> =>
        s.transaction(async (tx) => {
          const row = await tx.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [k]);
          // Yield between read and write so that transactions would interleave if they could.
          await new Promise((r) => setImmediate(r));
          await tx.run('UPDATE meta SET value = ? WHERE key = ?', [String(Number(row?.value) + 1), k]);
        });
      await Promise.all(Array.from({ length: 50 }, (_, i) => increment(stores[i % stores.length]!)));
      assert.deepEqual(await a.get('SELECT value FROM meta WHERE key = ?', [k]), { value: '50' });
    });

    test('a plain statement issued while a transaction is open does not see its uncommitted writes', async () => {
      const k = key('iso');
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let inserted!: () => void;
      const didInsert = new Promise<void>((r) => (inserted = r));
      const tx = a.transaction(async (t) => {
        await t.run('INSERT INTO meta (key, value) VALUES (?, ?)', [k, 'tx']);
        inserted();
        await gate;
      });
      await didInsert;
      const seen = a.get('SELECT value FROM meta WHERE key = ?', [k]);
      release();
      await tx;
      // SQLite queues the statement after the transaction (sees the commit); PostgreSQL runs it on
      // another connection (sees nothing). Either way it never sees a half-done transaction.
      const v = await seen;
      assert.ok(v === undefined || (v as { value: string }).value === 'tx');
    });

    test('migrate() is idempotent and records every migration once', async () => {
      await a.migrate();
      await b.migrate();
      const rows = await a.all<{ id: number }>('SELECT id FROM schema_migrations ORDER BY id');
      assert.deepEqual(rows.map((r) => r.id), MIGRATIONS.map((m) => m.id).sort((x, y) => x - y));
    });

    if (options.openFreshStore) {
      test('two replicas migrating a fresh database at once do not race', async () => {
        const s1 = await options.openFreshStore!();
        const s2 = await options.openFreshStore!();
        try {
          await Promise.all([s1.migrate(), s2.migrate()]);
          const rows = await s1.all<{ id: number; n: number }>('SELECT id, COUNT(*) AS n FROM schema_migrations GROUP BY id ORDER BY id');
          assert.deepEqual(rows, MIGRATIONS.map((m) => ({ id: m.id, n: 1 })));
        } finally {
          await s1.close();
          await s2.close();
        }
      });
    }

    test('publish reaches subscribers on every replica (the publisher included); unsubscribe stops delivery', async () => {
      const got1: string[] = [];
      const got2: string[] = [];
      let push1: (v: string) => void = () => undefined;
      let push2: (v: string) => void = () => undefined;
      const unsub1 = await b.subscribe('tessera_conf', (p) => {
        got1.push(p);
        push1(p);
      });
      const unsub2 = await a.subscribe('tessera_conf', (p) => {
        got2.push(p);
        push2(p);
      });
      const w1 = waitFor<string>((p) => (push1 = p), (v) => v === 'hello ✓ "quoted" \'single\'', 'b to receive');
      const w2 = waitFor<string>((p) => (push2 = p), (v) => v === 'hello ✓ "quoted" \'single\'', 'a to receive');
      await a.publish('tessera_conf', 'hello ✓ "quoted" \'single\'');
      await Promise.all([w1, w2]);
      await unsub1();
      const w3 = waitFor<string>((p) => (push2 = p), (v) => v === 'after', 'a to receive the second message');
      await b.publish('tessera_conf', 'after');
      await w3;
      assert.deepEqual(got2, ['hello ✓ "quoted" \'single\'', 'after']);
      assert.deepEqual(got1, ['hello ✓ "quoted" \'single\''], 'no delivery after unsubscribe');
      await unsub2();
      await unsub2(); // idempotent
    });

    test('publish/subscribe reject bad channels and oversized payloads', async () => {
      await assert.rejects(a.publish('Bad-Channel', 'x'), isCode('TESSERA_STORE_INVALID_ARGUMENT'));
      await assert.rejects(a.publish('x"; DROP TABLE meta; --', 'x'), isCode('TESSERA_STORE_INVALID_ARGUMENT'));
      await assert.rejects(a.subscribe('', () => undefined), isCode('TESSERA_STORE_INVALID_ARGUMENT'));
      await assert.rejects(a.publish('ok_channel', 'x'.repeat(8000)), isCode('TESSERA_STORE_INVALID_ARGUMENT'));
      await a.publish('ok_channel', 'x'.repeat(7900));
    });

    test('a leader lock is held by one replica at a time', async () => {
      const l1 = await a.tryLeaderLock('conformance.reaper');
      assert.ok(l1);
      assert.equal(l1.held(), true);
      assert.equal(await b.tryLeaderLock('conformance.reaper'), null, 'the other replica does not get it');
      assert.equal(await a.tryLeaderLock('conformance.reaper'), null, 'not re-entrant within a replica either');
      assert.deepEqual(await b.withLeaderLock('conformance.reaper', async () => 'ran'), { leader: false });
      const other = await b.tryLeaderLock('conformance.other');
      assert.ok(other, 'locks with other names are independent');
      await other.release();
      await l1.release();
      await l1.lost; // resolves once released
      assert.equal(l1.held(), false);
      await l1.release(); // idempotent
      const l2 = await b.tryLeaderLock('conformance.reaper');
      assert.ok(l2, 'after release the other replica gets it');
      assert.equal(await a.tryLeaderLock('conformance.reaper'), null);
      await l2.release();
      let heldInside = false;
      const r = await a.withLeaderLock('conformance.reaper', async (lock) => {
        heldInside = lock.held();
        assert.equal(await b.tryLeaderLock('conformance.reaper'), null);
        return 42;
      });
      assert.deepEqual(r, { leader: true, value: 42 });
      assert.equal(heldInside, true);
      const l3 = await b.tryLeaderLock('conformance.reaper');
      assert.ok(l3, 'withLeaderLock released the lock');
      await l3.release();
      await assert.rejects(a.tryLeaderLock(''), isCode('TESSERA_STORE_INVALID_ARGUMENT'));
      await assert.rejects(a.tryLeaderLock('bad name with spaces'), isCode('TESSERA_STORE_INVALID_ARGUMENT'));
    });

    test('every table of migration 1 accepts and returns representative rows', async () => {
      const t = key('row');
      const blob = (s: string): Buffer => Buffer.from(`${s}-${t}`);
      const rows: Record<string, Record<string, unknown>> = {
        meta: { key: `k-${t}`, value: '{"v":1}' },
        admin_tokens: { id: `at-${t}`, name: `n-at-${t}`, token_hash: blob('h'), created_at: 1_700_000_000_000, revoked_at: null },
        join_tokens: { id: `jt-${t}`, token_hash: blob('jh'), spiffe_id: 'spiffe://example.org/a', labels: '{"team":"x"}', created_at: 1, expires_at: 2, used_at: null },
        agents: { spiffe_id: `spiffe://example.org/${t}`, attestor: 'k8s_psat', attributes: '{}', first_seen: 1, last_seen: 2, logins: 3 },
        signing_keys: {
          kid: `kid-${t}`, alg: 'EdDSA', use_: 'sig', public_jwk: '{"kty":"OKP"}', sealed_private: blob('sealed'),
          created_at: 1, activates_at: 2, retires_at: 3, expires_at: 4,
        },
        secrets: { path: `kv/${t}`, current_version: 1, mode: 'static', description: 'd', owner: 'o', rotation_period_s: 86400, created_at: 1, updated_at: 2 },
        secret_versions: { path: `kv/${t}`, version: 1, ciphertext: blob('ct'), wrapped_key: blob('wk'), master_key_id: 'mk1', created_at: 1, destroyed_at: null },
        leases: {
          id: `lease-${t}`, engine: 'postgres', role: 'ro', path: 'db/ro', owner_agent: 'spiffe://example.org/a', task_id: 'task', user_id: null,
          state: 'active', engine_data: '{"user":"u"}', created_at: 1, expires_at: 2, max_expires_at: 3, revoked_at: null,
          revoke_attempts: 0, next_attempt_at: null, last_error: null,
        },
        revocations: { id: `rev-${t}`, kind: 'agent', target: 'spiffe://example.org/a', reason: 'test', created_at: 1, expires_at: null, lifted_at: null },
        audit_events: { seq: 1_000_000 + uniq, ts: 1, kind: 'test', actor: 'a', txn: 't', body: '{}', prev_hash: 'p', hash: 'h' },
        audit_checkpoints: { seq: 1_000_000 + uniq, ts: 1, hash: 'h', key_id: 'k', signature: 's' },
      };
      const tables = MIGRATIONS.find((m) => m.id === 1)!.sql.flatMap((s) => /^CREATE TABLE (\w+)/.exec(s)?.[1] ?? []);
      assert.deepEqual([...tables].sort(), Object.keys(rows).sort(), 'a representative row exists for every table');
      for (const [table, row] of Object.entries(rows)) {
        const cols = Object.keys(row);
        await a.run(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`, cols.map((c) => row[c] as never));
        const [pk, pkv] = Object.entries(row)[0]!;
        const back = await b.get(`SELECT ${cols.join(', ')} FROM ${table} WHERE ${pk} = ?`, [pkv as never]);
        assert.deepEqual(back, row, `table ${table}`);
      }
    });
  });
}
