/**
 * ADR 0041, end to end: every state change is audited or does not happen. The whole server
 * (src/main.ts) over real HTTP; the audit sinks are broken for real, two ways:
 *  - the store sink: the `audit_events` table is renamed away, so the audit rows cannot be
 *    written (the file sink still records events about reads and refusals);
 *  - the only sink is a file that becomes /dev/full (every write fails with ENOSPC).
 * Every write path is then called; each must be refused (503) and change nothing — compared row
 * by row — and work again once the sink is back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from './harness.js';
import { MemoryEngine } from '../helpers/memory-engine.js';

const READER = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';
const OTHER = 'spiffe://tessera.local/ns/billing/sa/invoicer';

function policies(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-policies-'));
  for (const f of readdirSync('examples/policies')) if (f.endsWith('.cedar')) copyFileSync(join('examples/policies', f), join(dir, f));
  // A join token proves the SPIFFE ID, not Kubernetes attributes: pin the ID and the attestor (ADR 0021).
  writeFileSync(join(dir, 'memdb.cedar'), `@id("memdb-readonly")
permit (principal == Tessera::Agent::"${READER}", action == Tessera::Action::"cred.issue", resource == Tessera::Role::"memdb/readonly")
when { principal.attestor_kind == "join_token" && principal.attestor == "join_token" };`);
  return dir;
}

async function form(h: Harness, path: string, params: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params) });
  return { status: res.status, body: await res.json() };
}
const JOIN = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:tessera:token-type:join-token' };

/** The durable state every write path touches (lease intents in `pending`/`revoking` are the crash journal, compared apart). */
async function snapshot(h: Harness): Promise<string> {
  const s = h.tessera.store;
  return JSON.stringify({
    secrets: await s.all('SELECT path, current_version, mode, updated_at FROM secrets ORDER BY path'),
    versions: await s.all('SELECT path, version, destroyed_at FROM secret_versions ORDER BY path, version'),
    joinTokens: await s.all('SELECT id, used_at FROM join_tokens ORDER BY id'),
    revocations: await s.all('SELECT id, kind, target, lifted_at FROM revocations ORDER BY id'),
    leases: await s.all(`SELECT id, state, expires_at FROM leases WHERE state IN ('active', 'revoked', 'irrevocable') ORDER BY id`),
    keys: await s.all('SELECT kid, retires_at, expires_at FROM signing_keys ORDER BY kid'),
    admins: await s.all('SELECT id, revoked_at FROM admin_tokens ORDER BY id'),
  });
}

async function scenario(h: Harness, engine: MemoryEngine, breakSinks: () => Promise<void>, restoreSinks: () => Promise<void>, expected: readonly string[]): Promise<void> {
  // Before the outage: a secret, an unused join token, two agents, a lease, a revocation.
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/healthcare/prod/db', { value: 'db-password-v1-123456', mode: 'read' })).status, 200);
  const unusedJoin = await h.joinToken(READER);
  const reader = await h.login(await h.joinToken(READER));
  const other = await h.login(await h.joinToken(OTHER));
  const lease = await h.agent(reader, 'POST', '/v1/creds/memdb/readonly', {});
  assert.equal(lease.status, 201, JSON.stringify(lease.body));
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'task', target: 'task-before-outage' });
  assert.equal(rev.status, 201);
  const credentials = engine.credentials.size;
  const before = await snapshot(h);

  await breakSinks();
  const writes: [string, () => Promise<{ status: number; body: any }>][] = [
    ['new secret', () => h.admin('PUT', '/v1/admin/secrets/healthcare/prod/new', { value: 'new-value-123456' })],
    ['secret version', () => h.admin('PUT', '/v1/admin/secrets/healthcare/prod/db', { value: 'db-password-v2-123456' })],
    ['secret delete', () => h.admin('DELETE', '/v1/admin/secrets/healthcare/prod/db')],
    ['join token', () => h.admin('POST', '/v1/admin/join-tokens', { spiffe_id: READER })],
    ['join-token login', () => form(h, '/v1/oauth/token', { ...JOIN, subject_token: unusedJoin })],
    ['revocation', () => h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: OTHER })],
    ['lift', () => h.admin('DELETE', `/v1/admin/revocations/${rev.body.id}`)],
    ['credential', () => h.agent(reader, 'POST', '/v1/creds/memdb/readonly', {})],
    ['renew', () => h.agent(reader, 'POST', `/v1/leases/${lease.body.lease_id}/renew`, {})],
    ['key rotation', () => h.admin('POST', '/v1/admin/keys/rotate', {})],
    ['token revocation (RFC 7009)', () => form(h, '/v1/oauth/revoke', { token: other })],
  ];
  for (const [what, call] of writes) {
    const r = await call();
    const code = r.body?.error?.code ?? r.body?.code;
    assert.equal(r.status, 503, `${what}: ${JSON.stringify(r.body)}`);
    assert.ok(expected.includes(code), `${what}: ${code}`);
  }
  assert.equal(await snapshot(h), before, 'no write changed anything without its audit event');
  assert.equal(engine.credentials.size, credentials, 'the credential issued during the outage was dropped again');

  // Revoking the lease: the backend drop happens (it cannot be undone and is idempotent), but the
  // lease is not `revoked` until its event is recorded.
  const drop = await h.admin('DELETE', `/v1/admin/leases/${lease.body.lease_id}`);
  assert.equal(drop.status, 503);
  const state = await h.tessera.store.get<{ state: string }>('SELECT state FROM leases WHERE id = ?', [lease.body.lease_id]);
  assert.notEqual(state?.state, 'revoked');

  await restoreSinks();
  // Nothing that was refused took effect: the other agent's token works, the join token is
  // unused, the revocation is still active; and every write works again.
  assert.equal((await h.agent(other, 'GET', '/v1/whoami')).status, 200);
  assert.equal((await form(h, '/v1/oauth/token', { ...JOIN, subject_token: unusedJoin })).status, 200);
  const active = await h.admin('GET', '/v1/admin/revocations?active=true');
  assert.ok(active.body.revocations.some((r: { id: string }) => r.id === rev.body.id));
  assert.equal((await h.admin('PUT', '/v1/admin/secrets/healthcare/prod/db', { value: 'db-password-v2-123456' })).status, 200);
  assert.equal((await h.admin('DELETE', `/v1/admin/leases/${lease.body.lease_id}`)).status, 200);
  const after = await h.tessera.store.get<{ state: string }>('SELECT state FROM leases WHERE id = ?', [lease.body.lease_id]);
  assert.equal(after?.state, 'revoked');
  assert.equal((await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: OTHER })).status, 201);
  assert.equal((await h.agent(other, 'GET', '/v1/whoami')).status, 401);
}

test('store sink down: every write path is refused and changes nothing; reads go on through the file sink', async (t) => {
  const engine = new MemoryEngine('memdb', { readonly: { defaultTtlMs: 60_000, maxTtlMs: 120_000, renewable: true } });
  const h = await startHarness({ engines: [engine], policyDir: policies() });
  t.after(() => h.close());
  const s = h.tessera.store;
  await scenario(
    h,
    engine,
    async () => {
      await h.tessera.audit.flush();
      await s.run('ALTER TABLE audit_events RENAME TO audit_events_away');
    },
    async () => {
      await s.run('ALTER TABLE audit_events_away RENAME TO audit_events');
    },
    ['TESSERA_STORE_UNAVAILABLE'],
  );
});

test('only sink (a file) unwritable: every write path is refused with TESSERA_AUDIT_UNAVAILABLE and changes nothing', { skip: existsSync('/dev/full') ? false : 'needs /dev/full' }, async (t) => {
  const engine = new MemoryEngine('memdb', { readonly: { defaultTtlMs: 60_000, maxTtlMs: 120_000, renewable: true } });
  const h = await startHarness({ engines: [engine], policyDir: policies(), fileSinkOnly: true });
  t.after(() => h.close());
  await scenario(
    h,
    engine,
    async () => {
      await h.tessera.audit.flush();
      rmSync(h.auditFile);
      symlinkSync('/dev/full', h.auditFile);
    },
    async () => {
      rmSync(h.auditFile);
    },
    ['TESSERA_AUDIT_UNAVAILABLE'],
  );
});
