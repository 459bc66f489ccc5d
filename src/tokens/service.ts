import { z } from 'zod';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../shared/clock.js';
import { ATTESTOR_KINDS, provenAttributes, type AgentPrincipal } from '../shared/principal.js';
import type { RevocationChecker } from '../shared/revocation.js';
import type { AuditWriter } from '../audit/port.js';
import type { MetricsRegistry, Counter } from '../shared/metrics.js';
import { AuthCache } from '../shared/auth-cache.js';
import { createAuthEpoch, type AuthEpoch } from '../shared/auth-epoch.js';
import type { AttestedIdentity } from '../identity/types.js';
import type { AgentAuthenticator, RequestMeta } from '../server/app.js';
import { isSpiffeId, parseSpiffeId } from '../identity/spiffe-id.js';
import type { TrustDomains } from '../identity/trust-domains.js';
import type { AuditWhere } from '../audit/events.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import type { KeyManager } from './keys.js';
import { decodePayload, parseProtectedHeader, verifyEs256, signEs256, signEs256Async } from './jws.js';

/** Claims of an agent token (a JWT-SVID, SPIFFE JWT-SVID §3) plus Tessera's attestation facts. */
const claimsSchema = z.object({
  iss: z.string().min(1),
  sub: z.string().min(1).max(2048),
  aud: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(16)]),
  exp: z.number().int().positive(),
  iat: z.number().int().positive(),
  nbf: z.number().int().positive().optional(),
  jti: z.string().min(16).max(128),
  /** Attestation facts (ADR 0021): attestor name and kind, and the attributes it proved. */
  tessera: z.object({ attestor: z.string().max(128), kind: z.enum(ATTESTOR_KINDS), attrs: z.record(z.string().max(256), z.string().max(1024)) }).partial().optional(),
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
  /**
   * The same token, its ECDSA signature computed on the libuv pool (the login path). The signing
   * key is chosen synchronously, before the first await. Throws like issueAgentToken.
   */
  issueAgentTokenAsync(identity: AttestedIdentity, options: { audience: readonly string[] }): Promise<IssuedToken>;
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
  /** The trust domains tokens may be issued for and accepted from (src/identity/trust-domains.ts). */
  readonly trustDomains: Pick<TrustDomains, 'accepts' | 'list'>;
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

  /** `onSigned(sub)` is told the subject as soon as Tessera's signature is known good (for auditing refusals). */
  async function verifyClaims(token: string, onSigned: (sub: unknown) => void): Promise<AgentTokenClaims> {
    // The exact bytes were verified before, in this auth epoch, under a key still published.
    const epoch = verified.epoch;
    const hit = verified.get(token);
    if (hit) {
      if (keys.verificationKey(hit.kid)) {
        onSigned(hit.claims.sub);
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
    const decoded = decodePayload(payload);
    if (decoded !== null && typeof decoded === 'object') onSigned((decoded as { sub?: unknown }).sub);
    const result = claimsSchema.safeParse(decoded);
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
    // A token Tessera signed for a domain it no longer serves (a spiffe attestor was removed).
    if (!deps.trustDomains.accepts(id.trustDomain)) {
      throw new TesseraError('TESSERA_TOKEN_TRUST_DOMAIN_UNKNOWN', `the token subject is in trust domain "${id.trustDomain}", which this Tessera does not serve; log in again`);
    }
    if (revocations.isRevoked({ spiffeId: c.sub, jti: c.jti, issuedAt: c.iat * 1000 })) {
      throw new TesseraError('TESSERA_TOKEN_REVOKED', 'the token or its agent has been revoked');
    }
    const kind = c.tessera?.kind;
    const attestor = c.tessera?.attestor;
    return {
      spiffeId: c.sub,
      trustDomain: id.trustDomain,
      path: id.path,
      // Kubernetes attributes only from a kubernetes attestor (a token without a kind proves none).
      attributes: { ...provenAttributes(kind, c.tessera?.attrs ?? {}), ...(attestor ? { attestor } : {}) },
      ...(attestor ? { attestor } : {}),
      ...(kind ? { attestorKind: kind } : {}),
      jti: c.jti,
      expiresAt: c.exp * 1000,
    };
  }

  /** Runs a verification; on refusal, remembers which subject the token claimed (see claimedSubjectOf). */
  async function refusing<T>(token: string, run: (onSigned: (sub: unknown) => void) => Promise<T>): Promise<T> {
    let signedSub: unknown;
    try {
      return await run((sub) => {
        signedSub = sub;
      });
    } catch (e) {
      if (e instanceof TesseraError) {
        if (isSpiffeId(signedSub)) claimed.set(e, { id: signedSub, signed: true });
        else {
          const sub = unverifiedSubject(token);
          if (sub !== undefined) claimed.set(e, { id: sub, signed: false });
        }
      }
      throw e;
    }
  }

  /** What an agent token says, and the key that signs it (chosen now). */
  function agentToken(identity: AttestedIdentity, audience: readonly string[]) {
    // Never sign an identity outside the served trust domains (attestation already refused it).
    const td = parseSpiffeId(identity.spiffeId).trustDomain;
    if (!deps.trustDomains.accepts(td)) {
      throw new TesseraError('TESSERA_TRUST_DOMAIN_UNKNOWN', `no token is issued for trust domain "${td}"; this Tessera serves ${deps.trustDomains.list().map((d) => `"${d}"`).join(', ')}`, { trust_domain: td });
    }
    const { kid, privateKey } = keys.signingKey();
    const now = clock.now();
    const iat = Math.floor(now / 1000);
    const exp = Math.floor((now + deps.agentTtlMs) / 1000);
    const jti = randomBytes(16).toString('base64url');
    const aud = audience.length === 1 ? audience[0]! : [...audience];
    // SPIFFE JWT-SVID §3: header alg + kid + typ JWT; claims sub, aud, exp (+ iss, iat, nbf, jti).
    const claims = { iss: issuer, sub: identity.spiffeId, aud, exp, iat, nbf: iat, jti, tessera: { attestor: identity.attestor, kind: identity.attestorKind, attrs: identity.attributes } };
    return { header: { alg: 'ES256', kid, typ: 'JWT' }, claims, privateKey, issued: { jti, expiresAt: exp * 1000, issuedAt: iat * 1000 } };
  }

  return {
    issuer,
    issueAgentToken(identity, options) {
      const t = agentToken(identity, options.audience);
      const token = signEs256(t.header, t.claims, t.privateKey);
      issued?.inc({ type: 'agent' });
      return { token, ...t.issued };
    },

    async issueAgentTokenAsync(identity, options) {
      const t = agentToken(identity, options.audience);
      const token = await signEs256Async(t.header, t.claims, t.privateKey);
      issued?.inc({ type: 'agent' });
      return { token, ...t.issued };
    },

    verify(token, options) {
      return refusing(token, async (onSigned) => {
        const c = await verifyClaims(token, onSigned);
        const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
        if (!aud.includes(options.audience)) {
          throw new TesseraError('TESSERA_TOKEN_AUDIENCE_INVALID', `the token audience does not include ${options.audience}; request a token for it (RFC 8707 "resource")`);
        }
        return principalOf(c);
      });
    },

    verifyAnyAudience(token, audiences) {
      return refusing(token, async (onSigned) => {
        const c = await verifyClaims(token, onSigned);
        const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
        if (!aud.some((a) => audiences.includes(a))) throw new TesseraError('TESSERA_TOKEN_AUDIENCE_INVALID', 'the token audience is not served by this Tessera');
        return { principal: principalOf(c), claims: c };
      });
    },
  };
}

/**
 * The subject a refused token claimed (docs/audit.md#refused-requests). `signed`: Tessera's own
 * signature over it verified, so the token is authentic and was refused for another reason
 * (revoked, expired, audience, trust domain …). Not signed: read from an unverifiable token —
 * attacker-controlled text, kept only when it is a valid SPIFFE ID (≤ 2048 bytes).
 */
export interface ClaimedSubject {
  readonly id: string;
  readonly signed: boolean;
}

const claimed = new WeakMap<TesseraError, ClaimedSubject>();

export function claimedSubjectOf(e: unknown): ClaimedSubject | undefined {
  return e instanceof TesseraError ? claimed.get(e) : undefined;
}

/** The `sub` of a JWS compact token WITHOUT verifying it, when it is a valid SPIFFE ID; never throws. */
function unverifiedSubject(token: string): string | undefined {
  if (typeof token !== 'string' || token.length > 16_384) return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const sub = (JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { sub?: unknown } | null)?.sub;
    return isSpiffeId(sub) ? sub : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Audits a refused agent token as `auth.token_refused` (never the token). A Tessera-signed token
 * is attributed to its subject, marked `verified: false`, so `audit tail --actor <id>` finds a
 * revoked agent's retries; an unverifiable token stays `unauthenticated`, with the SPIFFE ID it
 * claimed in `details.claimed_sub`. If the claimed text makes the event invalid (it is partly
 * attacker-chosen), the event is recorded without it rather than not at all.
 */
export async function auditTokenRefusal(audit: AuditWriter, e: TesseraError, where: AuditWhere, resource?: string): Promise<void> {
  const claim = claimedSubjectOf(e);
  const base = { kind: 'auth.token_refused', action: 'token.verify', result: 'deny', reason: { code: e.code }, where, ...(resource ? { resource } : {}) } as const;
  try {
    await audit.append({
      ...base,
      actor: claim?.signed ? { id: claim.id, verified: false } : { id: 'unauthenticated' },
      details: { code: e.code, ...(claim && !claim.signed ? { claimed_sub: claim.id } : {}) },
    });
  } catch (err) {
    if (!claim || !(err instanceof TesseraError) || err.code !== 'TESSERA_AUDIT_EVENT_INVALID') throw err;
    await audit.append({ ...base, actor: { id: 'unauthenticated' }, details: { code: e.code } });
  }
}

/** The `AgentAuthenticator` the HTTP layer uses: verifies, and audits every refusal (never the token). */
export function createAgentAuthenticator(tokens: TokenService, options: { audience: string; audit: AuditWriter }): AgentAuthenticator {
  return {
    async authenticate(token: string, meta: RequestMeta): Promise<AgentPrincipal> {
      try {
        return await tokens.verify(token, { audience: options.audience });
      } catch (e) {
        if (isTesseraError(e)) {
          // The request is refused either way.
          await auditTokenRefusal(options.audit, e, { source: meta.source, replica: meta.replica, requestId: meta.requestId }).catch(() => undefined);
        }
        throw e;
      }
    },
  };
}
