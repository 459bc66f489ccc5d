/**
 * Audit fails closed, for real: the only sink is a JSONL file; when the file becomes unwritable
 * (here: rotated to /dev/full, which refuses every write with ENOSPC), requests that must be
 * audited are refused with 503 TESSERA_AUDIT_UNAVAILABLE; when it is writable again, service
 * resumes and the file sink follows log rotation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness } from './harness.js';

const AGENT = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';

test('no writable audit sink → 503 TESSERA_AUDIT_UNAVAILABLE; rotation is followed', { skip: existsSync('/dev/full') ? false : 'needs /dev/full' }, async (t) => {
  const h2 = await startHarness({ fileSinkOnly: true });
  t.after(() => h2.close());
  const file = h2.auditFile;

  await h2.login(await h2.joinToken(AGENT));
  assert.match(readFileSync(file, 'utf8'), /auth\.login/);

  // logrotate-style: move the file away; the sink reopens a new file at the path.
  renameSync(file, `${file}.1`);
  await h2.login(await h2.joinToken(AGENT));
  assert.match(readFileSync(file, 'utf8'), /auth\.login/);

  // Now the path leads to a device that refuses writes: nothing can record, so nothing proceeds.
  rmSync(file);
  symlinkSync('/dev/full', file);
  const res = await fetch(`${h2.url}/v1/admin/join-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${h2.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ spiffe_id: AGENT }),
  });
  assert.equal(res.status, 503);
  assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'TESSERA_AUDIT_UNAVAILABLE');
  const ready = await fetch(`${h2.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal(((await ready.json()) as { checks: { audit: { ok: boolean } } }).checks.audit.ok, false);

  // Writable again: service resumes.
  rmSync(file);
  await h2.login(await h2.joinToken(AGENT));
  assert.match(readFileSync(join(file), 'utf8'), /auth\.login/);
  assert.equal((await fetch(`${h2.url}/readyz`)).status, 200);
});
