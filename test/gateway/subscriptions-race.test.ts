/**
 * Issue 9 fix (ADR 0177): two sessions subscribing the same URI on one upstream connection at
 * once share the first one's upstream `resources/subscribe`; when it fails, every waiter fails and
 * no session is left believing it is subscribed. The registry with real promises (no upstream is
 * needed to decide its ordering); the gateway path is in test/attack-9/subscription-fixes.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSubscriptions } from '../../src/gateway/relay/subscriptions.js';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('a failed upstream subscribe fails every session that waited for it, and forgets them all', async () => {
  const subs = createSubscriptions();
  const conn = {};
  const a = subs.add(conn, 's1', 'doc://1');
  assert.deepEqual(a, { ok: true, first: true });
  const upstream = deferred();
  subs.track(conn, 'doc://1', upstream.promise);
  const b = subs.add(conn, 's2', 'doc://1');
  assert.deepEqual(b, { ok: true, first: false });
  const waiters = [subs.settled(conn, 'doc://1'), subs.settled(conn, 'doc://1')];
  upstream.reject(new Error('upstream refused'));
  for (const w of waiters) await assert.rejects(w, /upstream refused/);
  assert.deepEqual(subs.sessionsFor(conn, 'doc://1'), []);
  assert.equal(subs.has(conn), false);
  // The next subscriber is first again: it asks the upstream itself.
  assert.deepEqual(subs.add(conn, 's2', 'doc://1'), { ok: true, first: true });
});

test('a successful upstream subscribe lets every waiter through; the last unsubscribe is the last', async () => {
  const subs = createSubscriptions();
  const conn = {};
  subs.add(conn, 's1', 'doc://1');
  const upstream = deferred();
  subs.track(conn, 'doc://1', upstream.promise);
  subs.add(conn, 's2', 'doc://1');
  const w = subs.settled(conn, 'doc://1');
  upstream.resolve();
  await w;
  assert.deepEqual([...subs.sessionsFor(conn, 'doc://1')].sort(), ['s1', 's2']);
  assert.deepEqual(subs.remove(conn, 's1', 'doc://1'), { last: false });
  assert.deepEqual(subs.remove(conn, 's2', 'doc://1'), { last: true });
});

test('a stopped connection drops every subscription on it and says which', () => {
  const subs = createSubscriptions();
  const conn = {};
  const other = {};
  subs.add(conn, 's1', 'doc://1');
  subs.add(conn, 's2', 'doc://2');
  subs.add(other, 's1', 'doc://1');
  assert.deepEqual([...subs.dropConnection(conn)].sort((x, y) => x.uri.localeCompare(y.uri)), [{ sessionId: 's1', uri: 'doc://1' }, { sessionId: 's2', uri: 'doc://2' }]);
  assert.equal(subs.has(conn), false);
  assert.deepEqual(subs.sessionsFor(other, 'doc://1'), ['s1']);
});

test('a subscribe whose session closed while its connection was acquired records nothing (the connection is not pinned)', async () => {
  const { createResourceSubscriptions } = await import('../../src/gateway/resources/subscribe.js');
  const subs = createSubscriptions();
  const conn = { getServerCapabilities: () => ({ resources: { subscribe: true } }), subscribeResource: async () => ({}), unsubscribeResource: async () => ({}) };
  const session = new AbortController();
  let acquired!: () => void;
  const acquiring = new Promise<void>((r) => (acquired = r));
  // upstream.ts request(): acquire (awaits), then run() with a signal aborted if the request's was.
  const upstream = {
    server: 'srv',
    async request(_what: string, _c: unknown, signal: AbortSignal, run: (client: unknown, o: { signal: AbortSignal; timeout: number }) => Promise<unknown>) {
      await acquiring;
      const ac = new AbortController();
      if (signal.aborted) ac.abort(signal.reason);
      return { value: await run(conn, { signal: ac.signal, timeout: 1000 }), secrets: [] };
    },
  };
  const serve = async (_c: unknown, signal: AbortSignal, _s: unknown, work: (x: unknown) => Promise<unknown>) => work({ upstream: async (u: typeof upstream, what: string, run: never) => (await u.request(what, {}, signal, run)).value });
  const m = createResourceSubscriptions({ serve: serve as never, resources: { authorizeTemplate: () => ({ upstream: upstream as never, uri: 'doc://1' }) }, subscriptions: subs });
  // Another session of the same agent already holds the URI on this connection.
  assert.deepEqual(subs.add(conn, 'other', 'doc://1'), { ok: true, first: true });
  const pending = m.subscribe('tessera://srv/doc://1', { sessionId: 'closing' } as never, session.signal);
  // The session closes meanwhile (http.ts closeSession: relay close, then the session's abort).
  subs.closeSession('closing');
  session.abort(new Error('the MCP session was closed (client)'));
  acquired();
  await assert.rejects(pending, /session was closed/);
  assert.deepEqual(subs.sessionsFor(conn, 'doc://1'), ['other']);
  assert.deepEqual(subs.remove(conn, 'other', 'doc://1'), { last: true }, 'the other session is the last one: the upstream is unsubscribed');
  assert.equal(subs.has(conn), false, 'no subscription keeps the connection from its idle stop');
});

test('a closed session that was the last subscriber of a URI on a shared connection is reported, so the upstream is unsubscribed; one that was not, is not', () => {
  const subs = createSubscriptions();
  const conn = {};
  assert.equal(subs.add(conn, 'a', 'doc://shared').ok, true);
  assert.equal(subs.add(conn, 'b', 'doc://shared').ok, true);
  assert.equal(subs.add(conn, 'a', 'doc://mine').ok, true);
  assert.deepEqual(subs.closeSession('a'), [{ connection: conn, uri: 'doc://mine' }], 'doc://shared still has b');
  assert.deepEqual(subs.sessionsFor(conn, 'doc://shared'), ['b']);
  assert.deepEqual(subs.closeSession('b'), [{ connection: conn, uri: 'doc://shared' }]);
  assert.equal(subs.has(conn), false);
  assert.deepEqual(subs.closeSession('never-subscribed'), []);
});
