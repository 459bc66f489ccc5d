import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { openPostgresStore, toPgPlaceholders } from '../../src/store/postgres/index.js';
import type { Store } from '../../src/store/port.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { isCode, runStoreConformance } from './conformance.js';

// One database for the suite's replicas; fresh databases for the migration race, dropped after.
const dbs: TestDatabase[] = [];
let shared: Promise<TestDatabase> | null = null;
const sharedDb = (): Promise<TestDatabase> => (shared ??= createTestDatabase('conformance').then((d) => (dbs.push(d), d)));
after(async () => {
  for (const d of dbs) await d.drop();
});

runStoreConformance('postgres', async () => openPostgresStore({ url: (await sharedDb()).url, poolSize: 5 }), {
  concurrentReplicas: true,
  openFreshStore: (() => {
    let fresh: Promise<TestDatabase> | null = null;
    let n = 0;
    return async () => {
      // Two calls in a row share one fresh database (the two racing replicas).
      if (n++ % 2 === 0) fresh = createTestDatabase('fresh').then((d) => (dbs.push(d), d));
      return openPostgresStore({ url: (await fresh!).url });
    };
  })(),
});

describe('postgres adapter specifics', () => {
  let db: TestDatabase;
  let store: Store;
  let admin: pg.Client;
  before(async () => {
    db = await sharedDb();
    store = openPostgresStore({ url: db.url });
    await store.migrate();
    admin = new pg.Client({ connectionString: db.adminUrl });
    await admin.connect();
  });
  after(async () => {
    await store?.close();
    await admin?.end();
  });

  test('placeholder rewriting skips literals, quoted identifiers, comments and dollar quotes', () => {
    const cases: [string, string, number][] = [
      ['SELECT ?', 'SELECT $1', 1],
      ["SELECT ?, '?', ?", "SELECT $1, '?', $2", 2],
      ["SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1],
      ["SELECT E'\\' ?', ?", "SELECT E'\\' ?', $1", 1],
      ['SELECT "we?ird", ?', 'SELECT "we?ird", $1', 1],
      ['SELECT ? -- why?\n, ?', 'SELECT $1 -- why?\n, $2', 2],
      ['SELECT /* a /* nested ? */ still ? */ ?', 'SELECT /* a /* nested ? */ still ? */ $1', 1],
      ['SELECT $$ ? $$, $tag$ ?$$? $tag$, ?', 'SELECT $$ ? $$, $tag$ ?$$? $tag$, $1', 1],
      ["SELECT ? FROM t WHERE a = 'x' AND b = ?", "SELECT $1 FROM t WHERE a = 'x' AND b = $2", 2],
    ];
    for (const [input, text, count] of cases) assert.deepEqual(toPgPlaceholders(input), { text, count }, input);
  });

  test('an unreachable server is TESSERA_STORE_UNAVAILABLE naming host:port but never the password', async () => {
    const s = openPostgresStore({ url: 'postgres://someone:sup3r-s3cret@127.0.0.1:1/db', connectTimeoutMs: 2000 });
    const check = (e: unknown): boolean => {
      isCode('TESSERA_STORE_UNAVAILABLE')(e);
      const m = (e as Error).message;
      assert.match(m, /127\.0\.0\.1:1\b/);
      assert.doesNotMatch(m, /sup3r-s3cret/);
      assert.doesNotMatch(JSON.stringify((e as { details?: unknown }).details ?? {}), /sup3r-s3cret/);
      return true;
    };
    await assert.rejects(s.get('SELECT 1'), check);
    await assert.rejects(s.transaction(async () => 1), check);
    await assert.rejects(s.migrate(), check);
    assert.equal(await s.ping(), false);
    await s.close();
    assert.throws(() => openPostgresStore({ url: 'not a url' }), isCode('TESSERA_STORE_UNAVAILABLE'));
    assert.throws(() => openPostgresStore({ url: 'mysql://x@y/z' }), isCode('TESSERA_STORE_UNAVAILABLE'));
  });

  test('a wrong password (scram-sha-256) is TESSERA_STORE_UNAVAILABLE without the password', async () => {
    const u = new URL(db.url);
    u.password = 'wrong-pass-123';
    const s = openPostgresStore({ url: u.toString() });
    await assert.rejects(s.get('SELECT 1'), (e: unknown) => isCode('TESSERA_STORE_UNAVAILABLE')(e) && !(e as Error).message.includes('wrong-pass-123'));
    await s.close();
  });

  test('ping is true on a live server; a closed store refuses work', async () => {
    const s = openPostgresStore({ url: db.url });
    assert.equal(await s.ping(), true);
    await s.close();
    assert.equal(await s.ping(), false);
    await assert.rejects(s.get('SELECT 1'), isCode('TESSERA_STORE_UNAVAILABLE'));
  });

  test('the statement timeout cancels a slow query with TESSERA_STORE_UNAVAILABLE', async () => {
    const s = openPostgresStore({ url: db.url, statementTimeoutMs: 50 });
    await assert.rejects(s.get('SELECT pg_sleep(5)'), isCode('TESSERA_STORE_UNAVAILABLE'));
    await s.close();
  });

  test('SQL errors in a transaction roll it back', async () => {
    await assert.rejects(store.transaction(async (tx) => tx.get('SELECT nope FROM meta')), isCode('TESSERA_STORE_UNAVAILABLE'));
    assert.equal(await store.ping(), true);
  });

  test('the listener reconnects after its session dies and asks subscribers to resync', async () => {
    const s = openPostgresStore({ url: db.url });
    let resynced!: () => void;
    const resync = new Promise<void>((r) => (resynced = r));
    const got: string[] = [];
    let onMsg: (p: string) => void = () => undefined;
    await s.subscribe('tessera_reconnect', (p) => {
      got.push(p);
      onMsg(p);
    }, { onResync: () => resynced() });
    const killed = await admin.query("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tessera-listener'");
    assert.ok(killed.rows.length >= 1);
    await resync;
    const arrived = new Promise<void>((r) => (onMsg = (p) => p === 'back' && r()));
    await store.publish('tessera_reconnect', 'back');
    await arrived;
    assert.ok(got.includes('back'));
    await s.close();
  });

  test('a leader whose session dies loses the lock, and another replica can take it', async () => {
    const s1 = openPostgresStore({ url: db.url });
    const s2 = openPostgresStore({ url: db.url });
    const lock = await s1.tryLeaderLock('conformance.lost');
    assert.ok(lock);
    assert.equal(await s2.tryLeaderLock('conformance.lost'), null);
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tessera-leader'");
    await lock.lost;
    assert.equal(lock.held(), false);
    let taken = null;
    // The server releases the lock when the killed backend exits; bounded retries cover that gap.
    for (let i = 0; i < 50 && !taken; i++) {
      taken = await s2.tryLeaderLock('conformance.lost');
      if (!taken) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(taken);
    await s1.close();
    await s2.close();
  });
});
