/**
 * `GET /v1/admin/events` (docs/console-api.md "Live events"), read with a real HTTP client
 * (fetch, the body stream): filters, the public audit view, Last-Event-ID resume, the bound on
 * streams, one shared tail (not one query per client) that stops when nobody listens, a client
 * that does not read is dropped, shutdown ends every stream; on SQLite and on PostgreSQL with two
 * replicas (an event committed on replica A reaches a stream on replica B).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startHarness } from '../e2e/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Row, SqlValue, Store } from '../../src/store/port.js';
import { createApp } from '../../src/server/app.js';
import { silentLogger } from '../../src/shared/logger.js';
import { TesseraError } from '../../src/shared/errors.js';
import { createAuditStreams, type AuditStreams } from '../../src/console/events.js';
import { registerConsoleReadRoutes } from '../../src/console/read-routes.js';
import { openSse, auditEntries } from './sse.js';

const READER = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';

test('SQLite: filtered streams get the committed events as GET /v1/admin/audit shows them; Last-Event-ID resumes; bad parameters refused', async (t) => {
  const h = await startHarness({ config: { console: { max_streams: 3 } } });
  t.after(() => h.close());
  const url = (q = '') => `${h.url}/v1/admin/events${q}`;
  const all = await openSse(url(), h.adminToken);
  t.after(() => all.close());
  assert.equal(all.status, 200);
  assert.match(all.headers.get('content-type') ?? '', /^text\/event-stream/);
  assert.equal(all.headers.get('cache-control'), 'no-store');
  const joins = await openSse(url('?kind=join_token.'), h.adminToken);
  t.after(() => joins.close());
  const denies = await openSse(url('?result=deny'), h.adminToken);
  t.after(() => denies.close());
  await all.waitFor('the connected comment', () => all.comments.some((c) => c.startsWith('connected')));

  const joinToken = await h.joinToken(READER);
  const agentToken = await h.login(joinToken);
  assert.equal((await h.agent(agentToken, 'GET', '/v1/secrets/nowhere/x')).status, 403); // a deny
  await all.waitFor('auth.login', () => auditEntries(all).some((e) => e.event.kind === 'auth.login'));
  await joins.waitFor('join_token.created', () => auditEntries(joins).some((e) => e.event.kind === 'join_token.created'));
  await denies.waitFor('a deny', () => auditEntries(denies).length > 0);

  // Filters: only what matches.
  assert.ok(auditEntries(joins).every((e) => e.event.kind.startsWith('join_token.')));
  assert.ok(auditEntries(denies).every((e) => e.event.result === 'deny'));
  // The same view as GET /v1/admin/audit, with the seq as the SSE id, in order.
  const fromAudit = new Map<number, any>((await h.admin('GET', '/v1/admin/audit?limit=1000')).body.events.map((e: any) => [e.seq, e]));
  const msgs = all.messages.filter((m) => m.event === 'audit');
  assert.ok(msgs.length >= 3);
  for (const m of msgs) {
    const e = JSON.parse(m.data);
    assert.equal(m.id, String(e.seq));
    assert.deepEqual(e, fromAudit.get(e.seq));
  }
  const seqs = msgs.map((m) => Number(m.id));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, seqs.length);
  // Never a token in clear.
  for (const s of [all, joins, denies]) for (const secret of [joinToken, agentToken, h.adminToken]) assert.ok(!s.text().includes(secret));

  // Resume: the events after the last one seen, exactly once, then live.
  const last = seqs[seqs.length - 1]!;
  all.close();
  await h.joinToken('spiffe://tessera.local/ns/x/sa/missed-1');
  await h.joinToken('spiffe://tessera.local/ns/x/sa/missed-2');
  const missed = (await h.admin('GET', `/v1/admin/audit?after_seq=${last}&limit=1000`)).body.events.map((e: any) => e.seq);
  assert.ok(missed.length >= 2);
  const resumed = await openSse(url(), h.adminToken, { 'last-event-id': String(last) });
  t.after(() => resumed.close());
  await resumed.waitFor('the missed events', () => missed.every((s: number) => auditEntries(resumed).some((e) => e.seq === s)));
  await h.joinToken('spiffe://tessera.local/ns/x/sa/live-after-resume');
  await resumed.waitFor('the live event after the replay', () => auditEntries(resumed).some((e) => e.event.details?.spiffe_id === 'spiffe://tessera.local/ns/x/sa/live-after-resume'));
  const got = auditEntries(resumed).map((e) => e.seq);
  assert.equal(got[0], missed[0]);
  assert.equal(new Set(got).size, got.length, 'no event twice');
  assert.deepEqual(got, [...got].sort((a, b) => a - b));

  // Bound: 3 streams open (joins, denies, resumed) = console.max_streams.
  const refused = await openSse(url(), h.adminToken);
  assert.equal(refused.status, 503);
  assert.equal(refused.body.error.code, 'TESSERA_CONSOLE_STREAMS_BUSY');
  assert.equal(refused.headers.get('retry-after'), '5');
  joins.close();
  let reopened = await openSse(url(), h.adminToken);
  for (let i = 0; i < 200 && reopened.status === 503; i++) {
    await new Promise((r) => setTimeout(r, 25));
    reopened = await openSse(url(), h.adminToken);
  }
  assert.equal(reopened.status, 200, 'a closed stream frees its place');
  reopened.close();

  // Bad parameters: exact codes, and what to send.
  for (const [q, hdr] of [['?result=maybe', {}], ['?kind=Bad-Kind', {}], ['?task=has%20space', {}], ['?bogus=1', {}], ['?actor=', {}], ['', { 'last-event-id': 'abc' }], ['', { 'last-event-id': '-1' }]] as const) {
    const r = await openSse(url(q), h.adminToken, hdr as Record<string, string>);
    assert.equal(r.status, 400, q + JSON.stringify(hdr));
    assert.equal(r.body.error.code, 'TESSERA_REQUEST_INVALID', q);
  }
  const noAuth = await fetch(url());
  assert.equal(noAuth.status, 401);
  assert.equal(((await noAuth.json()) as any).error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
});

test('PostgreSQL, two replicas: an event committed on replica A reaches a stream on replica B', async (t) => {
  const db = await createTestDatabase('console_events');
  t.after(() => db.drop());
  process.env.TESSERA_TEST_MASTER_KEY = Buffer.alloc(32, 9).toString('base64');
  const config = (replica: string) => ({ server: { listen: '127.0.0.1:0', public_url: 'https://tessera.test' }, replica_id: replica, store: { kind: 'postgres', url: db.url }, master_key: { env: 'TESSERA_TEST_MASTER_KEY' } });
  // One --root-token for both dev-mode replicas (each dev start revokes the other's dev token otherwise).
  const rootToken = 'tsr_admin_console-events-replicas-share-one-root-token';
  const a = await startHarness({ config: config('replica-a'), rootToken });
  t.after(() => a.close());
  const b = await startHarness({ config: config('replica-b'), rootToken });
  t.after(() => b.close());
  const onB = await openSse(`${b.url}/v1/admin/events?kind=secret.`, b.adminToken);
  t.after(() => onB.close());
  assert.equal(onB.status, 200);
  await onB.waitFor('connected', () => onB.comments.some((c) => c.startsWith('connected')));
  const value = `pg-events-${Math.random().toString(36).slice(2)}`;
  a.sensitive.add(value);
  assert.equal((await a.admin('PUT', '/v1/admin/secrets/team/from-a', { value, mode: 'read' })).status, 200);
  await onB.waitFor('secret.written from replica a', () => auditEntries(onB).some((e) => e.event.kind === 'secret.written' && e.event.resource === 'secret:team/from-a'));
  const e = auditEntries(onB).find((x) => x.event.kind === 'secret.written')!;
  assert.equal(e.event.where.replica, 'replica-a');
  assert.deepEqual(e, (await b.admin('GET', `/v1/admin/audit?after_seq=${e.seq - 1}&limit=1`)).body.events[0]);
  assert.ok(!onB.text().includes(value));
});

/** A store that counts the tail's reads (SELECT … FROM audit_events WHERE seq > ?). */
function counting(store: Store): { store: Store; tailReads: () => number } {
  let n = 0;
  const wrapped = Object.create(store) as Store;
  wrapped.all = <T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> => {
    if (/FROM audit_events WHERE seq > \? ORDER BY seq LIMIT \?$/.test(sql)) n++;
    return store.all<T>(sql, params);
  };
  return { store: wrapped, tailReads: () => n };
}

async function insertEvents(store: Store, from: number, count: number, pad = 0): Promise<void> {
  await store.transaction(async (tx) => {
    for (let i = 0; i < count; i++) {
      const seq = from + i;
      const body = JSON.stringify({ kind: 'test.event', actor: { id: 'system' }, action: 'test', result: 'success', details: { n: seq, pad: 'p'.repeat(pad) } });
      await tx.run('INSERT INTO audit_events (seq, ts, kind, actor, txn, result, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [seq, Date.now(), 'test.event', 'system', null, 'success', body, 'x', `h${seq}`]);
    }
  });
}

async function eventsApp(streams: AuditStreams, store: Store) {
  const app = createApp({
    logger: silentLogger, replicaId: 'r1', bodyLimit: 65536,
    admin: { authenticate: async (tok) => { if (tok !== 'admin-token-for-events-test') throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'bad'); return { kind: 'admin', tokenId: 'adm_t', name: 'test', role: 'admin', via: 'token' }; } },
    agents: { authenticate: async () => { throw new TesseraError('TESSERA_TOKEN_MISSING', 'none'); } },
  });
  const never = () => { throw new Error('not used'); };
  registerConsoleReadRoutes(app, { overview: never as any, detail: never as any, streams });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1/admin/events`;
  void store;
  return { app, url };
}

test('one shared tail for every stream, only while someone listens; heartbeats; a client that does not read is dropped; shutdown ends the streams', async (t) => {
  const base = openSqliteStore({ file: ':memory:' });
  await base.migrate();
  t.after(() => base.close());
  const { store, tailReads } = counting(base);
  const streams = createAuditStreams({ store, logger: silentLogger, maxStreams: 10, pollMs: 50, heartbeatMs: 100, maxBufferedBytes: 1024 * 1024 });
  const { app, url } = await eventsApp(streams, store);
  let closed = false;
  t.after(async () => { if (!closed) await app.close(); });
  const TOKEN = 'admin-token-for-events-test';

  assert.equal(streams.tailing(), false);
  const clients = await Promise.all(Array.from({ length: 5 }, () => openSse(url, TOKEN)));
  for (const c of clients) assert.equal(c.status, 200);
  assert.equal(streams.size(), 5);
  assert.equal(streams.tailing(), true);
  await insertEvents(base, 1, 3);
  for (const c of clients) await c.waitFor('3 events', () => auditEntries(c).length === 3);
  // Five clients, yet each new row was read by the shared tail once: reads ≈ ticks, not ticks × 5.
  const reads = tailReads();
  await insertEvents(base, 4, 1);
  for (const c of clients) await c.waitFor('event 4', () => auditEntries(c).some((e) => e.seq === 4));
  assert.ok(tailReads() - reads < 5 * 1 + 20, `tail reads grew by ${tailReads() - reads}`);
  const ticksBefore = tailReads();
  await clients[0]!.waitFor('a heartbeat', () => clients[0]!.comments.includes('heartbeat'));
  await clients[0]!.waitFor('another tail read', () => tailReads() > ticksBefore);

  // Everyone leaves: the tail stops reading.
  for (const c of clients) c.close();
  for (let i = 0; i < 200 && streams.size() > 0; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(streams.size(), 0);
  assert.equal(streams.tailing(), false);
  const idle = tailReads();
  await insertEvents(base, 5, 1);
  // Nothing listens: a later stream starts at the head, after what it did not ask for.
  const late = await openSse(url, TOKEN);
  t.after(() => late.close());
  assert.ok(tailReads() - idle <= 1, 'no reads while nobody listened');
  await insertEvents(base, 6, 1);
  await late.waitFor('event 6', () => auditEntries(late).some((e) => e.seq === 6));
  assert.ok(!auditEntries(late).some((e) => e.seq === 5));

  // A client that stops reading: 16 MB of events, it reads none; its stream is dropped, the others go on.
  // (Paused, it would not even read the server's close: the test ends it itself.)
  const slow = request(url, { headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
    res.pause(); // never reads
    res.on('error', () => undefined);
  });
  slow.on('error', () => undefined);
  slow.end();
  t.after(() => { slow.destroy(); });
  for (let i = 0; i < 200 && streams.size() < 2; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(streams.size(), 2);
  await insertEvents(base, 7, 4000, 4096);
  for (let i = 0; i < 400 && streams.size() > 1; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(streams.size(), 1, 'the client that does not read was dropped');
  await late.waitFor('the last event', () => auditEntries(late).some((e) => e.seq === 4006), 1200);

  // Shutdown: the stream ends cleanly and close() returns.
  await app.close();
  closed = true;
  await late.ended;
  assert.equal(streams.size(), 0);
  assert.equal(streams.tailing(), false);
  const after = await fetch(url).catch(() => undefined);
  assert.equal(after, undefined, 'nothing listens any more');
});
