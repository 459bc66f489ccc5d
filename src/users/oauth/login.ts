/**
 * The federated login: Tessera is an OpenID Connect client of the configured provider
 * (`users.authorization_server.login_issuer`), with openid-client (ADR 0131): authorization code
 * + PKCE (RFC 7636 S256) to the provider, `state` and `nonce` checked, the ID token verified
 * (issuer, audience = Tessera's client id, signature, times, nonce) by openid-client.
 *
 * Nothing secret is stored per login: the PKCE verifier and the nonce are derived from the
 * random `state` with a keyed HMAC (domain-separated), and the row of the login is keyed by an
 * HMAC of the state too (store.ts).
 */
import { readConfigFile } from '../../config/check.js';
import * as client from 'openid-client';
import { fail, isTesseraError, TesseraError } from '../../shared/errors.js';
import type { UserIssuerConfig } from '../config.js';
import { isLoopbackHost } from '../config.js';

export interface FederatedLogin {
  /** The provider's authorization URL for a login with this state (RFC 6749 §4.1.1). */
  authorizationUrl(state: string): Promise<URL>;
  /**
   * Finishes the login from the callback URL: checks state, exchanges the code with the PKCE
   * verifier, verifies the ID token and its nonce. Returns the ID token's claims. Throws
   * TESSERA_OAUTH_LOGIN_FAILED (with `details.cause`) or TESSERA_USER_JWKS_UNAVAILABLE.
   */
  finish(callbackUrl: URL, state: string): Promise<Record<string, unknown>>;
}

export interface FederatedLoginDeps {
  readonly issuer: UserIssuerConfig;
  /** Tessera's callback: `<public url>/v1/oauth/callback` (registered at the provider). */
  readonly redirectUri: string;
  /** Keyed HMAC (AuditWriter.hmac): derives the PKCE verifier and nonce from the state. */
  readonly hmac: (value: string) => string;
  readonly env?: NodeJS.ProcessEnv;
  readonly fetch?: typeof fetch;
}

export function createFederatedLogin(deps: FederatedLoginDeps): FederatedLogin {
  const login = deps.issuer.login;
  if (!login) throw new TesseraError('TESSERA_CONFIG_INVALID', `users.issuers "${deps.issuer.name}" has no login block`);
  let config: Promise<client.Configuration> | undefined;

  // The client secret is resolved once, here (at start): a missing, unreadable or empty one is a
  // configuration error then, never a 500 at someone's first login nor a silent switch to a
  // public client.
  const clientSecret = resolveClientSecret(deps.issuer.name, login, deps.env ?? process.env);

  function configuration(): Promise<client.Configuration> {
    if (!config) {
      const s = clientSecret;
      const insecure = new URL(deps.issuer.issuer).protocol === 'http:' && isLoopbackHost(new URL(deps.issuer.issuer).hostname);
      config = client.discovery(new URL(deps.issuer.issuer), login!.client_id, { redirect_uris: [deps.redirectUri], response_types: ['code'] }, s ? client.ClientSecretPost(s) : client.None(), {
        ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
        ...(deps.fetch ? { [client.customFetch]: deps.fetch as unknown as client.CustomFetch } : {}),
        timeout: 5,
      }).catch((e: unknown) => {
        config = undefined; // retried on the next login
        throw fail('TESSERA_USER_JWKS_UNAVAILABLE', `the OpenID Provider "${deps.issuer.name}" could not be discovered: ${(e as Error).message.slice(0, 200)}`, { issuer: deps.issuer.name });
      });
    }
    return config;
  }

  const verifierOf = (state: string): string => deps.hmac(`oidc-login-pkce:${state}`);
  const nonceOf = (state: string): string => deps.hmac(`oidc-login-nonce:${state}`);

  return {
    async authorizationUrl(state) {
      const c = await configuration();
      const scopes = new Set(['openid', ...login.scopes]);
      return client.buildAuthorizationUrl(c, {
        redirect_uri: deps.redirectUri,
        scope: [...scopes].join(' '),
        state,
        nonce: nonceOf(state),
        code_challenge: await client.calculatePKCECodeChallenge(verifierOf(state)),
        code_challenge_method: 'S256',
      });
    },
    async finish(callbackUrl, state) {
      const c = await configuration();
      try {
        const tokens = await client.authorizationCodeGrant(c, callbackUrl, { pkceCodeVerifier: verifierOf(state), expectedState: state, expectedNonce: nonceOf(state), idTokenExpected: true });
        const claims = tokens.claims();
        if (!claims) throw new Error('the provider returned no ID token');
        return { ...claims } as Record<string, unknown>;
      } catch (e) {
        if (isTesseraError(e)) throw e;
        const err = e as { code?: string; error?: string; message?: string };
        throw fail('TESSERA_OAUTH_LOGIN_FAILED', `the login at "${deps.issuer.name}" failed: ${(err.error ?? err.message ?? 'error').slice(0, 200)}`, { cause: err.code ?? err.error ?? 'error', issuer: deps.issuer.name });
      }
    },
  };
}

/** `login.client_secret_env` / `client_secret_file` → the secret (trimmed), or undefined for a public client. TESSERA_CONFIG_INVALID names the key. */
function resolveClientSecret(issuer: string, login: { client_secret_env?: string | undefined; client_secret_file?: string | undefined }, env: NodeJS.ProcessEnv): string | undefined {
  const at = `users.issuers "${issuer}".login`;
  if (login.client_secret_env) {
    const v = env[login.client_secret_env]?.trim();
    if (!v) throw fail('TESSERA_CONFIG_INVALID', `${at}.client_secret_env: ${login.client_secret_env} is not set or is empty`);
    return v;
  }
  // The check `tessera config validate` makes: missing, a directory, unreadable or empty.
  if (login.client_secret_file) return readConfigFile(`${at}.client_secret_file`, login.client_secret_file, 'secret').trim();
  return undefined;
}
