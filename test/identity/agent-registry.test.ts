import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { createAgentRegistry } from '../../src/identity/agent-registry.js';

test('agent sightings are merged in memory and written in one batch', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock(1_000_000);
  const reg = createAgentRegistry({ store, clock });
  const a = { spiffeId: 'spiffe://td/a', attestor: 'join_token', attestorKind: 'join_token' as const, attributes: { x: '1' } };
  reg.record(a);
  clock.advance(5000);
  reg.record({ ...a, attributes: { x: '2' } });
  reg.record({ spiffeId: 'spiffe://td/b', attestor: 'k8s', attestorKind: 'kubernetes', attributes: {} });
  assert.equal((await store.all('SELECT * FROM agents')).length, 0, 'nothing written before the flush');
  await reg.flush();
  const rows = await store.all<{ spiffe_id: string; logins: number; first_seen: number; last_seen: number; attributes: string }>('SELECT * FROM agents ORDER BY spiffe_id');
  assert.equal(rows.length, 2);
  assert.deepEqual([rows[0]!.logins, rows[0]!.first_seen, rows[0]!.last_seen, rows[0]!.attributes], [2, 1_000_000, 1_005_000, '{"x":"2"}']);
  // A later batch adds to the count and keeps first_seen.
  clock.advance(1000);
  reg.record(a);
  await reg.close();
  const row = await store.get<{ logins: number; first_seen: number; last_seen: number }>('SELECT * FROM agents WHERE spiffe_id = ?', ['spiffe://td/a']);
  assert.deepEqual([row!.logins, row!.first_seen, row!.last_seen], [3, 1_000_000, 1_006_000]);
  await store.close();
});

test('isKnown: a sighting is known before it is flushed, and from the table after', async () => {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const reg = createAgentRegistry({ store, clock: new ManualClock(1_000) });
  assert.equal(await reg.isKnown('spiffe://td/a'), false);
  reg.record({ spiffeId: 'spiffe://td/a', attestor: 'join_token', attestorKind: 'join_token', attributes: {} });
  assert.equal(await reg.isKnown('spiffe://td/a'), true, 'pending');
  await reg.flush();
  assert.equal(await reg.isKnown('spiffe://td/a'), true, 'flushed');
  assert.equal(await createAgentRegistry({ store, clock: new ManualClock(1_000) }).isKnown('spiffe://td/a'), true, 'another replica reads the table');
  assert.equal(await reg.isKnown('spiffe://td/b'), false);
  await reg.close();
  await store.close();
});
