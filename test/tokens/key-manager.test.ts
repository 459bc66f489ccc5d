/**
 * Key manager: sealed ES256 keys, pre-publication, switch at period end, overlap and retention,
 * rotateNow, SPIFFE bundle sequence (SPIFFE Trust Domain and Bundle §4), wrong master key.
 * Real in-memory SQLite, real AES-GCM master-key sealer, ManualClock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { masterSealer } from '../../src/secrets/index.js';
import { AGENT, HOUR, MIN, PERIOD, code, keyFixture, tokenFixture } from './fixtures.js';

const kids = (k: { jwks(): { keys: { kid: string }[] } }): string[] => k.jwks().keys.map((x) => x.kid).sort();
const identity = { spiffeId: AGENT, attestor: 'join_token', attestorKind: 'join_token' as const, attributes: {} };

test('first key: created at start, published with use/alg/kid, sequence and refresh hint', async () => {
  const { keys, audit } = await keyFixture();
  assert.throws(() => keys.signingKey(), code('TESSERA_KEY_UNAVAILABLE'));
  await keys.ensureKeys();
  const jwks = keys.jwks();
  assert.equal(jwks.keys.length, 1);
  const k = jwks.keys[0]!;
  // JWKS (RFC 7517 §4.2) says "sig" so generic JOSE libraries select the key; the SPIFFE bundle says "jwt-svid".
  assert.equal(k.use, 'sig');
  assert.equal(k.alg, 'ES256');
  assert.equal(k.kty, 'EC');
  assert.equal(k.crv, 'P-256');
  assert.ok(k.kid.length >= 16);
  assert.equal((k as unknown as Record<string, unknown>).d, undefined, 'no private part in the JWKS');
  assert.equal(keys.signingKey().kid, k.kid);
  const bundle = keys.bundle();
  assert.equal(bundle.spiffe_sequence, 1);
  assert.ok(Number.isInteger(bundle.spiffe_refresh_hint) && bundle.spiffe_refresh_hint > 0);
  assert.deepEqual(bundle.keys, jwks.keys.map((x) => ({ ...x, use: 'jwt-svid' })));
  for (const bk of bundle.keys) {
    assert.equal(bk.use, 'jwt-svid');
    assert.equal(bk.alg, 'ES256');
    assert.ok(bk.kid);
  }
  assert.ok(audit.events.some((e) => e.kind === 'key.rotated'));
  // Idempotent: a second start reuses the key.
  await keys.ensureKeys();
  assert.deepEqual(kids(keys), [k.kid]);
  assert.equal(keys.bundle().spiffe_sequence, 1);
});

test('rotation: pre-publishes the next key, switches at period end, old key verifies during overlap, KID_UNKNOWN after retention', async () => {
  const { keys, clock, tokens } = await tokenFixture();
  const t0 = clock.now();
  const k1 = keys.signingKey().kid;
  let seq = keys.bundle().spiffe_sequence;

  // Too early to pre-publish (window is min(overlap, period/4) = 1h before the end).
  clock.set(t0 + PERIOD - 2 * HOUR);
  assert.equal(await keys.rotateIfDue(), false);
  assert.equal(keys.jwks().keys.length, 1);
  assert.equal(keys.bundle().spiffe_sequence, seq);

  // Pre-publication: the next key is in the JWKS but does not sign yet.
  clock.set(t0 + PERIOD - HOUR);
  assert.equal(await keys.rotateIfDue(), true);
  assert.equal(keys.jwks().keys.length, 2);
  const k2 = kids(keys).find((k) => k !== k1)!;
  assert.equal(keys.signingKey().kid, k1);
  assert.ok(keys.bundle().spiffe_sequence > seq, 'sequence increases when a key is published');
  seq = keys.bundle().spiffe_sequence;
  assert.equal(await keys.rotateIfDue(), false, 'no second pre-published key');

  // A token signed by k1 one minute before the switch.
  clock.set(t0 + PERIOD - MIN);
  const old = tokens.issueAgentToken(identity, { audience: ['https://tessera.test'] });

  // Switch exactly at period end, even before the rotation job runs.
  clock.set(t0 + PERIOD);
  assert.equal(keys.signingKey().kid, k2);
  const fresh = tokens.issueAgentToken(identity, { audience: ['https://tessera.test'] });
  assert.equal(JSON.parse(Buffer.from(fresh.token.split('.')[0]!, 'base64url').toString()).kid, k2);

  // Overlap: the retired key still verifies the token it signed.
  clock.set(t0 + PERIOD + 2 * MIN);
  assert.equal(await keys.rotateIfDue(), false);
  assert.deepEqual(kids(keys), [k1, k2].sort());
  assert.equal((await tokens.verify(old.token, { audience: 'https://tessera.test' })).spiffeId, AGENT);
  assert.equal((await tokens.verify(fresh.token, { audience: 'https://tessera.test' })).spiffeId, AGENT);

  // After retention (max(overlap, max token TTL + 1 min) = 1h) the old key is gone: the kid
  // is checked before the claims, so the (also expired) token fails on the kid.
  clock.set(t0 + PERIOD + HOUR);
  assert.equal(keys.verificationKey(k1), undefined);
  await assert.rejects(tokens.verify(old.token, { audience: 'https://tessera.test' }), code('TESSERA_TOKEN_KID_UNKNOWN'));
  await keys.rotateIfDue(); // prunes
  assert.deepEqual(kids(keys), [k2]);
  assert.ok(keys.bundle().spiffe_sequence > seq, 'sequence increases when a key is removed');
});

test('spiffe_refresh_hint: a verifier refreshing on the hint sees the next key before it signs', async () => {
  const { keys } = await keyFixture();
  await keys.ensureKeys();
  const hintMs = keys.bundle().spiffe_refresh_hint * 1000;
  // Pre-publication window with this config: min(overlap, period / 4) = 1 h. Worst case: the
  // verifier fetched just before publication, the rotation job runs up to 60 s late, and an
  // HTTP cache adds the 60 s max-age of GET /v1/bundle.
  const window = Math.min(HOUR, PERIOD / 4);
  assert.ok(hintMs + 60_000 + 60_000 < window, `refresh hint ${hintMs / 1000}s leaves no margin in a ${window / 1000}s pre-publication window`);
  assert.ok(hintMs >= 60_000);
});

test('rotateNow: new key signs at once, the previous one stays published; sequence increases', async () => {
  const { keys, clock, tokens } = await tokenFixture();
  const k1 = keys.signingKey().kid;
  const before = tokens.issueAgentToken(identity, { audience: ['https://tessera.test'] });
  const seq = keys.bundle().spiffe_sequence;
  const { kid: k2 } = await keys.rotateNow();
  assert.notEqual(k2, k1);
  assert.equal(keys.signingKey().kid, k2);
  assert.deepEqual(kids(keys), [k1, k2].sort());
  assert.ok(keys.bundle().spiffe_sequence > seq);
  assert.equal((await tokens.verify(before.token, { audience: 'https://tessera.test' })).jti, before.jti);
  // The retired key leaves after its retention, counted from the rotation.
  clock.advance(HOUR);
  await keys.rotateIfDue();
  assert.deepEqual(kids(keys), [k2]);
});

test('a second replica sees a new key through reloadForUnknownKid (rate-limited to one reload per second)', async () => {
  const a = await keyFixture();
  await a.keys.ensureKeys();
  const b = await keyFixture({ store: a.store, sealer: a.sealer, clock: a.clock });
  await b.keys.ensureKeys();
  a.clock.advance(2000);
  const { kid: k2 } = await a.keys.rotateNow();
  assert.equal(b.keys.verificationKey(k2), undefined);
  assert.ok(await b.keys.reloadForUnknownKid(k2));
  const { kid: k3 } = await a.keys.rotateNow();
  assert.equal(await b.keys.reloadForUnknownKid(k3), undefined, 'second reload within 1 s is refused');
  a.clock.advance(1000);
  assert.ok(await b.keys.reloadForUnknownKid(k3));
});

test('the signing_keys row never holds the private key in clear', async () => {
  const { keys, store } = await keyFixture();
  await keys.ensureKeys();
  await keys.rotateNow();
  const rows = await store.all<Record<string, unknown>>('SELECT * FROM signing_keys');
  assert.equal(rows.length, 2);
  let checked = 0;
  for (const row of rows) {
    const kid = row.kid as string;
    // The private scalar of this row's key, obtained through the manager (opens the sealed blob).
    const { privateKey } = keys.signingKey().kid === kid ? keys.signingKey() : { privateKey: undefined };
    const pub = JSON.parse(row.public_jwk as string) as Record<string, unknown>;
    assert.equal(pub.d, undefined);
    assert.deepEqual(Object.keys(pub).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    const sealed = Buffer.from(row.sealed_private as Uint8Array);
    assert.ok(!sealed.toString('latin1').includes('"d"'), 'sealed blob is not JSON in clear');
    if (privateKey) {
      const d = (privateKey.export({ format: 'jwk' }) as { d: string }).d;
      const dBytes = Buffer.from(d, 'base64url');
      checked++;
      for (const [col, v] of Object.entries(row)) {
        const text = Buffer.isBuffer(v) || v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : String(v);
        assert.ok(!text.includes(d), `column ${col} holds d in base64url`);
        assert.ok(!text.includes(dBytes.toString('latin1')), `column ${col} holds d as raw bytes`);
        assert.ok(!text.includes(dBytes.toString('hex')), `column ${col} holds d in hex`);
      }
    }
  }
  assert.equal(checked, 1, 'the signing key row was checked against its private scalar');
});

test('a wrong master key fails at ensureKeys, not at the first login', async () => {
  const a = await keyFixture();
  await a.keys.ensureKeys();
  const b = await keyFixture({ store: a.store, sealer: masterSealer(randomBytes(32)), clock: a.clock });
  await assert.rejects(b.keys.ensureKeys(), code('TESSERA_SECRET_DECRYPT_FAILED'));
});
