import { z } from 'zod';
import { randomIdBytes } from '../shared/crypto.js';
import type { Clock } from '../shared/clock.js';
import { attestedPrincipalFields, type AgentPrincipal } from '../shared/principal.js';
import type { RevocationChecker, RevocationSubject } from '../shared/revocation.js';
import type { AuditWriter } from '../audit/port.js';
import type { MetricsRegistry, Counter } from '../shared/metrics.js';
import { AuthCache } from '../shared/auth-cache.js';
import { createAuthEpoch, type AuthEpoch } from '../shared/auth-epoch.js';
import type { AttestedIdentity } from '../identity/types.js';
import { isSpiffeId, parseSpiffeId } from '../identity/spiffe-id.js';
import type { TrustDomains } from '../identity/trust-domains.js';
import type { AuditWhere } from '../audit/events.js';
import { TesseraError } from '../shared/errors.js';
import type { KeyManager } from './keys.js';
import { parseTaskClaims } from '../tasks/claims-fast.js';
import { decodePayload, parseProtectedHeader, verifyEs256, signEs256, signEs256Async } from './jws.js';
import { AGENT_TOKEN_TYP, JKT_PATTERN, TASK_TOKEN_TYP, actorsOf, attestationClaimSchema, registeredClaimsShape, nestActors, taskClaimsProblem, taskPrincipal, type Actor, type TaskClaims } from '../tasks/claims.js';

/** Claims of an agent token (a JWT-SVID, SPIFFE JWT-SVID §3) plus Tessera's attestation facts. */
const claimsSchema = z.object({
  ...registeredClaimsShape,
  /** Attestation facts (ADR 0021): attestor name and kind, and the attributes it proved. */
  tessera: attestationClaimSchema.optional(),
  /** RFC 7800 §3.1 confirmation: DPoP binding to a key's RFC 7638 SHA-256 thumbprint (RFC 9449 §6.1). */
  cnf: z.object({ jkt: z.string().regex(JKT_PATTERN, 'a base64url SHA-256 thumbprint') }).optional(),
});

export type AgentTokenClaims = z.output<typeof claimsSchema>;

/** The two kinds of token Tessera accepts as credentials, told apart by their JOSE `typ` (RFC 8725 §3.11). */
export type TokenKind = 'agent' | 'task';
const KIND_OF_TYP: Readonly<Record<string, TokenKind>> = { [AGENT_TOKEN_TYP]: 'agent', [TASK_TOKEN_TYP]: 'task' };
const KIND_NAME: Readonly<Record<TokenKind, string>> = { agent: `an agent token (typ "${AGENT_TOKEN_TYP}")`, task: `a task token (typ "${TASK_TOKEN_TYP}")` };

/** JOSE `typ` of the short-lived tokens the gateway sends to upstreams (never accepted by Tessera). */
export const DOWNSTREAM_TOKEN_TYP = 'tessera-downstream+jwt';

/** A verified Tessera token: which kind, its claims, and the principal it stands for. */
export type VerifiedToken =
  | { readonly kind: 'agent'; readonly claims: AgentTokenClaims; readonly principal: AgentPrincipal }
  | { readonly kind: 'task'; readonly claims: TaskClaims; readonly principal: AgentPrincipal };

export interface IssuedToken {
  readonly token: string;
  readonly jti: string;
  readonly expiresAt: number;
  readonly issuedAt: number;
}

/** The claims of a task token the exchange decides; the service adds `iss`, `iat`, `nbf` and `jti`. */
export type TaskTokenInput = Omit<TaskClaims, 'iss' | 'iat' | 'nbf' | 'jti'>;

export interface TokenService {
  readonly issuer: string;
  /**
   * Signs an agent token for an attested identity. `cnf.jkt`: bind it to that DPoP key (RFC 9449
   * §6.1; the token endpoint verified a proof by the key); every enforcement point then requires
   * a proof by it. Throws TESSERA_INTERNAL for a `cnf.jkt` that is not a SHA-256 thumbprint.
   */
  issueAgentToken(identity: AttestedIdentity, options: { audience: readonly string[]; cnf?: { readonly jkt: string }; role?: string }): IssuedToken;
  /**
   * The same token, its ECDSA signature computed on the libuv pool (the login path). The signing
   * key is chosen synchronously, before the first await. Throws like issueAgentToken.
   */
  issueAgentTokenAsync(identity: AttestedIdentity, options: { audience: readonly string[]; cnf?: { readonly jkt: string }; role?: string }): Promise<IssuedToken>;
  /**
   * Signs a task token (`typ: tessera-task+jwt`); `input.cnf` binds it to a DPoP key (the token
   * endpoint verified a proof by it). Throws TESSERA_INTERNAL for claims whose tree fields
   * disagree (the exchange never builds such), TESSERA_TRUST_DOMAIN_UNKNOWN for an acting agent
   * outside the served trust domains.
   */
  issueTaskToken(input: TaskTokenInput): IssuedToken & { readonly claims: TaskClaims };
  /**
   * The same, its ECDSA signature computed on the libuv pool (the token endpoint's path; the
   * claims are checked and the signing key chosen before the first await). Throws like
   * issueTaskToken.
   */
  issueTaskTokenAsync(input: TaskTokenInput): Promise<IssuedToken & { readonly claims: TaskClaims }>;
  /**
   * A short-lived token for an upstream (gateway `task_token`): `aud` = that upstream, `sub`,
   * `act`, `txn`/`rtxn` of the caller; `typ: tessera-downstream+jwt`, which Tessera itself never
   * accepts. Expires after `ttlMs`, never after the caller's own token.
   */
  issueDownstreamToken(principal: AgentPrincipal, options: { audience: string; ttlMs: number }): IssuedToken;
  /**
   * Verifies an agent or task token for an enforcement point, in the order RFC 8725 §3.1 asks:
   * algorithm pinned, type pinned (`kinds`, default both), key by kid, signature, claims,
   * audience, revocation (token, acting agent, task and its ancestors, user, chain). The DPoP
   * binding of a bound token (`principal.cnf`) is the request pipeline's next check
   * (src/pipeline/authenticate.ts), never skipped by an enforcement point.
   */
  verify(token: string, options: { audience: string; kinds?: readonly TokenKind[] }): Promise<AgentPrincipal>;
  /** As verify, with the kind and claims (the token exchange). `audiences`: any one of them will do. */
  verifyToken(token: string, options: { audiences: readonly string[]; kinds: readonly TokenKind[] }): Promise<VerifiedToken>;
  /** Verification without the audience check, for introspection and RFC 7009 revocation. */
  verifyAnyAudience(token: string, audiences: readonly string[]): Promise<VerifiedToken>;
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
  /** At most this many cached tokens per agent (the acting agent), so one agent cannot evict the others'. Default 1000. */
  readonly verifiedCachePerAgent?: number;
  /**
   * The auth epoch (docs/adr/0061): a cached verification is reused only under the epoch it was
   * made in, so a key revocation, a revocation or a policy reload ends every cached verification
   * at once. Default: a private epoch that never moves (tests of the service alone).
   */
  readonly epoch?: AuthEpoch;
}

interface Verified {
  readonly kid: string;
  readonly kind: TokenKind;
  readonly claims: AgentTokenClaims | TaskClaims;
  /** Built once per cached verification; revocation is still checked on every use. */
  principal?: AgentPrincipal;
  /** What the revocation check asks about (the principal and the token's issue time), built once with it. */
  subject?: RevocationSubject;
  /** The revocation generation at which this token was last found not revoked (RevocationChecker.generation). */
  clearAt?: number;
}

export function createTokenService(deps: TokenServiceDeps): TokenService {
  const { keys, clock, issuer, revocations } = deps;
  const issued: Counter | undefined = deps.metrics?.counter('tessera_tokens_issued_total', 'Tokens issued, by type');

  const verified = new AuthCache<Verified>({
    capacity: deps.verifiedCacheSize ?? 10_000, perOwner: deps.verifiedCachePerAgent ?? 1000, epoch: deps.epoch ?? createAuthEpoch(), clock,
  });

  function checkTimes(c: { iss: string; exp: number; nbf?: number | undefined; iat: number }): void {
    if (c.iss !== issuer) throw new TesseraError('TESSERA_TOKEN_ISSUER_INVALID', 'the token was not issued by this Tessera');
    const now = clock.now();
    if (now >= c.exp * 1000 + deps.skewMs) throw new TesseraError('TESSERA_TOKEN_EXPIRED', 'the token has expired; log in again (the SDK refreshes automatically)');
    if (c.nbf !== undefined && c.nbf * 1000 - deps.skewMs > now) throw new TesseraError('TESSERA_TOKEN_NOT_YET_VALID', 'the token is not valid yet (nbf); check the clocks');
    if (c.iat * 1000 - deps.skewMs > now) throw new TesseraError('TESSERA_TOKEN_NOT_YET_VALID', 'the token was issued in the future (iat); check the clocks');
  }

  /** RFC 8725 §3.11: the `typ` decides which claims schema applies, and must be one this use accepts. */
  function kindOf(typ: unknown, kinds: readonly TokenKind[]): TokenKind {
    const kind = typeof typ === 'string' ? KIND_OF_TYP[typ] : undefined;
    if (kind !== undefined && kinds.includes(kind)) return kind;
    const expected = kinds.map((k) => KIND_NAME[k]).join(' or ');
    if (kind !== undefined) throw new TesseraError('TESSERA_TOKEN_TYPE_INVALID', `this is ${KIND_NAME[kind]}, but ${expected} is required here`, { presented: kind, expected: [...kinds] });
    throw new TesseraError('TESSERA_TOKEN_TYPE_INVALID', `the token type (JOSE "typ") is ${typeof typ === 'string' ? `"${typ.slice(0, 64)}"` : 'missing'}; ${expected} is required here`, { expected: [...kinds] });
  }

  function parseClaims(kind: TokenKind, decoded: unknown): AgentTokenClaims | TaskClaims {
    const result = kind === 'agent' ? claimsSchema.safeParse(decoded) : parseTaskClaims(decoded);
    if (!result.success) {
      const i = result.error.issues[0];
      throw new TesseraError('TESSERA_TOKEN_CLAIMS_INVALID', `claim "${i?.path.join('.') ?? '?'}" is missing or invalid`);
    }
    if (kind === 'task') {
      const problem = taskClaimsProblem(result.data as TaskClaims);
      if (problem) throw new TesseraError('TESSERA_TOKEN_CLAIMS_INVALID', `claim ${problem} is inconsistent`);
    }
    return result.data;
  }

  /** The acting agent: the subject of an agent token, the newest actor of a task token. */
  const ownerOf = (v: Pick<Verified, 'kind' | 'claims'>): string => (v.kind === 'task' ? actingSub((v.claims as TaskClaims).act) : v.claims.sub);

  /** `onSigned(sub)` is told the acting subject as soon as Tessera's signature is known good (for auditing refusals). */
  async function verifyClaims(token: string, kinds: readonly TokenKind[], onSigned: (sub: unknown) => void): Promise<Verified> {
    // The exact bytes were verified before, in this auth epoch, under a key still published.
    const epoch = verified.epoch;
    const hit = verified.get(token);
    if (hit) {
      if (keys.verificationKey(hit.kid)) {
        onSigned(ownerOf(hit));
        // The type is pinned on every use, cached or not.
        kindOf(hit.kind === 'agent' ? AGENT_TOKEN_TYP : TASK_TOKEN_TYP, kinds);
        try {
          checkTimes(hit.claims);
          return hit;
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
    // RFC 8725 §3.11: the (now authentic) type decides which claims apply and whether this use
    // accepts the token at all: a downstream token, an unknown type or the wrong kind is refused.
    const kind = kindOf(header.typ, kinds);
    const decoded = decodePayload(payload);
    if (decoded !== null && typeof decoded === 'object') {
      const d = decoded as { sub?: unknown; act?: unknown };
      onSigned(kind === 'task' ? signedActingSub(d.act) : d.sub);
    }
    const claims = parseClaims(kind, decoded);
    checkTimes(claims);
    const v: Verified = { kid, kind, claims };
    // Stored under the epoch read before the key was looked up: a key revoked meanwhile bumped it.
    verified.set(token, v, { owner: ownerOf(v), epoch });
    return v;
  }

  /**
   * Parsed SPIFFE IDs of signed tokens (a pure function of the string; agents and chains repeat,
   * so a depth-5 task token costs map lookups, not six parses, on a cache miss). Bounded.
   */
  const parsedIds = new Map<string, { trustDomain: string; path: string }>();

  /** The acting agent's SPIFFE ID, parsed and in a served trust domain. */
  function actingId(sub: string): { trustDomain: string; path: string } {
    let id = parsedIds.get(sub);
    if (!id) {
      try {
        const parsed = parseSpiffeId(sub);
        id = { trustDomain: parsed.trustDomain, path: parsed.path };
      } catch {
        throw new TesseraError('TESSERA_TOKEN_CLAIMS_INVALID', 'claim "sub" (or the acting "act.sub") is not a valid SPIFFE ID');
      }
      if (parsedIds.size >= 10_000) parsedIds.clear();
      parsedIds.set(sub, id);
    }
    // A token Tessera signed for a domain it no longer serves (a spiffe attestor was removed).
    if (!deps.trustDomains.accepts(id.trustDomain)) {
      throw new TesseraError('TESSERA_TOKEN_TRUST_DOMAIN_UNKNOWN', `the token subject is in trust domain "${id.trustDomain}", which this Tessera does not serve; log in again`);
    }
    return id;
  }

  function buildPrincipal(v: Verified): AgentPrincipal {
    if (v.kind === 'task') {
      const c = v.claims as TaskClaims;
      const actors = actorsOf(c.act);
      // Every actor of the chain is an agent Tessera verified when it delegated; they must still be in served domains.
      for (const a of actors.slice(0, -1)) actingId(a.sub);
      return taskPrincipal(c, actingId(actors[actors.length - 1]!.sub));
    }
    const c = v.claims as AgentTokenClaims;
    const id = actingId(c.sub);
    return {
      spiffeId: c.sub,
      trustDomain: id.trustDomain,
      path: id.path,
      ...attestedPrincipalFields(c, 'agent'),
      ...(c.cnf ? { cnf: { jkt: c.cnf.jkt } } : {}),
    };
  }

  function principalOf(v: Verified): AgentPrincipal {
    v.principal ??= buildPrincipal(v);
    const p = v.principal;
    // What the revocation check reads (RevocationSubject), not a copy of the whole principal.
    v.subject ??= { spiffeId: p.spiffeId, jti: p.jti, issuedAt: v.claims.iat * 1000, task: p.task, ancestors: p.ancestors, user: p.user, chain: p.chain, attributes: p.attributes };
    // Token, acting agent, task and its ancestors, user, every agent of the chain: map lookups
    // only, and none at all while no revocation has been added since this token was last clear.
    const generation = revocations.generation?.();
    if (generation !== undefined && v.clearAt === generation) return p;
    if (revocations.isRevoked(v.subject)) {
      throw new TesseraError('TESSERA_TOKEN_REVOKED', p.task !== undefined ? 'the token, its agent, its task (or a task above it), its user or an agent of its chain has been revoked' : 'the token or its agent has been revoked');
    }
    v.clearAt = generation;
    return p;
  }

  function toVerified(v: Verified): VerifiedToken {
    const principal = principalOf(v);
    return v.kind === 'task' ? { kind: 'task', claims: v.claims as TaskClaims, principal } : { kind: 'agent', claims: v.claims as AgentTokenClaims, principal };
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

  function requireServed(spiffeId: string): void {
    const td = parseSpiffeId(spiffeId).trustDomain;
    if (!deps.trustDomains.accepts(td)) {
      throw new TesseraError('TESSERA_TRUST_DOMAIN_UNKNOWN', `no token is issued for trust domain "${td}"; this Tessera serves ${deps.trustDomains.list().map((d) => `"${d}"`).join(', ')}`, { trust_domain: td });
    }
  }

  function sign(typ: string, claims: Record<string, unknown>): string {
    const { kid, privateKey } = keys.signingKey();
    return signEs256({ alg: 'ES256', kid, typ }, claims, privateKey);
  }

  const audOf = (audience: readonly string[]): string | string[] => (audience.length === 1 ? audience[0]! : [...audience]);

  /** What an agent token says, and the key that signs it (chosen now). */
  function agentToken(identity: AttestedIdentity, options: { audience: readonly string[]; cnf?: { readonly jkt: string }; role?: string }) {
    // Never sign an identity outside the served trust domains (attestation already refused it).
    requireServed(identity.spiffeId);
    if (options.cnf !== undefined && !JKT_PATTERN.test(options.cnf.jkt)) throw new TesseraError('TESSERA_INTERNAL', 'cnf.jkt is not a SHA-256 JWK thumbprint');
    const { kid, privateKey } = keys.signingKey();
    const now = clock.now();
    const iat = Math.floor(now / 1000);
    const exp = Math.floor((now + deps.agentTtlMs) / 1000);
    const jti = randomIdBytes(16);
    // SPIFFE JWT-SVID §3: header alg + kid + typ JWT; claims sub, aud, exp (+ iss, iat, nbf, jti).
    const claims = {
      iss: issuer, sub: identity.spiffeId, aud: audOf(options.audience), exp, iat, nbf: iat, jti, tessera: { attestor: identity.attestor, kind: identity.attestorKind, attrs: identity.attributes, ...(options.role !== undefined ? { role: options.role } : {}) },
      ...(options.cnf ? { cnf: { jkt: options.cnf.jkt } } : {}),
    };
    return { header: { alg: 'ES256', kid, typ: AGENT_TOKEN_TYP }, claims, privateKey, issued: { jti, expiresAt: exp * 1000, issuedAt: iat * 1000 } };
  }

  /** A task token's checked claims, and the key that signs it (chosen now). */
  function taskToken(input: TaskTokenInput) {
    const iat = Math.floor(clock.now() / 1000);
    const jti = randomIdBytes(16);
    const claims: TaskClaims = { iss: issuer, ...input, iat, nbf: iat, jti };
    const parsed = parseTaskClaims(claims);
    const problem = parsed.success ? taskClaimsProblem(parsed.data) : `${parsed.error.issues[0]?.path.join('.') ?? '?'} (invalid)`;
    if (problem) throw new TesseraError('TESSERA_INTERNAL', `refusing to sign a task token whose claim ${problem} is inconsistent`);
    if (claims.exp <= iat) throw new TesseraError('TESSERA_INTERNAL', 'refusing to sign a task token that is already expired');
    for (const a of actorsOf(claims.act)) requireServed(a.sub);
    const { kid, privateKey } = keys.signingKey();
    return { header: { alg: 'ES256', kid, typ: TASK_TOKEN_TYP }, claims, privateKey, issued: { jti, expiresAt: claims.exp * 1000, issuedAt: iat * 1000 } };
  }

  return {
    issuer,
    issueAgentToken(identity, options) {
      const t = agentToken(identity, options);
      const token = signEs256(t.header, t.claims, t.privateKey);
      issued?.inc({ type: 'agent' });
      return { token, ...t.issued };
    },

    async issueAgentTokenAsync(identity, options) {
      const t = agentToken(identity, options);
      const token = await signEs256Async(t.header, t.claims, t.privateKey);
      issued?.inc({ type: 'agent' });
      return { token, ...t.issued };
    },

    issueTaskToken(input) {
      const t = taskToken(input);
      const token = signEs256(t.header, t.claims as unknown as Record<string, unknown>, t.privateKey);
      issued?.inc({ type: 'task' });
      return { token, ...t.issued, claims: t.claims };
    },

    async issueTaskTokenAsync(input) {
      const t = taskToken(input);
      const token = await signEs256Async(t.header, t.claims as unknown as Record<string, unknown>, t.privateKey);
      issued?.inc({ type: 'task' });
      return { token, ...t.issued, claims: t.claims };
    },

    issueDownstreamToken(p, options) {
      const now = clock.now();
      const iat = Math.floor(now / 1000);
      const exp = Math.min(Math.floor((now + options.ttlMs) / 1000), Math.floor(p.expiresAt / 1000));
      const jti = randomIdBytes(16);
      const act = p.actors && p.actors.length > 0 ? nestActors(p.actors) : undefined;
      const claims = {
        iss: issuer, aud: options.audience, sub: p.subject ?? p.spiffeId, ...(act ? { act } : {}),
        ...(p.task !== undefined ? { txn: p.task, rtxn: p.rootTask ?? p.task } : {}),
        ...(p.parentTask !== undefined ? { ptxn: p.parentTask } : {}),
        iat, nbf: iat, exp: Math.max(exp, iat + 1), jti,
      };
      const token = sign(DOWNSTREAM_TOKEN_TYP, claims);
      issued?.inc({ type: 'downstream' });
      return { token, jti, expiresAt: claims.exp * 1000, issuedAt: iat * 1000 };
    },

    verify(token, options) {
      return refusing(token, async (onSigned) => {
        const v = await verifyClaims(token, options.kinds ?? ['agent', 'task'], onSigned);
        checkAudience(v.claims.aud, [options.audience]);
        return principalOf(v);
      });
    },

    verifyToken(token, options) {
      return refusing(token, async (onSigned) => {
        const v = await verifyClaims(token, options.kinds, onSigned);
        checkAudience(v.claims.aud, options.audiences);
        return toVerified(v);
      });
    },

    verifyAnyAudience(token, audiences) {
      return refusing(token, async (onSigned) => {
        const v = await verifyClaims(token, ['agent', 'task'], onSigned);
        const aud = Array.isArray(v.claims.aud) ? v.claims.aud : [v.claims.aud];
        if (!aud.some((a) => audiences.includes(a))) throw new TesseraError('TESSERA_TOKEN_AUDIENCE_INVALID', 'the token audience is not served by this Tessera');
        return toVerified(v);
      });
    },
  };
}

function checkAudience(claim: string | readonly string[], accepted: readonly string[]): void {
  const aud = typeof claim === 'string' ? [claim] : claim;
  if (!aud.some((a) => accepted.includes(a))) {
    throw new TesseraError('TESSERA_TOKEN_AUDIENCE_INVALID', `the token audience does not include ${accepted.join(' or ')}; request a token for it (RFC 8707 "resource")`);
  }
}

/** The newest actor's `sub` of a parsed `act` claim. */
function actingSub(act: Actor): string {
  return act.sub;
}

/** The newest actor's `sub` of a signed but not yet schema-checked `act`, for attributing a refusal. */
function signedActingSub(act: unknown): unknown {
  return act !== null && typeof act === 'object' ? (act as { sub?: unknown }).sub : undefined;
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
    const c = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { sub?: unknown; act?: { sub?: unknown } } | null;
    // A task token's acting agent is its newest actor (`act.sub`); an agent token's, its `sub`.
    const sub = c?.act !== null && typeof c?.act === 'object' ? c.act.sub : c?.sub;
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
export async function auditTokenRefusal(audit: Pick<AuditWriter, 'append'>, e: TesseraError, where: AuditWhere, resource?: string): Promise<void> {
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

/**
 * Attributes a refusal that came after the token's own verification (a DPoP check) to the
 * token's acting agent, as a refusal of a Tessera-signed token (see claimedSubjectOf).
 */
export function attributeRefusal(e: TesseraError, spiffeId: string): void {
  if (!claimed.has(e)) claimed.set(e, { id: spiffeId, signed: true });
}
