import { z } from 'zod';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../shared/clock.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { RevocationChecker } from '../shared/revocation.js';
import type { AuditWriter } from '../audit/port.js';
import type { MetricsRegistry, Counter } from '../shared/metrics.js';
import { AuthCache } from '../shared/auth-cache.js';
import { createAuthEpoch, type AuthEpoch } from '../shared/auth-epoch.js';
import type { AttestedIdentity } from '../identity/types.js';
import type { AgentAuthenticator, RequestMeta } from '../server/app.js';
import { parseSpiffeId } from '../identity/spiffe-id.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import type { KeyManager } from './keys.js';
import { decodePayload, parseProtectedHeader, verifyEs256, signEs256 } from './jws.js';

/** Claims of an agent token (a JWT-SVID, SPIFFE JWT-SVID §3) plus Tessera's attestation facts. */
const claimsSchema = z.object({
  iss: z.string().min(1),
  sub: z.string().min(1).max(2048),
  aud: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(16)]),
  exp: z.number().int().positive(),
  iat: z.number().int().positive(),
  nbf: z.number().int().positive().optional(),
  jti: z.string().min(16).max(128),
  tessera: z.object({ attestor: z.string().max(128), attrs: z.record(z.string().max(256), z.string().max(1024)) }).partial().optional(),
});

export type AgentTokenClaims = z.output<typeof claimsSchema>;


export interface IssuedToken {
  readonly token: string;
  readonly jti: string;
  readonly expiresAt: number;
  readonly issuedAt: number;
}

export interface TokenService {
  readonly issuer: string;
  issueAgentToken(identity: AttestedIdentity, options: { audience: readonly string[] }): IssuedToken;
  /** Verifies in the order RFC 8725 §3.1 asks: algorithm pinned, key by kid, signature, then claims, then revocation. */
  verify(token: string, options: { audience: string }): Promise<AgentPrincipal>;
  /** Verification without the audience check, for introspection and RFC 7009 revocation. */
  verifyAnyAudience(token: string, audiences: readonly string[]): Promise<{ principal: AgentPrincipal; claims: AgentTokenClaims }>;
}

export interface TokenServiceDeps {
  readonly keys: KeyManager;
  readonly clock: Clock;
  readonly issuer: string;
  readonly agentTtlMs: number;
  readonly skewMs: number;
  readonly revocations: RevocationChecker;
  readonly metrics?: MetricsRegistry;
  /**
   * How many signature-verified tokens to remember (exact token string → claims), so an agent
   * re-presenting the same token skips the ECDSA verification. `iss`/`exp`/`nbf`/`aud`, the
   * key still being published and revocation are checked on every request. 0 disables.
   * Default 10,000.
   */
  readonly verifiedCacheSize?: number;
  /** At most this many cached tokens per agent (`sub`), so one agent cannot evict the others'. Default 1000. */
  readonly verifiedCachePerAgent?: number;
  /**
   * The auth epoch (docs/adr/0061): a cached verification is reused only under the epoch it was
   * made in, so a key revocation, a revocation or a policy reload ends every cached verification
   * at once. Default: a private epoch that never moves (tests of the service alone).
   */
  readonly epoch?: AuthEpoch;
}

export function createTokenService(deps: TokenServiceDeps): TokenService {
  const { keys, clock, issuer, revocations } = deps;
  const issued: Counter | undefined = deps.metrics?.counter('tessera_tokens_issued_total', 'Tokens issued, by type');

  const verified = new AuthCache<{ readonly kid: string; readonly claims: AgentTokenClaims }>({
    capacity: deps.verifiedCacheSize ?? 10_000, perOwner: deps.verifiedCachePerAgent ?? 1000, epoch: deps.epoch ?? createAuthEpoch(), clock,
  });

  function checkClaims(c: AgentTokenClaims): AgentTokenClaims {
    if (c.iss !== issuer) throw new TesseraError('TESSERA_TOKEN_ISSUER_INVALID', 'the token was not issued by this Tessera');
    const now = clock.now();
    if (now >= c.exp * 1000 + deps.skewMs) throw new TesseraError('TESSERA_TOKEN_EXPIRED', 'the token has expired; log in again (the SDK refreshes automatically)');
    if (c.nbf !== undefined && c.nbf * 1000 - deps.skewMs > now) throw new TesseraError('TESSERA_TOKEN_NOT_YET_VALID', 'the token is not valid yet (nbf); check the clocks');
    if (c.iat * 1000 - deps.skewMs > now) throw new TesseraError('TESSERA_TOKEN_NOT_YET_VALID', 'the token was issued in the future (iat); check the clocks');
    return c;
  }

  async function verifyClaims(token: string): Promise<AgentTokenClaims> {
    // The exact bytes were verified before, in this auth epoch, under a key still published.
    const epoch = verified.epoch;
    const hit = verified.get(token);
    if (hit) {
      if (keys.verificationKey(hit.kid)) {
        try {
          return checkClaims(hit.claims);
        } catch (e) {
          verified.delete(token);
          throw e;
        }
      }
      verified.delete(token);
    }
    const header = parseProtectedHeader(token);
    // RFC 8725 §3.1: pin the algorithm; `none`, HS256 (with the public key as HMAC secret) and
    // every other algorithm are refused before any key is touched.
    if (header.alg !== 'ES256') {
      throw new TesseraError('TESSERA_TOKEN_ALG_NOT_ALLOWED', `algorithm "${String(header.alg).slice(0, 20)}" is not allowed; Tessera tokens are ES256`);
    }
    // RFC 7515 §4.1.11: we understand no critical extensions.
    if (header.crit !== undefined) throw new TesseraError('TESSERA_TOKEN_MALFORMED', 'the token header has a "crit" parameter Tessera does not understand');
    const kid = header.kid;
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > 64) throw new TesseraError('TESSERA_TOKEN_KID_UNKNOWN', 'the token header has no usable "kid"');
    const key = keys.verificationKey(kid) ?? (await keys.reloadForUnknownKid(kid));
    if (!key) throw new TesseraError('TESSERA_TOKEN_KID_UNKNOWN', 'the token was signed with a key Tessera does not know (rotated out, or not a Tessera token)');
    // Signature before any claim is read (RFC 7515 §5.2).
    const payload = await verifyEs256(token, key);
    if (!payload) throw new TesseraError('TESSERA_TOKEN_SIGNATURE_INVALID', 'the token signature does not verify');
    const result = claimsSchema.safeParse(decodePayload(payload));
    if (!result.success) {
      const i = result.error.issues[0];
      throw new TesseraError('TESSERA_TOKEN_CLAIMS_INVALID', `claim "${i?.path.join('.') ?? '?'}" is missing or invalid`);
    }
    const c = checkClaims(result.data);
    // Stored under the epoch read before the key was looked up: a key revoked meanwhile bumped it.
    verified.set(token, { kid, claims: c }, { owner: c.sub, epoch });
    return c;
  }

  function principalOf(c: AgentTokenClaims): AgentPrincipal {
    let id;
    try {
      id = parseSpiffeId(c.sub);
    } catch {
      throw new TesseraError('TESSERA_TOKEN_CLAIMS_INVALID', 'claim "sub" is not a valid SPIFFE ID');
    }
    if (revocations.isRevoked({ spiffeId: c.sub, jti: c.jti, issuedAt: c.iat * 1000 })) {
      throw new TesseraError('TESSERA_TOKEN_REVOKED', 'the token or its agent has been revoked');
    }
    return {
      spiffeId: c.sub,
      trustDomain: id.trustDomain,
      path: id.path,
      attributes: { ...(c.tessera?.attrs ?? {}), ...(c.tessera?.attestor ? { attestor: c.tessera.attestor } : {}) },
      jti: c.jti,
      expiresAt: c.exp * 1000,
    };
  }

  return {
    issuer,
    issueAgentToken(identity, options) {
      const { kid, privateKey } = keys.signingKey();
      const now = clock.now();
      const iat = Math.floor(now / 1000);
      const exp = Math.floor((now + deps.agentTtlMs) / 1000);
      const jti = randomBytes(16).toString('base64url');
      const aud = options.audience.length === 1 ? options.audience[0]! : [...options.audience];
      // SPIFFE JWT-SVID §3: header alg + kid + typ JWT; claims sub, aud, exp (+ iss, iat, nbf, jti).
      const claims = { iss: issuer, sub: identity.spiffeId, aud, exp, iat, nbf: iat, jti, tessera: { attestor: identity.attestor, attrs: identity.attributes } };
      const token = signEs256({ alg: 'ES256', kid, typ: 'JWT' }, claims, privateKey);
      issued?.inc({ type: 'agent' });
      return { token, jti, expiresAt: exp * 1000, issuedAt: iat * 1000 };
    },

    async verify(token, options) {
      const c = await verifyClaims(token);
      const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
      if (!aud.includes(options.audience)) {
        throw new TesseraError('TESSERA_TOKEN_AUDIENCE_INVALID', `the token audience does not include ${options.audience}; request a token for it (RFC 8707 "resource")`);
      }
      return principalOf(c);
    },

    async verifyAnyAudience(token, audiences) {
      const c = await verifyClaims(token);
      const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
      if (!aud.some((a) => audiences.includes(a))) throw new TesseraError('TESSERA_TOKEN_AUDIENCE_INVALID', 'the token audience is not served by this Tessera');
      return { principal: principalOf(c), claims: c };
    },
  };
}

/** The `AgentAuthenticator` the HTTP layer uses: verifies, and audits every refusal (never the token). */
export function createAgentAuthenticator(tokens: TokenService, options: { audience: string; audit: AuditWriter }): AgentAuthenticator {
  return {
    async authenticate(token: string, meta: RequestMeta): Promise<AgentPrincipal> {
      try {
        return await tokens.verify(token, { audience: options.audience });
      } catch (e) {
        if (isTesseraError(e)) {
          await options.audit
            .append({
              kind: 'auth.token_refused', actor: { id: 'unauthenticated' }, action: 'token.verify', result: 'deny',
              reason: { code: e.code }, where: { source: meta.source, replica: meta.replica, requestId: meta.requestId }, details: { code: e.code },
            })
            .catch(() => undefined); // the request is refused either way
        }
        throw e;
      }
    },
  };
}
