/**
 * Bad forms at Tessera's authorization server, each with its exact code, over real HTTP against
 * the whole server with a real OpenID Provider behind it: parameters of /v1/oauth/authorize,
 * /v1/oauth/token (authorization_code and refresh_token grants) and /v1/oauth/callback given
 * twice (RFC 6749 §3.1), missing, over-long, with control characters, of the wrong type. A
 * repeated `resource` is refused with a clean message (it once held a NUL sentinel). A
 * credential-shaped client_id or grant is still audited as `oauth.refused`, recorded as the HMAC
 * of the value (src/audit/clear-or-hmac.ts), never lost and never in clear.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Browser } from './op.js';
import { getManual, startAsHarness, type AsHarness } from './harness.js';

let h: AsHarness;
let clientId: string;
const REDIRECT = 'http://127.0.0.1:53683/callback';
/** A JWT shape (header.payload.signature): never recorded in clear. */
const JWT_SHAPED = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNoYXBl';

before(async () => {
  h = await startAsHarness();
  clientId = h.publish('bad-form.json', { client_id: `${h.docsUrl}/bad-form.json`, redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });
});
after(async () => {
  await h?.close();
});

const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
const good = (): [string, string][] => [['response_type', 'code'], ['client_id', clientId], ['redirect_uri', REDIRECT], ['code_challenge', challenge], ['code_challenge_method', 'S256'], ['state', 'client-state-9']];

/** Replaces (or, with `add`, appends) parameters of a list. */
function withParams(base: [string, string][], over: [string, string | undefined][], add: [string, string][] = []): [string, string][] {
  const keys = new Set(over.map(([k]) => k));
  return [...base.filter(([k]) => !keys.has(k)), ...over.filter((p): p is [string, string] => p[1] !== undefined), ...add];
}

async function authorize(params: [string, string][]): Promise<{ status: number; location?: URL; body?: any }> {
  const u = new URL(`${h.url}/v1/oauth/authorize`);
  for (const [k, v] of params) u.searchParams.append(k, v);
  return getManual(u);
}

async function token(params: [string, string][] | string, contentType = 'application/x-www-form-urlencoded'): Promise<{ status: number; body: any }> {
  const body = typeof params === 'string' ? params : new URLSearchParams(params).toString();
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': contentType }, body });
  const json = (await res.json()) as any;
  for (const k of ['access_token', 'refresh_token']) if (typeof json[k] === 'string') h.sensitive.add(json[k]);
  return { status: res.status, body: json };
}

async function callback(query: string): Promise<{ status: number; location?: URL; body?: any }> {
  return getManual(`${h.url}/v1/oauth/callback${query}`);
}

function refusedHere(name: string, r: { status: number; body?: any; location?: URL }, code: string, field?: string): void {
  assert.equal(r.location, undefined, `${name}: never redirected (${r.location?.href})`);
  assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.code, code, `${name}: ${JSON.stringify(r.body)}`);
  if (field !== undefined) assert.equal(r.body.details?.field, field, `${name}: ${JSON.stringify(r.body)}`);
  assert.ok(!JSON.stringify(r.body).includes('\\u0000'), `${name}: no NUL in the answer`);
}

function refusedBack(name: string, r: { status: number; location?: URL }, error: string, code: string, state: string | null = 'client-state-9'): URL {
  assert.equal(r.status, 302, name);
  assert.equal(r.location!.origin + r.location!.pathname, REDIRECT, `${name}: back to the registered redirect URI`);
  assert.equal(r.location!.searchParams.get('error'), error, `${name}: ${r.location!.href}`);
  assert.equal(r.location!.searchParams.get('tessera_code'), code, `${name}: ${r.location!.href}`);
  assert.equal(r.location!.searchParams.get('state'), state, name);
  assert.equal(r.location!.searchParams.get('iss'), h.url, name);
  return r.location!;
}

async function refusalEvents(): Promise<any[]> {
  await h.tessera.audit.flush();
  return (await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'oauth.refused' ORDER BY seq")).map((r) => JSON.parse(r.body));
}

test('/authorize: a parameter given twice, missing, over-long or with control characters — refused here (client, redirect URI, form) or back at the client, each with its code', async () => {
  const here: [string, [string, string][], string, string?][] = [
    ['client_id twice', withParams(good(), [], [['client_id', clientId]]), 'TESSERA_REQUEST_INVALID', 'client_id'],
    ['redirect_uri twice', withParams(good(), [], [['redirect_uri', REDIRECT]]), 'TESSERA_REQUEST_INVALID', 'redirect_uri'],
    ['state twice', withParams(good(), [], [['state', 'other']]), 'TESSERA_REQUEST_INVALID', 'state'],
    ['code_challenge twice', withParams(good(), [], [['code_challenge', challenge]]), 'TESSERA_REQUEST_INVALID', 'code_challenge'],
    ['client_id missing', withParams(good(), [['client_id', undefined]]), 'TESSERA_REQUEST_INVALID', 'client_id'],
    ['client_id empty', withParams(good(), [['client_id', '']]), 'TESSERA_REQUEST_INVALID', 'client_id'],
    ['client_id over-long', withParams(good(), [['client_id', `https://a.example/${'x'.repeat(2048)}`]]), 'TESSERA_REQUEST_INVALID', 'client_id'],
    ['client_id with control characters', withParams(good(), [['client_id', 'tessera-cli\r\nx']]), 'TESSERA_OAUTH_CLIENT_INVALID'],
    ['state over-long', withParams(good(), [['state', 's'.repeat(1025)]]), 'TESSERA_REQUEST_INVALID', 'state'],
    ['redirect_uri over-long', withParams(good(), [['redirect_uri', `${REDIRECT}?${'x'.repeat(2048)}`]]), 'TESSERA_REQUEST_INVALID', 'redirect_uri'],
    ['redirect_uri missing', withParams(good(), [['redirect_uri', undefined]]), 'TESSERA_OAUTH_REDIRECT_URI_INVALID'],
    ['redirect_uri with control characters', withParams(good(), [['redirect_uri', `${REDIRECT}\n`]]), 'TESSERA_OAUTH_REDIRECT_URI_INVALID'],
    ['five resources', withParams(good(), [], [1, 2, 3, 4, 5].map((i) => ['resource', `${h.url}/mcp${i}`] as [string, string])), 'TESSERA_REQUEST_INVALID', 'resource'],
  ];
  for (const [name, params, code, field] of here) refusedHere(name, await authorize(params), code, field);

  const back: [string, [string, string][], string, string, (string | null)?][] = [
    ['resource twice', withParams(good(), [], [['resource', `${h.url}/mcp`], ['resource', h.url]]), 'invalid_target', 'TESSERA_OAUTH_INVALID_TARGET'],
    ['resource unknown', withParams(good(), [['resource', 'https://elsewhere.example/api']]), 'invalid_target', 'TESSERA_OAUTH_INVALID_TARGET'],
    ['state with control characters (not echoed back)', withParams(good(), [['state', 'a\u0001b']]), 'invalid_request', 'TESSERA_REQUEST_INVALID', null],
    ['scope with control characters', withParams(good(), [['scope', 'tool:docs/search\u0007']]), 'invalid_scope', 'TESSERA_OAUTH_INVALID_SCOPE'],
    ['code_challenge_method missing', withParams(good(), [['code_challenge_method', undefined]]), 'invalid_request', 'TESSERA_OAUTH_PKCE_REQUIRED'],
    ['code_challenge over-long', withParams(good(), [['code_challenge', 'c'.repeat(44)]]), 'invalid_request', 'TESSERA_OAUTH_PKCE_REQUIRED'],
    ['response_type missing', withParams(good(), [['response_type', undefined]]), 'unsupported_response_type', 'TESSERA_OAUTH_RESPONSE_TYPE_UNSUPPORTED'],
  ];
  for (const [name, params, error, code, state] of back) {
    const at = refusedBack(name, await authorize(params), error, code, state === undefined ? 'client-state-9' : state);
    assert.ok(!(at.searchParams.get('error_description') ?? '').includes('\u0000'), `${name}: a clean message`);
  }
  const twice = refusedBack('resource twice', await authorize(withParams(good(), [], [['resource', `${h.url}/mcp`], ['resource', h.url]])), 'invalid_target', 'TESSERA_OAUTH_INVALID_TARGET');
  assert.match(twice.searchParams.get('error_description')!, /^resource is given 2 times; this server issues a token for one resource/);
});

test('a credential-shaped client_id is refused and still audited as oauth.refused, recorded as the HMAC of the value (at /authorize and /token)', async () => {
  const before = (await refusalEvents()).length;
  refusedHere('JWT-shaped client_id', await authorize(withParams(good(), [['client_id', JWT_SHAPED]])), 'TESSERA_OAUTH_CLIENT_INVALID');
  const tsrShaped = `tsr_refresh_${'A'.repeat(43)}`;
  const t = await token([['grant_type', 'authorization_code'], ['code', 'tsr_code_unknown'], ['redirect_uri', REDIRECT], ['client_id', tsrShaped], ['code_verifier', 'v'.repeat(43)]]);
  assert.equal(t.status, 400, JSON.stringify(t.body));
  const events = (await refusalEvents()).slice(before);
  const hmacs = events.map((e) => e.details.client_id);
  assert.ok(hmacs.includes(`hmac:${h.tessera.audit.hmac(JWT_SHAPED)}`), JSON.stringify(events));
  assert.ok(hmacs.includes(`hmac:${h.tessera.audit.hmac(tsrShaped)}`), JSON.stringify(events));
  const all = JSON.stringify(events);
  assert.ok(!all.includes(JWT_SHAPED) && !all.includes(tsrShaped), 'never in clear');
  // An ordinary refused client_id stays readable.
  refusedHere('unknown client_id', await authorize(withParams(good(), [['client_id', 'no-such-client']])), 'TESSERA_OAUTH_CLIENT_INVALID');
  assert.equal((await refusalEvents()).at(-1).details.client_id, 'no-such-client');
});

test('/token (authorization_code, refresh_token): a parameter given twice, missing, over-long, with control characters, of the wrong type — each with its code, nothing issued', async () => {
  const code: [string, string][] = [['grant_type', 'authorization_code'], ['code', 'tsr_code_not-a-real-one'], ['redirect_uri', REDIRECT], ['client_id', clientId], ['code_verifier', 'v'.repeat(43)]];
  const refresh: [string, string][] = [['grant_type', 'refresh_token'], ['refresh_token', 'tsr_refresh_not-a-real-one'], ['client_id', clientId]];
  const cases: [string, [string, string][], string, string?][] = [
    ['grant_type twice', withParams(code, [], [['grant_type', 'authorization_code']]), 'TESSERA_REQUEST_INVALID', 'grant_type'],
    ['code twice', withParams(code, [], [['code', 'tsr_code_other']]), 'TESSERA_REQUEST_INVALID', 'code'],
    ['client_id twice', withParams(code, [], [['client_id', clientId]]), 'TESSERA_REQUEST_INVALID', 'client_id'],
    ['code_verifier twice', withParams(code, [], [['code_verifier', 'w'.repeat(43)]]), 'TESSERA_REQUEST_INVALID', 'code_verifier'],
    ['code missing', withParams(code, [['code', undefined]]), 'TESSERA_REQUEST_INVALID', 'code'],
    ['redirect_uri missing', withParams(code, [['redirect_uri', undefined]]), 'TESSERA_REQUEST_INVALID', 'redirect_uri'],
    ['client_id missing', withParams(code, [['client_id', undefined]]), 'TESSERA_REQUEST_INVALID', 'client_id'],
    ['code over-long', withParams(code, [['code', `tsr_code_${'x'.repeat(300)}`]]), 'TESSERA_REQUEST_INVALID', 'code'],
    ['code_verifier over-long', withParams(code, [['code_verifier', 'v'.repeat(257)]]), 'TESSERA_REQUEST_INVALID', 'code_verifier'],
    ['code with control characters', withParams(code, [['code', 'tsr_code_\u0000\u001b']]), 'TESSERA_OAUTH_CODE_INVALID'],
    ['refresh_token twice', withParams(refresh, [], [['refresh_token', 'tsr_refresh_other']]), 'TESSERA_REQUEST_INVALID', 'refresh_token'],
    ['refresh scope twice', withParams(refresh, [], [['scope', 'tool:docs/search'], ['scope', 'tool:docs/read']]), 'TESSERA_REQUEST_INVALID', 'scope'],
    ['refresh_token missing', withParams(refresh, [['refresh_token', undefined]]), 'TESSERA_REQUEST_INVALID', 'refresh_token'],
    ['refresh_token over-long', withParams(refresh, [['refresh_token', `tsr_refresh_${'x'.repeat(300)}`]]), 'TESSERA_REQUEST_INVALID', 'refresh_token'],
    ['refresh_token with control characters', withParams(refresh, [['refresh_token', 'tsr_refresh_\u0007']]), 'TESSERA_OAUTH_REFRESH_INVALID'],
    ['token exchange: subject_token twice', [['grant_type', 'urn:ietf:params:oauth:grant-type:token-exchange'], ['subject_token', 'a'], ['subject_token', 'b'], ['subject_token_type', 'urn:ietf:params:oauth:token-type:access_token']], 'TESSERA_REQUEST_INVALID', 'subject_token'],
  ];
  for (const [name, params, expected, field] of cases) {
    const r = await token(params);
    assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, expected, `${name}: ${JSON.stringify(r.body)}`);
    if (field !== undefined) assert.equal(r.body.details?.field, field, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.access_token, undefined, name);
    assert.ok(!JSON.stringify(r.body).includes('\\u0000'), `${name}: no NUL in the answer`);
  }
  // A real code redeemed with resource given twice: a clean refusal (it once held a NUL sentinel).
  const verifier = randomBytes(32).toString('base64url');
  const a = await authorize(withParams(good(), [['code_challenge', createHash('sha256').update(verifier).digest('base64url')]]));
  assert.equal(a.status, 302);
  h.op.nextUser = 'bob';
  const back = await new Browser().follow(a.location!, (u) => u.href.startsWith(REDIRECT));
  const real = back.url?.searchParams.get('code');
  assert.ok(real, `${back.status} ${back.body?.slice(0, 200)}`);
  h.sensitive.add(real);
  const twice = await token([['grant_type', 'authorization_code'], ['code', real], ['redirect_uri', REDIRECT], ['client_id', clientId], ['code_verifier', verifier], ['resource', `${h.url}/mcp`], ['resource', h.url]]);
  assert.equal(twice.status, 400, JSON.stringify(twice.body));
  assert.equal(twice.body.code, 'TESSERA_OAUTH_INVALID_TARGET');
  assert.match(twice.body.error_description, /^resource is given 2 times; this server issues a token for one resource/);
  assert.equal(twice.body.access_token, undefined);

  // Wrong types can only come in a JSON body, which the token endpoint refuses as such (RFC 6749 §3.2: form only).
  for (const [name, body] of [
    ['code as a number', { grant_type: 'authorization_code', code: 42, redirect_uri: REDIRECT, client_id: clientId }],
    ['client_id as an object', { grant_type: 'authorization_code', code: 'tsr_code_x', redirect_uri: REDIRECT, client_id: { a: 1 } }],
    ['refresh_token as null', { grant_type: 'refresh_token', refresh_token: null, client_id: clientId }],
  ] as const) {
    const r = await token(JSON.stringify(body), 'application/json');
    assert.equal(r.status, 415, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE', name);
  }
});

test('/callback: state missing, twice, over-long, with control characters; a genuine callback with a parameter added twice is refused without using up the login, which then completes', async () => {
  for (const [name, query, code, field] of [
    ['no state', '?code=x', 'TESSERA_OAUTH_STATE_INVALID'],
    ['state twice', '?state=a&state=b&code=x', 'TESSERA_REQUEST_INVALID', 'state'],
    ['state over-long', `?state=${'s'.repeat(300)}&code=x`, 'TESSERA_OAUTH_STATE_INVALID'],
    ['state with control characters', '?state=%00%1b%5B2J&code=x', 'TESSERA_OAUTH_STATE_INVALID'],
    ['unknown state', '?state=not-a-login&code=x', 'TESSERA_OAUTH_STATE_INVALID'],
  ] as const) {
    refusedHere(name, await callback(query), code, field);
  }
  const a = await authorize(good());
  assert.equal(a.status, 302);
  h.op.nextUser = 'alice';
  const browser = new Browser();
  const atCallback = await browser.follow(a.location!, (u) => u.pathname === '/v1/oauth/callback');
  assert.ok(atCallback.url, `${atCallback.status} ${atCallback.body?.slice(0, 200)}`);
  const genuine = atCallback.url;
  for (const k of ['code', 'state', 'iss']) {
    const twice = new URL(genuine);
    twice.searchParams.append(k, genuine.searchParams.get(k) ?? 'x');
    refusedHere(`${k} twice at the callback`, await callback(twice.search), 'TESSERA_REQUEST_INVALID', k);
  }
  const done = await callback(genuine.search);
  assert.equal(done.status, 302, JSON.stringify(done.body));
  assert.equal(done.location!.origin + done.location!.pathname, REDIRECT);
  assert.match(done.location!.searchParams.get('code') ?? '', /^tsr_code_/);
  h.sensitive.add(done.location!.searchParams.get('code')!);
});
