import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createAdminTokenService } from '../../src/admin/index.js';
import { TesseraError } from '../../src/shared/errors.js';
import { sha256 } from '../../src/shared/crypto.js';
import { MemoryAuditWriter } from '../helpers/audit.js';

test('admin tokens: stored as digests, compared against every active one, replicas converge', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const a = createAdminTokenService({ store, clock, audit });
  const b = createAdminTokenService({ store, clock, audit }); // another replica on the same store
  const { id, token } = await a.create({ name: 'ops', expiresAt: null });
  assert.match(token, /^tsr_admin_[A-Za-z0-9_-]{43}$/);
  const row = await store.get<{ token_hash: Buffer }>('SELECT token_hash FROM admin_tokens WHERE id = ?', [id]);
  assert.deepEqual(row?.token_hash, sha256(token));
  assert.ok(!JSON.stringify(await store.all('SELECT * FROM admin_tokens')).includes(token));
  assert.equal((await a.authenticate(token)).tokenId, id);
  assert.equal((await b.authenticate(token)).tokenId, id);

  const bad = (p: Promise<unknown>) => assert.rejects(p, (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_ADMIN_TOKEN_INVALID');
  await bad(a.authenticate(`${token}x`));
  await bad(a.authenticate(token.slice(0, -1)));
  await bad(a.authenticate(''));

  // Revoked on replica a: refused there at once, and on replica b within its cache period.
  await a.create({ name: 'other', expiresAt: null }); // `ops` is not the last admin token
  await a.revoke(id);
  await bad(a.authenticate(token));
  clock.advance(6_000);
  await bad(b.authenticate(token));

  // A chosen value (tessera dev --root-token) must be long enough and without whitespace.
  await assert.rejects(a.create({ name: 'x', expiresAt: null, value: 'short' }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_REQUEST_INVALID');
  await assert.rejects(a.create({ name: 'y', expiresAt: null, value: 'has a space in it, long enough' }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_REQUEST_INVALID');
  await store.close();
});

test('an admin token is created, or revoked, only with its audit event (ADR 0041)', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const audit = new MemoryAuditWriter();
  const admin = createAdminTokenService({ store, clock: new ManualClock(), audit });
  audit.failing = true;
  await assert.rejects(admin.create({ name: 'boot', expiresAt: null }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_AUDIT_UNAVAILABLE');
  assert.equal(await admin.count(), 0, 'no operator credential exists that was not recorded');
  audit.failing = false;
  const { id, token } = await admin.create({ name: 'boot', expiresAt: null, actor: 'admin:boot' });
  await admin.create({ name: 'spare', expiresAt: null }); // so that `boot` is not the last admin token
  audit.failing = true;
  await assert.rejects(admin.revoke(id), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_AUDIT_UNAVAILABLE');
  assert.equal((await admin.authenticate(token)).tokenId, id, 'still valid: the revocation did not happen');
  audit.failing = false;
  await admin.revoke(id, { actor: 'admin:other' });
  assert.deepEqual(audit.events.filter((e) => (e.details as { token_id: string }).token_id === id).map((e) => `${e.kind} ${e.actor.id} ${(e.details as { token_id: string }).token_id === id}`), ['admin_token.created admin:boot true', 'admin_token.revoked admin:other true']);
  assert.ok(!JSON.stringify(audit.events).includes(token));
});

test('isActive and onRevoked: what console sessions ask of an operator token', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const a = createAdminTokenService({ store, clock, audit });
  const b = createAdminTokenService({ store, clock, audit }); // another replica
  const seen: string[] = [];
  const off = a.onRevoked((id) => seen.push(id));
  const keep = await a.create({ name: 'keep', expiresAt: null });
  const short = await a.create({ name: 'short', role: 'auditor', expiresAt: clock.now() + 60_000 });
  assert.equal(await a.isActive(short.id), true);
  assert.equal(await b.isActive(short.id), true);
  assert.equal(await a.isActive('adm_nope'), false);
  // Expiry counts at once, cached or not.
  clock.advance(60_000);
  assert.equal(await a.isActive(short.id), false);
  await assert.rejects(a.authenticate(short.token), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_ADMIN_TOKEN_EXPIRED');
  // Revocation: at once here (and the listener hears it), on the other replica within 5 s.
  assert.equal(await b.isActive(keep.id), true); // b reads the store now
  const other = await a.create({ name: 'other', expiresAt: null });
  assert.equal(await b.isActive(other.id), false, 'b has not re-read yet (cache)');
  clock.advance(5_001);
  assert.equal(await b.isActive(other.id), true);
  assert.deepEqual(await a.revoke(other.id), { revoked: true });
  assert.equal(await a.isActive(other.id), false);
  assert.deepEqual(seen, [other.id]);
  assert.deepEqual(await a.revoke(other.id), { revoked: false }, 'revoking again changes nothing');
  assert.deepEqual(seen, [other.id], 'and is not announced again');
  clock.advance(5_001);
  assert.equal(await b.isActive(other.id), false);
  // The last admin token (keep: `short` is an auditor, and expired) is refused.
  await assert.rejects(a.revoke(keep.id), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_ADMIN_LAST_TOKEN' && e.status === 409);
  await assert.rejects(a.revoke('adm_nope'), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_ADMIN_TOKEN_NOT_FOUND' && e.status === 404);
  off();
  await store.close();
});
