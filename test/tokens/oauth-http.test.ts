/**
 * The token endpoints through the WHOLE server (src/main.ts via test/e2e/harness.ts) and a real
 * OAuth client library (oauth4webapi): RFC 8414 discovery, RFC 8693 token exchange, RFC 8707
 * resource indicators, RFC 6749 §5.2 errors with Tessera codes, RFC 7662 introspection, RFC 7009
 * revocation, JWKS and SPIFFE bundle, RFC 6750 §3 WWW-Authenticate, and the kill switch.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, jwtVerify, decodeJwt } from 'jose';
import { startHarness, type Harness } from '../e2e/harness.js';

const READER = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';
const OTHER = 'spiffe://tessera.local/ns/billing/sa/invoicer';
const SECRET_PATH = '/v1/secrets/healthcare/prod/agents/patient-reader/api-url';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JOIN_TYPE = 'urn:tessera:token-type:join-token';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

let h: Harness;
let as: oauth.AuthorizationServer;
const client: oauth.Client = { client_id: 'tessera-agent' };
// Loopback test server over plain HTTP; production issuers are https.
const insecure = { [oauth.allowInsecureRequests]: true } as const;

before(async () => {
  h = await startHarness();
  const issuer = new URL(h.url);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
  const put = await h.admin('PUT', `/v1/admin/secrets${SECRET_PATH.slice('/v1/secrets'.length)}`, { value: 'https://records.internal', mode: 'read' });
  assert.equal(put.status, 200, JSON.stringify(put.body));
});
after(() => h.close());

async function exchange(params: Record<string, string> | URLSearchParams): Promise<oauth.TokenEndpointResponse> {
  const res = await oauth.genericTokenEndpointRequest(as, client, oauth.None(), GRANT, params, insecure);
  const body = await oauth.processGenericTokenEndpointResponse(as, client, res);
  h.sensitive.add(body.access_token);
  return body;
}

async function loginWith(joinToken: string, extra: Record<string, string> = {}) {
  return exchange({ subject_token: joinToken, subject_token_type: JOIN_TYPE, ...extra });
}

/** The oauth4webapi error for a refused request: RFC 6749 §5.2 body, with Tessera's code. */
async function refused(p: Promise<unknown>): Promise<oauth.ResponseBodyError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof oauth.ResponseBodyError) return e;
    throw e;
  }
  throw new Error('expected the request to be refused');
}

/** A raw POST (for bodies no OAuth client would send). */
async function rawPost(path: string, body: string, contentType: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${h.url}${path}`, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) };
}
const rawToken = (body: string, contentType: string) => rawPost('/v1/oauth/token', body, contentType);

function assertOauthError(r: { status: number; headers: Headers; body: any }, status: number, error: string, code: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error, error);
  assert.equal(r.body.code, code);
  assert.equal(typeof r.body.error_description, 'string');
  assert.ok(r.body.error_description.length > 10);
  assert.equal(typeof r.body.request_id, 'string');
  assert.equal(r.headers.get('cache-control'), 'no-store');
}

const form = (o: Record<string, string>) => new URLSearchParams(o).toString();
const FORM = 'application/x-www-form-urlencoded';

test('RFC 8414 metadata: discovered by oauth4webapi, endpoints and types advertised', () => {
  assert.equal(as.issuer, h.url);
  assert.equal(as.token_endpoint, `${h.url}/v1/oauth/token`);
  assert.equal(as.jwks_uri, `${h.url}/.well-known/jwks.json`);
  assert.equal(as.introspection_endpoint, `${h.url}/v1/oauth/introspect`);
  assert.equal(as.revocation_endpoint, `${h.url}/v1/oauth/revoke`);
  assert.deepEqual(as.grant_types_supported, [GRANT]);
  assert.ok((as.subject_token_types_supported as string[]).includes(JOIN_TYPE));
  assert.ok((as.subject_token_types_supported as string[]).includes(JWT_TYPE));
  assert.ok((as.subject_token_types_supported as string[]).includes('urn:ietf:params:oauth:token-type:access_token'), 'agent and task tokens open and delegate tasks');
});

test('JWKS and SPIFFE bundle: public EC P-256 keys with kid and alg; bundle has sequence, refresh hint, use jwt-svid', async () => {
  const jwksRes = await fetch(as.jwks_uri!);
  assert.equal(jwksRes.status, 200);
  assert.match(jwksRes.headers.get('cache-control') ?? '', /max-age=\d+/);
  const jwks = (await jwksRes.json()) as { keys: Record<string, unknown>[] };
  assert.ok(jwks.keys.length >= 1);
  for (const k of jwks.keys) {
    assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.equal(k.alg, 'ES256');
    assert.equal(k.use, 'sig');
  }
  const bundle = (await (await fetch(`${h.url}/v1/bundle`)).json()) as { keys: Record<string, unknown>[]; spiffe_sequence: number; spiffe_refresh_hint: number };
  assert.ok(Number.isInteger(bundle.spiffe_sequence) && bundle.spiffe_sequence >= 1);
  assert.ok(Number.isInteger(bundle.spiffe_refresh_hint) && bundle.spiffe_refresh_hint > 0);
  assert.deepEqual(bundle.keys.map((k) => k.kid).sort(), jwks.keys.map((k) => k.kid).sort());
  for (const k of bundle.keys) {
    assert.equal(k.use, 'jwt-svid');
    assert.equal(k.d, undefined);
  }
});

test('token exchange with a join token through oauth4webapi; the token verifies with jose against jwks_uri and opens the agent API', async () => {
  const res = await loginWith(await h.joinToken(READER));
  assert.equal(res.token_type, 'bearer');
  assert.equal(res.expires_in, 300);
  assert.equal(res.issued_token_type, JWT_TYPE);
  const { payload, protectedHeader } = await jwtVerify(res.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), { issuer: h.url, audience: h.url, algorithms: ['ES256'] });
  assert.equal(protectedHeader.alg, 'ES256');
  assert.equal(payload.sub, READER);
  assert.equal((payload.exp as number) - (payload.iat as number), 300);
  assert.ok(typeof payload.jti === 'string');
  const ok = await h.agent(res.access_token, 'GET', SECRET_PATH);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
});

test('RFC 8707: resource=<url>/mcp gives an MCP-audience token the API refuses; several audiences; unknown → invalid_target', async () => {
  const mcp = await loginWith(await h.joinToken(READER), { resource: `${h.url}/mcp` });
  assert.equal(decodeJwt(mcp.access_token).aud, `${h.url}/mcp`);
  const r = await h.agent(mcp.access_token, 'GET', SECRET_PATH);
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'TESSERA_TOKEN_AUDIENCE_INVALID');

  const both = new URLSearchParams({ subject_token: await h.joinToken(READER), subject_token_type: JOIN_TYPE });
  both.append('resource', `${h.url}/mcp`);
  both.append('audience', h.url);
  const multi = await exchange(both);
  assert.deepEqual([...(decodeJwt(multi.access_token).aud as string[])].sort(), [h.url, `${h.url}/mcp`].sort());
  assert.equal((await h.agent(multi.access_token, 'GET', SECRET_PATH)).status, 200);

  for (const extra of [{ resource: 'https://evil.example/api' }, { audience: `${h.url}/other` }] as Record<string, string>[]) {
    const e = await refused(loginWith(await h.joinToken(READER), extra));
    assert.equal(e.status, 400);
    assert.equal(e.error, 'invalid_target');
    assert.equal(e.cause.code, 'TESSERA_OAUTH_INVALID_TARGET');
  }
});

test('bad token requests: RFC 6749 §5.2 shape with a stable Tessera code', async () => {
  const jt = await h.joinToken(READER);
  const good = { grant_type: GRANT, subject_token: jt, subject_token_type: JOIN_TYPE };
  // Malformed bodies.
  assertOauthError(await rawToken('{"grant_type":', 'application/json'), 400, 'invalid_request', 'TESSERA_REQUEST_MALFORMED');
  assertOauthError(await rawToken('%%%&&&===', FORM), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');
  assertOauthError(await rawToken('', FORM), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');
  // Oversized body (> server.body_limit_bytes, 64 KiB by default).
  assertOauthError(await rawToken(form({ ...good, subject_token: 'x'.repeat(70 * 1024) }), FORM), 413, 'invalid_request', 'TESSERA_REQUEST_TOO_LARGE');
  // Wrong content types: JSON (RFC 6749 §3.2 requires a form), text, unknown.
  assertOauthError(await rawToken(JSON.stringify(good), 'application/json'), 415, 'invalid_request', 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE');
  assertOauthError(await rawToken(form(good), 'text/plain'), 415, 'invalid_request', 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE');
  assertOauthError(await rawToken(form(good), 'application/xml'), 415, 'invalid_request', 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE');
  // Unknown grant type.
  assertOauthError(await rawToken(form({ ...good, grant_type: 'authorization_code' }), FORM), 400, 'unsupported_grant_type', 'TESSERA_OAUTH_UNSUPPORTED_GRANT_TYPE');
  assertOauthError(await rawToken(form({ ...good, grant_type: 'client_credentials' }), FORM), 400, 'unsupported_grant_type', 'TESSERA_OAUTH_UNSUPPORTED_GRANT_TYPE');
  // Missing parameters, each named.
  for (const missing of ['grant_type', 'subject_token', 'subject_token_type'] as const) {
    const p: Record<string, string> = { ...good };
    delete p[missing];
    const r = await rawToken(form(p), FORM);
    assertOauthError(r, 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');
    assert.match(r.body.error_description, new RegExp(missing));
  }
  // A repeated non-repeatable parameter (RFC 6749 §3.2).
  assertOauthError(await rawToken(`${form(good)}&subject_token_type=${encodeURIComponent(JWT_TYPE)}`, FORM), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');
  // An unsupported subject token type, delegation not yet offered.
  assertOauthError(await rawToken(form({ ...good, subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }), FORM), 400, 'invalid_request', 'TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE');
  assertOauthError(await rawToken(form({ ...good, actor_token: 'x', actor_token_type: JWT_TYPE }), FORM), 400, 'invalid_request', 'TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE');
  // An unknown join token.
  assertOauthError(await rawToken(form({ ...good, subject_token: 'tjt_not-a-real-join-token-value' }), FORM), 400, 'invalid_grant', 'TESSERA_JOIN_TOKEN_INVALID');
  // None of the above consumed the join token.
  assert.ok((await loginWith(jt)).access_token);
});

test('a replayed join token is refused: invalid_grant + TESSERA_JOIN_TOKEN_REUSED', async () => {
  const jt = await h.joinToken(READER);
  await loginWith(jt);
  const e = await refused(loginWith(jt));
  assert.equal(e.status, 400);
  assert.equal(e.error, 'invalid_grant');
  assert.equal(e.cause.code, 'TESSERA_JOIN_TOKEN_REUSED');
});

test('kill switch: a revoked agent\'s token is refused at once, its logins are refused until the revocation is lifted', async () => {
  const agent = 'spiffe://tessera.local/ns/healthcare/sa/killed';
  const token = (await loginWith(await h.joinToken(agent))).access_token;
  const bystander = (await loginWith(await h.joinToken(OTHER))).access_token;
  const jt = await h.joinToken(agent);
  assert.notEqual((await h.agent(token, 'GET', SECRET_PATH)).body?.error?.code, 'TESSERA_TOKEN_REVOKED');

  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: agent, reason: 'test' });
  assert.equal(rev.status, 201, JSON.stringify(rev.body));
  const r = await h.agent(token, 'GET', SECRET_PATH);
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'TESSERA_TOKEN_REVOKED');
  const e = await refused(loginWith(jt));
  assert.equal(e.error, 'invalid_grant');
  assert.equal(e.cause.code, 'TESSERA_AGENT_REVOKED');
  // The refusal says what lifts it: the revocation's id, the route, and the command for the CLI.
  assert.match(String(e.error_description), new RegExp(`revocation ${rev.body.id}\\); logins are refused until an operator lifts it: DELETE /v1/admin/revocations/${rev.body.id}`));
  assert.equal((e.cause as any).details.revocation_id, rev.body.id);
  assert.deepEqual((e.cause as any).details.next_step, { route: `DELETE /v1/admin/revocations/${rev.body.id}`, cli: `tessera revoke lift ${rev.body.id}` });
  // Other agents are unaffected.
  assert.notEqual((await h.agent(bystander, 'GET', SECRET_PATH)).body?.error?.code, 'TESSERA_TOKEN_REVOKED');

  assert.equal((await h.admin('DELETE', `/v1/admin/revocations/${rev.body.id}`)).status, 200);
  const again = await loginWith(await h.joinToken(agent));
  assert.ok(again.access_token);
  assert.notEqual((await h.agent(again.access_token, 'GET', SECRET_PATH)).status, 401);
});

test('a revocation with a short ttl expires: logins are accepted again afterwards', async () => {
  const agent = 'spiffe://tessera.local/ns/healthcare/sa/paused';
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: agent, ttl: '1s' });
  assert.equal(rev.status, 201, JSON.stringify(rev.body));
  const e = await refused(loginWith(await h.joinToken(agent)));
  assert.equal(e.cause.code, 'TESSERA_AGENT_REVOKED');
  assert.match(String(e.error_description), new RegExp(`revocation ${rev.body.id}\\); logins are refused until ${rev.body.expires_at.replace(/[.]/g, '\\.')} or until an operator lifts it`));
  await sleep(1100); // wait the ttl out (a wait, not a timing assertion)
  const jt = await h.joinToken(agent);
  assert.ok((await loginWith(jt)).access_token);
});

test('agent endpoints: missing or invalid tokens → 401 with WWW-Authenticate (RFC 6750 §3) and a stable code', async () => {
  const missing = await fetch(`${h.url}${SECRET_PATH}`);
  assert.equal(missing.status, 401);
  assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer realm="tessera"/);
  assert.equal(((await missing.json()) as any).error.code, 'TESSERA_TOKEN_MISSING');

  const good = (await loginWith(await h.joinToken(READER))).access_token;
  const [hd, pl] = good.split('.');
  const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${pl}.`;
  const cases: [string, string][] = [
    ['not-a-jwt', 'TESSERA_TOKEN_MALFORMED'],
    [none, 'TESSERA_TOKEN_ALG_NOT_ALLOWED'],
    [`${hd}.${pl}.${'A'.repeat(86)}`, 'TESSERA_TOKEN_SIGNATURE_INVALID'],
    [`${Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'gone' })).toString('base64url')}.${pl}.${good.split('.')[2]}`, 'TESSERA_TOKEN_KID_UNKNOWN'],
  ];
  for (const [token, code] of cases) {
    const res = await fetch(`${h.url}${SECRET_PATH}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 401, code);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="tessera", error="invalid_token"');
    assert.equal(((await res.json()) as any).error.code, code);
  }
});

test('admin endpoints: missing or wrong admin token → 401 TESSERA_ADMIN_TOKEN_MISSING / _INVALID; an agent token is not an admin token', async () => {
  const none = await h.agent('', 'GET', '/v1/admin/revocations');
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  const wrong = await h.agent('tsa_wrong-admin-token-value', 'GET', '/v1/admin/revocations');
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
  const agentToken = (await loginWith(await h.joinToken(READER))).access_token;
  const asAgent = await h.agent(agentToken, 'POST', '/v1/admin/join-tokens', { spiffe_id: READER, ttl: '1m' });
  assert.equal(asAgent.status, 401);
  assert.equal(asAgent.body.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
});

test('RFC 7662 introspection (admin bearer) and RFC 7009 revocation (then refused) through oauth4webapi', async () => {
  // Tessera's introspection endpoint authenticates the resource server with an admin bearer
  // token (metadata: introspection_endpoint_auth_methods_supported ["bearer"]), as a ClientAuth.
  const bearerAdmin: oauth.ClientAuth = (_as, _client, _body, headers) => headers.set('authorization', `Bearer ${h.adminToken}`);
  const adminAuth = insecure;
  const token = (await loginWith(await h.joinToken(READER))).access_token;

  const active = await oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, bearerAdmin, token, adminAuth));
  assert.equal(active.active, true);
  assert.equal(active.sub, READER);
  assert.equal(active.iss, h.url);
  assert.equal(active.jti, decodeJwt(token).jti);
  const garbage = await oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, bearerAdmin, 'garbage', adminAuth));
  assert.deepEqual(garbage, { active: false });
  // Introspection needs the admin token.
  await assert.rejects(
    oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, oauth.None(), token, insecure)),
    (e: unknown) => e instanceof oauth.WWWAuthenticateChallengeError && e.status === 401 && e.cause[0]?.scheme === 'bearer' && e.cause[0]?.parameters.error === 'invalid_token',
  );
  const anon = await rawPost('/v1/oauth/introspect', form({ token }), FORM);
  assertOauthError(anon, 401, 'invalid_token', 'TESSERA_ADMIN_TOKEN_MISSING');
  const wrongAdmin = await rawPost('/v1/oauth/introspect', form({ token }), FORM, { authorization: 'Bearer tsa_wrong' });
  assertOauthError(wrongAdmin, 401, 'invalid_token', 'TESSERA_ADMIN_TOKEN_INVALID');
  // Wrong content type on the introspection and revocation endpoints too.
  assertOauthError(await rawPost('/v1/oauth/introspect', JSON.stringify({ token }), 'application/json', { authorization: `Bearer ${h.adminToken}` }), 415, 'invalid_request', 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE');
  assertOauthError(await rawPost('/v1/oauth/revoke', JSON.stringify({ token }), 'application/json'), 415, 'invalid_request', 'TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE');
  assertOauthError(await rawPost('/v1/oauth/revoke', form({}), FORM), 400, 'invalid_request', 'TESSERA_REQUEST_INVALID');

  // The holder revokes its token (RFC 7009 §2.1); the very next request with it is refused.
  await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, oauth.None(), token, insecure));
  const r = await h.agent(token, 'GET', SECRET_PATH);
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'TESSERA_TOKEN_REVOKED');
  const after = await oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, bearerAdmin, token, adminAuth));
  assert.equal(after.active, false);
  // RFC 7009 §2.2: an invalid token still answers 200.
  await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, oauth.None(), 'not-a-token', insecure));
  // Revoking one token leaves the agent's other tokens alone.
  const other = (await loginWith(await h.joinToken(READER))).access_token;
  assert.equal((await h.agent(other, 'GET', SECRET_PATH)).status, 200);
});
