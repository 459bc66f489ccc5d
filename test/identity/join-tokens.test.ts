import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { TesseraError } from '../../src/shared/errors.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { createJoinTokenService } from '../../src/identity/join-tokens.js';
import { createAttestation } from '../../src/identity/attestation.js';
import { TOKEN_TYPE_JOIN } from '../../src/identity/types.js';

const meta = { requestId: 'req-1', source: '127.0.0.1', replica: 'r1' };
const isCode = (code: string) => (e: unknown) => e instanceof TesseraError && e.code === code;

async function setup() {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const clock = new ManualClock();
  const audit = new MemoryAuditWriter();
  const joinTokens = createJoinTokenService({ store, clock, audit, maxTtlMs: 3_600_000, trustDomain: 'example.org' });
  return { store, clock, audit, joinTokens };
}

test('create returns the token once, stores only its SHA-256 and audits the creation', async () => {
  const { store, audit, joinTokens, clock } = await setup();
  const created = await joinTokens.create({ spiffeId: 'spiffe://example.org/dev/alice', ttlMs: 600_000, labels: { team: 'x' }, actor: { id: 'admin:adm_1' } });
  assert.match(created.token, /^tsr_join_[A-Za-z0-9_-]{43}$/);
  assert.equal(created.spiffeId, 'spiffe://example.org/dev/alice');
  assert.equal(created.expiresAt, clock.now() + 600_000);
  const rows = await store.all('SELECT * FROM join_tokens');
  assert.equal(rows.length, 1);
  const dump = JSON.stringify(rows, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64url') : v));
  assert.ok(!dump.includes(created.token.slice('tsr_join_'.length)), 'the token value is never stored');
  assert.equal(audit.events.length, 1);
  const ev = audit.events[0]!;
  assert.equal(ev.kind, 'join_token.created');
  assert.equal(ev.actor.id, 'admin:adm_1');
  assert.ok(!JSON.stringify(ev).includes(created.token));
  assert.ok(!JSON.stringify(ev).includes(created.id), 'the id is HMACed in audit');
  const list = await joinTokens.list();
  assert.equal(list.length, 1);
  assert.equal(list[0]!.state, 'active');
  assert.ok(!JSON.stringify(list).includes(created.token));
});

test('consume succeeds once; a replay is refused with TESSERA_JOIN_TOKEN_REUSED and audited', async () => {
  const { audit, joinTokens } = await setup();
  const { token, id } = await joinTokens.create({ spiffeId: 'spiffe://example.org/dev/bob', labels: { env: 'dev' } });
  const consumed = await joinTokens.consume(token, meta);
  assert.equal(consumed.spiffeId, 'spiffe://example.org/dev/bob');
  assert.deepEqual(consumed.labels, { env: 'dev' });
  await assert.rejects(joinTokens.consume(token, meta), isCode('TESSERA_JOIN_TOKEN_REUSED'));
  const reuse = audit.events.find((e) => e.kind === 'auth.join_token_reuse');
  assert.ok(reuse);
  assert.equal(reuse.result, 'failure');
  assert.equal(reuse.where?.requestId, 'req-1');
  assert.equal((reuse.details as { join_token_hmac: string }).join_token_hmac, audit.hmac(id));
  assert.ok(!JSON.stringify(reuse).includes(token) && !JSON.stringify(reuse).includes(id));
  assert.equal((await joinTokens.list())[0]!.state, 'used');
});

test('concurrent consumption: exactly one wins', async () => {
  const { joinTokens } = await setup();
  const { token } = await joinTokens.create({ spiffeId: 'spiffe://example.org/dev/race' });
  const results = await Promise.allSettled([joinTokens.consume(token), joinTokens.consume(token), joinTokens.consume(token)]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) if (r.status === 'rejected') assert.ok(isCode('TESSERA_JOIN_TOKEN_REUSED')(r.reason));
});

test('unknown, malformed and expired tokens are TESSERA_JOIN_TOKEN_INVALID', async () => {
  const { joinTokens, clock } = await setup();
  await assert.rejects(joinTokens.consume('tsr_join_' + 'A'.repeat(43)), isCode('TESSERA_JOIN_TOKEN_INVALID'));
  await assert.rejects(joinTokens.consume('not-a-join-token'), isCode('TESSERA_JOIN_TOKEN_INVALID'));
  await assert.rejects(joinTokens.consume(''), isCode('TESSERA_JOIN_TOKEN_INVALID'));
  const { token } = await joinTokens.create({ spiffeId: 'spiffe://example.org/dev/late', ttlMs: 60_000 });
  clock.advance(60_000);
  await assert.rejects(joinTokens.consume(token), isCode('TESSERA_JOIN_TOKEN_INVALID'));
  assert.equal((await joinTokens.list())[0]!.state, 'expired');
});

test('TTL above 1 hour, below 1 second, or above the configured max is refused', async () => {
  const { joinTokens, store, clock, audit } = await setup();
  await assert.rejects(joinTokens.create({ spiffeId: 'spiffe://example.org/a', ttlMs: 3_600_001 }), isCode('TESSERA_JOIN_TOKEN_TTL_INVALID'));
  await assert.rejects(joinTokens.create({ spiffeId: 'spiffe://example.org/a', ttlMs: 999 }), isCode('TESSERA_JOIN_TOKEN_TTL_INVALID'));
  await assert.rejects(joinTokens.create({ spiffeId: 'spiffe://example.org/a', ttlMs: Number.NaN }), isCode('TESSERA_JOIN_TOKEN_TTL_INVALID'));
  const ok = await joinTokens.create({ spiffeId: 'spiffe://example.org/a', ttlMs: 3_600_000 });
  assert.equal(ok.expiresAt, clock.now() + 3_600_000);
  // A configured max above 1h is clamped to 1h; a smaller max is honoured.
  const loose = createJoinTokenService({ store, clock, audit, maxTtlMs: 86_400_000, trustDomain: 'example.org' });
  await assert.rejects(loose.create({ spiffeId: 'spiffe://example.org/a', ttlMs: 7_200_000 }), isCode('TESSERA_JOIN_TOKEN_TTL_INVALID'));
  const tight = createJoinTokenService({ store, clock, audit, maxTtlMs: 300_000, trustDomain: 'example.org' });
  await assert.rejects(tight.create({ spiffeId: 'spiffe://example.org/a', ttlMs: 600_000 }), isCode('TESSERA_JOIN_TOKEN_TTL_INVALID'));
  assert.equal((await tight.create({ spiffeId: 'spiffe://example.org/a' })).expiresAt, clock.now() + 300_000);
});

test('bad SPIFFE IDs, foreign trust domains and bad labels are refused', async () => {
  const { joinTokens } = await setup();
  await assert.rejects(joinTokens.create({ spiffeId: 'spiffe://example.org/../x' }), isCode('TESSERA_SPIFFE_ID_INVALID'));
  // Only this server's own trust domain: not another, not a look-alike (prefix, suffix, case).
  for (const foreign of ['spiffe://other.org/x', 'spiffe://example.org.evil.test/x', 'spiffe://evil-example.org/x', 'spiffe://xexample.org/x', 'spiffe://example.or/x']) {
    await assert.rejects(joinTokens.create({ spiffeId: foreign }), isCode('TESSERA_TRUST_DOMAIN_UNKNOWN'), foreign);
  }
  for (const bad of ['spiffe://Example.org/x', 'spiffe://example.org/a%2Fb', 'spiffe://example.org/ns/\u0430/sa/x', 'spiffe://example.org/a/./b', 'spiffe://example.org/a/', 'spiffe://example.org:443/x', 'spiffe://u@example.org/x']) {
    await assert.rejects(joinTokens.create({ spiffeId: bad }), isCode('TESSERA_SPIFFE_ID_INVALID'), bad);
  }
  await assert.rejects(joinTokens.create({ spiffeId: 'spiffe://example.org/x', labels: { 'bad key': 'v' } }), isCode('TESSERA_REQUEST_INVALID'));
  await assert.rejects(joinTokens.create({ spiffeId: 'spiffe://example.org/x', labels: { k: 'v'.repeat(257) } }), isCode('TESSERA_REQUEST_INVALID'));
});

test('join-token attestation yields the bound identity with labels and records the agent', async () => {
  const { store, clock, audit, joinTokens } = await setup();
  const attestation = createAttestation({ attestors: [{ kind: 'join_token', name: 'dev-join', max_ttl: 3_600_000 }], trustDomain: 'example.org', joinTokens, clock, audit, store });
  const { token } = await joinTokens.create({ spiffeId: 'spiffe://example.org/dev/carol', labels: { team: 'red' } });
  const id = await attestation.attest(token, TOKEN_TYPE_JOIN, meta);
  assert.deepEqual(id, { spiffeId: 'spiffe://example.org/dev/carol', attestor: 'dev-join', attestorKind: 'join_token', attributes: { 'label.team': 'red' } });
  const agent = await store.get<{ logins: number; attestor: string; attributes: string }>('SELECT * FROM agents WHERE spiffe_id = ?', [id.spiffeId]);
  assert.equal(Number(agent?.logins), 1);
  assert.equal(agent?.attestor, 'dev-join');
  await assert.rejects(attestation.attest(token, TOKEN_TYPE_JOIN, meta), isCode('TESSERA_JOIN_TOKEN_REUSED'));
  // Without a join_token attestor configured, join tokens are refused.
  const none = createAttestation({ attestors: [], trustDomain: 'example.org', joinTokens, clock, audit, store });
  const second = await joinTokens.create({ spiffeId: 'spiffe://example.org/dev/carol' });
  await assert.rejects(none.attest(second.token, TOKEN_TYPE_JOIN, meta), isCode('TESSERA_ATTEST_NO_ATTESTOR'));
  await assert.rejects(none.attest(second.token, 'urn:x:unknown', meta), isCode('TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE'));
});

test('a join token is created, and burnt, only with its audit event (ADR 0041)', async () => {
  const { store, audit, joinTokens } = await setup();
  audit.failing = true;
  await assert.rejects(joinTokens.create({ spiffeId: 'spiffe://example.org/dev/outage' }), isCode('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal((await store.all('SELECT id FROM join_tokens')).length, 0, 'no token exists that was not recorded');

  audit.failing = false;
  const { token, id } = await joinTokens.create({ spiffeId: 'spiffe://example.org/dev/outage' });
  audit.failing = true;
  await assert.rejects(joinTokens.consume(token, meta), isCode('TESSERA_AUDIT_UNAVAILABLE'));
  assert.equal((await joinTokens.list())[0]!.state, 'active', 'not burnt without its event: it still works once the audit is back');

  audit.failing = false;
  const consumed = await joinTokens.consume(token, meta);
  assert.equal(consumed.spiffeId, 'spiffe://example.org/dev/outage');
  const used = audit.events.filter((e) => e.kind === 'join_token.used');
  assert.equal(used.length, 1);
  assert.equal((used[0]!.details as { join_token_hmac: string }).join_token_hmac, audit.hmac(id));
  assert.equal(used[0]!.where?.requestId, 'req-1');
  assert.ok(!JSON.stringify(used[0]).includes(token));
});

test('credential-shaped SPIFFE IDs and labels are refused with TESSERA_REQUEST_CREDENTIAL_LIKE; nothing is stored or audited', async () => {
  const { store, audit, joinTokens } = await setup();
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4In0.c2lnbmF0dXJl';
  const tsr = `tsr_admin_${'A'.repeat(30)}`;
  const inputs = [
    { spiffeId: `spiffe://example.org/ns/${tsr}` },
    { spiffeId: `spiffe://example.org/ns/${jwt}` },
    { spiffeId: 'spiffe://example.org/dev/x', labels: { team: jwt } },
    { spiffeId: 'spiffe://example.org/dev/x', labels: { [tsr]: 'x' } },
  ];
  for (const input of inputs) await assert.rejects(joinTokens.create(input), isCode('TESSERA_REQUEST_CREDENTIAL_LIKE'), JSON.stringify(input));
  assert.equal((await store.all('SELECT id FROM join_tokens')).length, 0);
  assert.equal(audit.events.length, 0);
});
