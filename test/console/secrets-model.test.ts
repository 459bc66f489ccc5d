/** The secrets page's model (console/src/lib/secrets-model.ts): rotation badge, prefix, folders. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childFolders, cleanPrefix, crumbs, rotationState, type SecretMeta } from '../../console/src/lib/secrets-model.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const meta = (m: Partial<SecretMeta>): SecretMeta => ({ path: 'a/b', current_version: 1, mode: 'inject', ...m });

test('rotation badge: none, ok, due soon, overdue (times as RFC 3339 or epoch ms)', () => {
  assert.equal(rotationState(meta({}), NOW), 'none');
  assert.equal(rotationState(meta({ rotation_period_s: null, rotation_due_at: null }), NOW), 'none');
  const day = 86400;
  assert.equal(rotationState(meta({ rotation_period_s: 30 * day, rotation_due_at: NOW + 20 * day * 1000 }), NOW), 'ok');
  assert.equal(rotationState(meta({ rotation_period_s: 30 * day, rotation_due_at: new Date(NOW + 20 * day * 1000).toISOString() }), NOW), 'ok');
  assert.equal(rotationState(meta({ rotation_period_s: 30 * day, rotation_due_at: NOW + 2 * day * 1000 }), NOW), 'due_soon');
  assert.equal(rotationState(meta({ rotation_period_s: 30 * day, rotation_due_at: NOW }), NOW), 'overdue');
  assert.equal(rotationState(meta({ rotation_period_s: 30 * day, rotation_due_at: NOW - 1 }), NOW), 'overdue');
  assert.equal(rotationState(meta({ rotation_period_s: 30 * day, rotation_due_at: NOW + 20 * day * 1000, rotation_overdue: true }), NOW), 'overdue', 'the server flag wins');
  // a one-hour period: due soon within its tenth (6 minutes)
  assert.equal(rotationState(meta({ rotation_period_s: 3600, rotation_due_at: NOW + 5 * 60_000 }), NOW), 'due_soon');
  assert.equal(rotationState(meta({ rotation_period_s: 3600, rotation_due_at: NOW + 7 * 60_000 }), NOW), 'ok');
  // a one-year period: the window is capped at 7 days
  assert.equal(rotationState(meta({ rotation_period_s: 365 * day, rotation_due_at: NOW + 8 * day * 1000 }), NOW), 'ok');
  assert.equal(rotationState(meta({ rotation_period_s: 365 * day, rotation_due_at: NOW + 6 * day * 1000 }), NOW), 'due_soon');
  assert.equal(rotationState(meta({ rotation_period_s: 30 * day, rotation_due_at: 'not a time' }), NOW), 'ok', 'an unreadable due time is not "overdue"');
});

test('cleanPrefix trims slashes and refuses what the server refuses', () => {
  assert.deepEqual(cleanPrefix(''), { prefix: '' });
  assert.deepEqual(cleanPrefix('  /prod/db/ '), { prefix: 'prod/db' });
  for (const bad of ['a//b', 'a/../b', './a', 'a b', 'a/%2e', 'ä']) assert.ok('error' in cleanPrefix(bad), bad);
});

test('crumbs and child folders', () => {
  assert.deepEqual(crumbs(''), []);
  assert.deepEqual(crumbs('a/b/c'), [{ label: 'a', prefix: 'a' }, { label: 'b', prefix: 'a/b' }, { label: 'c', prefix: 'a/b/c' }]);
  const paths = ['prod/db/pw', 'prod/db/user', 'prod/api', 'prod/web/tls/key', 'stage/x', 'production/y'];
  assert.deepEqual(childFolders(paths, 'prod'), [{ name: 'db', prefix: 'prod/db', count: 2 }, { name: 'web', prefix: 'prod/web', count: 1 }]);
  assert.deepEqual(childFolders(paths, '').map((f) => f.name), ['prod', 'production', 'stage']);
  assert.deepEqual(childFolders(paths, 'prod/api'), []);
});
