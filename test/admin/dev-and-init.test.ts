/**
 * Where operator tokens come from without the API: `tessera dev` (each start revokes the `dev`
 * token of the previous start on that data directory and creates one fresh; `--root-token` keeps
 * one fixed token), `tessera init` (the `init` admin token, no expiry), and the migration that gave
 * existing tokens their name and role (SQLite and PostgreSQL).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../e2e/harness.js';
import { runtime } from '../../src/main.js';
import { jsonCall } from '../helpers/http.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { sha256 } from '../../src/shared/crypto.js';
import type { Store } from '../../src/store/port.js';
import { createAdminTokenService } from '../../src/admin/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { MemoryAuditWriter } from '../helpers/audit.js';

type Row = { id: string; name: string; role: string; expires_at: number | null; created_by: string; revoked_at: number | null };
const active = async (h: Harness): Promise<Row[]> =>
  h.tessera.store.all<Row>('SELECT id, name, role, expires_at, created_by, revoked_at FROM admin_tokens WHERE revoked_at IS NULL ORDER BY created_at');

test('tessera dev: a restart revokes the previous dev token and leaves exactly one active; --root-token stays fixed', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-dev-restart-'));
  const first = await startHarness({ dataDir });
  const t1 = first.adminToken;
  // An operator's own token is not a dev token: restarts leave it alone.
  const own = await first.admin('POST', '/v1/admin/operator-tokens', { name: 'mine', ttl: '1d' });
  assert.equal(own.status, 201);
  first.sensitive.add(own.body.token);
  await first.close();

  const second = await startHarness({ dataDir });
  try {
    assert.notEqual(second.adminToken, t1);
    const refused = await jsonCall(second.url, t1, 'GET', '/v1/admin/agents');
    assert.deepEqual([refused.status, refused.body.error.code], [401, 'TESSERA_ADMIN_TOKEN_INVALID']);
    assert.equal((await second.admin('GET', '/v1/admin/agents')).status, 200);
    assert.equal((await jsonCall(second.url, own.body.token, 'GET', '/v1/admin/agents')).status, 200, 'the operator\'s own token still works');
    const rows = await active(second);
    const devRows = rows.filter((r) => r.name === 'dev');
    assert.equal(devRows.length, 1);
    assert.deepEqual({ role: devRows[0]!.role, created_by: devRows[0]!.created_by, expires: devRows[0]!.expires_at !== null }, { role: 'admin', created_by: 'system:dev', expires: true });
    assert.deepEqual(rows.map((r) => r.name).sort(), ['dev', 'mine']);
    // The revocation is audited as done by `tessera dev`.
    await second.tessera.audit.flush();
    const ev = await second.tessera.store.all<{ actor: string }>("SELECT actor FROM audit_events WHERE kind = 'admin_token.revoked'");
    assert.deepEqual(ev.map((e) => e.actor), ['system:dev']);
  } finally {
    await second.close();
  }

  // --root-token: created once, kept over restarts, and it replaces the random dev token.
  const root = `tsr_admin_fixed-root-token-${'r'.repeat(20)}`;
  const third = await startHarness({ dataDir, rootToken: root });
  const rootId = (await active(third)).find((r) => r.name === 'dev')!.id;
  assert.equal(third.adminToken, root);
  assert.equal((await jsonCall(third.url, second.adminToken, 'GET', '/v1/admin/agents')).status, 401);
  await third.close();
  const fourth = await startHarness({ dataDir, rootToken: root });
  try {
    assert.equal((await fourth.admin('GET', '/v1/admin/agents')).status, 200);
    const devRows = (await active(fourth)).filter((r) => r.name === 'dev');
    assert.deepEqual(devRows.map((r) => [r.id, r.expires_at]), [[rootId, null]], 'the same token, no expiry');
  } finally {
    await fourth.close();
  }
  // A start without --root-token replaces it as well.
  const fifth = await startHarness({ dataDir });
  try {
    assert.equal((await jsonCall(fifth.url, root, 'GET', '/v1/admin/agents')).status, 401);
    assert.equal((await active(fifth)).filter((r) => r.name === 'dev').length, 1);
  } finally {
    await fifth.close();
  }
  // A revoked root token is never brought back by naming it again.
  await assert.rejects(startHarness({ dataDir, rootToken: root }), (e: unknown) => (e as { code?: string }).code === 'TESSERA_REQUEST_INVALID' && /was revoked .* cannot be used again/.test((e as Error).message));
});

test('tessera init: the first token is the admin token `init`, without expiry, created by the system', async () => {
  const root = mkdtempSync(join(tmpdir(), 'tessera-init-token-'));
  const dataDir = join(root, 'data');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const configFile = join(root, 'tessera.yaml');
  writeFileSync(configFile, `data_dir: ${dataDir}\nserver:\n  listen: 127.0.0.1:0\npolicy:\n  dir: ${join(process.cwd(), 'examples', 'policies')}\n  watch: false\nlog:\n  level: silent\n`);
  const { adminToken } = await runtime.init({ configPath: configFile });
  const server = await runtime.server({ configPath: configFile });
  try {
    const list = await jsonCall((server as unknown as { localUrl: string }).localUrl, adminToken, 'GET', '/v1/admin/operator-tokens');
    assert.equal(list.status, 200);
    assert.equal(list.body.tokens.length, 1);
    const { id, created_at, ...rest } = list.body.tokens[0];
    assert.match(id, /^adm_/);
    assert.ok(created_at);
    assert.deepEqual(rest, { name: 'init', role: 'admin', expires_at: null, created_by: 'system', revoked_at: null, current: true });
    // The only admin token cannot be revoked: nobody could operate Tessera any more.
    const last = await jsonCall((server as unknown as { localUrl: string }).localUrl, adminToken, 'DELETE', `/v1/admin/operator-tokens/${id}`);
    assert.deepEqual([last.status, last.body.error.code], [409, 'TESSERA_ADMIN_LAST_TOKEN']);
  } finally {
    await server.close();
  }
});

/** Tokens as the schema before migration 330 stored them, then the migration applied. */
async function migrateOldTokens(store: Store): Promise<void> {
  await store.migrate();
  // Back to the schema before migration 330 (it is re-applied below).
  await store.run('DROP INDEX admin_tokens_active_name');
  for (const c of ['name', 'role', 'expires_at', 'created_by']) await store.run(`ALTER TABLE admin_tokens DROP COLUMN ${c}`);
  await store.run('DELETE FROM schema_migrations WHERE id = 330');
  await store.run('INSERT INTO admin_tokens (id, token_hash, created_at, revoked_at) VALUES (?, ?, ?, ?)', ['adm_b', sha256('tsr_admin_second-token-xxxxxxxx'), 2000, null]);
  await store.run('INSERT INTO admin_tokens (id, token_hash, created_at, revoked_at) VALUES (?, ?, ?, ?)', ['adm_a', sha256('tsr_admin_first-token-xxxxxxxxx'), 1000, null]);
  await store.run('INSERT INTO admin_tokens (id, token_hash, created_at, revoked_at) VALUES (?, ?, ?, ?)', ['adm_c', sha256('tsr_admin_third-token-xxxxxxxxx'), 3000, 3500]);
  await store.migrate();
  const rows = await store.all<Row>('SELECT id, name, role, expires_at, created_by, revoked_at FROM admin_tokens ORDER BY id');
  assert.deepEqual(rows.map((r) => [r.id, r.name, r.role, r.expires_at, r.created_by, r.revoked_at === null ? null : Number(r.revoked_at)]), [
    ['adm_a', 'init', 'admin', null, 'system', null],
    ['adm_b', 'token-1', 'admin', null, 'system', null],
    ['adm_c', 'token-2', 'admin', null, 'system', 3500],
  ]);
  // They still authenticate, as admins.
  const admin = createAdminTokenService({ store, clock: new ManualClock(), audit: new MemoryAuditWriter() });
  assert.deepEqual(await admin.authenticate('tsr_admin_first-token-xxxxxxxxx'), { kind: 'admin', tokenId: 'adm_a', name: 'init', role: 'admin', via: 'token' });
  // The name index holds: two unrevoked tokens cannot share a name, even past the service.
  await assert.rejects(store.run("UPDATE admin_tokens SET name = 'init' WHERE id = 'adm_b'"));
}

test('migration 330 on SQLite: existing tokens become admins named init, token-<n>, without expiry', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  try {
    await migrateOldTokens(store);
  } finally {
    await store.close();
  }
});

test('migration 330 on PostgreSQL: the same', async (t) => {
  const db = await createTestDatabase('admin_tokens_migration');
  t.after(() => db.drop());
  const store = openPostgresStore({ url: db.url });
  try {
    await migrateOldTokens(store);
  } finally {
    await store.close();
  }
});
