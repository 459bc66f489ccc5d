/**
 * Attack on time-ordered task ids (ADR 0302): an id now tells when its task was made, so an
 * agent that knows its own task's id can guess the prefix of another agent's task opened the
 * same millisecond. A task id must grant nothing: the admin task reads need an operator token,
 * RFC 7662/7009 take tokens (a task id is no token), and a task id is no subject token.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { INTRUDER, ORCH, exchange, openTask, policyDir } from '../tasks/helpers.js';
import { newTxn } from '../../src/tasks/txn.js';
import { TXN_PATTERN } from '../../src/tasks/claims.js';

let h: Harness;
let orch: string;
let intruder: string;

before(async () => {
  h = await startHarness({ policyDir: policyDir() });
  orch = await h.login(await h.joinToken(ORCH));
  intruder = await h.login(await h.joinToken(INTRUDER));
});
after(async () => {
  await h?.close();
});

const post = async (path: string, bearer: string, form: Record<string, string>): Promise<{ status: number; body: any }> => {
  const res = await fetch(`${h.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
  return { status: res.status, body: await res.json().catch(() => undefined) };
};

test('ids of one millisecond share the time prefix and differ in 84 random bits (14 characters)', () => {
  const ids = Array.from({ length: 2000 }, () => newTxn(1_767_225_600_000));
  assert.ok(ids.every((i) => TXN_PATTERN.test(i)));
  assert.equal(new Set(ids.map((i) => i.slice(0, 13))).size, 1);
  assert.equal(new Set(ids.map((i) => i.slice(13))).size, ids.length);
  // every random character position takes many values (no fixed or biased position)
  for (let p = 13; p < 27; p++) assert.ok(new Set(ids.map((i) => i[p])).size > 50, `position ${p}`);
});

test('a near-in-time task id gains an intruder nothing: no admin read, no introspection, no revocation, no exchange', async () => {
  const victim = await openTask(h, orch);
  const mine = await exchange(h, { subject_token: intruder, scope: 'secret:team/**', purpose: 'intruder task' });
  if (mine.status === 200) assert.equal(mine.body.txn.slice(0, 9), victim.txn.slice(0, 9), 'the ids are near in time');
  for (const bearer of [intruder, mine.body?.access_token].filter(Boolean) as string[]) {
    for (const path of [`/v1/admin/tasks/${victim.txn}`, `/v1/admin/tasks?root=${victim.txn}`, `/v1/admin/audit?txn=${victim.txn}`]) {
      const r = await fetch(`${h.url}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
      assert.ok(r.status === 401 || r.status === 403, `${path}: ${r.status}`);
    }
    const intro = await post('/v1/oauth/introspect', bearer, { token: victim.txn });
    assert.ok(intro.status >= 400 || intro.body?.active === false, JSON.stringify(intro));
    await post('/v1/oauth/revoke', bearer, { token: victim.txn });
    const ex = await exchange(h, { subject_token: victim.txn, scope: 'secret:team/**' });
    assert.ok(ex.status >= 400, JSON.stringify(ex.body));
  }
  // the victim's task is untouched
  const who = await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `Bearer ${victim.token}` } });
  assert.equal(who.status, 200);
  const admin = await fetch(`${h.url}/v1/admin/tasks/${victim.txn}`, { headers: { authorization: `Bearer ${h.adminToken}` } });
  assert.equal(admin.status, 200);
  assert.notEqual(((await admin.json()) as any).status, 'revoked');
});
