/**
 * OAuth 2.0 client credentials (RFC 6749 §4.4) for a route's `credential.oauth`: Tessera obtains
 * an access token from the upstream's authorization server with a client secret it stores, caches
 * it, and injects it as `{access_token}` (docs/proxy-providers.md "OAuth client credentials",
 * ADR 0212). Built on openid-client (oauth4webapi underneath), whose `customFetch` lets the token
 * request go through the proxy's SSRF-guarded undici dispatcher.
 *
 * - Client authentication: `client_secret_basic` (RFC 6749 §2.3.1, the method every AS must
 *   support) by default, `client_secret_post` on request.
 * - Cache: a token is reused until `expires_in` (RFC 6749 §5.1) minus a skew of 10 % of its
 *   lifetime, at least 5 s; a response without `expires_in` is reused for 60 s. Time from the
 *   injected Clock.
 * - Single flight: concurrent callers share one token request; a caller's AbortSignal stops its
 *   own wait, never the shared request (which has its own 30 s timeout). Failures are not cached:
 *   the next call asks again.
 * - Errors: the AS's error response (RFC 6749 §5.2) → 502 TESSERA_PROXY_OAUTH_FAILED with
 *   `details.error` its error code (and `details.status`); a response that is not a Bearer token
 *   response → the same code with `error: invalid_response`; no answer (connection, TLS, timeout)
 *   → 502 TESSERA_PROXY_OAUTH_UNREACHABLE. A TesseraError raised on the way (the SSRF guard
 *   refusing the address, the client secret not readable) passes through unchanged. Messages never
 *   contain the client secret, the token, or the AS's free-text `error_description`.
 */
import * as client from 'openid-client';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import type { Clock } from '../shared/clock.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';

export interface TokenSource {
  /** A valid access token; `expiresAt` in epoch milliseconds (the AS's lifetime, before skew). */
  token(signal?: AbortSignal): Promise<{ accessToken: string; expiresAt: number }>;
}

export interface ClientCredentialsConfig {
  /** The AS's token endpoint: https, or http on a loopback address only (`validateTokenUrl`). */
  readonly tokenUrl: string;
  readonly clientId: string;
  /** Reads the client secret (a kv secret) when a token is requested; never cached here. */
  readonly clientSecret: () => Promise<string>;
  /** Space-separated scopes (RFC 6749 §3.3). */
  readonly scope?: string;
  /** `audience` request parameter, for ASes that take one (Auth0, Okta-style). */
  readonly audience?: string;
  /** Client authentication (default `client_secret_basic`). */
  readonly authMethod?: 'client_secret_basic' | 'client_secret_post';
}

export interface ClientCredentialsDeps {
  readonly clock: Clock;
  /** The undici dispatcher for the token request (the SSRF guard's); default: undici's global one. */
  readonly dispatcher?: Dispatcher;
  /** Seconds before a token request is abandoned (default 30). */
  readonly timeoutSec?: number;
}

/** Lifetime assumed when the response has no `expires_in`. */
export const DEFAULT_TOKEN_LIFETIME_MS = 60_000;
export const MIN_SKEW_MS = 5_000;

const LOOPBACK = /^(?:127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)$/i;

/**
 * Why `url` cannot be a token endpoint, or undefined when it can: an absolute https URL, or http to
 * a loopback address (a client secret is never sent in clear over a network); no userinfo or
 * fragment (RFC 6749 §3.2: "MUST NOT include a fragment component").
 */
export function validateTokenUrl(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not an absolute URL';
  }
  if (u.username || u.password) return 'must not contain a user name or password';
  if (u.hash) return 'must not contain a fragment (RFC 6749 §3.2)';
  if (u.protocol === 'https:') return undefined;
  if (u.protocol === 'http:' && LOOPBACK.test(u.hostname)) return undefined;
  return u.protocol === 'http:' ? 'must use https (http only to a loopback address)' : 'must be an https URL';
}

/** An RFC 6749 §5.2 error code as received, if it is one (printable ASCII without `"` and `\`). */
function errorCode(v: unknown): string {
  return typeof v === 'string' && /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(v) ? v : 'invalid_response';
}

function describe(e: unknown, origin: string): TesseraError {
  if (isTesseraError(e)) return e;
  if (e instanceof client.ResponseBodyError) {
    const code = errorCode(e.error);
    return new TesseraError('TESSERA_PROXY_OAUTH_FAILED', `the authorization server ${origin} refused the client-credentials request: ${code}${code === 'invalid_client' ? ' (check the client id and secret)' : ''}`, { error: code, status: e.status });
  }
  // openid-client wraps some failures (ClientError with the original as `cause`): look down the chain.
  // A TesseraError anywhere down the chain (the SSRF guard refusing the address inside undici's
  // connect, under fetch's TypeError) is the precise answer.
  for (let x: unknown = e, depth = 0; x && depth < 6; x = (x as { cause?: unknown }).cause, depth++) {
    if (isTesseraError(x)) return x;
  }
  for (let x: unknown = e, depth = 0; x && depth < 6; x = (x as { cause?: unknown }).cause, depth++) {
    const name = (x as { name?: string }).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new TesseraError('TESSERA_PROXY_OAUTH_UNREACHABLE', `the token endpoint ${origin} did not answer in time`, { reason: 'timeout' });
    }
    if (x instanceof TypeError) {
      return new TesseraError('TESSERA_PROXY_OAUTH_UNREACHABLE', `the token endpoint ${origin} could not be reached`, { reason: 'network' });
    }
  }
  return new TesseraError('TESSERA_PROXY_OAUTH_FAILED', `the authorization server ${origin} did not answer with a token response`, { error: 'invalid_response' });
}

/** A caller's wait for a shared promise, ended early by its own signal. */
function withSignal<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => {
      signal.removeEventListener('abort', onAbort);
      resolve(v);
    }, (e: unknown) => {
      signal.removeEventListener('abort', onAbort);
      reject(e instanceof Error ? e : new Error(String(e)));
    });
  });
}

export function createClientCredentialsSource(cfg: ClientCredentialsConfig, deps: ClientCredentialsDeps): TokenSource {
  const problem = validateTokenUrl(cfg.tokenUrl);
  if (problem) throw new RangeError(`credential.oauth.token_url ${problem}`);
  const url = new URL(cfg.tokenUrl);
  const origin = url.origin;
  const timeoutSec = deps.timeoutSec ?? 30;
  let cached: { accessToken: string; expiresAt: number; refreshAt: number } | undefined;
  let inflight: Promise<{ accessToken: string; expiresAt: number }> | undefined;

  async function request(): Promise<{ accessToken: string; expiresAt: number }> {
    const secret = await cfg.clientSecret();
    const auth = cfg.authMethod === 'client_secret_post' ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
    // Only the token endpoint is known (no discovery): the issuer is a placeholder openid-client
    // does not check for this grant.
    const config = new client.Configuration({ issuer: origin, token_endpoint: cfg.tokenUrl }, cfg.clientId, undefined, auth);
    config.timeout = timeoutSec;
    if (url.protocol === 'http:') client.allowInsecureRequests(config);
    if (deps.dispatcher) {
      const dispatcher = deps.dispatcher;
      config[client.customFetch] = ((input: string, init: Record<string, unknown>) => undiciFetch(input, { ...init, dispatcher } as never)) as never;
    }
    const params: Record<string, string> = {};
    if (cfg.scope) params.scope = cfg.scope;
    if (cfg.audience) params.audience = cfg.audience;
    const started = deps.clock.now();
    let res: Awaited<ReturnType<typeof client.clientCredentialsGrant>>;
    try {
      res = await client.clientCredentialsGrant(config, params);
    } catch (e) {
      throw describe(e, origin);
    }
    if (typeof res.access_token !== 'string' || res.access_token.length === 0 || String(res.token_type).toLowerCase() !== 'bearer') {
      throw new TesseraError('TESSERA_PROXY_OAUTH_FAILED', `the authorization server ${origin} did not issue a Bearer access token`, { error: 'invalid_response' });
    }
    const lifetime = typeof res.expires_in === 'number' && res.expires_in > 0 ? res.expires_in * 1000 : DEFAULT_TOKEN_LIFETIME_MS;
    const expiresAt = started + lifetime;
    const skew = Math.max(MIN_SKEW_MS, lifetime / 10);
    cached = { accessToken: res.access_token, expiresAt, refreshAt: expiresAt - skew };
    return { accessToken: res.access_token, expiresAt };
  }

  return {
    token(signal) {
      const now = deps.clock.now();
      if (cached && now < cached.refreshAt) return Promise.resolve({ accessToken: cached.accessToken, expiresAt: cached.expiresAt });
      if (signal?.aborted) return withSignal(Promise.resolve({ accessToken: '', expiresAt: 0 }), signal);
      if (!inflight) {
        inflight = request().finally(() => {
          inflight = undefined;
        });
        // Every waiter may have given up (aborted): the failure is still handled.
        inflight.catch(() => undefined);
      }
      return withSignal(inflight, signal);
    },
  };
}
