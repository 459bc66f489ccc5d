/**
 * Verifying a person's token from a trusted OpenID Provider (`users.issuers`, docs/users.md).
 *
 * Order (RFC 8725 §3): the unverified `iss` only selects the configured issuer (an unknown one is
 * refused before any key is fetched); then jose checks the signature with that issuer's JWKS and
 * the algorithm allow-list, `iss`, `aud`, `exp`/`nbf`/`iat` (with the clock skew) and `max_age`;
 * then the token kind is pinned — an RFC 9068 JWT access token has `typ: at+jwt` (§2.1, §4), an
 * ID token (OpenID Connect Core §2) has not — against the issuer's `token` setting and the
 * `subject_token_type` the client declared; finally the claims are mapped (identity.ts).
 */
import { createRemoteJWKSet, customFetch, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../shared/clock.js';
import { TesseraError, fail, isTesseraError } from '../shared/errors.js';
import type { UserIssuerConfig } from './config.js';
import { mapUserClaims, type UserIdentity } from './identity.js';

/** RFC 8693 §3 token type identifiers a user token may be declared as. */
export const TOKEN_TYPE_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export type UserTokenKind = 'access_token' | 'id_token';

export interface VerifiedUserToken {
  readonly identity: UserIdentity;
  readonly kind: UserTokenKind;
  readonly issuer: UserIssuerConfig;
  /** `exp` in epoch ms, shortened by `max_age` from `iat` when configured. */
  readonly expiresAt: number;
}

export interface UserTokenVerifier {
  /** The configured issuer this token claims (unverified `iss`; for routing and precise refusals only). */
  issuerOf(token: string): UserIssuerConfig | undefined;
  /**
   * Verifies a user token. `declared` is the RFC 8693 `subject_token_type`. Throws
   * TESSERA_USER_ISSUER_UNTRUSTED, _TOKEN_INVALID, _TOKEN_EXPIRED, _AUDIENCE_INVALID,
   * _TOKEN_TYPE_INVALID, _CLAIM_MISSING, _CLAIM_INVALID, or _JWKS_UNAVAILABLE (503).
   */
  verify(token: string, declared: string): Promise<VerifiedUserToken>;
}

export interface UserTokenVerifierDeps {
  readonly issuers: readonly UserIssuerConfig[];
  readonly clock: Clock;
  readonly skewMs: number;
  /** For JWKS and discovery requests (tests, proxies); defaults to global fetch. */
  readonly fetch?: typeof fetch;
}

/** RFC 9068 §2.1: `at+jwt`, or the full media type. */
function isAccessTokenTyp(typ: unknown): boolean {
  return typeof typ === 'string' && /^(application\/)?at\+jwt$/i.test(typ);
}

function unverifiedIss(token: string): string | undefined {
  if (typeof token !== 'string' || token.length > 16_384 || token.split('.').length !== 3) return undefined;
  try {
    const iss = decodeJwt(token).iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

function mapJoseError(e: unknown, issuer: string): TesseraError {
  if (isTesseraError(e)) return e;
  const err = e as { code?: string; claim?: string; reason?: string; message?: string };
  const invalid = (reason: string, why: string) => fail('TESSERA_USER_TOKEN_INVALID', `the user token from issuer "${issuer}" ${why}`, { reason, issuer });
  switch (err.code) {
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return invalid('algorithm', 'is signed with an algorithm the issuer\'s configuration does not allow');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return invalid('signature', 'has a signature that does not verify');
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return invalid('signature', 'names no key of the provider\'s key set');
    case 'ERR_JWT_EXPIRED':
      return fail('TESSERA_USER_TOKEN_EXPIRED', `the user token from issuer "${issuer}" has expired; get a fresh one from the provider`, { issuer });
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (err.claim === 'aud') return fail('TESSERA_USER_AUDIENCE_INVALID', `the user token's audience (aud) is none of issuer "${issuer}"'s configured audiences: it was issued for another service`, { issuer });
      if (err.claim === 'iat' && /age/i.test(err.message ?? '')) return fail('TESSERA_USER_TOKEN_EXPIRED', `the user token is older than issuer "${issuer}"'s max_age`, { issuer, reason: 'max_age' });
      if (err.reason === 'missing') return invalid('claims', `lacks the required "${err.claim}" claim`);
      return invalid(err.claim ?? 'claims', `fails the "${err.claim}" check (${err.reason ?? 'invalid'})`);
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return fail('TESSERA_USER_JWKS_UNAVAILABLE', `the key set of issuer "${issuer}" could not be loaded (${err.code}); check users.issuers[].jwks_url`, { issuer });
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return invalid('format', 'is not a well-formed signed JWT');
    default:
      if (err.code === 'ERR_JOSE_GENERIC' || e instanceof TypeError) return fail('TESSERA_USER_JWKS_UNAVAILABLE', `the key set of issuer "${issuer}" could not be fetched; check that the provider is reachable`, { issuer });
      return invalid('format', 'could not be verified');
  }
}

export function createUserTokenVerifier(deps: UserTokenVerifierDeps): UserTokenVerifier {
  const byIss = new Map(deps.issuers.map((i) => [i.issuer, i]));
  const keySets = new Map<string, Promise<JWTVerifyGetKey>>();
  const doFetch = deps.fetch ?? fetch;

  /** The issuer's JWKS: its URL, or `jwks_uri` from its OpenID discovery document (OIDC Discovery §4). */
  function keysOf(i: UserIssuerConfig): Promise<JWTVerifyGetKey> {
    let ks = keySets.get(i.name);
    if (!ks) {
      ks = (async () => {
        const url = i.jwks_url ? new URL(i.jwks_url) : await discoverJwksUri(i);
        // jose caches the key set and refetches on an unknown kid (rate-limited by its cooldown).
        return createRemoteJWKSet(url, { timeoutDuration: 5000, ...(deps.fetch ? { [customFetch]: deps.fetch } : {}) }) as JWTVerifyGetKey;
      })();
      // A failed discovery is retried on the next token, not cached.
      ks.catch(() => keySets.delete(i.name));
      keySets.set(i.name, ks);
    }
    return ks;
  }

  async function discoverJwksUri(i: UserIssuerConfig): Promise<URL> {
    const url = `${i.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    let doc: { issuer?: unknown; jwks_uri?: unknown };
    try {
      const res = await doFetch(url, { signal: AbortSignal.timeout(5000), redirect: 'error', headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      doc = (await res.json()) as typeof doc;
    } catch (e) {
      throw fail('TESSERA_USER_JWKS_UNAVAILABLE', `the discovery document of issuer "${i.name}" (${url}) could not be fetched: ${(e as Error).message.slice(0, 200)}`, { issuer: i.name });
    }
    // OIDC Discovery §4.3: the document's issuer must be exactly the one configured.
    if (doc?.issuer !== i.issuer || typeof doc.jwks_uri !== 'string') throw fail('TESSERA_USER_JWKS_UNAVAILABLE', `the discovery document of issuer "${i.name}" names another issuer or no jwks_uri`, { issuer: i.name });
    try {
      return new URL(doc.jwks_uri);
    } catch {
      throw fail('TESSERA_USER_JWKS_UNAVAILABLE', `the discovery document of issuer "${i.name}" has an invalid jwks_uri`, { issuer: i.name });
    }
  }

  function pinKind(i: UserIssuerConfig, typ: unknown, declared: string): UserTokenKind {
    const kind: UserTokenKind = isAccessTokenTyp(typ) ? 'access_token' : 'id_token';
    if (i.token !== 'any' && kind !== i.token) {
      throw fail('TESSERA_USER_TOKEN_TYPE_INVALID', kind === 'id_token'
        ? `issuer "${i.name}" requires an access token (a JWT with typ "at+jwt", RFC 9068); an ID token was presented. Ask the provider for an access token for audience ${i.audience.join(' or ')}`
        : `issuer "${i.name}" requires an ID token; an access token (typ "at+jwt") was presented`, { issuer: i.name, presented: kind, required: i.token });
    }
    if ((declared === TOKEN_TYPE_ID_TOKEN && kind !== 'id_token') || (declared === TOKEN_TYPE_ACCESS_TOKEN && kind !== 'access_token')) {
      throw fail('TESSERA_USER_TOKEN_TYPE_INVALID', `subject_token_type says ${declared.split(':').pop()}, but the token is ${kind === 'id_token' ? 'an ID token' : 'an access token (typ "at+jwt")'}`, { issuer: i.name, presented: kind });
    }
    return kind;
  }

  return {
    issuerOf(token) {
      const iss = unverifiedIss(token);
      return iss === undefined ? undefined : byIss.get(iss);
    },
    async verify(token, declared) {
      const iss = unverifiedIss(token);
      const i = iss === undefined ? undefined : byIss.get(iss);
      if (!i) throw fail('TESSERA_USER_ISSUER_UNTRUSTED', iss === undefined ? 'the user token is not a JWT with an "iss" claim' : `the user token's issuer is not trusted (not in users.issuers)`, iss === undefined ? undefined : { iss: iss.slice(0, 200) });
      let payload: JWTPayload;
      let typ: unknown;
      try {
        typ = decodeProtectedHeader(token).typ;
      } catch (e) {
        throw mapJoseError(e, i.name);
      }
      // The kind first (from the header; this refuses, it grants nothing): an ID token where an
      // access token is required is told as such, not as the wrong audience it also has.
      const kind = pinKind(i, typ, declared);
      try {
        ({ payload } = await jwtVerify(token, await keysOf(i), {
          issuer: i.issuer,
          audience: i.audience,
          algorithms: [...i.algorithms],
          requiredClaims: ['exp', 'iat'],
          currentDate: new Date(deps.clock.now()),
          clockTolerance: Math.round(deps.skewMs / 1000),
          ...(i.max_age ? { maxTokenAge: Math.round(i.max_age / 1000) } : {}),
        }));
      } catch (e) {
        throw mapJoseError(e, i.name);
      }
      // jose checks iat only with a max age: a token issued in the future is refused here.
      if ((payload.iat as number) * 1000 - deps.skewMs > deps.clock.now()) throw fail('TESSERA_USER_TOKEN_INVALID', `the user token from issuer "${i.name}" was issued in the future (iat); check the clocks`, { reason: 'iat', issuer: i.name });
      const identity = mapUserClaims(i, payload);
      let expiresAt = (payload.exp as number) * 1000;
      if (i.max_age) expiresAt = Math.min(expiresAt, (payload.iat as number) * 1000 + i.max_age);
      return { identity, kind, issuer: i, expiresAt };
    },
  };
}
