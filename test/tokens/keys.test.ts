import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/shared/clock.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { createKeySealer } from '../../src/secrets/sealer.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { createKeyManager, type KeyManager } from '../../src/tokens/keys.js';
import { createTokenService, type TokenService } from '../../src/tokens/service.js';
import { SetRevocations, AGENT, MINUTE, TRUST_DOMAIN } from './helpers.js';
import { createTrustDomains } from '../../src/identity/trust-domains.js';

const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const ISSUER = 'https://tessera.example';
const identity = { spiffeId: AGENT, attestor: 'join_token', attestorKind: 'join_token' as const, attributes: { namespace: 'prod' } };

async function setup(opts: { store?: Store; clock?: ManualClock; masterKey?: Buffer } = {}) {
  const store = opts.store ?? openSqliteStore({ file: ':memory:' });
  if (!opts.store) await store.migrate();
  const clock = opts.clock ?? new ManualClock(Date.UTC(2026, 0, 1));
  const audit = new MemoryAuditWriter();
  const masterKey = opts.masterKey ?? randomBytes(32);
  const keys = createKeyManager({ store, sealer: createKeySealer(masterKey, 'mk1'), clock, audit, rotationPeriodMs: DAY, overlapMs: HOUR, maxTokenTtlMs: 5 * MINUTE });
  const tokens = createTokenService({ keys, clock, issuer: ISSUER, agentTtlMs: 5 * MINUTE, skewMs: 30_000, revocations: new SetRevocations(), trustDomains: createTrustDomains(TRUST_DOMAIN) });
  return { store, clock, audit, keys, tokens, masterKey };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (isTesseraError(e)) return e.code;
    throw e;
  }
}

const verify = (tokens: TokenService, token: string) => code(tokens.verify(token, { audience: ISSUER }));
const kids = (keys: KeyManager) => keys.jwks().keys.map((k) => k.kid).sort();

test('ensureKeys creates one sealed ES256 key and is idempotent', async () => {
  const { store, keys, audit } = await setup();
  await keys.ensureKeys();
  await keys.ensureKeys();
  const rows = await store.all<Record<string, unknown>>('SELECT * FROM signing_keys');
  assert.equal(rows.length, 1);
  assert.equal(keys.jwks().keys.length, 1);
  assert.equal(audit.events.filter((e) => e.kind === 'key.rotated').length, 1);

  // The private scalar `d` appears nowhere in the row, in any encoding.
  const d = (keys.signingKey().privateKey.export({ format: 'jwk' }) as { d: string }).d;
  const dRaw = Buffer.from(d, 'base64url');
  for (const [col, value] of Object.entries(rows[0]!)) {
    const buf = Buffer.isBuffer(value) || value instanceof Uint8Array ? Buffer.from(value) : Buffer.from(String(value));
    assert.equal(buf.includes(Buffer.from(d)), false, `column ${col} holds d in base64url`);
    assert.equal(buf.includes(dRaw), false, `column ${col} holds raw d`);
    assert.equal(buf.includes(Buffer.from(dRaw.toString('base64'))), false, `column ${col} holds d in base64`);
    assert.equal(buf.includes(Buffer.from(dRaw.toString('hex'))), false, `column ${col} holds d in hex`);
  }
  assert.equal(rows[0]!.alg, 'ES256');
  assert.equal(rows[0]!.use_, 'jwt-svid');
});

test('a key sealed under another master key fails at start, not at the first login', async () => {
  const { store, keys } = await setup();
  await keys.ensureKeys();
  const other = await setup({ store, masterKey: randomBytes(32) });
  await assert.rejects(other.keys.ensureKeys());
});

test('scheduled rotation: next key published before it signs, old tokens verify during overlap, not after', async () => {
  const { clock, keys, tokens, audit } = await setup();
  await keys.ensureKeys();
  const first = keys.signingKey().kid;
  const seq0 = keys.bundle().spiffe_sequence;
  const oldToken = tokens.issueAgentToken(identity, { audience: [ISSUER] }).token;

  assert.equal(await keys.rotateIfDue(), false, 'nothing due right after start');
  assert.equal(keys.bundle().spiffe_sequence, seq0);

  // Near the end of the period the next key is published but does not sign yet.
  clock.advance(DAY - 30 * MINUTE);
  assert.equal(await keys.rotateIfDue(), true);
  assert.equal(keys.jwks().keys.length, 2);
  assert.equal(keys.signingKey().kid, first, 'the pre-published key does not sign yet');
  const seq1 = keys.bundle().spiffe_sequence;
  assert.ok(seq1 > seq0, 'spiffe_sequence increases when the next key is published');
  const next = kids(keys).find((k) => k !== first)!;
  assert.ok(keys.verificationKey(next));
  assert.equal(await keys.rotateIfDue(), false, 'already pre-published');

  // Period over: the next key signs; a token signed by the old one just before still verifies.
  clock.advance(30 * MINUTE - 1000);
  const lastOld = tokens.issueAgentToken(identity, { audience: [ISSUER] }).token;
  clock.advance(1000);
  await keys.rotateIfDue();
  assert.equal(keys.signingKey().kid, next);
  const newToken = tokens.issueAgentToken(identity, { audience: [ISSUER] }).token;
  assert.equal(await verify(tokens, lastOld), 'ok');
  assert.equal(await verify(tokens, newToken), 'ok');
  assert.deepEqual(kids(keys), [first, next].sort(), 'the retired key stays in the JWKS');
  assert.equal(await verify(tokens, oldToken), 'TESSERA_TOKEN_EXPIRED', 'old tokens still fail on their own exp');

  // After the overlap (≥ 1 h ≥ max TTL) the retired key is pruned and its tokens are unknown.
  clock.advance(HOUR + 1000);
  await keys.rotateIfDue();
  assert.deepEqual(kids(keys), [next]);
  assert.ok(keys.bundle().spiffe_sequence > seq1, 'spiffe_sequence increases when a key is removed');
  assert.equal(keys.verificationKey(first), undefined);
  assert.equal(await verify(tokens, lastOld), 'TESSERA_TOKEN_KID_UNKNOWN');
  assert.ok(audit.events.filter((e) => e.kind === 'key.rotated').length >= 2);
});

test('rotateNow: the old key verifies its tokens until they expire, then leaves the JWKS', async () => {
  const { clock, keys, tokens } = await setup();
  await keys.ensureKeys();
  const first = keys.signingKey().kid;
  const seq = keys.bundle().spiffe_sequence;
  const tok = tokens.issueAgentToken(identity, { audience: [ISSUER] }).token;
  const { kid } = await keys.rotateNow();
  assert.notEqual(kid, first);
  assert.equal(keys.signingKey().kid, kid);
  assert.ok(keys.bundle().spiffe_sequence > seq);
  assert.equal(await verify(tokens, tok), 'ok', 'old token verifies during the overlap');
  clock.advance(4 * MINUTE);
  await keys.rotateIfDue();
  assert.equal(await verify(tokens, tok), 'ok');
  assert.ok(kids(keys).includes(first));
  clock.advance(HOUR);
  await keys.rotateIfDue();
  assert.deepEqual(kids(keys), [kid]);
  assert.equal(await verify(tokens, tok), 'TESSERA_TOKEN_KID_UNKNOWN');
});

test('the bundle carries jwt-svid keys, the sequence and a refresh hint', async () => {
  const { keys } = await setup();
  await keys.ensureKeys();
  const b = keys.bundle();
  assert.equal(b.keys.length, 1);
  assert.equal(b.keys[0]!.use, 'jwt-svid');
  assert.equal(b.keys[0]!.kty, 'EC');
  assert.equal(b.spiffe_sequence, 1);
  assert.ok(b.spiffe_refresh_hint >= 60 && b.spiffe_refresh_hint <= 3600);
  assert.equal((b.keys[0] as unknown as Record<string, unknown>).d, undefined);
});

test('another replica sharing the store learns a rotated key on the first unknown kid', async () => {
  const a = await setup();
  await a.keys.ensureKeys();
  const b = await setup({ store: a.store, clock: a.clock, masterKey: a.masterKey });
  await b.keys.ensureKeys();
  assert.equal(b.keys.signingKey().kid, a.keys.signingKey().kid);
  a.clock.advance(2000);
  await a.keys.rotateNow();
  const tok = a.tokens.issueAgentToken(identity, { audience: [ISSUER] }).token;
  assert.equal(await verify(b.tokens, tok), 'ok');
  // Garbage kids cannot trigger a store reload more than once a second.
  assert.equal(await b.keys.reloadForUnknownKid('garbage'), undefined);
});

test('the verified-token cache is bounded and never replaces a check', async () => {
  const { clock, keys } = await setup();
  await keys.ensureKeys();
  const revocations = new SetRevocations();
  const tokens = createTokenService({ keys, clock, issuer: ISSUER, agentTtlMs: 5 * MINUTE, skewMs: 30_000, revocations, trustDomains: createTrustDomains(TRUST_DOMAIN), verifiedCacheSize: 2 });
  const issued = [0, 1, 2].map(() => tokens.issueAgentToken(identity, { audience: [ISSUER] }));
  for (const t of issued) assert.equal(await verify(tokens, t.token), 'ok');
  // Evicted entries verify again through the full path.
  for (const t of issued) assert.equal(await verify(tokens, t.token), 'ok');
  const t0 = issued[0]!;
  // A cached token: other audience, revocation and a tampered copy are still refused.
  assert.equal(await code(tokens.verify(t0.token, { audience: 'https://other.example' })), 'TESSERA_TOKEN_AUDIENCE_INVALID');
  const [h, p, sig] = t0.token.split('.') as [string, string, string];
  const flipped = Buffer.from(sig, 'base64url');
  flipped[5] = flipped[5]! ^ 1;
  assert.equal(await verify(tokens, `${h}.${p}.${flipped.toString('base64url')}`), 'TESSERA_TOKEN_SIGNATURE_INVALID');
  revocations.jtis.add(t0.jti);
  assert.equal(await verify(tokens, t0.token), 'TESSERA_TOKEN_REVOKED');
  revocations.jtis.delete(t0.jti);
  // Expiry is re-checked on a cache hit.
  clock.advance(5 * MINUTE + 31_000);
  assert.equal(await verify(tokens, t0.token), 'TESSERA_TOKEN_EXPIRED');
  assert.equal(await verify(tokens, t0.token), 'TESSERA_TOKEN_EXPIRED');
});

test('a signing key is created, or revoked, only with its key.rotated event (ADR 0041)', async () => {
  const { store, keys, audit } = await setup();
  await keys.ensureKeys();
  const before = kids(keys);
  const rows = async () => (await store.all<{ kid: string; expires_at: number }>('SELECT kid, expires_at FROM signing_keys ORDER BY kid')).map((r) => `${r.kid}:${r.expires_at}`);
  const stored = await rows();
  audit.failing = true;
  assert.equal(await code(keys.rotateNow({ actor: 'admin:a1' })), 'TESSERA_AUDIT_UNAVAILABLE');
  assert.equal(await code(keys.rotateNow({ revokePrevious: true, actor: 'admin:a1' })), 'TESSERA_AUDIT_UNAVAILABLE');
  assert.deepEqual(await rows(), stored, 'no key created or revoked without its event');
  assert.deepEqual(kids(keys), before);

  audit.failing = false;
  const r = await keys.rotateNow({ revokePrevious: true, actor: 'admin:a1' });
  assert.deepEqual(r.revoked, before);
  const evs = audit.events.filter((e) => e.kind === 'key.rotated' && e.actor.id === 'admin:a1');
  assert.deepEqual(evs.map((e) => e.action).sort(), ['key.create', 'key.revoke']);
  assert.deepEqual(kids(keys), [r.kid]);
});
