/**
 * MCP authorization (2025-06-18 / 2025-11-25) through Tessera with the official SDK's OAuth
 * client: the gateway's 401 names its protected resource metadata (RFC 9728), whose
 * authorization server is Tessera; Tessera's RFC 8414 metadata has an authorization endpoint and
 * client ID metadata document support; the SDK's `auth()` sends the person to /authorize, which
 * federates the login to a real OpenID Provider (oidc-provider, automatic login and consent);
 * the SDK redeems the code with its PKCE verifier and then calls tools as that person, with the
 * MCP client as the acting agent. Refresh tokens rotate; a replayed one revokes its family.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { Browser } from './op.js';
import { startAsHarness, type AsHarness } from './harness.js';

let h: AsHarness;
let clientId: string;
const REDIRECT = 'http://127.0.0.1:53682/callback';

before(async () => {
  h = await startAsHarness();
  clientId = `${h.docsUrl}/mcp-client.json`;
  h.publish('mcp-client.json', { client_id: clientId, client_name: 'Test MCP client', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' });
});
after(async () => {
  await h?.close();
});

/** An MCP client's OAuth state, kept in memory (what a desktop client keeps on disk). */
class MemoryProvider implements OAuthClientProvider {
  info?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier?: string;
  authorizationUrl?: URL;
  readonly stateValue = `state-${Math.random().toString(36).slice(2)}`;
  constructor(readonly clientMetadataUrl: string, private readonly sensitive: Set<string>) {}
  get redirectUrl(): string {
    return REDIRECT;
  }
  get clientMetadata(): OAuthClientMetadata {
    return { client_name: 'Test MCP client', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  state(): string {
    return this.stateValue;
  }
  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.info;
  }
  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.info = info;
  }
  tokens(): OAuthTokens | undefined {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.saved = tokens;
    this.sensitive.add(tokens.access_token);
    if (tokens.refresh_token) this.sensitive.add(tokens.refresh_token);
  }
  redirectToAuthorization(url: URL): void {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(v: string): void {
    this.verifier = v;
  }
  codeVerifier(): string {
    return this.verifier!;
  }
}

const claimsOf = (t: string): any => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString());

/** What the person's browser does: Tessera /authorize → the OP (login + consent) → Tessera callback → the client's redirect URI. */
async function browse(url: URL, user: string): Promise<URL> {
  h.op.nextUser = user;
  const r = await new Browser().follow(url, (u) => u.href.startsWith(REDIRECT));
  assert.ok(r.url, `the login did not come back to the client: ${r.status} ${r.body?.slice(0, 300)}`);
  return r.url;
}

/** The whole SDK flow for `user`: 401 → discovery → authorize → login → code → tokens; returns a connected client. */
async function connectAs(user: string): Promise<{ client: Client; provider: MemoryProvider }> {
  const provider = new MemoryProvider(clientId, h.sensitive);
  const first = new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), { authProvider: provider });
  const client = new Client({ name: 'test', version: '1.0.0' });
  await assert.rejects(client.connect(first), (e) => e instanceof UnauthorizedError);
  assert.ok(provider.authorizationUrl, 'the SDK sent the person to the authorization endpoint');
  assert.equal(provider.authorizationUrl.origin + provider.authorizationUrl.pathname, `${h.url}/v1/oauth/authorize`);
  const back = await browse(provider.authorizationUrl, user);
  assert.equal(back.searchParams.get('state'), provider.stateValue, 'the client\'s state comes back');
  assert.equal(back.searchParams.get('iss'), h.url, 'RFC 9207 iss');
  await first.finishAuth(back.searchParams.get('code')!);
  const c = new Client({ name: 'test', version: '1.0.0' });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), { authProvider: provider }));
  return { client: c, provider };
}

test('the official SDK completes the MCP authorization flow against Tessera, federated to the OpenID Provider', async () => {
  const meta = await (await fetch(`${h.url}/.well-known/oauth-authorization-server`)).json() as Record<string, unknown>;
  assert.equal(meta.authorization_endpoint, `${h.url}/v1/oauth/authorize`);
  assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
  assert.equal(meta.client_id_metadata_document_supported, true);
  assert.ok((meta.grant_types_supported as string[]).includes('authorization_code'));

  const { client, provider } = await connectAs('alice');
  assert.equal(provider.info?.client_id, clientId, 'the client ID metadata document URL is the client_id');
  const t = provider.saved!;
  assert.ok(t.refresh_token?.startsWith('tsr_refresh_'));
  const c = claimsOf(t.access_token);
  assert.equal(c.sub, 'alice', 'the person');
  assert.match(c.act.sub, /^spiffe:\/\/tessera\.local\/oauth-client\/127\.0\.0\.1-\d+\/[0-9a-f]{16}$/, 'the MCP client acts');
  assert.deepEqual(c.tessera, { attestor: 'authorization_server', kind: 'oauth_client', attrs: { client_id: clientId } });
  assert.deepEqual(c.usr.groups, ['finance', 'staff']);
  assert.equal(c.aud, `${h.url}/mcp`);
  const names = (await client.listTools()).tools.map((x) => x.name).sort();
  assert.deepEqual(names, ['docs__read', 'docs__search', 'ledger__balance']);
  const r = await client.callTool({ name: 'ledger__balance', arguments: {} });
  assert.deepEqual(r.content, [{ type: 'text', text: 'ledger/balance ok' }]);
  await client.close();

  // Bob (staff, not finance): the client may call ledger tools, bob may not — so he does not see them.
  const bob = await connectAs('bob');
  assert.deepEqual((await bob.client.listTools()).tools.map((x) => x.name).sort(), ['docs__read', 'docs__search']);
  const denied = await bob.client.callTool({ name: 'ledger__balance', arguments: {} }).catch((e: unknown) => e);
  assert.ok(denied instanceof Error || (denied as { isError?: boolean }).isError, 'refused');
  await bob.client.close();
});

test('refresh: the SDK refreshes by itself; the token rotates; a replayed one revokes the whole family', async () => {
  const { client, provider } = await connectAs('alice');
  await client.close();
  const before = provider.saved!;
  // auth() with a refresh token refreshes without a login.
  assert.equal(await auth(provider, { serverUrl: new URL(`${h.url}/mcp`) }), 'AUTHORIZED');
  const after = provider.saved!;
  assert.notEqual(after.refresh_token, before.refresh_token, 'rotated');
  assert.notEqual(after.access_token, before.access_token);
  const c2 = new Client({ name: 'test', version: '1.0.0' });
  await c2.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), { authProvider: provider }));
  assert.ok((await c2.listTools()).tools.length > 0);
  await c2.close();

  // The old refresh token again (stolen and used by someone): refused, and the family is revoked.
  const replay = await tokenRequest({ grant_type: 'refresh_token', refresh_token: before.refresh_token!, client_id: clientId });
  assert.equal(replay.status, 400);
  assert.equal(replay.body.code, 'TESSERA_OAUTH_REFRESH_REUSED');
  const next = await tokenRequest({ grant_type: 'refresh_token', refresh_token: after.refresh_token!, client_id: clientId });
  assert.equal(next.body.code, 'TESSERA_OAUTH_REFRESH_INVALID', 'the current one is revoked with its family');
  const gw = await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `Bearer ${after.access_token}` } });
  assert.equal(gw.status, 401, 'the access tokens of the family are revoked too');
  await h.tessera.audit.flush();
  const ev = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'oauth.refresh_revoked'");
  assert.ok(ev.some((e) => JSON.parse(e.body).details.cause === 'reuse'));
  // Stored as HMACs only: no refresh token in clear anywhere in the store.
  const rows = await h.tessera.store.all<{ token_hmac: string }>('SELECT token_hmac FROM oauth_refresh_tokens');
  assert.ok(rows.length > 0 && rows.every((r) => !r.token_hmac.startsWith('tsr_')));
});

test('RFC 7009: the holder revokes a refresh token: its family and the tasks it opened end', async () => {
  const { client, provider } = await connectAs('alice');
  await client.close();
  const t = provider.saved!;
  const res = await fetch(`${h.url}/v1/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: t.refresh_token!, token_type_hint: 'refresh_token' }) });
  assert.equal(res.status, 200);
  const again = await tokenRequest({ grant_type: 'refresh_token', refresh_token: t.refresh_token!, client_id: clientId });
  assert.equal(again.body.code, 'TESSERA_OAUTH_REFRESH_INVALID');
  assert.equal((await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `Bearer ${t.access_token}` } })).status, 401);
});

test('revoke user: the person\'s MCP sessions and refreshes are refused', async () => {
  const { client, provider } = await connectAs('bob');
  await client.close();
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'user', target: 'bob' });
  assert.equal(rev.status, 201);
  assert.equal((await fetch(`${h.url}/v1/whoami`, { headers: { authorization: `Bearer ${provider.saved!.access_token}` } })).status, 401);
  const r = await tokenRequest({ grant_type: 'refresh_token', refresh_token: provider.saved!.refresh_token!, client_id: clientId });
  assert.equal(r.body.code, 'TESSERA_OAUTH_REFRESH_INVALID');
  await h.admin('DELETE', `/v1/admin/revocations/${rev.body.id}`);
});

async function tokenRequest(params: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params) });
  const body = await res.json() as any;
  if (typeof body.access_token === 'string') h.sensitive.add(body.access_token);
  if (typeof body.refresh_token === 'string') h.sensitive.add(body.refresh_token);
  return { status: res.status, body };
}
