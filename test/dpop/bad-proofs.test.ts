/**
 * Every bad DPoP input (issue 8 "Bad input"), through real HTTP against the whole server, on an
 * API route (GET /v1/whoami) and on the MCP gateway (POST /mcp initialize): each is refused with
 * 401, its stable TESSERA_DPOP_* code and a `WWW-Authenticate: DPoP …` challenge naming the
 * error and the accepted algorithms (RFC 9449 §7.1). Valid proofs of every accepted algorithm
 * pass on both. Proofs are made by test/helpers/dpop.ts, which shares no code with src/dpop.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { startDpopServer, INIT, MCP_HEADERS, type DpopServer, type Res } from './server.js';
import { ath, makeProof, proofKey, thumbprint, type ProofAlg, type ProofKey } from '../helpers/dpop.js';

let s: DpopServer;
let key: ProofKey;
let other: ProofKey;
/** Bound to `key`. */
let token: string;
/** Also bound to `key`: a second token of the same holder. */
let token2: string;
let unbound: string;

before(async () => {
  s = await startDpopServer();
  key = proofKey('ES256');
  other = proofKey('ES256');
  token = await s.boundToken(key);
  token2 = await s.boundToken(key);
  unbound = await s.bearerToken();
});
after(() => s.close());

interface Target {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly body?: string;
  readonly headers: Record<string, string>;
  /** A successful answer, then cleanup (an MCP session is ended with DELETE). */
  ok(res: Res, k: ProofKey, t: string): Promise<void>;
}

const TARGETS: Target[] = [
  {
    name: 'API GET /v1/whoami', method: 'GET', path: '/v1/whoami', headers: {},
    async ok(res) {
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.spiffe_id, 'spiffe://tessera.local/ns/dpop/sa/agent');
    },
  },
  {
    name: 'MCP POST /mcp', method: 'POST', path: '/mcp', body: INIT, headers: MCP_HEADERS,
    async ok(res, k, t) {
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.result.serverInfo.name, 'tessera');
      const sid = res.headers.get('mcp-session-id')!;
      const del = await s.request('DELETE', '/mcp', { authorization: `DPoP ${t}`, dpop: makeProof(k, { htm: 'DELETE', htu: `${s.url}/mcp`, token: t }), 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
      assert.equal(del.status, 200, JSON.stringify(del.body));
    },
  },
];

function send(target: Target, authorization: string, dpop: string | string[] | undefined): Promise<Res> {
  return s.request(target.method, target.path, { ...target.headers, authorization, ...(dpop !== undefined ? { dpop } : {}) }, target.body);
}

function assertRefused(res: Res, code: string, error: string): void {
  assert.equal(res.status, 401, JSON.stringify(res.body));
  assert.equal(res.code, code, JSON.stringify(res.body));
  const www = res.headers.get('www-authenticate') ?? '';
  assert.match(www, /^DPoP /, www);
  assert.ok(www.includes(`error="${error}"`), www);
  assert.match(www, /algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA"/, www);
}

const now = (): number => Math.floor(Date.now() / 1000);

interface BadCase {
  readonly name: string;
  readonly code: string;
  readonly error?: 'invalid_dpop_proof' | 'invalid_token';
  /** Authorization header; default `DPoP <bound token>`. */
  readonly authorization?: () => string;
  readonly dpop: (t: Target, htu: string) => string | string[] | undefined;
}

const smallRsa = (): ProofKey => {
  const pair = generateKeyPairSync('rsa', { modulusLength: 1024 });
  return { alg: 'RS256', privateKey: pair.privateKey, publicJwk: pair.publicKey.export({ format: 'jwk' }) as Record<string, string> };
};

const CASES: BadCase[] = [
  { name: 'missing proof', code: 'TESSERA_DPOP_PROOF_MISSING', dpop: () => undefined },
  { name: 'wrong htm', code: 'TESSERA_DPOP_HTM_MISMATCH', dpop: (t, htu) => makeProof(key, { htm: t.method === 'GET' ? 'POST' : 'GET', htu, token }) },
  { name: 'lower-case htm (methods are case-sensitive)', code: 'TESSERA_DPOP_HTM_MISMATCH', dpop: (t, htu) => makeProof(key, { htm: t.method.toLowerCase(), htu, token }) },
  { name: 'wrong htu: another path', code: 'TESSERA_DPOP_HTU_MISMATCH', dpop: (t) => makeProof(key, { htm: t.method, htu: `${s.url}/v1/secrets/open/x`, token }) },
  { name: 'wrong htu: another host', code: 'TESSERA_DPOP_HTU_MISMATCH', dpop: (t) => makeProof(key, { htm: t.method, htu: `https://tessera.evil.example${t.path}`, token }) },
  { name: 'wrong htu: another port', code: 'TESSERA_DPOP_HTU_MISMATCH', dpop: (t) => makeProof(key, { htm: t.method, htu: `http://127.0.0.1:1${t.path}`, token }) },
  { name: 'wrong htu: a path prefix of the target', code: 'TESSERA_DPOP_HTU_MISMATCH', dpop: (t) => makeProof(key, { htm: t.method, htu: `${s.url}/`, token }) },
  { name: 'htu not a URL', code: 'TESSERA_DPOP_HTU_MISMATCH', dpop: (t) => makeProof(key, { htm: t.method, htu: 'not a url', token }) },
  { name: 'stale iat', code: 'TESSERA_DPOP_IAT_INVALID', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, iat: now() - 121 }) },
  { name: 'iat in the future', code: 'TESSERA_DPOP_IAT_INVALID', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, iat: now() + 121 }) },
  { name: 'iat not a number', code: 'TESSERA_DPOP_PROOF_MALFORMED', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, claims: { iat: String(now()) } }) },
  { name: 'wrong ath', code: 'TESSERA_DPOP_ATH_MISMATCH', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, claims: { ath: ath('some other token') } }) },
  { name: 'no ath', code: 'TESSERA_DPOP_ATH_MISMATCH', dpop: (t, htu) => makeProof(key, { htm: t.method, htu }) },
  { name: 'proof for a different token of the same key', code: 'TESSERA_DPOP_ATH_MISMATCH', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token: token2 }) },
  { name: 'proof signed by another key (thumbprint ≠ cnf.jkt)', code: 'TESSERA_DPOP_KEY_MISMATCH', dpop: (t, htu) => makeProof(other, { htm: t.method, htu, token }) },
  { name: 'forged: the right jwk, signed by another key', code: 'TESSERA_DPOP_SIGNATURE_INVALID', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, signWith: other.privateKey }) },
  { name: 'empty signature', code: 'TESSERA_DPOP_SIGNATURE_INVALID', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, signature: '' }) },
  { name: 'alg none', code: 'TESSERA_DPOP_ALG_NOT_ALLOWED', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, header: { alg: 'none' }, signature: '' }) },
  {
    name: 'symmetric alg HS256 with an oct key', code: 'TESSERA_DPOP_ALG_NOT_ALLOWED',
    dpop: (t, htu) => {
      const k = randomBytes(32);
      const unsigned = makeProof(key, { htm: t.method, htu, token, header: { alg: 'HS256', jwk: { kty: 'oct', k: k.toString('base64url') } }, signature: '' });
      return unsigned + createHmac('sha256', k).update(unsigned.slice(0, -1)).digest('base64url');
    },
  },
  { name: 'symmetric key (kty oct) with ES256', code: 'TESSERA_DPOP_KEY_INVALID', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, header: { jwk: { kty: 'oct', k: randomBytes(32).toString('base64url') } } }) },
  { name: 'unknown alg', code: 'TESSERA_DPOP_ALG_NOT_ALLOWED', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, header: { alg: 'ES256K' } }) },
  { name: 'jwk with private key material (d)', code: 'TESSERA_DPOP_KEY_INVALID', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, header: { jwk: key.privateKey.export({ format: 'jwk' }) } }) },
  { name: 'no jwk', code: 'TESSERA_DPOP_KEY_INVALID', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, header: { jwk: undefined } }) },
  { name: 'EC point not on the curve', code: 'TESSERA_DPOP_KEY_INVALID', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, header: { jwk: { ...key.publicJwk, y: Buffer.alloc(32, 7).toString('base64url') } } }) },
  { name: 'jwk that does not fit alg (RSA key, ES256)', code: 'TESSERA_DPOP_KEY_INVALID', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, header: { jwk: proofKey('RS256').publicJwk } }) },
  { name: 'RSA key of 1024 bits', code: 'TESSERA_DPOP_KEY_INVALID', dpop: (t, htu) => makeProof(smallRsa(), { htm: t.method, htu, token }) },
  { name: 'not a JWS', code: 'TESSERA_DPOP_PROOF_MALFORMED', dpop: () => 'not-a-proof' },
  { name: 'header not JSON', code: 'TESSERA_DPOP_PROOF_MALFORMED', dpop: (t, htu) => `bm90IGpzb24.${makeProof(key, { htm: t.method, htu, token }).split('.').slice(1).join('.')}` },
  { name: 'typ JWT instead of dpop+jwt', code: 'TESSERA_DPOP_PROOF_MALFORMED', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, header: { typ: 'JWT' } }) },
  { name: 'no jti', code: 'TESSERA_DPOP_PROOF_MALFORMED', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, claims: { jti: undefined } }) },
  { name: 'crit header', code: 'TESSERA_DPOP_PROOF_MALFORMED', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, header: { crit: ['exp'] } }) },
  { name: 'two DPoP headers', code: 'TESSERA_DPOP_PROOF_MALFORMED', dpop: (t, htu) => [makeProof(key, { htm: t.method, htu, token }), makeProof(key, { htm: t.method, htu, token })] },
  { name: 'oversized proof', code: 'TESSERA_DPOP_PROOF_TOO_LARGE', dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token, claims: { pad: 'x'.repeat(9000) } }) },
  { name: 'bound token presented as Bearer', code: 'TESSERA_DPOP_TOKEN_BOUND', error: 'invalid_token', authorization: () => `Bearer ${token}`, dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token }) },
  { name: 'bound token as Bearer without a proof', code: 'TESSERA_DPOP_TOKEN_BOUND', error: 'invalid_token', authorization: () => `Bearer ${token}`, dpop: () => undefined },
  { name: 'unbound token presented with the DPoP scheme', code: 'TESSERA_DPOP_TOKEN_NOT_BOUND', error: 'invalid_token', authorization: () => `DPoP ${unbound}`, dpop: (t, htu) => makeProof(key, { htm: t.method, htu, token: unbound }) },
];

for (const target of TARGETS) {
  for (const c of CASES) {
    test(`${target.name}: ${c.name} → ${c.code}`, async () => {
      const res = await send(target, c.authorization?.() ?? `DPoP ${token}`, c.dpop(target, s.url + target.path));
      assertRefused(res, c.code, c.error ?? 'invalid_dpop_proof');
      // The refusal left the token usable: the holder's next, valid request passes.
      await target.ok(await send(target, `DPoP ${token}`, makeProof(key, { htm: target.method, htu: s.url + target.path, token })), key, token);
    });
  }

  test(`${target.name}: a replayed proof (same jti) is refused; the first use passed`, async () => {
    const proof = makeProof(key, { htm: target.method, htu: s.url + target.path, token });
    await target.ok(await send(target, `DPoP ${token}`, proof), key, token);
    assertRefused(await send(target, `DPoP ${token}`, proof), 'TESSERA_DPOP_REPLAYED', 'invalid_dpop_proof');
    // The same jti with another proof body (a re-signed replay) is refused too.
    const jti = randomBytes(12).toString('base64url');
    await target.ok(await send(target, `DPoP ${token}`, makeProof(key, { htm: target.method, htu: s.url + target.path, token, jti })), key, token);
    assertRefused(await send(target, `DPoP ${token}`, makeProof(key, { htm: target.method, htu: s.url + target.path, token, jti, iat: now() - 1 })), 'TESSERA_DPOP_REPLAYED', 'invalid_dpop_proof');
  });

  for (const alg of ['ES256', 'ES384', 'ES512', 'PS256', 'RS256', 'EdDSA'] as ProofAlg[]) {
    test(`${target.name}: a valid ${alg} proof passes, and the token carries the key's RFC 7638 thumbprint`, async () => {
      const k = proofKey(alg);
      const t = await s.boundToken(k);
      const claims = JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { cnf?: { jkt: string } };
      assert.equal(claims.cnf?.jkt, await thumbprint(k));
      await target.ok(await send(target, `DPoP ${t}`, makeProof(k, { htm: target.method, htu: s.url + target.path, token: t })), k, t);
    });
  }

  test(`${target.name}: htu is compared after normalization (case, default port, query and fragment ignored, loopback names)`, async () => {
    const u = new URL(s.url);
    for (const htu of [
      `${s.url}${target.path}?x=1#frag`,
      `HTTP://${u.host.toUpperCase()}${target.path}`,
      `http://localhost:${u.port}${target.path}`,
      `${s.url}${target.path.replace('/', '/%7e/../')}`,
    ]) {
      await target.ok(await send(target, `DPoP ${token}`, makeProof(key, { htm: target.method, htu, token })), key, token);
    }
  });

  test(`${target.name}: the scheme name is case-insensitive; an unbound Bearer token with a stray DPoP header still passes`, async () => {
    await target.ok(await send(target, `dpop ${token}`, makeProof(key, { htm: target.method, htu: s.url + target.path, token })), key, token);
    const res = await send(target, `Bearer ${unbound}`, makeProof(key, { htm: target.method, htu: s.url + target.path, token: unbound }));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    if (target.path === '/mcp') {
      const sid = res.headers.get('mcp-session-id')!;
      assert.equal((await s.request('DELETE', '/mcp', { authorization: `Bearer ${unbound}`, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' })).status, 200);
    }
  });
}

test('a refusal after the token verified is audited as auth.token_refused, attributed to the token subject (unverified), with the code; never the token or the proof', async () => {
  const proof = makeProof(other, { htm: 'GET', htu: `${s.url}/v1/whoami`, token });
  assertRefused(await s.request('GET', '/v1/whoami', { authorization: `DPoP ${token}`, dpop: proof }), 'TESSERA_DPOP_KEY_MISMATCH', 'invalid_dpop_proof');
  await s.tessera.audit.flush();
  const r = await s.admin('GET', '/v1/admin/audit?kind=auth.token_refused&limit=200');
  assert.equal(r.status, 200);
  const ev = (r.body.events as any[]).find((e) => (e.event ?? e).details?.code === 'TESSERA_DPOP_KEY_MISMATCH');
  assert.ok(ev, JSON.stringify(r.body).slice(0, 500));
  const e = ev.event ?? ev;
  assert.deepEqual(e.actor, { id: 'spiffe://tessera.local/ns/dpop/sa/agent', verified: false });
  const text = JSON.stringify(r.body);
  assert.ok(!text.includes(token) && !text.includes(proof.split('.')[2]!));
});
