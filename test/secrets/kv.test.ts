import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKvService } from '../../src/secrets/kv.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { createKeySealer } from '../../src/secrets/sealer.js';
import { fixture, admin, principal, GlobAuthorizer } from './helpers.js';

const PATH = 'healthcare/prod/agents/patient-reader/openai-api-key';

test('put then get round-trips the value, with metadata and defaults', async () => {
  const f = await fixture();
  const r = await f.kv.put(PATH, 'sk-live-123', { description: 'OpenAI key', owner: 'team-a', rotationPeriodMs: 30 * 86_400_000 }, admin);
  assert.deepEqual(r, { path: PATH, version: 1 });
  const g = await f.kv.get(PATH);
  assert.equal(g.value, 'sk-live-123');
  assert.equal(g.version, 1);
  assert.equal(g.metadata.mode, 'inject', 'inject is the default mode');
  assert.equal(g.metadata.description, 'OpenAI key');
  assert.equal(g.metadata.owner, 'team-a');
  assert.equal(g.metadata.rotationPeriodMs, 30 * 86_400_000);
  assert.equal(g.metadata.rotationDueAt, f.clock.now() + 30 * 86_400_000);
  const ev = f.audit.events.find((e) => e.kind === 'secret.written');
  assert.ok(ev);
  assert.equal(ev.resource, `secret:${PATH}`);
  assert.ok(!JSON.stringify(f.audit.events).includes('sk-live-123'), 'the value is never audited');
});

test('versions: each put adds one, older versions stay readable, metadata is kept unless changed', async () => {
  const f = await fixture();
  await f.kv.put('a/b', 'v1', { mode: 'read', owner: 'o' }, admin);
  f.clock.advance(1000);
  await f.kv.put('a/b', 'v2', undefined, admin);
  f.clock.advance(1000);
  const r3 = await f.kv.put('a/b', 'v3', { owner: null }, admin);
  assert.equal(r3.version, 3);
  assert.equal((await f.kv.get('a/b')).value, 'v3');
  assert.equal((await f.kv.get('a/b', { version: 1 })).value, 'v1');
  assert.equal((await f.kv.get('a/b', { version: 2 })).value, 'v2');
  await assert.rejects(f.kv.get('a/b', { version: 4 }), { code: 'TESSERA_SECRET_NOT_FOUND' });
  await assert.rejects(f.kv.get('a/b', { version: 0 }), { code: 'TESSERA_REQUEST_INVALID' });
  const m = await f.kv.metadata('a/b');
  assert.equal(m.mode, 'read');
  assert.equal(m.owner, null);
  assert.equal(m.currentVersion, 3);
  assert.deepEqual(m.versions?.map((v) => v.version), [1, 2, 3]);
});

test('concurrent puts get distinct consecutive versions', async () => {
  const f = await fixture();
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => f.kv.put('c/x', `value-${i}`, undefined, admin)));
  assert.deepEqual(results.map((r) => r.version).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal((await f.kv.metadata('c/x')).currentVersion, 20);
});

test('value validation: empty, non-string and oversize values are refused', async () => {
  const f = await fixture({ maxValueBytes: 16 });
  await assert.rejects(f.kv.put('a', '', undefined, admin), { code: 'TESSERA_SECRET_VALUE_INVALID' });
  await assert.rejects(f.kv.put('a', 42 as unknown as string, undefined, admin), { code: 'TESSERA_SECRET_VALUE_INVALID' });
  await assert.rejects(f.kv.put('a', 'x'.repeat(17), undefined, admin), { code: 'TESSERA_SECRET_VALUE_INVALID' });
  // The limit is in UTF-8 bytes, not characters: 6 × 3-byte characters = 18 bytes.
  await assert.rejects(f.kv.put('a', '€€€€€€', undefined, admin), { code: 'TESSERA_SECRET_VALUE_INVALID' });
  assert.equal((await f.kv.put('a', 'x'.repeat(16), undefined, admin)).version, 1);
  await assert.rejects(f.kv.put('a/../b', 'x', undefined, admin), { code: 'TESSERA_SECRET_PATH_INVALID' });
  await assert.rejects(f.kv.put('a', 'x', { mode: 'write' as 'read' }, admin), { code: 'TESSERA_REQUEST_INVALID' });
  await assert.rejects(f.kv.put('a', 'x', { rotationPeriodMs: 1500 }, admin), { code: 'TESSERA_REQUEST_INVALID' });
});

test('AAD binding: ciphertexts swapped between paths or versions fail to decrypt', async () => {
  const f = await fixture();
  await f.kv.put('p/one', 'first-secret', undefined, admin);
  await f.kv.put('p/two', 'second-secret', undefined, admin);
  await f.kv.put('p/one', 'first-secret-v2', undefined, admin);
  type Row = { ciphertext: Buffer; wrapped_key: Buffer };
  const row = async (path: string, version: number) => (await f.store.get<Row>('SELECT ciphertext, wrapped_key FROM secret_versions WHERE path = ? AND version = ?', [path, version]))!;
  const one1 = await row('p/one', 1);
  const two1 = await row('p/two', 1);
  const one2 = await row('p/one', 2);

  // Move both the ciphertext and its wrapped key from p/one to p/two: the AAD names the path.
  await f.store.run('UPDATE secret_versions SET ciphertext = ?, wrapped_key = ? WHERE path = ? AND version = 1', [one1.ciphertext, one1.wrapped_key, 'p/two']);
  await assert.rejects(f.kv.get('p/two'), { code: 'TESSERA_SECRET_DECRYPT_FAILED' });
  // Only the ciphertext moved (data key left in place): wrong data key and wrong AAD.
  await f.store.run('UPDATE secret_versions SET ciphertext = ?, wrapped_key = ? WHERE path = ? AND version = 1', [one1.ciphertext, two1.wrapped_key, 'p/two']);
  await assert.rejects(f.kv.get('p/two'), { code: 'TESSERA_SECRET_DECRYPT_FAILED' });

  // Version 1 moved into version 2 of the same path: the AAD names the version.
  await f.store.run('UPDATE secret_versions SET ciphertext = ?, wrapped_key = ? WHERE path = ? AND version = 2', [one1.ciphertext, one1.wrapped_key, 'p/one']);
  await assert.rejects(f.kv.get('p/one'), { code: 'TESSERA_SECRET_DECRYPT_FAILED' });
  // Restoring the right row makes it readable again (the failure came from the swap).
  await f.store.run('UPDATE secret_versions SET ciphertext = ?, wrapped_key = ? WHERE path = ? AND version = 2', [one2.ciphertext, one2.wrapped_key, 'p/one']);
  assert.equal((await f.kv.get('p/one')).value, 'first-secret-v2');

  // A flipped bit in the ciphertext is detected.
  const tampered = Buffer.from(one2.ciphertext);
  tampered[tampered.length - 1]! ^= 1;
  await f.store.run('UPDATE secret_versions SET ciphertext = ? WHERE path = ? AND version = 2', [tampered, 'p/one']);
  await assert.rejects(f.kv.get('p/one'), { code: 'TESSERA_SECRET_DECRYPT_FAILED' });
});

test('a wrong master key cannot open stored secrets', async () => {
  const f = await fixture();
  await f.kv.put('k/x', 'top-secret', undefined, admin);
  // Different key, different id: refused with a message naming both ids.
  const other = createKvService({ store: f.store, sealer: masterSealer(randomBytes(32)), clock: f.clock, audit: f.audit });
  await assert.rejects(other.get('k/x'), (e: Error & { code?: string }) => e.code === 'TESSERA_SECRET_DECRYPT_FAILED' && e.message.includes(f.sealer.keyId));
  // Different key under the same id (a forged id): GCM authentication fails.
  const forged = createKvService({ store: f.store, sealer: createKeySealer(randomBytes(32), f.sealer.keyId), clock: f.clock, audit: f.audit });
  await assert.rejects(forged.get('k/x'), { code: 'TESSERA_SECRET_DECRYPT_FAILED' });
  // previousSealers lets a service read data wrapped by an earlier key.
  const both = createKvService({ store: f.store, sealer: masterSealer(randomBytes(32)), previousSealers: [f.sealer], clock: f.clock, audit: f.audit });
  assert.equal((await both.get('k/x')).value, 'top-secret');
});

test('the database file never contains a plaintext value or data key in clear', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-kv-'));
  try {
    const file = join(dir, 'tessera.db');
    const f = await fixture({ file });
    const marker = `PLAINTEXT-MARKER-${randomBytes(8).toString('hex')}`;
    await f.kv.put('scan/one', marker, { mode: 'read' }, admin);
    await f.kv.put('scan/one', `${marker}-v2`, undefined, admin);
    assert.equal((await f.kv.get('scan/one')).value, `${marker}-v2`);
    // Rows: every column of every table, as text and as bytes.
    const tables = (await f.store.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")).map((t) => t.name);
    for (const t of tables) {
      for (const r of await f.store.all(`SELECT * FROM ${t}`)) {
        for (const v of Object.values(r)) {
          const s = Buffer.isBuffer(v) ? v.toString('latin1') : String(v);
          assert.ok(!s.includes(marker), `table ${t} holds the plaintext`);
        }
      }
    }
    await f.store.close();
    const files = readdirSync(dir);
    assert.ok(files.length >= 1);
    for (const name of files) {
      const bytes = readFileSync(join(dir, name));
      assert.equal(bytes.indexOf(marker), -1, `${name} holds the plaintext`);
      assert.equal(bytes.indexOf(Buffer.from(marker, 'utf16le')), -1);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('delete destroys every version and never reuses a version number', async () => {
  const f = await fixture();
  await f.kv.put('d/x', 'one', undefined, admin);
  await f.kv.put('d/x', 'two', undefined, admin);
  const r = await f.kv.delete('d/x', admin);
  assert.equal(r.versionsDestroyed, 2);
  await assert.rejects(f.kv.get('d/x'), { code: 'TESSERA_SECRET_NOT_FOUND' });
  await assert.rejects(f.kv.metadata('d/x'), { code: 'TESSERA_SECRET_NOT_FOUND' });
  const rows = await f.store.all<{ ciphertext: Buffer; wrapped_key: Buffer; destroyed_at: number | null }>('SELECT ciphertext, wrapped_key, destroyed_at FROM secret_versions WHERE path = ?', ['d/x']);
  assert.equal(rows.length, 2);
  for (const row of rows) {
    assert.equal(row.ciphertext.length, 0);
    assert.equal(row.wrapped_key.length, 0);
    assert.equal(row.destroyed_at, f.clock.now());
  }
  await assert.rejects(f.kv.delete('d/x', admin), { code: 'TESSERA_SECRET_NOT_FOUND' });
  assert.equal((await f.kv.put('d/x', 'three', undefined, admin)).version, 3);
  await assert.rejects(f.kv.get('d/x', { version: 1 }), { code: 'TESSERA_SECRET_NOT_FOUND' });
  assert.ok(f.audit.events.some((e) => e.kind === 'secret.deleted' && e.resource === 'secret:d/x'));
});

test('list by prefix is segment-wise, returns no values, and is bounded', async () => {
  const f = await fixture();
  for (const p of ['a/b/c', 'a/b/d', 'a/bc/e', 'a/b', 'z/y', 'a_b/x', 'aXb/x']) await f.kv.put(p, `val-${p}`, undefined, admin);
  const under = await f.kv.list('a/b');
  assert.deepEqual(under.secrets.map((s) => s.path), ['a/b', 'a/b/c', 'a/b/d']);
  assert.ok(!JSON.stringify(under).includes('val-'));
  assert.deepEqual((await f.kv.list('a_b')).secrets.map((s) => s.path), ['a_b/x'], '_ is not a wildcard');
  assert.equal((await f.kv.list('')).secrets.length, 7);
  const page = await f.kv.list('', { limit: 2 });
  assert.equal(page.secrets.length, 2);
  assert.equal(page.truncated, true);
  await assert.rejects(f.kv.list('a/'), { code: 'TESSERA_SECRET_PATH_INVALID' });
});

test('updateMetadata changes metadata only and is audited', async () => {
  const f = await fixture();
  await f.kv.put('m/x', 'v', undefined, admin);
  const m = await f.kv.updateMetadata('m/x', { mode: 'read', description: 'd', rotationPeriodMs: 3_600_000 }, admin);
  assert.equal(m.mode, 'read');
  assert.equal(m.description, 'd');
  assert.equal(m.rotationPeriodMs, 3_600_000);
  assert.equal(m.currentVersion, 1);
  await assert.rejects(f.kv.updateMetadata('m/none', { mode: 'read' }, admin), { code: 'TESSERA_SECRET_NOT_FOUND' });
  assert.ok(f.audit.events.some((e) => e.kind === 'secret.metadata_updated'));
});

test('readForAgent: read-mode only, policy first, everything audited', async () => {
  const f = await fixture();
  await f.kv.put('team/read-me', 'readable-value', { mode: 'read' }, admin);
  await f.kv.put('team/inject-only', 'injected-value', undefined, admin);
  await f.kv.put('other/read-me', 'other-value', { mode: 'read' }, admin);
  const authz = new GlobAuthorizer([{ action: 'secret.read', glob: 'team/**' }, { action: 'secret.inject', glob: 'team/**' }]);
  const p = principal();

  const ok = await f.kv.readForAgent(p, 'team/read-me', authz.pipeline);
  assert.deepEqual(ok, { path: 'team/read-me', version: 1, value: 'readable-value' });
  assert.deepEqual(authz.requests.at(-1)?.resource, { type: 'Secret', path: 'team/read-me' });
  assert.equal(authz.requests.at(-1)?.action, 'secret.read');

  await assert.rejects(f.kv.readForAgent(p, 'team/inject-only', authz.pipeline), { code: 'TESSERA_SECRET_NOT_READABLE' });
  await assert.rejects(f.kv.readForAgent(p, 'other/read-me', authz.pipeline), { code: 'TESSERA_POLICY_DENIED' });
  // An unauthorised caller learns nothing about existence: denied, not "not found".
  await assert.rejects(f.kv.readForAgent(p, 'other/missing', authz.pipeline), { code: 'TESSERA_POLICY_DENIED' });
  await assert.rejects(f.kv.readForAgent(p, 'team/missing', authz.pipeline), { code: 'TESSERA_SECRET_NOT_FOUND' });
  await assert.rejects(f.kv.readForAgent(p, 'team/../other/read-me', authz.pipeline), { code: 'TESSERA_SECRET_PATH_INVALID' });

  const reads = f.audit.events.filter((e) => e.kind === 'secret.read');
  assert.deepEqual(reads.map((e) => e.result), ['success', 'deny', 'deny', 'deny', 'failure']);
  assert.deepEqual(reads[0]!.reason?.policies, ['test:0']);
  assert.equal(reads[1]!.reason?.code, 'TESSERA_SECRET_NOT_READABLE');
  assert.equal(reads[2]!.reason?.code, 'TESSERA_POLICY_DENIED');
  assert.equal(reads[0]!.actor.id, p.spiffeId);
  assert.ok(!JSON.stringify(f.audit.events).includes('readable-value'));
  assert.ok(!JSON.stringify(f.audit.events).includes(p.jti));

  // Injection works for both modes but needs secret.inject.
  assert.equal((await f.kv.resolveForInjection(p, 'team/inject-only', authz.pipeline)).value, 'injected-value');
  await assert.rejects(f.kv.resolveForInjection(p, 'other/read-me', authz.pipeline), { code: 'TESSERA_POLICY_DENIED' });
  assert.equal(authz.requests.at(-1)?.action, 'secret.inject');
});

test('audit fails closed: no value is returned when the read cannot be recorded', async () => {
  const f = await fixture();
  await f.kv.put('t/r', 'value', { mode: 'read' }, admin);
  f.audit.failing = true;
  await assert.rejects(f.kv.readForAgent(principal(), 't/r', new GlobAuthorizer([{ action: 'secret.read', glob: '**' }]).pipeline), { code: 'TESSERA_AUDIT_UNAVAILABLE' });
});

test('readForAgent and resolveForInjection: a token scope narrows what policy allows', async () => {
  const f = await fixture();
  await f.kv.put('team/a', 'value-a-123456', { mode: 'read' }, admin);
  await f.kv.put('team/b', 'value-b-123456', { mode: 'read' }, admin);
  const authz = new GlobAuthorizer([{ action: 'secret.read', glob: 'team/**' }, { action: 'secret.inject', glob: 'team/**' }]);
  const scoped = { ...principal(), scope: ['secret:team/a'] };
  assert.equal((await f.kv.readForAgent(scoped, 'team/a', authz.pipeline)).value, 'value-a-123456');
  await assert.rejects(f.kv.readForAgent(scoped, 'team/b', authz.pipeline), { code: 'TESSERA_TOKEN_INSUFFICIENT_SCOPE' });
  await assert.rejects(f.kv.resolveForInjection(scoped, 'team/b', authz.pipeline), { code: 'TESSERA_TOKEN_INSUFFICIENT_SCOPE' });
  const denied = f.audit.events.filter((e) => e.kind === 'secret.read' && e.result === 'deny');
  assert.equal(denied.at(-1)?.reason?.code, 'TESSERA_TOKEN_INSUFFICIENT_SCOPE');
});
