/**
 * Tessera's authorization server refusing bad input, each with its code, driven over HTTP the
 * way a client and a browser would (no SDK, to send what a well-behaved client never sends):
 * client ID metadata documents (mismatched redirect URIs, another client_id, http, private
 * addresses, oversize), redirect URIs, PKCE (missing, plain, tampered verifier), response types,
 * state at the callback, a refused login at the provider, code replay (what it yielded is
 * revoked), another client redeeming a code, another redirect_uri at the token endpoint, scope
 * widening on refresh. Errors about the client or its redirect URI never redirect.
 * DPoP (RFC 9449) with a real client (oauth4webapi): a code redeemed with a proof binds the
 * refresh token and every access token to the client's key.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject, createHash, randomBytes } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { Browser } from './op.js';
import { makeProof, proofKey, thumbprint } from '../helpers/dpop.js';
import { getManual, startAsHarness, type AsHarness } from './harness.js';

let h: AsHarness;
let clientId: string;
const REDIRECT = 'http://127.0.0.1:53682/callback';

before(async () => {
  h = await startAsHarness();
  clientId = h.publish('good.json', { client_id: `${h.docsUrl}/good.json`, redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });
  h.publish('mismatch.json', { client_id: `${h.docsUrl}/mismatch.json`, redirect_uris: ['http://127.0.0.1:9999/elsewhere', 'https://app.example/cb'] });
  h.publish('other-id.json', { client_id: 'https://someone-else.example/client.json', redirect_uris: [REDIRECT] });
  h.publish('no-code.json', { client_id: `${h.docsUrl}/no-code.json`, redirect_uris: [REDIRECT], grant_types: ['client_credentials'] });
  h.publish('http-redirect.json', { client_id: `${h.docsUrl}/http-redirect.json`, redirect_uris: ['http://app.example/cb'] });
  h.publish('huge.json', { client_id: `${h.docsUrl}/huge.json`, redirect_uris: [REDIRECT], padding: 'x'.repeat(10_000) });
});
after(async () => {
  await h?.close();
});

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

async function authorize(params: Record<string, string>): Promise<{ status: number; location?: URL; body?: any }> {
  const u = new URL(`${h.url}/v1/oauth/authorize`);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return getManual(u);
}

const good = (p: { challenge: string }, over: Record<string, string> = {}) => ({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: p.challenge, code_challenge_method: 'S256', state: 'client-state-1', ...over });

async function token(params: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params) });
  const body = await res.json() as any;
  for (const k of ['access_token', 'refresh_token']) if (typeof body[k] === 'string') h.sensitive.add(body[k]);
  return { status: res.status, body };
}

/** A full login for `user`: the code the client receives. */
async function codeFor(user: string, p: { challenge: string }, over: Record<string, string> = {}): Promise<string> {
  const a = await authorize(good(p, over));
  assert.equal(a.status, 302, JSON.stringify(a.body));
  h.op.nextUser = user;
  const r = await new Browser().follow(a.location!, (u) => u.href.startsWith(REDIRECT.split('/callback')[0]!));
  assert.ok(r.url, `${r.status} ${r.body?.slice(0, 200)}`);
  const code = r.url.searchParams.get('code') ?? '';
  assert.ok(code.startsWith('tsr_code_'), r.url.href);
  h.sensitive.add(code);
  return code;
}

const refusedHere = (r: { status: number; body?: any; location?: URL }, code: string): void => {
  assert.equal(r.location, undefined, `never redirected: ${r.location?.href}`);
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.code, code, JSON.stringify(r.body));
};

const refusedBack = (r: { status: number; location?: URL }, error: string, code: string): void => {
  assert.equal(r.status, 302);
  assert.equal(r.location!.origin + r.location!.pathname, REDIRECT, 'back to the registered redirect URI');
  assert.equal(r.location!.searchParams.get('error'), error);
  assert.equal(r.location!.searchParams.get('tessera_code'), code);
  assert.equal(r.location!.searchParams.get('state'), 'client-state-1');
  assert.equal(r.location!.searchParams.get('iss'), h.url);
};

test('client ID metadata documents: mismatched redirect URIs, another client_id, no authorization_code, http redirects, too large, not https, private addresses', async () => {
  const p = pkce();
  refusedHere(await authorize(good(p, { client_id: `${h.docsUrl}/mismatch.json` })), 'TESSERA_OAUTH_REDIRECT_URI_INVALID');
  refusedHere(await authorize(good(p, { client_id: `${h.docsUrl}/other-id.json` })), 'TESSERA_OAUTH_CLIENT_INVALID');
  refusedHere(await authorize(good(p, { client_id: `${h.docsUrl}/no-code.json` })), 'TESSERA_OAUTH_CLIENT_INVALID');
  refusedHere(await authorize(good(p, { client_id: `${h.docsUrl}/http-redirect.json` })), 'TESSERA_OAUTH_CLIENT_INVALID');
  refusedHere(await authorize(good(p, { client_id: `${h.docsUrl}/huge.json` })), 'TESSERA_OAUTH_CLIENT_INVALID');
  refusedHere(await authorize(good(p, { client_id: `${h.docsUrl}/missing.json` })), 'TESSERA_OAUTH_CLIENT_INVALID');
  refusedHere(await authorize(good(p, { client_id: `http://127.0.0.1:1/client.json` })), 'TESSERA_OAUTH_CLIENT_INVALID');
  refusedHere(await authorize(good(p, { client_id: `https://127.0.0.1:1/` })), 'TESSERA_OAUTH_CLIENT_INVALID');
  refusedHere(await authorize(good(p, { client_id: 'unknown-client' })), 'TESSERA_OAUTH_CLIENT_INVALID');
  // A private address that is not allowed: refused before any connection is made.
  for (const host of ['10.0.0.1', '[::1]', '169.254.169.254', '192.168.1.1']) {
    refusedHere(await authorize(good(p, { client_id: `https://${host}/client.json` })), 'TESSERA_OAUTH_CLIENT_INVALID');
  }
});

test('redirect URIs: unregistered, missing, another path, a fragment — refused where they stand, never redirected to', async () => {
  const p = pkce();
  for (const redirect_uri of ['https://evil.example/callback', 'http://127.0.0.1:53682/other', 'http://127.0.0.1:53682/callback#x', 'http://localhost.evil.example/callback']) {
    refusedHere(await authorize(good(p, { redirect_uri })), 'TESSERA_OAUTH_REDIRECT_URI_INVALID');
  }
  const { redirect_uri: _omit, ...noRedirect } = good(p);
  void _omit;
  refusedHere(await authorize(noRedirect), 'TESSERA_OAUTH_REDIRECT_URI_INVALID');
  // The registered CLI client: a loopback URI on any port (RFC 8252 §7.3), not another host.
  const cli = await authorize(good(p, { client_id: 'tessera-cli', redirect_uri: 'http://127.0.0.1:40123/callback' }));
  assert.equal(cli.status, 302);
  assert.equal(cli.location!.origin, h.op.issuer, 'off to the OpenID Provider');
  refusedHere(await authorize(good(p, { client_id: 'tessera-cli', redirect_uri: 'http://192.168.1.1:40123/callback' })), 'TESSERA_OAUTH_REDIRECT_URI_INVALID');
});

test('PKCE and response type: missing or plain challenges and other response types go back to the client with the error', async () => {
  const p = pkce();
  refusedBack(await authorize(good(p, { code_challenge_method: 'plain' })), 'invalid_request', 'TESSERA_OAUTH_PKCE_REQUIRED');
  const { code_challenge: _c, ...noChallenge } = good(p);
  void _c;
  refusedBack(await authorize(noChallenge), 'invalid_request', 'TESSERA_OAUTH_PKCE_REQUIRED');
  refusedBack(await authorize(good(p, { code_challenge: 'short' })), 'invalid_request', 'TESSERA_OAUTH_PKCE_REQUIRED');
  refusedBack(await authorize(good(p, { response_type: 'token' })), 'unsupported_response_type', 'TESSERA_OAUTH_RESPONSE_TYPE_UNSUPPORTED');
  refusedBack(await authorize(good(p, { scope: 'secret:a%2Fb' })), 'invalid_scope', 'TESSERA_OAUTH_INVALID_SCOPE');
  refusedBack(await authorize(good(p, { resource: 'https://elsewhere.example/mcp' })), 'invalid_target', 'TESSERA_OAUTH_INVALID_TARGET');
});

test('the callback: a forged or reused state is refused; a login the provider refused goes back as access_denied', async () => {
  const forged = await fetch(`${h.url}/v1/oauth/callback?state=forged-state&code=whatever`, { redirect: 'manual' });
  assert.equal(forged.status, 400);
  assert.equal(((await forged.json()) as any).code, 'TESSERA_OAUTH_STATE_INVALID');
  const p = pkce();
  const a = await authorize(good(p));
  const state = a.location!.searchParams.get('state')!;
  assert.ok(a.location!.searchParams.get('nonce'), 'a nonce is sent to the provider');
  assert.equal(a.location!.searchParams.get('code_challenge_method'), 'S256', 'and PKCE');
  const denied = await fetch(`${h.url}/v1/oauth/callback?state=${encodeURIComponent(state)}&error=access_denied`, { redirect: 'manual' });
  assert.equal(denied.status, 302);
  refusedBack({ status: 302, location: new URL(denied.headers.get('location')!) }, 'access_denied', 'TESSERA_OAUTH_LOGIN_FAILED');
  // The state is spent: a second callback with it matches nothing.
  const again = await fetch(`${h.url}/v1/oauth/callback?state=${encodeURIComponent(state)}&code=x`, { redirect: 'manual' });
  assert.equal(((await again.json()) as any).code, 'TESSERA_OAUTH_STATE_INVALID');
  // A code forged at the callback (a real state, a code the provider never issued): the exchange with the provider fails.
  const b = await authorize(good(p));
  const state2 = b.location!.searchParams.get('state')!;
  const bad = await fetch(`${h.url}/v1/oauth/callback?state=${encodeURIComponent(state2)}&code=forged-code&iss=${encodeURIComponent(h.op.issuer)}`, { redirect: 'manual' });
  refusedBack({ status: bad.status, location: new URL(bad.headers.get('location')!) }, 'access_denied', 'TESSERA_OAUTH_LOGIN_FAILED');
});

test('the token endpoint: tampered verifier, wrong redirect_uri, another client, code replay (what it yielded is revoked)', async () => {
  const p = pkce();
  const code = await codeFor('alice', p);
  const base = { grant_type: 'authorization_code', code, client_id: clientId, redirect_uri: REDIRECT, code_verifier: p.verifier };
  // Each attempt spends the code (single use): one code per refusal.
  let r = await token({ ...base, code_verifier: `${p.verifier.slice(0, -1)}${p.verifier.endsWith('A') ? 'B' : 'A'}` });
  assert.equal(r.body.code, 'TESSERA_OAUTH_PKCE_INVALID');
  assert.equal(r.body.error, 'invalid_grant');
  const c2 = await codeFor('alice', p);
  r = await token({ ...base, code: c2, redirect_uri: 'http://127.0.0.1:53682/elsewhere' });
  assert.equal(r.body.code, 'TESSERA_OAUTH_REDIRECT_URI_INVALID');
  const c3 = await codeFor('alice', p);
  r = await token({ ...base, code: c3, client_id: 'tessera-cli' });
  assert.equal(r.body.code, 'TESSERA_OAUTH_CLIENT_INVALID');
  const c4 = await codeFor('alice', p);
  const { code_verifier: _v, ...noVerifier } = { ...base, code: c4 };
  void _v;
  r = await token(noVerifier);
  assert.equal(r.body.code, 'TESSERA_OAUTH_PKCE_REQUIRED');
  r = await token({ ...base, code: 'tsr_code_unknownunknownunknownunknownunknown00' });
  assert.equal(r.body.code, 'TESSERA_OAUTH_CODE_INVALID');

  const c5 = await codeFor('alice', p);
  const ok = await token({ ...base, code: c5 });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.token_type, 'Bearer');
  assert.ok(ok.body.refresh_token);
  assert.equal((await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `Bearer ${ok.body.access_token}` } })).status, 401, 'for the gateway audience only');
  const replay = await token({ ...base, code: c5 });
  assert.equal(replay.body.code, 'TESSERA_OAUTH_CODE_INVALID');
  // What the code yielded is revoked: its refresh token and its access token.
  const refreshed = await token({ grant_type: 'refresh_token', refresh_token: ok.body.refresh_token, client_id: clientId });
  assert.equal(refreshed.body.code, 'TESSERA_OAUTH_REFRESH_INVALID');
  const intro = await fetch(`${h.url}/v1/oauth/introspect`, { method: 'POST', headers: { authorization: `Bearer ${h.tessera.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: ok.body.access_token }) });
  assert.equal(((await intro.json()) as any).active, false);
});

test('refresh: another client, a wider scope, an unknown token; an API-audience login and a narrowed refresh work', async () => {
  const p = pkce();
  const code = await codeFor('alice', p, { scope: 'tool:docs/* offline_access', resource: h.url });
  const ok = await token({ grant_type: 'authorization_code', code, client_id: clientId, redirect_uri: REDIRECT, code_verifier: p.verifier, resource: h.url });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.scope, 'tool:docs/*');
  assert.equal((await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `Bearer ${ok.body.access_token}` } })).status, 200, 'an API token');
  let r = await token({ grant_type: 'refresh_token', refresh_token: ok.body.refresh_token, client_id: 'tessera-cli' });
  assert.equal(r.body.code, 'TESSERA_OAUTH_CLIENT_INVALID');
  r = await token({ grant_type: 'refresh_token', refresh_token: ok.body.refresh_token, client_id: clientId, scope: 'tool:**/*' });
  assert.equal(r.body.code, 'TESSERA_OAUTH_INVALID_SCOPE');
  r = await token({ grant_type: 'refresh_token', refresh_token: 'tsr_refresh_notarealtokennotarealtokennotarealtok', client_id: clientId });
  assert.equal(r.body.code, 'TESSERA_OAUTH_REFRESH_INVALID');
  r = await token({ grant_type: 'refresh_token', refresh_token: ok.body.refresh_token, client_id: clientId, scope: 'tool:docs/search' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.scope, 'tool:docs/search');
});

test('DPoP (oauth4webapi): a code redeemed with a proof binds the refresh and access tokens to the key; no proof, another key, dpop_jkt or a bad proof are refused and spend nothing', async () => {
  const insecure = { [oauth.allowInsecureRequests]: true } as const;
  const issuer = new URL(h.url);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
  assert.equal(as.authorization_endpoint, `${h.url}/v1/oauth/authorize`);
  const client: oauth.Client = { client_id: clientId };
  const pair = await oauth.generateKeyPair('ES256', { extractable: true });
  const dpop = oauth.DPoP(client, pair);
  const p = pkce();
  const a = await authorize(good(p, { resource: h.url }));
  h.op.nextUser = 'alice';
  const back = await new Browser().follow(a.location!, (u) => u.href.startsWith(REDIRECT));
  const params = oauth.validateAuthResponse(as, client, back.url!, 'client-state-1'); // RFC 9207 iss checked too
  h.sensitive.add(params.get('code')!);
  const form = { grant_type: 'authorization_code', code: params.get('code')!, client_id: clientId, redirect_uri: REDIRECT, code_verifier: p.verifier, resource: h.url };
  const other = proofKey();

  // Refused before the code is used: a proof for another URL, a key named by parameter.
  const rawToken = async (f: Record<string, string>, dpopHeader?: string): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(dpopHeader ? { dpop: dpopHeader } : {}) }, body: new URLSearchParams(f) });
    const body = await res.json() as any;
    if (typeof body.access_token === 'string') h.sensitive.add(body.access_token);
    if (typeof body.refresh_token === 'string') h.sensitive.add(body.refresh_token);
    return { status: res.status, body };
  };
  let r = await rawToken(form, makeProof(other, { htm: 'POST', htu: 'http://127.0.0.1:1/v1/oauth/token' }));
  assert.equal(r.body.code, 'TESSERA_DPOP_HTU_MISMATCH', JSON.stringify(r.body));
  r = await rawToken(form, makeProof(other, { htm: 'POST', htu: `${h.url}/v1/oauth/token`, header: { alg: 'none' } }));
  assert.equal(r.body.code, 'TESSERA_DPOP_ALG_NOT_ALLOWED', JSON.stringify(r.body));
  r = await rawToken({ ...form, dpop_jkt: await thumbprint(other) });
  assert.equal(r.body.code, 'TESSERA_REQUEST_INVALID');
  assert.equal(r.body.details?.field, 'dpop_jkt');

  // The real client redeems the (unspent) code with its proof.
  const tok = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, p.verifier, { DPoP: dpop, additionalParameters: { resource: h.url }, ...insecure }));
  h.sensitive.add(tok.access_token);
  h.sensitive.add(tok.refresh_token!);
  assert.equal(tok.token_type, 'dpop');
  const jkt = await dpop.calculateThumbprint();
  assert.equal(JSON.parse(Buffer.from(tok.access_token.split('.')[1]!, 'base64url').toString()).cnf.jkt, jkt);
  const who = await oauth.protectedResourceRequest(tok.access_token, 'GET', new URL(`${h.url}/v1/whoami`), new Headers(), null, { DPoP: dpop, ...insecure });
  assert.equal(who.status, 200, 'its proofs open the API');
  const bearer = await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `Bearer ${tok.access_token}` } });
  assert.equal(bearer.status, 401);
  assert.equal(((await bearer.json()) as any).error.code, 'TESSERA_DPOP_TOKEN_BOUND');

  // The refresh token alone (copied without the key) is useless, and trying spends nothing.
  const refreshForm = { grant_type: 'refresh_token', refresh_token: tok.refresh_token!, client_id: clientId };
  r = await rawToken(refreshForm);
  assert.equal(r.body.code, 'TESSERA_OAUTH_REFRESH_KEY_MISMATCH');
  r = await rawToken(refreshForm, makeProof(other, { htm: 'POST', htu: `${h.url}/v1/oauth/token` }));
  assert.equal(r.body.code, 'TESSERA_OAUTH_REFRESH_KEY_MISMATCH');
  const next = await oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tok.refresh_token!, { DPoP: dpop, ...insecure }));
  h.sensitive.add(next.access_token);
  h.sensitive.add(next.refresh_token!);
  assert.equal(next.token_type, 'dpop');
  assert.notEqual(next.refresh_token, tok.refresh_token, 'rotated');
  assert.equal(JSON.parse(Buffer.from(next.access_token.split('.')[1]!, 'base64url').toString()).cnf.jkt, jkt, 'the refreshed access token is bound to the same key');
  const rows = await h.tessera.store.all<{ jkt: string | null }>('SELECT jkt FROM oauth_refresh_tokens WHERE family = (SELECT family FROM oauth_refresh_tokens WHERE jkt = ? LIMIT 1)', [jkt]);
  assert.ok(rows.length === 2 && rows.every((x) => x.jkt === jkt), 'the whole family is bound');

  // RFC 7009: the bound refresh token alone does not end the session either; with a proof by its key it does.
  const revokeUrl = `${h.url}/v1/oauth/revoke`;
  const revoke = async (dpopHeader?: string): Promise<{ status: number; body: any }> => {
    const res = await fetch(revokeUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(dpopHeader ? { dpop: dpopHeader } : {}) }, body: new URLSearchParams({ token: next.refresh_token!, token_type_hint: 'refresh_token' }) });
    return { status: res.status, body: await res.json() };
  };
  for (const [proof, code] of [[undefined, 'TESSERA_DPOP_PROOF_MISSING'], [makeProof(other, { htm: 'POST', htu: revokeUrl }), 'TESSERA_DPOP_KEY_MISMATCH']] as const) {
    const rr = await revoke(proof);
    assert.deepEqual({ status: rr.status, error: rr.body.error, code: rr.body.code }, { status: 400, error: 'invalid_dpop_proof', code });
  }
  assert.equal((await oauth.protectedResourceRequest(next.access_token, 'GET', new URL(`${h.url}/v1/whoami`), new Headers(), null, { DPoP: dpop, ...insecure })).status, 200, 'nothing was revoked');
  const own = { alg: 'ES256' as const, privateKey: KeyObject.from(pair.privateKey), publicJwk: (await crypto.subtle.exportKey('jwk', pair.publicKey)) as Record<string, string> };
  assert.deepEqual(await revoke(makeProof(own, { htm: 'POST', htu: revokeUrl })), { status: 200, body: {} });
  await assert.rejects(oauth.protectedResourceRequest(next.access_token, 'GET', new URL(`${h.url}/v1/whoami`), new Headers(), null, { DPoP: dpop, ...insecure }), (e: { status?: number }) => e.status === 401, 'the family and its task are revoked');
});
