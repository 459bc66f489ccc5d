/**
 * A cached verification remembers "not revoked" only for the revocation generation it was
 * checked at (RevocationChecker.generation): any revocation added since — locally, or learnt
 * from the store as another replica's — makes the next use of the same token ask again, for
 * every subject a task token names (the token, its agent, its task, an ancestor, a delegator).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT, ISSUER, TRUST_DOMAINS, code, tokenFixture } from './fixtures.js';
import { createLeaseService } from '../../src/leases/index.js';
import { createRevocationService } from '../../src/revocations/index.js';
import { nestActors } from '../../src/tasks/index.js';

const AUD = { audience: ISSUER };
const SUB_AGENT = 'spiffe://tessera.test/ns/prod/sa/sub-agent';
const TXNS = Array.from({ length: 4 }, (_, i) => `task_${String(100 + i).padStart(22, '0')}`);

async function setup() {
  const f = await tokenFixture();
  // Another replica on the same store: what it revokes, this one learns at refresh().
  const leases = createLeaseService({ store: f.store, clock: f.clock, audit: f.audit, engines: [] });
  const replica = createRevocationService({ store: f.store, clock: f.clock, audit: f.audit, leases, trustDomains: TRUST_DOMAINS });
  await replica.refresh();
  const nowS = Math.floor(f.clock.now() / 1000);
  const task = () => f.tokens.issueTaskToken({
    sub: AGENT, aud: ISSUER, exp: nowS + 600, act: nestActors([{ sub: AGENT }, { sub: SUB_AGENT }, { sub: SUB_AGENT, label: 'worker' }, { sub: 'spiffe://tessera.test/ns/prod/sa/leaf' }]),
    txn: TXNS[3]!, ptxn: TXNS[2]!, rtxn: TXNS[0]!, anc: TXNS.slice(0, 3), scope: 'secret:a/**', purpose: 'memo test', depth: 3, max_depth: 5,
  }).token;
  return { ...f, replica, task };
}

test('a cached task token is refused at once after any of its subjects is revoked, locally or on another replica; a lift restores it', async () => {
  const targets = [
    { kind: 'task', target: TXNS[1]! }, // an ancestor
    { kind: 'task', target: TXNS[3]! }, // the task itself
    { kind: 'agent', target: AGENT }, // the delegator at the top of the chain
  ] as const;
  for (const where of ['local', 'replica'] as const) {
    for (const t of targets) {
      const { tokens, revocations, replica, task } = await setup();
      const token = task();
      // Verified twice: the second answer comes from the cache and its "not revoked" memo.
      assert.ok(await tokens.verify(token, AUD));
      assert.ok(await tokens.verify(token, AUD));
      const before = revocations.generation!();
      const rev = where === 'local' ? await revocations.revoke({ kind: t.kind, target: t.target }) : await replica.revoke({ kind: t.kind, target: t.target });
      if (where === 'replica') {
        // Not yet learnt: this replica still answers from its own set (bounded by the refresh interval).
        await revocations.refresh();
      }
      assert.notEqual(revocations.generation!(), before, `${where} ${t.kind}: the generation moved`);
      await assert.rejects(tokens.verify(token, AUD), code('TESSERA_TOKEN_REVOKED'), `${where} ${t.kind} ${t.target}`);
      await (where === 'local' ? revocations : replica).lift(rev.id);
      if (where === 'replica') await revocations.refresh();
      assert.ok(await tokens.verify(token, AUD), `${where} ${t.kind}: lifted`);
    }
  }
});

test('an unrelated revocation does not refuse the cached token, and a lift or expiry leaves the generation as it was', async () => {
  const { tokens, revocations, task, clock } = await setup();
  const token = task();
  assert.ok(await tokens.verify(token, AUD));
  const rev = await revocations.revoke({ kind: 'agent', target: 'spiffe://tessera.test/ns/prod/sa/someone-else', ttlMs: 60_000 });
  assert.ok(await tokens.verify(token, AUD));
  const g = revocations.generation!();
  await revocations.lift(rev.id);
  assert.equal(revocations.generation!(), g, 'a lift only removes: a memo of "not revoked" stays true');
  await revocations.revoke({ kind: 'task', target: 'task_unrelated0000000000000', ttlMs: 1000 });
  clock.advance(2000);
  assert.ok(await tokens.verify(token, AUD));
});
