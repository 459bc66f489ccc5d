/**
 * Operator key rotation through the API: a plain rotation keeps earlier tokens valid (the old key
 * stays published until they expire); an emergency rotation (`revoke_previous`) refuses every
 * token signed by older keys at once, and agents simply log in again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startHarness } from './harness.js';

const run = promisify(execFile);
const AGENT = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';

test('POST /v1/admin/keys/rotate: plain and emergency rotation', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const jwks = async () => ((await (await fetch(`${h.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
  const before = await h.login(await h.joinToken(AGENT));
  const kids0 = await jwks();

  const plain = await h.admin('POST', '/v1/admin/keys/rotate', {});
  assert.equal(plain.status, 200, JSON.stringify(plain.body));
  assert.deepEqual(plain.body.revoked, []);
  const kids1 = await jwks();
  assert.ok(kids1.includes(plain.body.kid) && kids0.every((k) => kids1.includes(k)), 'the old key stays published');
  assert.equal((await h.agent(before, 'GET', '/v1/whoami')).status, 200, 'tokens signed before a plain rotation stay valid');
  const after = await h.login(await h.joinToken(AGENT));
  assert.equal(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid, plain.body.kid);

  const emergency = await h.admin('POST', '/v1/admin/keys/rotate', { revoke_previous: true });
  assert.equal(emergency.status, 200);
  assert.ok(emergency.body.revoked.includes(plain.body.kid));
  assert.deepEqual(await jwks(), [emergency.body.kid]);
  for (const old of [before, after]) {
    const r = await h.agent(old, 'GET', '/v1/whoami');
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'TESSERA_TOKEN_KID_UNKNOWN');
  }
  assert.equal((await h.agent(await h.login(await h.joinToken(AGENT)), 'GET', '/v1/whoami')).status, 200);

  // The same through the CLI (async: the server runs in this process).
  const cli = await run(process.execPath, [join(process.cwd(), 'bin', 'tessera.js'), 'keys', 'rotate', '--json'], {
    encoding: 'utf8', env: { ...process.env, TESSERA_ADDR: h.url, TESSERA_TOKEN: h.adminToken }, timeout: 60_000,
  });
  assert.deepEqual(JSON.parse(cli.stdout).revoked, []);

  const bad = await h.admin('POST', '/v1/admin/keys/rotate', { revoke_previous: 'yes' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'TESSERA_REQUEST_INVALID');
  const audit = await h.admin('GET', '/v1/admin/audit?kind=key.rotated&limit=100');
  assert.ok((audit.body.events as { event: { action: string } }[]).some((e) => e.event.action === 'key.revoke'));
});
