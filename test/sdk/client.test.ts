import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TesseraClient, TesseraApiError, TesseraAuthError, TesseraConnectionError, decodeJwt, type SdkClock } from '../../src/sdk/index.js';
import { startPeer, closedPortUrl, type Peer } from './peer.js';

class FakeClock implements SdkClock {
  t = 1_000_000;
  private nextId = 1;
  timers: { id: number; at: number; delay: number; fn: () => void }[] = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ id, at: this.t + ms, delay: ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  /** Moves time to the next timer and runs it. */
  fire(): void {
    const next = this.timers.sort((a, b) => a.at - b.at).shift();
    assert.ok(next, 'a timer should be scheduled');
    this.t = next.at;
    next.fn();
  }
}

async function until(cond: () => boolean): Promise<void> {
  // Bounded wait for real loopback I/O (not a timing assertion).
  for (let i = 0; i < 1000 && !cond(); i++) await sleep(5);
  assert.ok(cond(), 'condition not reached');
}

let peer: Peer;
let dir: string;
before(async () => {
  peer = await startPeer();
  dir = mkdtempSync(join(tmpdir(), 'tessera-sdk-'));
});
after(async () => {
  await peer.close();
  rmSync(dir, { recursive: true, force: true });
});

function tokenFile(content: string): string {
  const p = join(dir, `token-${Math.random().toString(36).slice(2)}`);
  writeFileSync(p, content + '\n');
  return p;
}

test('loginWithTokenFile exchanges the file JWT (RFC 8693 form) and readSecret uses the agent token', async () => {
  const clock = new FakeClock();
  const c = new TesseraClient({ addr: peer.url, audience: 'tessera', clock, random: () => 0.5 });
  const file = tokenFile('k8s-first');
  await c.loginWithTokenFile(file);
  const login = peer.requests.filter((r) => r.path === '/v1/oauth/token').at(-1)!;
  assert.deepEqual(login.form, {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: 'k8s-first',
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    audience: 'tessera',
  });
  const s = await c.readSecret('demo/a.b');
  assert.equal(s.value, 'value-of-demo/a.b');
  const call = peer.requests.at(-1)!;
  assert.equal(call.auth, await c.token());
  assert.equal(decodeJwt(call.auth!).claims.sub, 'spiffe://example.org/ns/default/sa/agent');
  c.close();
});

test('refresh is scheduled at 80 % of the lifetime and re-reads the rotated token file', async () => {
  const clock = new FakeClock();
  const c = new TesseraClient({ addr: peer.url, clock, random: () => 0.5 });
  const file = tokenFile('k8s-v1');
  await c.loginWithTokenFile(file);
  assert.equal(clock.timers.length, 1);
  assert.equal(clock.timers[0]!.delay, 240_000); // 0.8 × 300 s, jitter 0
  const first = await c.token();
  writeFileSync(file, 'k8s-v2\n'); // the kubelet rotated the projected token
  clock.fire();
  await until(() => peer.subjects.at(-1) === 'k8s-v2');
  await until(() => clock.timers.length === 1);
  const second = await c.token();
  assert.notEqual(second, first);
  assert.equal(clock.timers[0]!.delay, 240_000, 'the next refresh is scheduled from the new token');
  c.close();
  assert.equal(clock.timers.length, 0, 'close cancels the timer');
});

test('jitter keeps the refresh between 75 % and 85 % of the lifetime', async () => {
  for (const [r, expected] of [
    [0, 225_000],
    [0.999999, 254_999],
  ] as const) {
    const clock = new FakeClock();
    const c = new TesseraClient({ addr: peer.url, clock, random: () => r });
    await c.loginWithTokenFile(tokenFile('k8s-j'));
    assert.ok(Math.abs(clock.timers[0]!.delay - expected) <= 1, `random ${r} → ${clock.timers[0]!.delay}`);
    c.close();
  }
});

test('token() refreshes on demand once the token is (nearly) expired', async () => {
  const clock = new FakeClock();
  const c = new TesseraClient({ addr: peer.url, clock, random: () => 0.5 });
  await c.loginWithTokenFile(tokenFile('k8s-ondemand'));
  const first = await c.token();
  clock.t += 296_000; // inside the 5 s safety margin
  const second = await c.token();
  assert.notEqual(second, first);
  c.close();
});

test('a background refresh failure is reported and retried while the token is alive', async () => {
  const clock = new FakeClock();
  const errors: unknown[] = [];
  const c = new TesseraClient({ addr: peer.url, clock, random: () => 0.5, onRefreshError: (e) => errors.push(e) });
  await c.loginWithTokenFile(tokenFile('k8s-retry'));
  peer.tokenEndpointDown = true;
  try {
    clock.fire();
    await until(() => errors.length === 1);
    assert.ok(errors[0] instanceof TesseraApiError);
    assert.equal((errors[0] as TesseraApiError).code, 'TESSERA_UNAVAILABLE');
    await until(() => clock.timers.length === 1);
    assert.equal(clock.timers[0]!.delay, 1_000);
  } finally {
    peer.tokenEndpointDown = false;
  }
  clock.fire();
  await until(() => clock.timers.length === 1 && clock.timers[0]!.delay === 240_000);
  c.close();
});

test('an agent call refused with TESSERA_TOKEN_EXPIRED re-attests once from the file and retries', async () => {
  const clock = new FakeClock();
  const c = new TesseraClient({ addr: peer.url, clock, random: () => 0.5 });
  await c.loginWithTokenFile(tokenFile('k8s-expired'));
  peer.expired.add(await c.token());
  const s = await c.readSecret('x');
  assert.equal(s.value, 'value-of-x');
  c.close();
});

test('join-token sessions cannot be refreshed: a typed error says to use a token file', async () => {
  const clock = new FakeClock();
  peer.joinTokens.add('join-once');
  const c = new TesseraClient({ addr: peer.url, clock });
  await c.loginWithJoinToken('join-once');
  assert.equal(peer.requests.at(-1)!.form?.subject_token_type, 'urn:tessera:token-type:join-token');
  assert.equal(clock.timers.length, 0, 'no refresh is scheduled for a single-use join token');
  await c.readSecret('ok');
  clock.t += 301_000;
  await assert.rejects(c.token(), (e: unknown) => {
    assert.ok(e instanceof TesseraAuthError);
    assert.equal(e.code, 'TESSERA_SDK_REFRESH_IMPOSSIBLE');
    assert.match(e.message, /loginWithTokenFile/);
    return true;
  });
  c.close();
});

test('a reused join token is a TesseraAuthError carrying the server code and RFC 6749 name', async () => {
  const c = new TesseraClient({ addr: peer.url });
  await assert.rejects(c.loginWithJoinToken('never-issued'), (e: unknown) => {
    assert.ok(e instanceof TesseraAuthError);
    assert.equal(e.code, 'TESSERA_JOIN_TOKEN_REUSED');
    assert.equal(e.oauthError, 'invalid_grant');
    assert.equal(e.status, 400);
    assert.match(e.requestId ?? '', /^req-/);
    return true;
  });
  c.close();
});

test('a bad attestation JWT is a TesseraAuthError', async () => {
  const c = new TesseraClient({ addr: peer.url });
  await assert.rejects(c.loginWithTokenFile(tokenFile('not-k8s')), (e: unknown) => e instanceof TesseraAuthError && e.code === 'TESSERA_ATTEST_FAILED');
  c.close();
});

test('an unreadable or empty token file is TESSERA_SDK_TOKEN_FILE_UNREADABLE', async () => {
  const c = new TesseraClient({ addr: peer.url });
  await assert.rejects(c.loginWithTokenFile(join(dir, 'missing')), (e: unknown) => e instanceof TesseraAuthError && e.code === 'TESSERA_SDK_TOKEN_FILE_UNREADABLE' && /ENOENT/.test(e.message));
  await assert.rejects(c.loginWithTokenFile(tokenFile('')), (e: unknown) => e instanceof TesseraAuthError && e.code === 'TESSERA_SDK_TOKEN_FILE_UNREADABLE');
  c.close();
});

test('calls before login are TESSERA_SDK_NOT_LOGGED_IN; calls after close are TESSERA_SDK_CLOSED', async () => {
  const c = new TesseraClient({ addr: peer.url });
  await assert.rejects(c.readSecret('x'), (e: unknown) => e instanceof TesseraAuthError && e.code === 'TESSERA_SDK_NOT_LOGGED_IN');
  c.close();
  await assert.rejects(c.token(), (e: unknown) => e instanceof TesseraAuthError && e.code === 'TESSERA_SDK_CLOSED');
});

test('a server refusal is a TesseraApiError (not auth) with code, status and request id', async () => {
  const c = new TesseraClient({ addr: peer.url });
  await c.loginWithTokenFile(tokenFile('k8s-api'));
  await assert.rejects(c.readSecret('db/inject-only'), (e: unknown) => {
    assert.ok(e instanceof TesseraApiError && !(e instanceof TesseraAuthError));
    assert.equal(e.code, 'TESSERA_SECRET_NOT_READABLE');
    assert.equal(e.status, 403);
    assert.match(e.requestId ?? '', /^req-/);
    return true;
  });
  await assert.rejects(c.issueCredential('mysql', 'ro'), (e: unknown) => e instanceof TesseraApiError && e.code === 'TESSERA_ENGINE_NOT_FOUND' && e.status === 404);
  c.close();
});

test('secret paths with dot or empty segments are refused before any request (URL normalisation would change them)', async () => {
  const c = new TesseraClient({ addr: peer.url });
  await c.loginWithTokenFile(tokenFile('k8s-dots'));
  const before = peer.requests.length;
  for (const bad of ['a/../b', './a', 'a//b', '/a', 'a/']) {
    await assert.rejects(c.readSecret(bad), (e: unknown) => e instanceof TesseraApiError && e.code === 'TESSERA_SECRET_PATH_INVALID', bad);
  }
  assert.equal(peer.requests.length, before);
  c.close();
});

test('issueCredential, renewLease and revokeLease hit the documented routes', async () => {
  const c = new TesseraClient({ addr: peer.url });
  await c.loginWithTokenFile(tokenFile('k8s-creds'));
  const cred = await c.issueCredential('postgres', 'readonly', { ttl: '10m' });
  assert.equal(cred.data.username, 'v_agent_x');
  assert.deepEqual(peer.requests.at(-1)!.body, { ttl: '10m' });
  const renewed = await c.renewLease(cred.lease_id, { increment: '5m' });
  assert.deepEqual(peer.requests.at(-1)!.body, { increment: '5m' });
  assert.equal(renewed.lease_id, cred.lease_id);
  assert.equal(peer.requests.at(-1)!.path, `/v1/leases/${cred.lease_id}/renew`);
  await c.revokeLease(cred.lease_id);
  assert.equal(peer.requests.at(-1)!.method, 'DELETE');
  c.close();
});

test('an unreachable server is a TesseraConnectionError whose message holds no token', async () => {
  const c = new TesseraClient({ addr: await closedPortUrl() });
  await assert.rejects(c.loginWithJoinToken('join-secret-value'), (e: unknown) => {
    assert.ok(e instanceof TesseraConnectionError);
    assert.equal(e.code, 'TESSERA_SDK_CONNECT_FAILED');
    assert.match(e.message, /ECONNREFUSED/);
    assert.doesNotMatch(e.message, /join-secret-value/);
    return true;
  });
  c.close();
});

test('a non-Tessera answer is a TesseraConnectionError TESSERA_SDK_RESPONSE_INVALID', async () => {
  const { Transport } = await import('../../src/sdk/index.js');
  const t = new Transport({ addr: peer.url });
  await assert.rejects(t.request('GET', '/v1/html'), (e: unknown) => e instanceof TesseraConnectionError && e.code === 'TESSERA_SDK_RESPONSE_INVALID');
});

test('an invalid address is rejected up front', () => {
  assert.throws(() => new TesseraClient({ addr: 'ftp://x' }), (e: unknown) => e instanceof TesseraConnectionError && e.code === 'TESSERA_SDK_CONNECT_FAILED');
});
