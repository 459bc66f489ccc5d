/**
 * Attack 11 (A11-4): `GET /v1/console/oidc/login` needs no credential and stores a row (the
 * sign-in in progress) for 10 minutes. Before the fix nothing bounded it: one address could
 * write rows as fast as it could send requests. Now each address may start
 * `tokens.login_rate_limit.per_source` sign-ins (the same bound as agent logins), then 429
 * TESSERA_LOGIN_RATE_LIMITED, with nothing stored. Real OpenID Provider (oidc-provider), real HTTP.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../e2e/harness.js';
import { ManualClock } from '../../src/shared/clock.js';
import { freePort, startOp, TESSERA_CLIENT, type TestOp } from '../users/op.js';
import { call } from '../console/client.js';

const clock = new ManualClock(Date.now());
let h: Harness;
let op: TestOp;

before(async () => {
  const port = await freePort();
  op = await startOp({ tesseraCallback: `http://127.0.0.1:${port}/v1/console/oidc/callback` });
  const dir = mkdtempSync(join(tmpdir(), 'tessera-atk11-oidc-'));
  const secretFile = join(dir, 'client-secret');
  writeFileSync(secretFile, `${TESSERA_CLIENT.client_secret}\n`, { mode: 0o600 });
  h = await startHarness({
    clock,
    config: {
      server: { listen: `127.0.0.1:${port}` },
      tokens: { login_rate_limit: { per_source: { per_second: 1, burst: 5 } } },
      console: { oidc: { issuer: op.issuer, client_id: TESSERA_CLIENT.client_id, client_secret_file: secretFile, roles: { admin: [{ claim: 'groups', equals: 'finance' }] } } },
    },
  });
});
after(async () => {
  await h?.close();
  await op?.close();
});

const rows = async (): Promise<number> => Number((await h.tessera.store.get<{ n: number }>('SELECT COUNT(*) AS n FROM console_oidc_logins'))?.n ?? 0);

test('sign-in starts per address are bounded: the burst, then 429 with nothing stored; refilled over time', async () => {
  for (let i = 0; i < 5; i++) assert.equal((await call(h.url, 'GET', '/v1/console/oidc/login')).status, 302, `start ${i + 1}`);
  assert.equal(await rows(), 5);
  for (let i = 0; i < 20; i++) {
    const r = await call(h.url, 'GET', '/v1/console/oidc/login');
    assert.equal(r.status, 429);
    assert.equal(r.body.error.code, 'TESSERA_LOGIN_RATE_LIMITED');
    assert.equal(r.body.error.details.limit, 'console.oidc_sign_ins_per_source');
    assert.equal(r.body.error.details.retry_after_s, 1);
    assert.deepEqual(r.headers.getSetCookie(), [], 'no binding cookie for a refused start');
  }
  assert.equal(await rows(), 5, 'a refused start stores nothing');
  clock.advance(2000);
  assert.equal((await call(h.url, 'GET', '/v1/console/oidc/login')).status, 302);
  assert.equal(await rows(), 6);
});

test('the bound is per address: token sign-in and the API are not affected', async () => {
  const r = await call(h.url, 'GET', '/v1/console/oidc/login');
  assert.ok(r.status === 302 || r.status === 429);
  const s = await call(h.url, 'POST', '/v1/console/session', { body: { token: h.adminToken } });
  assert.equal(s.status, 201);
  assert.equal((await h.admin('GET', '/v1/admin/agents')).status, 200);
});
