/**
 * The exposure report computed in the store (ADR 0250) equals the JavaScript computation it
 * replaced (report.ts groupWindows / liveCredentials over windowsSince / liveWindows, kept here
 * as the reference), for every grouping and kind filter, on SQLite and PostgreSQL. The seeded
 * windows have ties in length and in remaining seconds, open and closed windows of every kind,
 * windows closed before they were issued, leases past their expiry not yet dropped, leases never
 * handed out, several agents, tasks and users, and ids whose byte order differs from a
 * locale's order (mixed case, `-`, `_`).
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
import { insertTask } from '../../src/tasks/store.js';
import { groupWindows, liveCredentials } from '../../src/exposure/report.js';
import { groupStats, liveWindows, liveWindowsTop, windowsSince, windowsTruncated } from '../../src/exposure/store.js';
import { toGroups } from '../../src/exposure/service.js';
import { EXPOSURE_GROUPINGS, EXPOSURE_KINDS, type ExposureKind } from '../../src/exposure/kinds.js';

const NOW = 1_800_000_000_000;
const H = 3_600_000;
const AGENTS = ['spiffe://t/a', 'spiffe://t/B', 'spiffe://t/c-1', 'spiffe://t/c_1'];
const USERS = [null, 'alice', 'Bob'];
const TOKEN_KINDS = ['agent_token', 'task_token', 'secret_use'] as const;
const ID_CHARS = ['a', 'B', '-', '_', 'Z', '0'];

async function seed(store: Store): Promise<void> {
  await store.transaction(async (tx) => {
    for (let t = 0; t < 6; t++) {
      const txn = `task_${t}`;
      const root = `task_${t - (t % 3)}`;
      await insertTask(tx, {
        txn, parent: t % 3 === 0 ? null : root, root, depth: t % 3 === 0 ? 0 : 1, maxDepth: 5, sub: AGENTS[0]!, actor: AGENTS[0]!, actors: [{ sub: AGENTS[0]! }],
        label: null, user: null, scope: ['secret:team/**'], purpose: 'test', tctx: {}, audience: ['http://127.0.0.1'], jkt: null, jtiHmac: `jti-task-${t}`, createdAt: NOW - H, expiresAt: NOW + H,
      }, t % 3 === 0 ? [] : [root]);
    }
    const exposures: SqlValue[][] = [];
    for (let i = 0; i < 240; i++) {
      const kind = TOKEN_KINDS[i % 3]!;
      // Lengths repeat (ties); some windows open, some closed early, some expired, one closed before it was issued.
      const issued = NOW - (i % 40) * 60_000 - (i % 7 === 0 ? 0 : 500);
      const expires = kind === 'secret_use' ? issued + (i % 5) * 1000 : issued + ((i % 4) + 1) * 30 * 60_000 - (i % 11 === 0 ? 1 : 0);
      const closed = kind === 'secret_use' ? expires : i % 5 === 0 ? issued + 120_000 : i % 13 === 0 ? issued - 10 : null;
      const id = `${ID_CHARS[i % 6]}${ID_CHARS[(i >> 2) % 6]}-${i}`;
      const root = i % 4 === 0 ? null : `task_${(i % 2) * 3}`;
      exposures.push([id, kind, AGENTS[i % 4]!, root, root, USERS[i % 3]!, null, issued, expires, closed, closed === null ? null : 'test']);
    }
    await tx.run(`INSERT INTO exposures (id, kind, agent, task, root, user_id, resource, issued_at, expires_at, closed_at, closed_by) VALUES ${exposures.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`, exposures.flat());
    const leases: SqlValue[][] = [];
    const states = ['active', 'active', 'revoked', 'revoking', 'pending', 'irrevocable', 'revoked', 'disabled'];
    for (let i = 0; i < 160; i++) {
      const state = states[i % 8]!;
      const created = NOW - (i % 30) * 60_000 - (i % 9 === 0 ? 250 : 0);
      // Some past their expiry but not dropped (remaining 0: ties broken by id).
      const expires = i % 6 === 0 ? NOW - 5000 : created + ((i % 3) + 1) * H;
      const revoked = state === 'revoked' ? created + (i % 4) * 60_000 : null;
      const cause = state === 'revoked' && i % 16 === 2 ? 'create_failed' : state === 'revoked' && i % 16 === 6 ? 'abandoned_intent' : null;
      leases.push([`${ID_CHARS[(i + 3) % 6]}lease_${ID_CHARS[i % 6]}${i}`, 'mem', 'reader', `mem/reader/${i}`, AGENTS[(i + 1) % 4]!, i % 3 === 0 ? null : `task_${i % 6}`, USERS[(i + 1) % 3]!, state, '{}', created, expires, expires + H, revoked, cause]);
    }
    await tx.run(`INSERT INTO leases (id, engine, role, path, owner_agent, task_id, user_id, state, engine_data, created_at, expires_at, max_expires_at, revoked_at, revoke_cause) VALUES ${leases.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`, leases.flat());
  });
}

async function assertSame(store: Store): Promise<void> {
  const kinds: (ExposureKind | undefined)[] = [undefined, ...EXPOSURE_KINDS];
  let compared = 0;
  for (const now of [NOW, NOW + 45 * 60_000, NOW + 5 * H]) {
    for (const since of [NOW - 24 * H, NOW - 20 * 60_000, NOW + 10 * H]) {
      for (const kind of kinds) {
        for (const by of EXPOSURE_GROUPINGS) {
          const windows = await windowsSince(store, since, kind, 1000);
          const expected = groupWindows(windows, by, now);
          const actual = toGroups(await groupStats(store, since, by, kind, now, 1000));
          assert.deepEqual(actual, expected, `groups by ${by}, kind ${kind ?? 'all'}, since ${since - NOW}, now ${now - NOW}`);
          assert.deepEqual(toGroups(await groupStats(store, since, by, kind, now, null)), expected, `groups by ${by} (no limit)`);
          if (expected.length > 1) compared++;
        }
        // A small limit: the truncated flag and the groups of the newest windows only.
        const few = await windowsSince(store, since, kind, 31);
        assert.deepEqual(toGroups(await groupStats(store, since, 'agent', kind, now, 31)), groupWindows(few, 'agent', now));
        const truncatedOld = few.filter((w) => w.kind === 'lease').length > 30 || few.filter((w) => w.kind !== 'lease').length > 30;
        assert.equal(await windowsTruncated(store, since, kind, 30), truncatedOld, `truncated, kind ${kind ?? 'all'}`);
      }
      // More leases than the limit since `since`, but not more handed out (pending and never-handed-out ones): not truncated.
      const handedOut = (await windowsSince(store, since, 'lease', 1000)).length;
      const created = Number((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM leases WHERE created_at >= ?', [since]))?.n);
      if (handedOut > 0) {
        assert.ok(created > handedOut, 'leases not handed out are seeded');
        assert.equal(await windowsTruncated(store, since, 'lease', handedOut), false, `not truncated at ${handedOut} of ${created}`);
        assert.equal(await windowsTruncated(store, since, 'lease', handedOut - 1), true);
      }
    }
    for (const kind of kinds) {
      const all = liveCredentials(await liveWindows(store, now, kind, 1000), now);
      for (const limit of [1, 7, 40, 1000]) {
        const top = await liveWindowsTop(store, now, kind, limit, 1000);
        assert.equal(top.total, all.length, `live_total, kind ${kind ?? 'all'}`);
        assert.deepEqual(liveCredentials(top.windows, now).slice(0, limit), all.slice(0, limit), `live list, kind ${kind ?? 'all'}, limit ${limit}, now ${now - NOW}`);
      }
      const capped = liveCredentials(await liveWindows(store, now, kind, 9), now);
      assert.equal((await liveWindowsTop(store, now, kind, 5, 9)).total, capped.length);
    }
  }
  assert.ok(compared > 50, `compared ${compared} multi-group reports`);
}

test('exposure report in SQL equals the JavaScript reference — SQLite', async () => {
  const store = openSqliteStore({ file: join(mkdtempSync(join(tmpdir(), 'tessera-exposure-sql-')), 'db.sqlite') });
  try {
    await store.migrate();
    await seed(store);
    await assertSame(store);
  } finally {
    await store.close();
  }
});

test('exposure report in SQL equals the JavaScript reference — PostgreSQL', async () => {
  const db = await createTestDatabase('exposure_sql');
  const store = openPostgresStore({ url: db.url });
  try {
    await store.migrate();
    await seed(store);
    await assertSame(store);
  } finally {
    await store.close();
    await db.drop();
  }
});
