/**
 * The healthcare scenario end to end (docs/examples/healthcare.md), through the whole server:
 * an operator configures the PostgreSQL engine and a read-only role over the admin API, the
 * patient-reader agent logs in and gets its own database user for minutes, which can read
 * patients and nothing else; another agent is refused by policy; the kill switch drops the user
 * and ends its session. Real PostgreSQL, real HTTP, `pg` as the agent's client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness } from './harness.js';
import { pgFixture, loginAs } from '../engines/pg-setup.js';

const READER = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';
const BILLING = 'spiffe://tessera.local/ns/billing/sa/invoicer';

// As in docs/examples/healthcare.md: the dev agent holds a join token, which proves its SPIFFE ID
// (not Kubernetes attributes), so the policy pins the ID and the attestor.
const POLICY = `@id("healthcare-db-patient-reader")
permit (principal == Tessera::Agent::"${READER}", action == Tessera::Action::"cred.issue", resource == Tessera::Role::"postgres/patient-reader")
when { principal.attestor_kind == "join_token" && principal.attestor == "join_token" };`;

test('healthcare: a per-agent read-only database user that exists only for the lease', async (t) => {
  const fx = await pgFixture('e2e_health');
  t.after(() => fx.drop());
  const policyDir = mkdtempSync(join(tmpdir(), 'tessera-policies-'));
  for (const f of readdirSync('examples/policies')) if (f.endsWith('.cedar')) copyFileSync(join('examples/policies', f), join(policyDir, f));
  writeFileSync(join(policyDir, 'healthcare-db.cedar'), POLICY);
  const h = await startHarness({ policyDir });
  t.after(() => h.close());
  const prefix = `tsr_${fx.tag}_`;

  // Operator: engine + role. The management URL is never returned.
  const cfg = await h.admin('PUT', '/v1/admin/engines/postgres/clinic', { connection_url: fx.mgmtUrl, username_prefix: prefix, pool_size: 4, connect_timeout: '2s' });
  assert.equal(cfg.status, 200, JSON.stringify(cfg.body));
  assert.ok(!JSON.stringify(cfg.body).includes(new URL(fx.mgmtUrl).password));
  h.sensitive.add(decodeURIComponent(new URL(fx.mgmtUrl).password));
  const role = await h.admin('PUT', '/v1/admin/engines/postgres/clinic/roles/patient-reader', { groups: [fx.group], default_ttl: '5m', max_ttl: '30m' });
  assert.equal(role.status, 200, JSON.stringify(role.body));

  // The agent gets its own user.
  const agent = await h.login(await h.joinToken(READER));
  const issued = await h.agent(agent, 'POST', '/v1/creds/postgres/patient-reader', { ttl: '2m' });
  assert.equal(issued.status, 201, JSON.stringify(issued.body));
  const data = issued.body.data as { username: string; password: string; host: string; port: number; database: string; uri: string };
  h.sensitive.add(data.password);
  h.sensitive.add(data.uri);
  assert.ok(data.username.startsWith(prefix));
  assert.equal(Buffer.from(data.password, 'base64url').length, 32);

  const session = await loginAs(data);
  const rows = await session.query('SELECT name FROM patients ORDER BY id');
  assert.deepEqual(rows.rows.map((r) => r.name), ['Ada', 'Grace']);
  await assert.rejects(session.query('SELECT * FROM billing'), /permission denied/);
  await assert.rejects(session.query("INSERT INTO patients VALUES (3, 'Eve')"), /permission denied/);

  // Another agent: attested fine, refused by policy.
  const other = await h.login(await h.joinToken(BILLING));
  const refused = await h.agent(other, 'POST', '/v1/creds/postgres/patient-reader', {});
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, 'TESSERA_POLICY_DENIED');

  // Kill switch: the user is dropped and its open session ended.
  const t0 = performance.now();
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: READER, reason: 'incident' });
  assert.equal(rev.status, 201, JSON.stringify(rev.body));
  t.diagnostic(`kill switch dropped the database user in ${(performance.now() - t0).toFixed(0)} ms`);
  assert.deepEqual(await fx.usersWithPrefix(prefix), []);
  await assert.rejects(session.query('SELECT 1'));
  await assert.rejects(loginAs(data));
  const leases = await h.admin('GET', `/v1/admin/leases?owner=${encodeURIComponent(READER)}`);
  assert.equal(leases.status, 200);
  assert.ok(JSON.stringify(leases.body).includes('revoked'));
});
