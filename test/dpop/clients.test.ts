/**
 * DPoP with real clients against the whole server (real HTTP):
 * - oauth4webapi (a conformant RFC 9449 client): discovery, token exchange with a DPoP proof at
 *   the real token endpoint (`token_type: DPoP`), protected API requests with its proofs, with
 *   and without server nonces (its nonce retry);
 * - the official MCP SDK client with a fetch that adds `Authorization: DPoP` and a fresh proof to
 *   each request (how an MCP client uses a bound token with Tessera, docs/dpop.md);
 * - the token endpoint's own checks (htm/htu, nonce, a bad proof does not burn a join token);
 * - configuration (`tokens.dpop.require`) and policy (`context.dpop`);
 * - metadata and introspection (RFC 8414 / RFC 9728 `dpop_*`, RFC 9449 §6.2).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startDpopServer, INIT, MCP_HEADERS, AGENT, type DpopServer } from './server.js';
import { makeProof, proofKey, thumbprint, type ProofKey } from '../helpers/dpop.js';
import { runCli, type CliIo } from '../../src/cli/index.js';
import { runtime } from '../../src/main.js';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const insecure = { [oauth.allowInsecureRequests]: true } as const;

let s: DpopServer;
before(async () => {
  s = await startDpopServer();
  for (const [path, value] of [['open/a', 'open-value'], ['bound/a', 'bound-value']]) {
    assert.equal((await s.admin('PUT', `/v1/admin/secrets/${path}`, { value, mode: 'read' })).status, 200);
  }
});
after(() => s.close());

/** oauth4webapi: discovery, then an RFC 8693 exchange of a join token with its DPoP handle. */
async function oauthLogin(srv: DpopServer, dpop: oauth.DPoPHandle, params: Record<string, string | string[]>): Promise<oauth.TokenEndpointResponse> {
  const issuer = new URL(srv.url);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
  assert.ok(as.dpop_signing_alg_values_supported?.includes('ES256'));
  const client: oauth.Client = { client_id: 'tessera-agent' };
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) form.append(k, x);
  const grant = () => oauth.genericTokenEndpointRequest(as, client, oauth.None(), GRANT, form, { DPoP: dpop, ...insecure });
  try {
    return await oauth.processGenericTokenEndpointResponse(as, client, await grant());
  } catch (e) {
    // RFC 9449 §8: a server that wants a nonce answers use_dpop_nonce once; the handle kept it.
    if (!oauth.isDPoPNonceError(e)) throw e;
    return oauth.processGenericTokenEndpointResponse(as, client, await grant());
  }
}

async function oauthGet(url: string, token: string, dpop: oauth.DPoPHandle): Promise<Response> {
  const call = () => oauth.protectedResourceRequest(token, 'GET', new URL(url), new Headers(), null, { DPoP: dpop, ...insecure });
  try {
    return await call();
  } catch (e) {
    if (!oauth.isDPoPNonceError(e)) throw e;
    return call();
  }
}

const joinParams = async (srv: DpopServer) => ({ subject_token: await srv.joinToken(), subject_token_type: 'urn:tessera:token-type:join-token', audience: [srv.url, `${srv.url}/mcp`] });

test('oauth4webapi: token exchange with its DPoP proof at the real token endpoint → token_type DPoP bound to its key; its proofs open the API; its token without proofs does not', async () => {
  const keyPair = await oauth.generateKeyPair('ES256');
  const dpop = oauth.DPoP({}, keyPair);
  const tok = await oauthLogin(s, dpop, await joinParams(s));
  s.sensitive.add(tok.access_token);
  assert.equal(tok.token_type, 'dpop');
  const claims = JSON.parse(Buffer.from(tok.access_token.split('.')[1]!, 'base64url').toString()) as { cnf: { jkt: string } };
  assert.equal(claims.cnf.jkt, await dpop.calculateThumbprint());

  const who = await oauthGet(`${s.url}/v1/whoami`, tok.access_token, dpop);
  assert.equal(who.status, 200);
  assert.equal(((await who.json()) as { spiffe_id: string }).spiffe_id, AGENT);
  const secret = await oauthGet(`${s.url}/v1/secrets/bound/a`, tok.access_token, dpop);
  assert.equal(secret.status, 200, 'policy permits bound/ only with context.dpop');
  assert.equal(((await secret.json()) as { value: string }).value, 'bound-value');

  // The stolen token alone: as Bearer, or as DPoP with the thief's own key.
  const stolen = await fetch(`${s.url}/v1/whoami`, { headers: { authorization: `Bearer ${tok.access_token}` } });
  assert.equal(stolen.status, 401);
  assert.equal(((await stolen.json()) as any).error.code, 'TESSERA_DPOP_TOKEN_BOUND');
  const thief = oauth.DPoP({}, await oauth.generateKeyPair('ES256'));
  await assert.rejects(oauth.protectedResourceRequest(tok.access_token, 'GET', new URL(`${s.url}/v1/whoami`), new Headers(), null, { DPoP: thief, ...insecure }), (e: unknown) => {
    assert.ok(e instanceof oauth.WWWAuthenticateChallengeError, String(e));
    const c = e.cause.find((x) => x.scheme === 'dpop');
    assert.equal(c?.parameters.error, 'invalid_dpop_proof');
    assert.match(String(c?.parameters.error_description), /another key/);
    return true;
  });
});

test('oauth4webapi with server nonces (tokens.dpop.nonce): use_dpop_nonce at the token endpoint (400) and at the API (401), the DPoP-Nonce header, then success', async () => {
  const n = await startDpopServer({ config: { tokens: { dpop: { nonce: true } } } });
  try {
    const keyPair = await oauth.generateKeyPair('ES256');
    const dpop = oauth.DPoP({}, keyPair);
    // By hand first: the refusal shapes.
    const k = proofKey();
    const noNonce = await n.exchange(await n.joinToken(), { dpop: makeProof(k, { htm: 'POST', htu: `${n.url}/v1/oauth/token` }) });
    assert.equal(noNonce.status, 400);
    assert.equal(noNonce.body.error, 'use_dpop_nonce');
    assert.equal(noNonce.code, 'TESSERA_DPOP_NONCE_REQUIRED');
    const nonce = noNonce.headers.get('dpop-nonce');
    assert.match(nonce ?? '', /^[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    const ok = await n.exchange(await n.joinToken(), { dpop: makeProof(k, { htm: 'POST', htu: `${n.url}/v1/oauth/token`, nonce: nonce! }) });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.headers.get('dpop-nonce'), nonce, 'the token response carries the current nonce too');
    const t = ok.body.access_token as string;
    for (const target of [{ path: '/v1/whoami', method: 'GET' }, { path: '/mcp', method: 'POST', body: INIT }]) {
      const refused = await n.request(target.method, target.path, { authorization: `DPoP ${t}`, dpop: makeProof(k, { htm: target.method, htu: n.url + target.path, token: t }), ...MCP_HEADERS }, target.body);
      assert.equal(refused.status, 401, target.path);
      assert.equal(refused.code, 'TESSERA_DPOP_NONCE_REQUIRED');
      assert.match(refused.headers.get('www-authenticate') ?? '', /^DPoP .*error="use_dpop_nonce"/);
      const fresh = refused.headers.get('dpop-nonce')!;
      const forged = await n.request(target.method, target.path, { authorization: `DPoP ${t}`, dpop: makeProof(k, { htm: target.method, htu: n.url + target.path, token: t, nonce: `${fresh.split('.')[0]}.AAAAAAAAAAAAAAAAAAAAAA` }), ...MCP_HEADERS }, target.body);
      assert.equal(forged.code, 'TESSERA_DPOP_NONCE_REQUIRED', 'a nonce Tessera did not issue');
      const passed = await n.request(target.method, target.path, { authorization: `DPoP ${t}`, dpop: makeProof(k, { htm: target.method, htu: n.url + target.path, token: t, nonce: fresh }), ...MCP_HEADERS }, target.body);
      assert.equal(passed.status, 200, JSON.stringify(passed.body));
      assert.equal(passed.headers.get('dpop-nonce'), fresh, 'every answer to a DPoP request carries the current nonce');
    }

    // Then the real client, which retries on use_dpop_nonce by itself.
    const tok = await oauthLogin(n, dpop, await joinParams(n));
    n.sensitive.add(tok.access_token);
    assert.equal(tok.token_type, 'dpop');
    const who = await oauthGet(`${n.url}/v1/whoami`, tok.access_token, dpop);
    assert.equal(who.status, 200);
  } finally {
    await n.close();
  }
});

test('the MCP SDK client with a DPoP fetch: each request (initialize, notifications, tools/list, tools/call, DELETE) carries a fresh proof; the bound token as Bearer is refused', async () => {
  const k = proofKey();
  const token = await s.boundToken(k);
  const proofs: string[] = [];
  // How an MCP client uses a DPoP-bound Tessera token: a fetch that signs each request.
  const dpopFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = init?.method ?? 'GET';
    const headers = new Headers(init?.headers);
    const proof = makeProof(k, { htm: method, htu: `${url.origin}${url.pathname}`, token });
    proofs.push(proof);
    headers.set('authorization', `DPoP ${token}`);
    headers.set('dpop', proof);
    return fetch(input, { ...init, headers });
  };
  const client = new Client({ name: 'dpop-mcp', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${s.url}/mcp`), { fetch: dpopFetch }));
  const tools = await client.listTools();
  assert.deepEqual(tools.tools.map((t) => t.name), ['mem__echo']);
  const r = await client.callTool({ name: 'mem__echo', arguments: { a: 1 } });
  assert.deepEqual(r.content, [{ type: 'text', text: 'echo {"a":1}' }]);
  await client.close();
  assert.ok(proofs.length >= 4, `one proof per request (${proofs.length})`);
  assert.equal(new Set(proofs).size, proofs.length);

  const bearer = new Client({ name: 'dpop-mcp-bearer', version: '1' });
  await assert.rejects(bearer.connect(new StreamableHTTPClientTransport(new URL(`${s.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } })));
  const raw = await s.request('POST', '/mcp', { authorization: `Bearer ${token}`, ...MCP_HEADERS }, INIT);
  assert.equal(raw.status, 401);
  assert.equal(raw.code, 'TESSERA_DPOP_TOKEN_BOUND');
  assert.match(raw.headers.get('www-authenticate') ?? '', /^DPoP resource_metadata=".*\/\.well-known\/oauth-protected-resource\/mcp", error="invalid_token"/);
});

test('token endpoint: a proof for another method or URL, or a bad proof, is refused with 400 invalid_dpop_proof — and the one-time join token survives it', async () => {
  const k = proofKey();
  const join = await s.joinToken();
  const cases: [string, string | string[], string][] = [
    ['htu of another endpoint', makeProof(k, { htm: 'POST', htu: `${s.url}/v1/whoami` }), 'TESSERA_DPOP_HTU_MISMATCH'],
    ['htm GET', makeProof(k, { htm: 'GET', htu: `${s.url}/v1/oauth/token` }), 'TESSERA_DPOP_HTM_MISMATCH'],
    ['alg none', makeProof(k, { htm: 'POST', htu: `${s.url}/v1/oauth/token`, header: { alg: 'none' }, signature: '' }), 'TESSERA_DPOP_ALG_NOT_ALLOWED'],
    ['private key in jwk', makeProof(k, { htm: 'POST', htu: `${s.url}/v1/oauth/token`, header: { jwk: k.privateKey.export({ format: 'jwk' }) } }), 'TESSERA_DPOP_KEY_INVALID'],
    ['stale', makeProof(k, { htm: 'POST', htu: `${s.url}/v1/oauth/token`, iat: Math.floor(Date.now() / 1000) - 600 }), 'TESSERA_DPOP_IAT_INVALID'],
    ['forged', makeProof(k, { htm: 'POST', htu: `${s.url}/v1/oauth/token`, signWith: proofKey().privateKey }), 'TESSERA_DPOP_SIGNATURE_INVALID'],
    ['empty', '', 'TESSERA_DPOP_PROOF_MALFORMED'],
    ['two', [makeProof(k, { htm: 'POST', htu: `${s.url}/v1/oauth/token` }), makeProof(k, { htm: 'POST', htu: `${s.url}/v1/oauth/token` })], 'TESSERA_DPOP_PROOF_MALFORMED'],
  ];
  for (const [name, dpop, code] of cases) {
    const r = await s.exchange(join, { dpop });
    assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error, 'invalid_dpop_proof', name);
    assert.equal(r.code, code, name);
    assert.equal(r.headers.get('www-authenticate'), null, 'a 400, not a challenge');
  }
  const proof = makeProof(k, { htm: 'POST', htu: `${s.url}/v1/oauth/token` });
  const ok = await s.exchange(join, { dpop: proof });
  assert.equal(ok.status, 200, 'the join token was not consumed by the refused attempts');
  assert.equal(ok.body.token_type, 'DPoP');
  const replay = await s.exchange(await s.joinToken(), { dpop: proof });
  assert.equal(replay.code, 'TESSERA_DPOP_REPLAYED', 'a login proof is single-use too');

  // The login is audited with the key's thumbprint.
  await s.tessera.audit.flush();
  const ev = await s.admin('GET', '/v1/admin/audit?kind=auth.login&limit=200');
  assert.ok((ev.body.events as any[]).some((e) => (e.event ?? e).details?.dpop_jkt === JSON.parse(Buffer.from(ok.body.access_token.split('.')[1], 'base64url').toString()).cnf.jkt));
});

test('policy sees context.dpop: a folder permitted only to bound tokens refuses the same agent\'s Bearer token; what-if checks take principal.dpop', async () => {
  const k = proofKey();
  const bound = await s.boundToken(k);
  const bearer = await s.bearerToken();
  assert.equal((await s.dpopRequest(k, bound, 'GET', '/v1/secrets/bound/a')).status, 200);
  assert.equal((await s.request('GET', '/v1/secrets/bound/a', { authorization: `Bearer ${bearer}` })).code, 'TESSERA_POLICY_DENIED');
  assert.equal((await s.request('GET', '/v1/secrets/open/a', { authorization: `Bearer ${bearer}` })).status, 200);
  for (const [dpop, allowed] of [[true, true], [false, false]] as const) {
    const r = await s.admin('POST', '/v1/admin/policy/check', { principal: { spiffe_id: AGENT, dpop }, action: 'secret.read', resource: 'Secret::bound/a' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.decision, allowed ? 'allow' : 'deny', JSON.stringify(r.body));
  }
  // The same through the CLI: `tessera policy check --dpop`.
  for (const [flags, decision] of [[['--dpop'], /^decision: ALLOW\n/], [[], /^decision: DENY\n/]] as const) {
    let out = '';
    const io: CliIo = { stdout: { write: (x: string) => (out += x), isTTY: false }, stderr: { write: () => true }, env: { TESSERA_ADDR: s.url, TESSERA_TOKEN: s.tessera.adminToken! } };
    const code = await runCli(['policy', 'check', '--principal', AGENT, '--action', 'secret.read', '--resource', 'Secret::bound/a', ...flags, '--exit-code'], runtime, io);
    assert.match(out, decision);
    assert.equal(code, flags.length ? 0 : 1);
  }
});

test('metadata and introspection: dpop_signing_alg_values_supported (RFC 8414, RFC 9728) and a bound token introspected with cnf and token_type DPoP (RFC 9449 §6.2)', async () => {
  const as = (await (await fetch(`${s.url}/.well-known/oauth-authorization-server`)).json()) as any;
  assert.deepEqual(as.dpop_signing_alg_values_supported, ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA']);
  const rs = await oauth.processResourceDiscoveryResponse(new URL(`${s.url}/mcp`), await oauth.resourceDiscoveryRequest(new URL(`${s.url}/mcp`), insecure));
  assert.deepEqual(rs.dpop_signing_alg_values_supported, as.dpop_signing_alg_values_supported);
  assert.equal(rs.dpop_bound_access_tokens_required, false);
  const k: ProofKey = proofKey('EdDSA');
  const bound = await s.boundToken(k);
  const form = (token: string) => ({ method: 'POST', headers: { authorization: `Bearer ${s.tessera.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
  const i = (await (await fetch(`${s.url}/v1/oauth/introspect`, form(bound))).json()) as any;
  assert.equal(i.active, true);
  assert.equal(i.token_type, 'DPoP');
  assert.deepEqual(i.cnf, { jkt: await thumbprint(k) });
  const b = (await (await fetch(`${s.url}/v1/oauth/introspect`, form(await s.bearerToken()))).json()) as any;
  assert.equal(b.token_type, 'Bearer');
  assert.equal(b.cnf, undefined);
  // A 401 without any token offers both schemes (RFC 9449 §7.1).
  const none = await fetch(`${s.url}/v1/whoami`);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer realm="tessera", error="invalid_token", DPoP realm="tessera", algs="ES256 /);
});

test('tokens.dpop.require: always — a login without a proof is refused, and tokens issued unbound before the change are refused everywhere', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-dpop-require-'));
  const first = await startDpopServer({ dataDir });
  const oldBearer = await first.bearerToken();
  const oldUrl = first.url;
  await first.close();
  const port = new URL(oldUrl).port;
  const n = await startDpopServer({ dataDir, config: { server: { listen: `127.0.0.1:${port}` }, tokens: { dpop: { require: 'always' } } } });
  try {
    const r = await n.exchange(await n.joinToken());
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'invalid_dpop_proof');
    assert.equal(r.code, 'TESSERA_DPOP_PROOF_MISSING');
    const old = await n.request('GET', '/v1/whoami', { authorization: `Bearer ${oldBearer}` });
    assert.equal(old.status, 401);
    assert.equal(old.code, 'TESSERA_DPOP_REQUIRED');
    assert.match(old.headers.get('www-authenticate') ?? '', /^DPoP .*error="invalid_token"/);
    const mcp = await n.request('POST', '/mcp', { authorization: `Bearer ${oldBearer}`, ...MCP_HEADERS }, INIT);
    assert.equal(mcp.code, 'TESSERA_DPOP_REQUIRED');
    const meta = (await (await fetch(`${n.url}/.well-known/oauth-protected-resource/mcp`)).json()) as any;
    assert.equal(meta.dpop_bound_access_tokens_required, true);
    const k = proofKey();
    const t = await n.boundToken(k);
    assert.equal((await n.dpopRequest(k, t, 'GET', '/v1/whoami')).status, 200);
  } finally {
    n.sensitive.add(oldBearer);
    await n.close();
  }
});

test('behind a proxy: htu is the public URL (server.public_url with its path prefix) plus the request path', async () => {
  const n = await startDpopServer({ config: { server: { listen: '127.0.0.1:0', public_url: 'https://tessera.example.com/broker' } } });
  try {
    const local = n.url;
    assert.equal(n.issuer, 'https://tessera.example.com/broker');
    const k = proofKey();
    const t = await n.boundToken(k);
    const call = (htu: string) => fetch(`${local}/v1/whoami`, { headers: { authorization: `DPoP ${t}`, dpop: makeProof(k, { htm: 'GET', htu, token: t }) } });
    assert.equal((await call('https://tessera.example.com/broker/v1/whoami')).status, 200);
    const noPrefix = await call('https://tessera.example.com/v1/whoami');
    assert.equal(((await noPrefix.json()) as any).error.code, 'TESSERA_DPOP_HTU_MISMATCH');
    assert.equal((await call(`${local}/v1/whoami`)).status, 200, 'the listen address itself still works');
  } finally {
    await n.close();
  }
});

test('the replay cache is bounded per key (429) and in all (503), with Retry-After; one key at its quota does not block another', async () => {
  const n = await startDpopServer({ config: { tokens: { dpop: { replay_cache_size: 1000, replay_cache_per_key: 600 } } } });
  try {
    const [a, b, c] = [proofKey(), proofKey(), proofKey()];
    const [ta, tb, tc] = [await n.boundToken(a), await n.boundToken(b), await n.boundToken(c)];
    // Each login proof took a place too: a, b and c have 1 each.
    const burst = async (k: ProofKey, t: string, count: number): Promise<void> => {
      let left = count;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (left-- > 0) assert.equal((await n.dpopRequest(k, t, 'GET', '/v1/whoami')).status, 200);
      }));
    };
    await burst(a, ta, 599);
    const perKey = await n.dpopRequest(a, ta, 'GET', '/v1/whoami');
    assert.equal(perKey.status, 429);
    assert.equal(perKey.code, 'TESSERA_DPOP_RATE_LIMITED');
    assert.match(perKey.headers.get('retry-after') ?? '', /^\d+$/);
    await burst(b, tb, 398); // 600 + 399 + 1 = 1000: full
    const full = await n.dpopRequest(c, tc, 'GET', '/v1/whoami');
    assert.equal(full.status, 503);
    assert.equal(full.code, 'TESSERA_DPOP_REPLAY_CACHE_FULL');
    assert.ok(Number(full.headers.get('retry-after')) >= 1);
    // A Bearer client is untouched.
    assert.equal((await n.request('GET', '/v1/whoami', { authorization: `Bearer ${await n.bearerToken()}` })).status, 200);
  } finally {
    await n.close();
  }
});
