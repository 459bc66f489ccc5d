/**
 * Console sign-in with an OpenID Provider (`console.oidc`; docs/console.md "Signing in",
 * ADR 0237): authorization code + PKCE (RFC 7636, S256) + `state` + `nonce`, with openid-client.
 *
 * `state` is 256 bits of randomness; the row of a sign-in in progress is keyed by its SHA-256 and
 * taken (deleted) by the first callback, so a callback works once. The PKCE verifier and the
 * nonce are derived from the state (HMAC-SHA256 keyed with it, domain-separated): the row holds
 * no secret. The sign-in is bound to the browser that started it by a second cookie (its SHA-256
 * in the row), so a callback URL from another browser's sign-in (login CSRF) is refused.
 */
import { randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import { readConfigFile } from '../config/check.js';
import { constantTimeEqual, hmacSha256, sha256Hex } from '../shared/crypto.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import { isLoopbackHost } from '../users/config.js';
import type { ConsoleOidcConfig } from './config.js';
import { displayNameOf, roleOf } from './roles.js';
import type { ConsoleOperator } from './sessions.js';
import { insertOidcLogin, takeOidcLogin } from './store.js';

/** How long a sign-in at the provider may take, from /login to /callback. */
export const OIDC_LOGIN_TTL_MS = 10 * 60_000;

export interface ConsoleOidc {
  /** Starts a sign-in: the provider's authorization URL and the browser-binding cookie value. Throws 503 TESSERA_CONSOLE_OIDC_UNAVAILABLE. */
  begin(): Promise<{ url: URL; binding: string }>;
  /**
   * Finishes a sign-in from the callback's query string (`?state=…&code=…`) and the binding
   * cookie (undefined when absent):
   * the operator it maps to. Throws 400 TESSERA_CONSOLE_OIDC_FAILED (`details.cause`),
   * 403 TESSERA_CONSOLE_NO_ROLE, 503 TESSERA_CONSOLE_OIDC_UNAVAILABLE.
   */
  finish(query: string, binding: string | undefined): Promise<ConsoleOperator>;
}

export interface ConsoleOidcDeps {
  readonly config: ConsoleOidcConfig;
  /** `console.oidc.redirect_uri`, or `<public url>/v1/console/oidc/callback`. */
  readonly redirectUri: string;
  readonly store: Store;
  readonly clock: Clock;
  readonly env?: NodeJS.ProcessEnv;
}

const derive = (state: string, label: string): string => hmacSha256(Buffer.from(state, 'utf8'), `tessera console oidc ${label}`).toString('base64url');
const STATE = /^[A-Za-z0-9_-]{43}$/;

const failed = (cause: string, message: string): TesseraError => new TesseraError('TESSERA_CONSOLE_OIDC_FAILED', `the sign-in with the OpenID Provider failed: ${message}; start again from the console's sign-in page`, { cause });

export function createConsoleOidc(deps: ConsoleOidcDeps): ConsoleOidc {
  const { config: oidc, store, clock } = deps;
  const issuerUrl = new URL(oidc.issuer);
  const clientSecret = resolveClientSecret(oidc, deps.env ?? process.env);
  let configuration: Promise<client.Configuration> | undefined;

  const unavailable = (e: unknown): TesseraError => new TesseraError('TESSERA_CONSOLE_OIDC_UNAVAILABLE', `the OpenID Provider ${issuerUrl.origin} could not be reached or answered wrongly (${((e as Error).message ?? 'error').slice(0, 160)}); retry later, or sign in with an operator token`, { issuer: issuerUrl.origin, retry_after_s: 30 });

  function discovered(): Promise<client.Configuration> {
    if (!configuration) {
      const insecure = issuerUrl.protocol === 'http:' && isLoopbackHost(issuerUrl.hostname);
      configuration = client.discovery(issuerUrl, oidc.client_id, { redirect_uris: [deps.redirectUri], response_types: ['code'] }, clientSecret ? client.ClientSecretPost(clientSecret) : client.None(), {
        ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
        timeout: 5,
      }).catch((e: unknown) => {
        configuration = undefined; // retried at the next sign-in
        throw unavailable(e);
      });
    }
    return configuration;
  }

  return {
    async begin() {
      const c = await discovered();
      const state = randomBytes(32).toString('base64url');
      const binding = randomBytes(32).toString('base64url');
      const now = clock.now();
      await insertOidcLogin(store, { state_hash: sha256Hex(state), binding_hash: sha256Hex(binding), created_at: now, expires_at: now + OIDC_LOGIN_TTL_MS });
      const url = client.buildAuthorizationUrl(c, {
        redirect_uri: deps.redirectUri,
        scope: [...new Set(['openid', ...oidc.scopes])].join(' '),
        state,
        nonce: derive(state, 'nonce'),
        code_challenge: await client.calculatePKCECodeChallenge(derive(state, 'pkce')),
        code_challenge_method: 'S256',
      });
      return { url, binding };
    },

    async finish(query, binding) {
      // The callback URL as registered (openid-client sends it as the token request's redirect_uri), with the query received.
      const callbackUrl = new URL(deps.redirectUri);
      callbackUrl.search = query;
      const state = callbackUrl.searchParams.get('state');
      if (state === null || !STATE.test(state)) throw failed('state_invalid', 'the callback carries no state Tessera issued');
      const row = await takeOidcLogin(store, sha256Hex(state));
      if (!row) throw failed('state_unknown', 'this sign-in is unknown or was already used (a callback works once)');
      if (clock.now() > row.expires_at) throw failed('state_expired', `the sign-in took longer than ${OIDC_LOGIN_TTL_MS / 60_000} minutes`);
      if (binding === undefined || !constantTimeEqual(sha256Hex(binding), row.binding_hash)) throw failed('browser_mismatch', 'the callback reached a different browser than the one that started the sign-in');
      const c = await discovered();
      let claims: Record<string, unknown>;
      try {
        const tokens = await client.authorizationCodeGrant(c, callbackUrl, { pkceCodeVerifier: derive(state, 'pkce'), expectedState: state, expectedNonce: derive(state, 'nonce'), idTokenExpected: true });
        const idClaims = tokens.claims();
        if (!idClaims) throw failed('no_id_token', 'the provider returned no ID token');
        claims = { ...idClaims } as Record<string, unknown>;
      } catch (e) {
        if (isTesseraError(e)) throw e;
        if (isNetworkError(e)) throw unavailable(e);
        const err = e as { code?: string; error?: string; message?: string };
        const name = failedClaimOf(e);
        const claim = name ? ` (claim "${name}")` : '';
        throw failed(String(err.error ?? err.code ?? 'error').slice(0, 64), `${(err.error ?? err.message ?? 'error').slice(0, 200)}${claim}`);
      }
      const role = roleOf(claims, oidc.roles);
      const sub = typeof claims.sub === 'string' ? claims.sub : '';
      const name = displayNameOf(claims);
      if (!role) {
        throw new TesseraError('TESSERA_CONSOLE_NO_ROLE', `${name} signed in at the OpenID Provider, but no console.oidc.roles rule gives this identity a role; an operator must add a rule for it`, { subject: sub.slice(0, 256) });
      }
      return { id: `oidc:${issuerUrl.host}:${sub}`.slice(0, 512), name, role };
    },
  };
}

/** The claim whose check failed (`nonce`, `iss`, `aud` …; oauth4webapi puts it in the cause chain): its name only, never a value. */
function failedClaimOf(e: unknown): string | undefined {
  let c: unknown = e;
  for (let i = 0; i < 4 && c !== null && typeof c === 'object'; i++) {
    const claim = (c as { claim?: unknown }).claim;
    if (typeof claim === 'string' && /^[a-z_]{1,32}$/.test(claim)) return claim;
    c = (c as { cause?: unknown }).cause;
  }
  return undefined;
}

/** fetch's network failures (TypeError "fetch failed", an abort on timeout): the provider is down, not the sign-in wrong. */
function isNetworkError(e: unknown): boolean {
  if (e instanceof TypeError) return true;
  const err = e as { name?: string; cause?: unknown };
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return true;
  return err.cause !== undefined && err.cause !== e && isNetworkError(err.cause);
}

/** `client_secret_env` / `client_secret_file` → the secret (trimmed), or undefined for a public client. TESSERA_CONFIG_INVALID names the key. */
function resolveClientSecret(oidc: ConsoleOidcConfig, env: NodeJS.ProcessEnv): string | undefined {
  if (oidc.client_secret_env) {
    const v = env[oidc.client_secret_env]?.trim();
    if (!v) throw new TesseraError('TESSERA_CONFIG_INVALID', `console.oidc.client_secret_env: ${oidc.client_secret_env} is not set or is empty`);
    return v;
  }
  if (oidc.client_secret_file) return readConfigFile('console.oidc.client_secret_file', oidc.client_secret_file, 'secret').trim();
  return undefined;
}
