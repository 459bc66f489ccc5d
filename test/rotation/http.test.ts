/**
 * The `http` rotator against a real local key-management service on 127.0.0.1 (create and
 * retire calls, auth header, bodies), failures with backoff and alerts, crash-safety of the
 * intent, the `manual` rotator's alerts, and every bad input's exact code over real HTTP.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { keyService, rotationHarness, storeFailingOnce, type RotationHarness } from './helpers.js';
import { registerSensitive } from '../helpers/leak-registry.js';

const ADMIN_CRED = 'kms-admin-credential-7f3a9c';
registerSensitive(ADMIN_CRED);
let svc: Awaited<ReturnType<typeof keyService>>;
let mode: 'ok' | 'fail' | 'empty' | 'text' | 'slow' | 'same-id' = 'ok';
let h: RotationHarness;

before(async () => {
  svc = await keyService((body, n) => {
    if (body.action === 'retire') return { status: 204, body: '' };
    if (mode === 'fail') return { status: 500, body: { error: 'down' } };
    if (mode === 'empty') return { status: 200, body: {} };
    if (mode === 'text') return { status: 200, body: 'not json' };
    if (mode === 'same-id') return { status: 201, body: { value: `same-id-${n}`, id: 'kid-fixed' } };
    if (mode === 'slow') return { status: 200, body: { value: `late-${n}` }, delayMs: 5000 };
    const value = `key-${String(body.path)}-v${String(body.version)}-${n}`;
    registerSensitive(value);
    return { status: 201, body: { value, id: `kid-${n}` } };
  });
  h = await rotationHarness({
    config: {
      grace_period: '10m',
      retry: { initial: '30s', max: '2m' },
      http_rotators: {
        keys: { url: svc.url, auth_secret: 'rotation/keys-admin', allow_private: ['127.0.0.1/32'], timeout: '2s' },
        guarded: { url: svc.url, auth_secret: 'rotation/keys-admin' },
        noauth: { url: svc.url, auth_secret: 'rotation/missing', allow_private: ['127.0.0.1/32'] },
      },
    },
  });
  assert.equal((await h.call('PUT', '/v1/admin/secrets/rotation/keys-admin', { value: ADMIN_CRED })).status, 200);
});
after(async () => {
  await h?.close();
  await svc?.close();
});

async function putHttp(path: string, endpoint = 'keys', extra: Record<string, unknown> = {}) {
  const r = await h.call('PUT', `/v1/admin/secrets/${path}`, { value: 'key-v1-operator', rotation_period: '1h', rotator: { kind: 'http', endpoint, ...extra } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
}
const current = async (path: string) => (await h.kv.get(path)).value;

test('rotate now: create call with the auth header and body; new version current; old readable; retire after the grace period with the id', async () => {
  mode = 'ok';
  await putHttp('apps/billing/api-key', 'keys', { grace_period: '5m' });
  const before = svc.calls.length;
  const r = await h.call('POST', '/v1/admin/rotation/apps/billing/api-key', {});
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.from_version, 1);
  assert.equal(r.json.version, 2);
  assert.equal(r.json.rotator, 'http');
  assert.equal(r.json.retire_at, h.clock.now() + 5 * 60_000);
  const call = svc.calls[before]!;
  assert.equal(call.headers.authorization, `Bearer ${ADMIN_CRED}`);
  assert.equal(call.headers['content-type'], 'application/json');
  assert.deepEqual(call.body, { action: 'create', path: 'apps/billing/api-key', version: 2 });
  assert.match(await current('apps/billing/api-key'), /^key-apps\/billing\/api-key-v2-/);
  assert.equal((await h.kv.get('apps/billing/api-key', { version: 1 })).value, 'key-v1-operator', 'the previous version stays readable');
  // No retirement before the grace period.
  h.clock.advance(4 * 60_000);
  await h.rotation.pass();
  assert.equal(svc.calls.length, before + 1);
  h.clock.advance(61_000);
  const p = await h.rotation.pass();
  assert.equal(p.retired, 1);
  assert.deepEqual(svc.calls[before + 1]!.body, { action: 'retire', path: 'apps/billing/api-key', version: 1, id: null });
  // The next rotation retires the credential the first one created, by its id.
  await h.call('POST', '/v1/admin/rotation/apps/billing/api-key', {});
  h.clock.advance(5 * 60_000 + 1);
  await h.rotation.pass();
  const retire = svc.calls.filter((c) => c.body.action === 'retire').at(-1)!;
  assert.deepEqual(retire.body, { action: 'retire', path: 'apps/billing/api-key', version: 2, id: `kid-${before + 1}` });
  const kinds = h.audit.events.filter((e) => e.resource === 'secret:apps/billing/api-key').map((e) => e.kind);
  assert.ok(kinds.includes('rotation.succeeded') && kinds.includes('rotation.retired'));
  // The audit never carries the credential.
  assert.ok(!JSON.stringify(h.audit.events).includes('key-apps/billing/api-key-v2'));
});

test('the job rotates due secrets only, with the configured concurrency', async () => {
  mode = 'ok';
  for (let i = 0; i < 5; i++) await putHttp(`apps/due/k${i}`);
  await h.rotation.pass();
  const v1 = await h.kv.metadata('apps/due/k0');
  assert.equal(v1.currentVersion, 1, 'not due yet');
  h.clock.advance(3_600_000);
  const p = await h.rotation.pass();
  assert.ok(p.rotated >= 5, JSON.stringify(p));
  for (let i = 0; i < 5; i++) assert.equal((await h.kv.metadata(`apps/due/k${i}`)).currentVersion, 2);
  const st = await h.call('GET', '/v1/admin/rotation');
  const e = st.json.secrets.find((s: { path: string }) => s.path === 'apps/due/k0');
  assert.equal(e.rotator, 'http');
  assert.equal(e.overdue, false);
  assert.equal(e.due_at, h.clock.now() + 3_600_000);
  assert.equal(e.last_rotated_at, h.clock.now());
});

test('failures: no new version, backoff, metric, audit, readiness detail; recovery resets', async () => {
  await putHttp('apps/flaky/key');
  h.clock.advance(3_600_000);
  mode = 'fail';
  const n0 = svc.calls.length;
  const r = await h.call('POST', '/v1/admin/rotation/apps/flaky/key', {});
  assert.equal(r.status, 502);
  assert.equal(r.json.error.code, 'TESSERA_ROTATION_HTTP_FAILED');
  assert.equal((await h.kv.metadata('apps/flaky/key')).currentVersion, 1, 'the working version is kept');
  assert.equal(await current('apps/flaky/key'), 'key-v1-operator');
  assert.ok(h.metrics.counter('tessera_rotation_failures_total', '').get({ rotator: 'http', stage: 'apply' }) >= 1);
  const failedEv = h.audit.events.filter((e) => e.kind === 'rotation.failed' && e.resource === 'secret:apps/flaky/key');
  assert.equal(failedEv.length, 1);
  assert.equal(failedEv[0]!.reason?.code, 'TESSERA_ROTATION_HTTP_FAILED');
  const health = await h.rotation.healthNow();
  assert.ok(health.failing.some((f) => f.path === 'apps/flaky/key' && f.code === 'TESSERA_ROTATION_HTTP_FAILED'));
  // Backoff: 30 s after the first failure, then 60 s.
  await h.rotation.pass();
  assert.equal(svc.calls.filter((c, i) => i >= n0 && c.body.path === 'apps/flaky/key').length, 1, 'no attempt during the backoff');
  h.clock.advance(30_000);
  await h.rotation.pass();
  assert.equal(svc.calls.filter((c, i) => i >= n0 && c.body.path === 'apps/flaky/key').length, 2);
  let st = (await h.rotation.status()).find((s) => s.path === 'apps/flaky/key')!;
  assert.equal(st.failures, 2);
  assert.equal(st.next_attempt_at, h.clock.now() + 60_000);
  assert.equal(st.last_error_code, 'TESSERA_ROTATION_HTTP_FAILED');
  mode = 'ok';
  h.clock.advance(59_000);
  await h.rotation.pass();
  assert.equal((await h.kv.metadata('apps/flaky/key')).currentVersion, 1, 'still backing off');
  h.clock.advance(1_000);
  await h.rotation.pass();
  assert.equal((await h.kv.metadata('apps/flaky/key')).currentVersion, 2);
  st = (await h.rotation.status()).find((s) => s.path === 'apps/flaky/key')!;
  assert.equal(st.failures, 0);
  assert.equal(st.last_error_code, null);
});

test('bad answers: not JSON, no value, too slow — exact codes, nothing stored', async () => {
  await putHttp('apps/bad/key');
  for (const [m, code] of [['text', 'TESSERA_ROTATION_HTTP_RESPONSE_INVALID'], ['empty', 'TESSERA_ROTATION_HTTP_RESPONSE_INVALID'], ['slow', 'TESSERA_ROTATION_HTTP_FAILED']] as const) {
    mode = m;
    const r = await h.call('POST', '/v1/admin/rotation/apps/bad/key', {});
    assert.equal(r.json.error?.code, code, `${m}: ${JSON.stringify(r.json)}`);
    assert.equal(r.status, 502);
    assert.equal((await h.kv.metadata('apps/bad/key')).currentVersion, 1);
    const intent = await h.store.get('SELECT path FROM rotation_intents WHERE path = ?', ['apps/bad/key']);
    assert.equal(intent, undefined, 'no value was received: no intent kept');
  }
  mode = 'ok';
});

test('SSRF guard: a loopback endpoint without allow_private is refused before any call', async () => {
  await putHttp('apps/ssrf/key', 'guarded');
  const n0 = svc.calls.length;
  const r = await h.call('POST', '/v1/admin/rotation/apps/ssrf/key', {});
  assert.equal(r.status, 502);
  assert.equal(r.json.error.code, 'TESSERA_ROTATION_HTTP_FAILED');
  assert.match(r.json.error.message, /TESSERA_PROXY_TARGET_FORBIDDEN/);
  assert.equal(svc.calls.length, n0);
});

test('crash safety: the store fails after the endpoint created the credential; the sealed intent is resumed without a second create', async () => {
  // A store whose next write of a secret version fails (the commit after the create call).
  const { store, real, arm } = storeFailingOnce(/^INSERT INTO secret_versions/);
  const h2 = await rotationHarness({ store, config: { http_rotators: { keys: { url: svc.url, auth_secret: 'rotation/keys-admin', allow_private: ['127.0.0.1/32'] } } } });
  try {
    mode = 'ok';
    await h2.call('PUT', '/v1/admin/secrets/rotation/keys-admin', { value: ADMIN_CRED });
    await h2.call('PUT', '/v1/admin/secrets/apps/crash/key', { value: 'key-v1-operator', rotation_period: '1h', rotator: { kind: 'http', endpoint: 'keys' } });
    const n0 = svc.calls.length;
    arm();
    const r = await h2.call('POST', '/v1/admin/rotation/apps/crash/key', {});
    assert.equal(r.status, 500, JSON.stringify(r.json));
    assert.equal(svc.calls.length, n0 + 1);
    const created = svc.calls.length;
    const intent = await real.get<{ sealed: Buffer; owner: string }>('SELECT sealed, owner FROM rotation_intents WHERE path = ?', ['apps/crash/key']);
    assert.ok(intent?.sealed && intent.sealed.length > 0, 'the created value is kept, sealed');
    assert.equal(intent.owner, '', 'released for the next attempt');
    assert.ok(!Buffer.from(intent.sealed).toString('latin1').includes('key-apps/crash/key'), 'sealed, not in clear');
    // Writes wait for the rotation to finish.
    const put = await h2.call('PUT', '/v1/admin/secrets/apps/crash/key', { value: 'operator-v2' });
    assert.equal(put.status, 409);
    assert.equal(put.json.error.code, 'TESSERA_ROTATION_IN_PROGRESS');
    const del = await h2.call('DELETE', '/v1/admin/secrets/apps/crash/key');
    assert.equal(del.json.error.code, 'TESSERA_ROTATION_IN_PROGRESS');
    // After the backoff the job resumes with the sealed value: no second create call.
    h2.clock.advance(30_000);
    const p = await h2.rotation.pass();
    assert.equal(p.rotated, 1, JSON.stringify(p));
    assert.equal(svc.calls.length, created, 'resumed, not created again');
    assert.equal((await h2.kv.metadata('apps/crash/key')).currentVersion, 2);
    assert.equal((await h2.kv.get('apps/crash/key')).value, `key-apps/crash/key-v2-${created}`);
    assert.ok(h2.audit.events.some((e) => e.kind === 'rotation.succeeded' && (e.details as { recovered?: boolean }).recovered === true));
    assert.equal(await real.get('SELECT path FROM rotation_intents'), undefined);
  } finally {
    await h2.close();
    await real.close();
  }
});

test('concurrent writes: a put during a rotation is refused; a rotation against a changed version is refused', async () => {
  await putHttp('apps/busy/key');
  mode = 'slow';
  const slow = h.call('POST', '/v1/admin/rotation/apps/busy/key', {});
  await new Promise((r) => setTimeout(r, 200));
  const put = await h.call('PUT', '/v1/admin/secrets/apps/busy/key', { value: 'operator-write' });
  assert.equal(put.status, 409);
  assert.equal(put.json.error.code, 'TESSERA_ROTATION_IN_PROGRESS');
  const again = await h.call('POST', '/v1/admin/rotation/apps/busy/key', {});
  assert.equal(again.json.error.code, 'TESSERA_ROTATION_IN_PROGRESS');
  assert.equal((await slow).json.error.code, 'TESSERA_ROTATION_HTTP_FAILED', 'the slow endpoint times out (2 s)');
  mode = 'ok';
  const stale = await h.call('POST', '/v1/admin/rotation/apps/busy/key', { expected_version: 7 });
  assert.equal(stale.status, 409);
  assert.equal(stale.json.error.code, 'TESSERA_ROTATION_CONFLICT');
  const ok = await h.call('POST', '/v1/admin/rotation/apps/busy/key', { expected_version: 1 });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
});

test('manual: alerts once per version when due (audit, metric, readiness), never rotates', async () => {
  const r = await h.call('PUT', '/v1/admin/secrets/apps/manual/pw', { value: 'hand-made', rotation_period: '1h', rotator: { kind: 'manual' } });
  assert.equal(r.status, 200);
  await h.rotation.pass();
  const due = () => h.audit.events.filter((e) => e.kind === 'rotation.due' && e.resource === 'secret:apps/manual/pw');
  assert.equal(due().length, 0);
  h.clock.advance(3_600_000);
  await h.rotation.pass();
  await h.rotation.pass();
  assert.equal(due().length, 1, 'one alert per version');
  assert.equal((due()[0]!.details as { version: number }).version, 1);
  assert.ok(h.metrics.gauge('tessera_rotation_overdue_secrets', '').get() >= 1);
  assert.ok((await h.rotation.healthNow()).overdue >= 1);
  const now = await h.call('POST', '/v1/admin/rotation/apps/manual/pw', {});
  assert.equal(now.status, 409);
  assert.equal(now.json.error.code, 'TESSERA_ROTATION_MANUAL');
  await h.call('PUT', '/v1/admin/secrets/apps/manual/pw', { value: 'hand-made-2' });
  const st = (await h.rotation.status()).find((s) => s.path === 'apps/manual/pw')!;
  assert.equal(st.overdue, false, 'a new version restarts the period');
});

test('every bad input gets its exact code', async () => {
  await h.call('PUT', '/v1/admin/secrets/apps/plain', { value: 'x' });
  const cases: [string, string, unknown, number, string][] = [
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: { kind: 'nope' } }, 400, 'TESSERA_ROTATION_ROTATOR_UNKNOWN'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: 'manual' }, 400, 'TESSERA_ROTATION_ROTATOR_UNKNOWN'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: {} }, 400, 'TESSERA_ROTATION_ROTATOR_UNKNOWN'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: { kind: 'http', endpoint: 'missing' } }, 400, 'TESSERA_ROTATION_ROTATOR_UNKNOWN'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: { kind: 'http' } }, 400, 'TESSERA_ROTATION_OPTIONS_INVALID'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: { kind: 'postgres-static', engine: 'main' } }, 400, 'TESSERA_ROTATION_OPTIONS_INVALID'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: { kind: 'postgres-static', engine: 'Bad Name', role: 'app' } }, 400, 'TESSERA_ROTATION_OPTIONS_INVALID'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: { kind: 'postgres-static', engine: 'main', role: 'x'.repeat(64) } }, 400, 'TESSERA_ROTATION_OPTIONS_INVALID'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: { kind: 'manual', extra: 1 } }, 400, 'TESSERA_ROTATION_OPTIONS_INVALID'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: { kind: 'http', endpoint: 'keys', grace_period: 'soon' } }, 400, 'TESSERA_ROTATION_OPTIONS_INVALID'],
    ['PUT', '/v1/admin/secrets/apps/x', { value: 'v', rotator: { kind: 'postgres-static', engine: 'main', role: 'app', end_sessions: 'yes' } }, 400, 'TESSERA_ROTATION_OPTIONS_INVALID'],
    ['POST', '/v1/admin/rotation/apps/none', {}, 404, 'TESSERA_SECRET_NOT_FOUND'],
    ['POST', '/v1/admin/rotation/apps/plain', {}, 409, 'TESSERA_ROTATION_NOT_CONFIGURED'],
    ['POST', '/v1/admin/rotation/apps/plain', { expected_version: 'one' }, 400, 'TESSERA_REQUEST_INVALID'],
    ['POST', '/v1/admin/rotation/apps/plain', { expected_version: 0 }, 400, 'TESSERA_REQUEST_INVALID'],
    ['POST', '/v1/admin/rotation/apps/plain', { other: 1 }, 400, 'TESSERA_REQUEST_INVALID'],
    ['POST', '/v1/admin/rotation/apps%2Fx', {}, 400, 'TESSERA_SECRET_PATH_INVALID'],
    ['POST', '/v1/admin/rotation/apps/a%20b', {}, 400, 'TESSERA_SECRET_PATH_INVALID'],
    ['POST', '/v1/admin/rotation/apps//x', {}, 400, 'TESSERA_SECRET_PATH_INVALID'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const r = await h.call(method, path, body);
    assert.equal(r.json.error?.code, code, `${method} ${path} ${JSON.stringify(body)} → ${JSON.stringify(r.json)}`);
    assert.equal(r.status, status, `${method} ${path}`);
  }
  assert.equal((await h.call('GET', '/v1/admin/rotation', undefined, 'wrong')).status, 401);
  // Rotators whose dependency is missing: the engine, the endpoint's credential.
  await h.call('PUT', '/v1/admin/secrets/apps/pg', { value: 'v', rotator: { kind: 'postgres-static', engine: 'nope', role: 'app' } });
  const eng = await h.call('POST', '/v1/admin/rotation/apps/pg', {});
  assert.equal(eng.json.error.code, 'TESSERA_ROTATION_ENGINE_MISSING');
  assert.equal(eng.status, 409);
  await h.call('PUT', '/v1/admin/secrets/apps/root', { value: 'v', rotator: { kind: 'engine-root', engine: 'nope' } });
  assert.equal((await h.call('POST', '/v1/admin/rotation/apps/root', {})).json.error.code, 'TESSERA_ROTATION_ENGINE_MISSING');
  await h.call('PUT', '/v1/admin/secrets/apps/noauth', { value: 'v', rotator: { kind: 'http', endpoint: 'noauth' } });
  const na = await h.call('POST', '/v1/admin/rotation/apps/noauth', {});
  assert.equal(na.json.error.code, 'TESSERA_ROTATION_HTTP_AUTH_MISSING');
  assert.equal(na.status, 409);
  // Nothing was left holding those secrets.
  assert.equal(await h.store.get("SELECT path FROM rotation_intents WHERE path IN ('apps/pg', 'apps/root', 'apps/noauth')"), undefined);
});

// Attack (atk-13): an endpoint that hands back the id of the credential in use would have the
// retirement after the grace period revoke the credential that was just made current.
test('an answer reusing the current credential\'s id is refused (TESSERA_ROTATION_HTTP_RESPONSE_INVALID); the current version stays and is never retired', async () => {
  mode = 'same-id';
  await putHttp('apps/sameid/api-key', 'keys', { grace_period: '2m' });
  const first = await h.call('POST', '/v1/admin/rotation/apps/sameid/api-key', {});
  assert.equal(first.status, 200, JSON.stringify(first.json));
  const working = await current('apps/sameid/api-key');
  const r = await h.call('POST', '/v1/admin/rotation/apps/sameid/api-key', {});
  assert.equal(r.status, 502, JSON.stringify(r.json));
  assert.equal(r.json.error.code, 'TESSERA_ROTATION_HTTP_RESPONSE_INVALID');
  assert.match(r.json.error.message, /id of the current credential/);
  assert.equal(await current('apps/sameid/api-key'), working);
  assert.equal((await h.kv.metadata('apps/sameid/api-key')).currentVersion, 2);
  // The first rotation's retirement retires version 1 (no id), never kid-fixed.
  h.clock.advance(2 * 60_000 + 1);
  await h.rotation.pass();
  const retires = svc.calls.filter((c) => c.body.action === 'retire' && c.body.path === 'apps/sameid/api-key');
  assert.deepEqual(retires.map((c) => c.body), [{ action: 'retire', path: 'apps/sameid/api-key', version: 1, id: null }]);
  mode = 'ok';
});
