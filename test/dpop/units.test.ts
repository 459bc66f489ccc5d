/**
 * The pure parts of src/dpop: RFC 7638 thumbprints (checked against jose), htu normalization
 * (RFC 3986 §6.2.2-3), the bounded replay cache, stateless nonces, and the binding rules of the
 * guard for the token exchanges (require; what "delegated" means).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { jwkThumbprint } from '../../src/dpop/jwk.js';
import { createHtuMatcher, htuBasesOf, normalizeUri } from '../../src/dpop/htu.js';
import { ReplayCache } from '../../src/dpop/replay.js';
import { createNonceSource } from '../../src/dpop/nonce.js';
import { createDpopGuard, createHtuMatcher as matcher, dpopSettingsOf, dpopChallengeOf, isDelegated } from '../../src/dpop/index.js';
import { configSchema } from '../../src/config/schema.js';
import { parseConfig } from '../../src/config/index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import { proofKey, thumbprint, type ProofAlg } from '../helpers/dpop.js';

test('RFC 7638 thumbprints equal jose\'s for EC, RSA and OKP keys, whatever extra members the jwk carries', async () => {
  for (const alg of ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'] as ProofAlg[]) {
    const k = proofKey(alg);
    assert.equal(jwkThumbprint({ ...k.publicJwk, kid: 'x', use: 'sig' }, alg), await thumbprint(k), alg);
  }
  // RFC 7638 §3.1 example key and thumbprint.
  const rfc = { kty: 'RSA', n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw', e: 'AQAB', alg: 'RS256', kid: '2011-04-29' };
  assert.equal(jwkThumbprint(rfc, 'RS256'), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
});

test('htu normalization: scheme and host case, default ports, percent-encodings, dot segments; query and fragment dropped; non-http refused', () => {
  assert.deepEqual(normalizeUri('HTTPS://Tessera.Example.COM:443/a/./b/../c?x#y'), { origin: 'https://tessera.example.com', path: '/a/c' });
  assert.deepEqual(normalizeUri('http://h:80'), { origin: 'http://h', path: '/' });
  assert.deepEqual(normalizeUri('http://h/%7euser/%2fx'), { origin: 'http://h', path: '/~user/%2Fx' });
  for (const bad of ['ftp://h/x', 'http://user:pw@h/x', '/relative', 'not a url', `http://h/${'a'.repeat(5000)}`]) assert.equal(normalizeUri(bad), undefined, bad);

  const m = createHtuMatcher({ bases: ['https://tessera.example.com/base/', 'http://127.0.0.1:8200'], anyPortHosts: ['tessera.internal'] });
  assert.ok(m.matches('https://tessera.example.com/base/v1/whoami', '/v1/whoami?x=1'));
  assert.ok(!m.matches('https://tessera.example.com/v1/whoami', '/v1/whoami'), 'the public URL path prefix is required');
  assert.ok(m.matches('http://127.0.0.1:8200/mcp', '/mcp'));
  assert.ok(m.matches('https://tessera.internal:9443/mcp', '/mcp'));
  assert.ok(!m.matches('http://127.0.0.1:8201/mcp', '/mcp'));
  assert.ok(!m.matches('http://127.0.0.1:8200/mcp', '//evil/mcp'), 'absolute-form-like targets are refused');
  assert.ok(!m.matches('http://127.0.0.1:8200/mcpx', '/mcp'));

  const fromConfig = createHtuMatcher(htuBasesOf({ issuer: 'https://t.example.com', listenHost: '127.0.0.1', listenPort: 8200, allowedHosts: ['t.internal:8443', 'any.internal'] }));
  for (const ok of ['https://t.example.com/x', 'http://127.0.0.1:8200/x', 'http://localhost:8200/x', 'http://[::1]:8200/x', 'https://t.internal:8443/x', 'http://any.internal:1234/x']) assert.ok(fromConfig.matches(ok, '/x'), ok);
  for (const no of ['http://t.example.com:8200/x', 'http://localhost:8201/x', 'https://evil.example/x']) assert.ok(!fromConfig.matches(no, '/x'), no);
  const nonLoopback = createHtuMatcher(htuBasesOf({ issuer: 'http://10.0.0.5:8200', listenHost: '0.0.0.0', listenPort: 8200, allowedHosts: [] }));
  assert.ok(!nonLoopback.matches('http://localhost:8200/x', '/x'), 'loopback names only for a loopback listener');
});

test('replay cache: a (jkt, jti) is admitted once until it expires; bounded in all and per key, fail closed', () => {
  const clock = new ManualClock(1_000_000);
  const c = new ReplayCache({ capacity: 5, perKey: 3, windowMs: 120_000, clock });
  assert.deepEqual(c.admit('k1', 'a', clock.now() + 60_000), { ok: true });
  assert.deepEqual(c.admit('k1', 'a', clock.now() + 60_000), { ok: false, why: 'replayed' });
  assert.deepEqual(c.admit('k2', 'a', clock.now() + 60_000), { ok: true }, 'the same jti of another key is another proof');
  assert.deepEqual(c.admit('k1', 'b', clock.now() + 60_000), { ok: true });
  assert.deepEqual(c.admit('k1', 'c', clock.now() + 30_000), { ok: true });
  const perKey = c.admit('k1', 'd', clock.now() + 60_000);
  assert.equal(perKey.ok, false);
  assert.equal(!perKey.ok && perKey.why, 'key_full');
  assert.deepEqual(c.admit('k3', 'a', clock.now() + 60_000), { ok: true });
  const full = c.admit('k4', 'a', clock.now() + 60_000);
  assert.equal(!full.ok && full.why, 'full');
  assert.equal(!full.ok && full.why === 'full' && full.retryAfterMs, 60_000);
  assert.equal(c.size, 5);
  // Expiry is kept in arrival order: 'c' (30 s) is remembered as long as the entry before it (60 s).
  clock.advance(30_000);
  assert.deepEqual(c.admit('k1', 'c', clock.now() + 60_000), { ok: false, why: 'replayed' });
  clock.advance(30_000);
  assert.deepEqual(c.admit('k1', 'a', clock.now() + 60_000), { ok: true }, 'forgotten once its proof could no longer pass the iat check');
  assert.equal(c.size, 1, 'every expired entry was dropped');
  // A jti of any length costs one fixed-size entry.
  assert.deepEqual(c.admit('k9', 'x'.repeat(256), clock.now() + 1), { ok: true });
});

test('nonces: accepted in their window and the next, stale in the next, refused after; forged or foreign nonces refused', () => {
  const clock = new ManualClock(10_000_000);
  const key = randomBytes(32);
  const n = createNonceSource({ key, lifetimeMs: 60_000, clock });
  const first = n.current();
  assert.equal(n.current(), first);
  assert.ok(n.accepts(first) && !n.isStale(first));
  clock.advance(60_000);
  assert.ok(n.accepts(first) && n.isStale(first));
  assert.notEqual(n.current(), first);
  clock.advance(60_000);
  assert.ok(!n.accepts(first));
  const other = createNonceSource({ key: randomBytes(32), lifetimeMs: 60_000, clock });
  assert.ok(!n.accepts(other.current()), 'another installation\'s nonce');
  const [w, mac] = n.current().split('.');
  const flip = (c: string): string => (c === 'A' ? 'B' : 'A');
  assert.ok(!n.accepts(`${w}.${flip(mac![0]!)}${mac!.slice(1)}`), 'a forged mac');
  assert.ok(!n.accepts(`${(Number.parseInt(w!, 36) + 1).toString(36)}.${mac}`), 'the mac of another window');
  for (const bad of ['', 'x', `${w}.`, `${w}.${mac}.x`, 'zzzzzzzzzzzzz.AAAAAAAAAAAAAAAAAAAAAA']) assert.ok(!n.accepts(bad), bad);
  // Replicas sharing the key agree.
  assert.ok(createNonceSource({ key, lifetimeMs: 60_000, clock }).accepts(n.current()));
});

test('binding rules at the token endpoint: tokens.dpop.require per kind of issued token; what "delegated" means', () => {
  const clock = new ManualClock();
  const defaults = dpopSettingsOf(configSchema.parse({}).tokens.dpop);
  const guard = (require: 'never' | 'delegated' | 'always') => createDpopGuard({ settings: { ...defaults, require }, clock, htu: matcher({ bases: ['http://127.0.0.1:1'] }) });
  const code = (fn: () => void): string | undefined => {
    try {
      fn();
      return undefined;
    } catch (e) {
      assert.ok(dpopChallengeOf(e), 'marked with the DPoP challenge');
      return (e as TesseraError).code;
    }
  };
  const jkt = 'A'.repeat(43);
  assert.equal(code(() => guard('never').requireBinding('delegated', undefined)), undefined);
  assert.equal(code(() => guard('delegated').requireBinding('agent', undefined)), undefined);
  assert.equal(code(() => guard('delegated').requireBinding('task', undefined)), undefined);
  assert.equal(code(() => guard('delegated').requireBinding('delegated', undefined)), 'TESSERA_DPOP_PROOF_MISSING');
  assert.equal(code(() => guard('delegated').requireBinding('delegated', jkt)), undefined);
  for (const kind of ['agent', 'task', 'delegated'] as const) assert.equal(code(() => guard('always').requireBinding(kind, undefined)), 'TESSERA_DPOP_PROOF_MISSING', kind);
  // `delegated` means a task token at depth ≥ 1 (Cedar context.depth ≥ 1), never an agent token or a root task.
  const base = { spiffeId: 's', trustDomain: 't', path: '/', attributes: {}, jti: 'j', expiresAt: 0 };
  assert.equal(isDelegated(base), false, 'an agent token');
  assert.equal(isDelegated({ ...base, tokenKind: 'agent' }), false, 'an agent token');
  assert.equal(isDelegated({ ...base, tokenKind: 'task', depth: 0, chain: [] }), false, 'a root task');
  assert.equal(isDelegated({ ...base, tokenKind: 'task', depth: 1, chain: ['spiffe://t/orchestrator'] }), true, 'a child');
  assert.equal(isDelegated({ ...base, tokenKind: 'task', depth: 3, chain: ['spiffe://t/o', 'spiffe://t/o', 'spiffe://t/o'] }), true, 'a grandchild\'s child');
  assert.throws(() => createDpopGuard({ settings: { ...defaults, nonce: true }, clock, htu: matcher({ bases: [] }) }), /nonce key/);
});

test('resource rules: an unbound token that configuration requires to be bound is refused, delegated or always', async () => {
  const clock = new ManualClock();
  const defaults = dpopSettingsOf(configSchema.parse({}).tokens.dpop);
  const principal = { spiffeId: 'spiffe://t/a', trustDomain: 't', path: '/a', attributes: {}, jti: 'j', expiresAt: 0 };
  const root = { ...principal, tokenKind: 'task' as const, task: 'txn-0', depth: 0, chain: [] };
  const delegated = { ...principal, tokenKind: 'task' as const, task: 'txn-1', depth: 1, chain: ['spiffe://t/orchestrator'] };
  const req = { scheme: 'Bearer' as const, method: 'GET', target: '/x', proof: undefined };
  const check = async (require: 'never' | 'delegated' | 'always', p: AgentPrincipal): Promise<string | undefined> => {
    const g = createDpopGuard({ settings: { ...defaults, require }, clock, htu: matcher({ bases: ['http://h'] }) });
    return g.checkResource(p, 't', req).then(() => undefined, (e: TesseraError) => e.code);
  };
  assert.equal(await check('never', delegated), undefined);
  assert.equal(await check('delegated', principal), undefined);
  assert.equal(await check('delegated', root), undefined, 'a root task is not delegated');
  assert.equal(await check('delegated', delegated), 'TESSERA_DPOP_REQUIRED');
  assert.equal(await check('always', principal), 'TESSERA_DPOP_REQUIRED');
  assert.equal(await check('always', root), 'TESSERA_DPOP_REQUIRED');
});

test('tokens.dpop configuration: bad values fail the load with TESSERA_CONFIG_INVALID naming the key', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ require: 'sometimes' }, /tokens\.dpop\.require/],
    [{ algorithms: ['HS256'] }, /tokens\.dpop\.algorithms\.0/],
    [{ algorithms: ['none'] }, /tokens\.dpop\.algorithms\.0/],
    [{ algorithms: [] }, /tokens\.dpop\.algorithms/],
    [{ iat_window: '0s' }, /tokens\.dpop\.iat_window: expected between 1s and 10m/],
    [{ iat_window: '1h' }, /tokens\.dpop\.iat_window/],
    [{ nonce: 'yes' }, /tokens\.dpop\.nonce/],
    [{ nonce_lifetime: 'soon' }, /tokens\.dpop\.nonce_lifetime/],
    [{ replay_cache_size: 10 }, /tokens\.dpop\.replay_cache_size/],
    [{ replay_cache_per_key: 0 }, /tokens\.dpop\.replay_cache_per_key/],
    [{ unknown_key: 1 }, /tokens\.dpop/],
  ];
  for (const [dpop, why] of bad) {
    assert.throws(() => parseConfig({ tokens: { dpop } }), (e: unknown) => e instanceof TesseraError && e.code === 'TESSERA_CONFIG_INVALID' && why.test(e.message), JSON.stringify(dpop));
  }
  const ok = parseConfig({ tokens: { dpop: { require: 'always', algorithms: ['EdDSA'], iat_window: '30s', nonce: true } } }).tokens.dpop;
  assert.deepEqual([ok.require, ok.algorithms, ok.iat_window, ok.nonce, ok.nonce_lifetime], ['always', ['EdDSA'], 30_000, true, 60_000]);
});
