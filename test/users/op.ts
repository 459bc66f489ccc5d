/**
 * A real OpenID Provider for tests: `oidc-provider` in-process on 127.0.0.1, with test accounts,
 * JWT access tokens (RFC 9068, `typ: at+jwt`) for a resource indicator, and automatic login and
 * consent through its interaction API (the test says who logs in next; no browser, no form).
 * `Browser` follows redirects with a cookie jar the way a person's browser would.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import * as client from 'openid-client';
import Provider from 'oidc-provider';

export interface Account {
  readonly email?: string;
  readonly groups?: readonly string[];
  readonly department?: string;
  /** Claims that override the account's own (e.g. drop `sub`-like claims). */
  readonly extra?: Record<string, unknown>;
}

export const ACCOUNTS: Record<string, Account> = {
  alice: { email: 'alice@example.org', groups: ['finance', 'staff'], department: 'finance' },
  bob: { email: 'bob@example.org', groups: ['staff'], department: 'support' },
  mallory: { email: 'mallory@example.org', groups: [], department: 'none' },
};

export const API_AUDIENCE = 'https://tessera.test/api';
export const AGENT_APP = { client_id: 'agent-app', client_secret: 'agent-app-secret-not-a-real-one-0123456789', redirect_uri: 'http://127.0.0.1:9/cb' };
export const TESSERA_CLIENT = { client_id: 'tessera', client_secret: 'tessera-login-secret-0123456789abcdef' };

export interface TestOp {
  readonly issuer: string;
  /** Who logs in at the next interaction. */
  nextUser: string;
  /** Counts interactions (logins and consents) driven so far. */
  interactions: number;
  close(): Promise<void>;
}

/** A free port on 127.0.0.1 (to know an issuer URL before the server starts). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function startOp(opts: { port?: number; tesseraCallback?: string; accessTokenTtl?: number } = {}): Promise<TestOp> {
  const port = opts.port ?? (await freePort());
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'op-key-1', alg: 'RS256', use: 'sig' };
  const state = { nextUser: 'alice', interactions: 0 };
  const clients: Record<string, unknown>[] = [
    { client_id: AGENT_APP.client_id, client_secret: AGENT_APP.client_secret, redirect_uris: [AGENT_APP.redirect_uri], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post' },
  ];
  if (opts.tesseraCallback) {
    clients.push({ client_id: TESSERA_CLIENT.client_id, client_secret: TESSERA_CLIENT.client_secret, redirect_uris: [opts.tesseraCallback], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post' });
  }
  const claimsOf = (id: string): Record<string, unknown> => {
    const a = ACCOUNTS[id];
    return { sub: id, ...(a?.email ? { email: a.email, email_verified: true } : {}), ...(a?.groups ? { groups: [...a.groups] } : {}), ...(a?.department ? { department: a.department } : {}), ...(a?.extra ?? {}) };
  };
  const provider = new Provider(issuer, {
    clients: clients as never,
    jwks: { keys: [jwk as never] },
    cookies: { keys: ['test-cookie-key-0123456789abcdef'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'], department: ['department'] },
    conformIdTokenClaims: false,
    findAccount: async (_ctx: unknown, id: string) => ({ accountId: id, claims: async () => claimsOf(id) }),
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => API_AUDIENCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resource: string) => ({ scope: 'api:read', audience: resource, accessTokenTTL: opts.accessTokenTtl ?? 600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
      },
    },
    extraTokenClaims: async (_ctx: unknown, token: { kind: string; accountId?: string }) => {
      if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
      const c = claimsOf(token.accountId);
      return { groups: c.groups, department: c.department, email: c.email, ...(ACCOUNTS[token.accountId]?.extra ?? {}) };
    },
    ttl: { AccessToken: opts.accessTokenTtl ?? 600, IdToken: 600, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
    pkce: { required: () => true },
  } as never);
  provider.proxy = false;

  // The interaction "page": logs in `nextUser` and consents to whatever was asked.
  const interact = async (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): Promise<void> => {
    const details = await provider.interactionDetails(req, res);
    state.interactions += 1;
    const { prompt, params } = details as unknown as { prompt: { name: string; details: Record<string, unknown> }; params: Record<string, string> };
    let result: Record<string, unknown>;
    if (prompt.name === 'login') {
      result = { login: { accountId: state.nextUser } };
    } else {
      const d = details as unknown as { grantId?: string; session?: { accountId: string } };
      const grant = d.grantId ? await provider.Grant.find(d.grantId) : new provider.Grant({ accountId: d.session!.accountId, clientId: params.client_id! });
      const pd = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (pd.missingOIDCScope) grant!.addOIDCScope(pd.missingOIDCScope.join(' '));
      if (pd.missingOIDCClaims) grant!.addOIDCClaims(pd.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(pd.missingResourceScopes ?? {})) grant!.addResourceScope(indicator, scopes.join(' '));
      result = { consent: { grantId: await grant!.save() } };
    }
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
  };
  const callback = provider.callback();
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interact(req, res).catch((e: unknown) => {
        res.statusCode = 500;
        res.end(String(e));
      });
      return;
    }
    callback(req, res);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    issuer,
    get nextUser() {
      return state.nextUser;
    },
    set nextUser(v: string) {
      state.nextUser = v;
    },
    get interactions() {
      return state.interactions;
    },
    set interactions(v: number) {
      state.interactions = v;
    },
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** Follows redirects like a browser (cookie jar per origin) until `stop` says a URL is the destination. */
export class Browser {
  private readonly jar = new Map<string, Map<string, string>>();

  private cookieHeader(url: URL): string | undefined {
    const c = this.jar.get(url.origin);
    return c && c.size ? [...c].map(([k, v]) => `${k}=${v}`).join('; ') : undefined;
  }

  private store(url: URL, headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      const jar = this.jar.get(url.origin) ?? new Map<string, string>();
      const expired = attrs.some((a) => /^\s*max-age=0/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
      this.jar.set(url.origin, jar);
    }
  }

  /**
   * GETs `start` and follows 3xx Location headers (at most 20) until `stop(url)` is true for the
   * next one: returns that URL (not fetched). A non-redirect answer before that is returned as
   * `{ status, body }`.
   */
  async follow(start: string | URL, stop: (url: URL) => boolean): Promise<{ url?: URL; status?: number; body?: string }> {
    let url = new URL(start);
    for (let i = 0; i < 20; i++) {
      if (stop(url)) return { url };
      const cookie = this.cookieHeader(url);
      const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      this.store(url, res.headers);
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        url = new URL(location, url);
        continue;
      }
      return { status: res.status, body: await res.text() };
    }
    throw new Error('too many redirects');
  }
}

/** A person's tokens from the OP with openid-client (authorization code + PKCE), as an agent's app would get them. */
export async function userTokens(op: TestOp, user: string, opts: { scope?: string; resource?: string } = {}): Promise<{ accessToken: string; idToken: string }> {
  op.nextUser = user;
  const config = await client.discovery(new URL(op.issuer), AGENT_APP.client_id, { redirect_uris: [AGENT_APP.redirect_uri] }, client.ClientSecretPost(AGENT_APP.client_secret), { execute: [client.allowInsecureRequests] });
  const verifier = client.randomPKCECodeVerifier();
  const stateValue = client.randomState();
  const nonce = client.randomNonce();
  const resource = opts.resource ?? API_AUDIENCE;
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: AGENT_APP.redirect_uri, scope: opts.scope ?? 'openid email groups department api:read', resource,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: stateValue, nonce, prompt: 'login consent',
  });
  const b = new Browser();
  const r = await b.follow(url, (u) => u.href.startsWith(AGENT_APP.redirect_uri));
  if (!r.url) throw new Error(`the OP did not redirect back: ${r.status} ${r.body?.slice(0, 300)}`);
  const tokens = await client.authorizationCodeGrant(config, r.url, { pkceCodeVerifier: verifier, expectedState: stateValue, expectedNonce: nonce, idTokenExpected: true }, { resource });
  return { accessToken: tokens.access_token, idToken: tokens.id_token! };
}
