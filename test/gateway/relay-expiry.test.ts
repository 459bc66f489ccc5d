/**
 * A resource update is re-authorized at delivery (relay/hub.ts): besides policy and scope, the
 * token of the session's latest request must still be valid. A session outlives its token (it
 * closes after gateway.session_idle_timeout without requests), so without that check an expired
 * task token kept being told its resources changed for up to that long. The real hub and
 * registry; the session's SDK server reduced to what the hub sends through it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRelayHub } from '../../src/gateway/relay/hub.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';

type Event = { kind: string; result: string; reason?: { code?: string }; details?: { reason?: string } };

/** The real hub with an authorizer that allows, an audit that records, and the given clock. */
function hubWith(clock: () => number, events: Event[] = []): ReturnType<typeof createRelayHub> {
  const noop = (): void => undefined;
  const logger = { warn: noop, debug: noop, info: noop, error: noop, child: () => logger };
  return createRelayHub({
    authorizer: { authorize: () => ({ allowed: true, policies: ['p'], errors: [], cached: false }) } as never,
    audit: { append: async (e: never) => void events.push(e), hmac: (s: string) => `h:${s.length}` } as never,
    logger: logger as never,
    clock: { now: clock },
    limits: { queue: 16, rate: { perSecond: 100, burst: 100 }, serverRequests: 4, serverRequestTimeoutMs: 60_000 },
  });
}

test('an update for a session whose token has expired ends the subscription (told, audited) instead of being delivered', async () => {
  let now = 1_000_000;
  const events: Event[] = [];
  const sent: { method: string; params?: Record<string, unknown> }[] = [];
  const hub = hubWith(() => now, events);
  const principal: AgentPrincipal = { spiffeId: 'spiffe://example.org/a', trustDomain: 'example.org', path: '/a', attributes: {}, jti: 'j', expiresAt: now + 60_000, task: 'task-1' };
  hub.open({ id: 's1', principal: () => principal, where: () => ({}) as never, server: { notification: async (n: never) => void sent.push(n) } as never, streams: () => false });
  let unsubscribed = 0;
  const conn = { unsubscribeResource: async () => void unsubscribed++ };
  const view = { server: 'srv', secrets: () => [], sessions: () => ['s1'], calls: () => [] };
  assert.deepEqual(hub.subscriptions.add(conn, 's1', 'doc://1'), { ok: true, first: true });

  hub.resourceUpdated(conn, view, 'doc://1', 'tessera://srv/doc://1');
  assert.deepEqual(sent.map((n) => n.method), ['notifications/resources/updated'], 'a valid token: the update is delivered');

  now = principal.expiresAt; // the token expires (no request renews the session's principal)
  hub.resourceUpdated(conn, view, 'doc://1', 'tessera://srv/doc://1');
  assert.deepEqual(sent.map((n) => n.method), ['notifications/resources/updated', 'notifications/message'], 'no update after expiry, only the notice');
  assert.equal((sent[1]!.params!.data as { code: string }).code, 'TESSERA_GATEWAY_SUBSCRIPTION_ENDED');
  assert.deepEqual(hub.subscriptions.sessionsFor(conn, 'doc://1'), []);
  assert.equal(hub.subscriptions.has(conn), false, 'the connection is no longer kept for it');
  assert.equal(unsubscribed, 1, 'the upstream is unsubscribed');
  await new Promise<void>((r) => setImmediate(r));
  const ended = events.filter((e) => e.kind === 'gateway.subscription_ended');
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!.result, 'deny');
  assert.equal(ended[0]!.reason?.code, 'TESSERA_GATEWAY_SUBSCRIPTION_ENDED');
});

test('after the token expires, nothing pushed reaches the session except traffic of a call in flight: list_changed and an untied log are dropped (counted once as expired), a sampling request is refused', async () => {
  let now = 1_000_000;
  const events: Event[] = [];
  const sent: { method: string }[] = [];
  const asked: string[] = [];
  const hub = hubWith(() => now, events);
  const principal: AgentPrincipal = { spiffeId: 'spiffe://example.org/a', trustDomain: 'example.org', path: '/a', attributes: {}, jti: 'j', expiresAt: now + 60_000 };
  const sdk = {
    notification: async (n: never) => void sent.push(n),
    getClientCapabilities: () => ({ sampling: {} }),
    createMessage: async () => { asked.push('sampling'); return { role: 'assistant', content: { type: 'text', text: 'ok' }, model: 'm' }; },
  };
  hub.open({ id: 's1', principal: () => principal, where: () => ({}) as never, server: sdk as never, streams: () => true });
  const idle = { server: 'srv', secrets: () => [], sessions: () => ['s1'], calls: () => [] };
  const busy = { ...idle, calls: () => [{ sessionId: 's1', requestId: 7 }] };

  hub.listChanged(idle as never, 'notifications/tools/list_changed');
  hub.log(idle as never, { level: 'error', data: 'before expiry' });
  assert.deepEqual(sent.map((n) => n.method), ['notifications/tools/list_changed', 'notifications/message'], 'a valid token: delivered');
  await hub.serverRequest(idle as never, 'sampling/createMessage', { messages: [], maxTokens: 1 } as never, new AbortController().signal);
  assert.deepEqual(asked, ['sampling']);

  now = principal.expiresAt;
  sent.length = 0;
  hub.listChanged(idle as never, 'notifications/tools/list_changed');
  hub.log(idle as never, { level: 'error', data: 'after expiry' });
  hub.log(idle as never, { level: 'error', data: 'again' });
  assert.equal(sent.length, 0, 'nothing untied reaches an expired session');
  await assert.rejects(hub.serverRequest(idle as never, 'sampling/createMessage', { messages: [], maxTokens: 1 } as never, new AbortController().signal), (e: Error) => /has expired/.test(e.message));
  assert.deepEqual(asked, ['sampling'], 'the client is not asked');

  hub.log(busy as never, { level: 'error', data: 'of the call in flight' });
  assert.deepEqual(sent.map((n) => n.method), ['notifications/message'], 'a log of a call accepted before expiry still reaches it, like its answer');
  await new Promise<void>((r) => setImmediate(r));
  const drops = events.filter((e) => e.kind === 'gateway.notifications_dropped' && e.details?.reason === 'expired');
  assert.equal(drops.length, 1, 'dropped traffic is audited once per session and reason');
  const refused = events.filter((e) => e.kind === 'gateway.server_request' && e.reason?.code === 'TESSERA_GATEWAY_SERVER_REQUEST_DENIED');
  assert.equal(refused.length, 1);
});

test('closing the last subscribing session of a URI unsubscribes the upstream of that shared connection', () => {
  const hub = hubWith(() => 0);
  const principal: AgentPrincipal = { spiffeId: 'spiffe://example.org/a', trustDomain: 'example.org', path: '/a', attributes: {}, jti: 'j', expiresAt: 60_000 };
  for (const id of ['s1', 's2']) hub.open({ id, principal: () => principal, where: () => ({}) as never, server: { notification: async () => undefined } as never, streams: () => false });
  const unsubscribed: string[] = [];
  const conn = { unsubscribeResource: async (p: { uri: string }) => void unsubscribed.push(p.uri) };
  hub.subscriptions.add(conn, 's1', 'doc://1');
  hub.subscriptions.add(conn, 's2', 'doc://1');
  hub.close('s1');
  assert.deepEqual(unsubscribed, [], 's2 still subscribes it');
  hub.close('s2');
  assert.deepEqual(unsubscribed, ['doc://1']);
});
