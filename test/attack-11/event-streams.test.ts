/**
 * Attack 11: the console's live event stream (`GET /v1/admin/events`) against its holder.
 * A11-2: a stream outlived the credential that opened it — after sign-out, after the operator
 * token was revoked or expired, after the session idled out, it kept delivering every audit event.
 * A11-3: one operator (a leaked auditor token) could open `console.max_streams` streams and
 * starve every other operator's live view. Real HTTP, real server; the stream is read as bytes.
 * Skipped until the console read API (src/console/events.ts, GET /v1/admin/events) is merged;
 * the fix for it (StreamHolder: stillValid via app.adminStillValid, console.max_streams_per_operator)
 * is described in the attack-11 report.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startHarness, type Harness } from '../e2e/harness.js';
import { ManualClock } from '../../src/shared/clock.js';
import { call, signIn } from '../console/client.js';

const clock = new ManualClock(Date.now());
let h: Harness;
const skip = existsSync('src/console/events.ts') ? false : 'GET /v1/admin/events (the console read API) is not merged yet';

before(async () => {
  if (skip) return;
  h = await startHarness({ clock, config: { console: { max_streams: 64, max_streams_per_operator: 2 } } });
});
after(async () => {
  await h?.close();
});

interface Stream {
  readonly status: number;
  readonly body?: any;
  text(): string;
  closed(): boolean;
  close(): void;
}

/** Opens the stream with a bearer token or a session cookie; reads it as text until it ends. */
async function open(auth: { bearer: string } | { cookie: string }): Promise<Stream> {
  const ac = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream', ...('bearer' in auth ? { authorization: `Bearer ${auth.bearer}` } : { cookie: auth.cookie }) };
  const res = await fetch(`${h.url}/v1/admin/events`, { headers, signal: ac.signal });
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) {
    const body = await res.json();
    return { status: res.status, body, text: () => '', closed: () => true, close: () => ac.abort() };
  }
  let all = '';
  let done = false;
  const decoder = new TextDecoder();
  void (async () => {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) all += decoder.decode(chunk, { stream: true });
    } catch {
      /* aborted */
    }
    done = true;
  })();
  return { status: res.status, text: () => all, closed: () => done, close: () => ac.abort() };
}

async function until(what: string, pred: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Commits an audit event naming `marker` (a join token for a SPIFFE ID with it), through the admin token. */
async function mark(marker: string): Promise<void> {
  const r = await h.admin('POST', '/v1/admin/join-tokens', { spiffe_id: `spiffe://tessera.local/ns/atk/sa/${marker}`, ttl: '5m' });
  assert.equal(r.status, 201);
  h.sensitive.add(r.body.token);
}

async function operator(name: string, role: 'admin' | 'auditor', ttl = '30d'): Promise<{ id: string; token: string }> {
  const r = await h.admin('POST', '/v1/admin/operator-tokens', { name, role, ttl });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  h.sensitive.add(r.body.token);
  return r.body;
}

/** A stream that delivered `before`, then must end (event: end) and never deliver `afterwards`. */
async function assertEnds(s: Stream, before: string, afterwards: string, trigger: () => Promise<void>): Promise<void> {
  await mark(before);
  await until(`${before} on the stream`, () => s.text().includes(before));
  await trigger();
  await mark(afterwards);
  await until('the stream to end', () => s.closed());
  assert.match(s.text(), /event: end\ndata: \{"code":"TESSERA_CONSOLE_STREAM_ENDED"/);
  assert.ok(!s.text().includes(afterwards), 'nothing delivered after the credential ended');
}

test('A11-2: a stream opened by a bearer token ends when the token is revoked', { skip }, async () => {
  const t = await operator('stream-revoked', 'auditor');
  const s = await open({ bearer: t.token });
  assert.equal(s.status, 200);
  await assertEnds(s, 'before-revoke', 'after-revoke', async () => {
    assert.equal((await h.admin('DELETE', `/v1/admin/operator-tokens/${t.id}`)).status, 200);
  });
  // Reconnecting is refused.
  const again = await open({ bearer: t.token });
  assert.equal(again.status, 401);
});

test('A11-2: a stream opened by a console session ends at sign-out, and when its token is revoked', { skip }, async () => {
  const t = await operator('stream-session', 'admin');
  const s1 = await signIn(h.url, t.token);
  const a = await open({ cookie: s1.cookie });
  assert.equal(a.status, 200);
  await assertEnds(a, 'before-signout', 'after-signout', async () => {
    assert.equal((await call(h.url, 'DELETE', '/v1/console/session', { cookie: s1.cookie, csrf: s1.csrf })).status, 204);
  });
  const s2 = await signIn(h.url, t.token);
  const b = await open({ cookie: s2.cookie });
  assert.equal(b.status, 200);
  await assertEnds(b, 'before-session-revoke', 'after-session-revoke', async () => {
    assert.equal((await h.admin('DELETE', `/v1/admin/operator-tokens/${t.id}`)).status, 200);
  });
  assert.equal((await open({ cookie: s2.cookie })).status, 401);
});

test('A11-2: a stream ends when its token expires, and when its session idles out (the stream is not activity)', { skip }, async () => {
  const t = await operator('stream-expiring', 'auditor', '1h');
  const bearer = await open({ bearer: t.token });
  assert.equal(bearer.status, 200);
  await assertEnds(bearer, 'before-expiry', 'after-expiry', async () => clock.advance(3_600_000));
  const u = await operator('stream-idle', 'auditor');
  const s = await signIn(h.url, u.token);
  const idle = await open({ cookie: s.cookie });
  assert.equal(idle.status, 200);
  // Events arriving over the stream do not keep the session alive: 31 minutes without a request end it.
  await assertEnds(idle, 'before-idle', 'after-idle', async () => clock.advance(31 * 60_000));
  const view = await call(h.url, 'GET', '/v1/console/session', { cookie: s.cookie });
  assert.equal(view.body.error.code, 'TESSERA_CONSOLE_SESSION_EXPIRED');
});

test('A11-3: one operator holds at most console.max_streams_per_operator streams; the others still get theirs', { skip }, async () => {
  const hog = await operator('stream-hog', 'auditor');
  const s = await signIn(h.url, hog.token);
  // Bearer and session streams of the same operator count together.
  const mine = [await open({ bearer: hog.token }), await open({ cookie: s.cookie })];
  for (const m of mine) assert.equal(m.status, 200);
  for (const extra of [await open({ bearer: hog.token }), await open({ cookie: s.cookie })]) {
    assert.equal(extra.status, 503);
    assert.equal(extra.body.error.code, 'TESSERA_CONSOLE_STREAMS_BUSY');
    assert.match(extra.body.error.message, /console\.max_streams_per_operator/);
  }
  const other = await open({ bearer: h.adminToken });
  assert.equal(other.status, 200, 'another operator is not starved');
  // A closed stream frees its place.
  mine[0]!.close();
  let reopened: Stream | undefined;
  await until('a place freed by the closed stream', async () => {
    const r = await open({ bearer: hog.token });
    if (r.status === 200) reopened = r;
    return r.status === 200;
  });
  for (const x of [...mine, other, reopened!]) x.close();
});
