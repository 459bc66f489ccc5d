/**
 * Attack on the console's exposure queries after ADR 0286 (groups aggregated in the store with
 * the lengths as a decimal list, ranked in JavaScript; live leases on the partial index of
 * migration 386): edge cases against the straightforward JavaScript computation (report.ts over
 * windowsSince / liveWindows) — an empty store, no leases, every lease revoked, windows issued
 * before the period and live across its edge, windows issued after `now`, zero-length windows,
 * very long windows — on SQLite and PostgreSQL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import type { SqlValue, Store } from '../../src/store/port.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { groupWindows, liveCredentials } from '../../src/exposure/report.js';
import { groupStats, liveCounts, liveWindows, liveWindowsTop, windowsSince } from '../../src/exposure/store.js';
import { toGroups } from '../../src/exposure/service.js';
import { EXPOSURE_GROUPINGS, EXPOSURE_KINDS, type ExposureKind } from '../../src/exposure/kinds.js';

const NOW = 1_800_000_000_000;
const H = 3_600_000;

type Seed = { exposures: SqlValue[][]; leases: SqlValue[][] };
const exp = (id: string, kind: string, issued: number, expires: number, closed: number | null): SqlValue[] => [id, kind, 'spiffe://t/a', null, null, null, null, issued, expires, closed, closed === null ? null : 'test'];
const lease = (id: string, state: string, created: number, expires: number, revoked: number | null): SqlValue[] => [id, 'mem', 'reader', `mem/reader/${id}`, 'spiffe://t/b', null, 'alice', state, '{}', created, expires, expires + H, revoked, null];

const SCENARIOS: Record<string, Seed> = {
  empty: { exposures: [], leases: [] },
  'no leases': { exposures: [exp('a', 'agent_token', NOW - H, NOW + H, null), exp('b', 'task_token', NOW - 2 * H, NOW - H, null)], leases: [] },
  'every lease revoked': {
    exposures: [],
    leases: [lease('l1', 'revoked', NOW - H, NOW + H, NOW - 30 * 60_000), lease('l2', 'revoked', NOW - 2 * H, NOW + H, NOW - 2 * H), lease('l3', 'revoked', NOW - 10, NOW + H, NOW - 20)],
  },
  'across the period edge, future-issued, zero and very long windows': {
    exposures: [
      exp('edge-live', 'agent_token', NOW - 30 * H, NOW + H, null), // issued before every `since`, live now
      exp('edge-in', 'agent_token', NOW - 24 * H, NOW + H, null), // issued exactly at since
      exp('future', 'task_token', NOW + H, NOW + 2 * H, null), // issued after now (skew)
      exp('zero', 'secret_use', NOW - H, NOW - H, NOW - H),
      exp('long', 'agent_token', NOW - 1, 8_000_000_000_000_000, null), // near the end of Date's range
      exp('closed-early', 'task_token', NOW - H, NOW + H, NOW - H - 5),
    ],
    leases: [
      lease('le-edge', 'active', NOW - 30 * H, NOW + H, null),
      lease('le-at', 'active', NOW - 24 * H, NOW - H, null), // past expiry, not dropped
      lease('le-future', 'active', NOW + H, NOW + 2 * H, null),
      lease('le-pending', 'pending', NOW - H, NOW + H, null),
    ],
  },
};

async function check(store: Store, name: string, seed: Seed): Promise<void> {
  await store.run('DELETE FROM exposures', []);
  await store.run('DELETE FROM leases', []);
  if (seed.exposures.length) await store.run(`INSERT INTO exposures (id, kind, agent, task, root, user_id, resource, issued_at, expires_at, closed_at, closed_by) VALUES ${seed.exposures.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`, seed.exposures.flat());
  if (seed.leases.length) await store.run(`INSERT INTO leases (id, engine, role, path, owner_agent, task_id, user_id, state, engine_data, created_at, expires_at, max_expires_at, revoked_at, revoke_cause) VALUES ${seed.leases.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`, seed.leases.flat());
  for (const now of [NOW, NOW + 3 * H]) {
    for (const since of [NOW - 24 * H, NOW - H, NOW + 10 * H]) {
      for (const kind of [undefined, ...EXPOSURE_KINDS] as (ExposureKind | undefined)[]) {
        for (const by of EXPOSURE_GROUPINGS) {
          const expected = groupWindows(await windowsSince(store, since, kind, 1000), by, now);
          const what = `${name}: groups by ${by}, kind ${kind ?? 'all'}, since ${since - NOW}, now ${now - NOW}`;
          assert.deepEqual(toGroups(await groupStats(store, since, by, kind, now, 1000)), expected, what);
          assert.deepEqual(toGroups(await groupStats(store, since, by, kind, now, null)), expected, `${what} (no limit)`);
        }
      }
    }
    for (const kind of [undefined, ...EXPOSURE_KINDS] as (ExposureKind | undefined)[]) {
      const all = liveCredentials(await liveWindows(store, now, kind, 1000), now);
      const top = await liveWindowsTop(store, now, kind, 1000, 1000);
      assert.equal(top.total, all.length, `${name}: live_total, kind ${kind ?? 'all'}`);
      assert.deepEqual(liveCredentials(top.windows, now), all, `${name}: live list, kind ${kind ?? 'all'}`);
    }
    const counts = await liveCounts(store, now);
    assert.equal(counts.lease, (await liveWindows(store, now, 'lease', 1000)).length, `${name}: live lease count`);
  }
}

async function all(store: Store): Promise<void> {
  for (const [name, seed] of Object.entries(SCENARIOS)) await check(store, name, seed);
}

test('exposure edge cases: the store equals the straightforward computation — SQLite', async () => {
  const store = openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'tessera-atk-exposure-')), 'db.sqlite') });
  try {
    await store.migrate();
    await all(store);
  } finally {
    await store.close();
  }
});

test('exposure edge cases: the store equals the straightforward computation — PostgreSQL', async () => {
  const db = await createTestDatabase('atk_exposure');
  const store = openPostgresStore({ url: db.url });
  try {
    await store.migrate();
    await all(store);
  } finally {
    await store.close();
    await db.drop();
  }
});
