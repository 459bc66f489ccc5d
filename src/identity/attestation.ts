import { createRemoteJWKSet, customFetch, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { AgentRegistry } from './agent-registry.js';
import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import type { MetricsRegistry, Counter } from '../shared/metrics.js';
import { AuthCache } from '../shared/auth-cache.js';
import { createAuthEpoch, type AuthEpoch } from '../shared/auth-epoch.js';
import type { AttestorConfig } from '../config/schema.js';
import type { RequestMeta } from '../server/app.js';
import { TesseraError, fail, isTesseraError } from '../shared/errors.js';
import { TOKEN_TYPE_JOIN, TOKEN_TYPE_JWT, type AdmitIdentity, type Attestation, type AttestedIdentity } from './types.js';
import type { JoinTokenService } from './join-tokens.js';
import { KUBERNETES_PREFIX, compileTemplate, type CompiledTemplate } from './template.js';
import { parseSpiffeId, spiffeIdProblem } from './spiffe-id.js';
import { compileLabelClaims, labelAttributes } from './labels.js';
import { jwksFileSource, spiffeBundleUrlSource, type KeySource } from './bundle.js';
import { decodeJwt, verifyDecodedJwt, type DecodedJwt } from './jwt-verify.js';
import type { TokenReviewer } from './tokenreview.js';
import { POD_UID } from '../shared/principal.js';

/** JWT-SVID §3: the algorithms a JWT-SVID may be signed with. HS* and `none` never. */
export const JWT_SVID_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'] as const;
const ASYMMETRIC = new Set<string>([...JWT_SVID_ALGORITHMS, 'EdDSA']);
const SVID_ALGORITHMS: ReadonlySet<string> = new Set(JWT_SVID_ALGORITHMS);

export type AttestCheck = 'format' | 'algorithm' | 'signature' | 'issuer' | 'audience' | 'expired' | 'not_yet_valid' | 'claims' | 'spiffe_id' | 'trust_domain';

export interface AttestationDeps {
  attestors: readonly AttestorConfig[];
  trustDomain: string;
  joinTokens?: JoinTokenService;
  clock: Clock;
  audit: AuditWriter;
  store: Store;
  /** Used for JWKS and bundle URLs (tests and proxies); defaults to global fetch. */
  fetch?: typeof fetch;
  /** Allowed clock skew for `exp`/`nbf`/`iat` (default 30 s). */
  clockSkewMs?: number;
  /** Batches the `agents` inventory writes off the login path; without it each login writes at once. */
  agents?: Pick<AgentRegistry, 'record'>;
  /**
   * How many verified JWT attestations to remember (exact token string → identity), so an agent
   * re-presenting the same subject token skips signature and claim verification. Default
   * 10,000; 0 disables. Join tokens are never cached (one-time).
   */
  verifiedCacheSize?: number;
  /** How long one cached verification may be reused at most (default 5 minutes; see VERIFIED_CACHE_MAX_AGE_MS). */
  verifiedCacheMaxAgeMs?: number;
  /** `tessera_attestation_cache_total{result="hit"|"miss"}`. */
  metrics?: MetricsRegistry;
  /** Cached attestations per identity (SPIFFE ID), so one identity cannot evict the others'. Default 1000. */
  verifiedCachePerAgent?: number;
  /** The auth epoch (docs/adr/0061): cached attestations are reused only under the epoch they were made in. */
  epoch?: AuthEpoch;
  /** The TokenReview client for `mode: tokenreview` attestors (src/identity/tokenreview.ts); required when one is configured. */
  tokenReview?: TokenReviewer;
  /**
   * Told of every login of a pod (an identity with `pod_uid`) BEFORE its agent token is issued,
   * with the epoch ms until which the presented service-account token is valid; the pod watch
   * records it there (src/k8s/pods/registry.ts). A rejection refuses the login (fail closed).
   */
  pods?: { seen(identity: AttestedIdentity, tokenValidUntil: number): Promise<void> };
}

/** How long a TokenReview verdict is reused by the attestation cache at most (the reviewer caches as long). */
export const TOKENREVIEW_REUSE_MS = 10_000;

/**
 * Kubernetes projected service-account tokens live up to an hour and the SDK logs in again every
 * few minutes with the SAME token, so most logins re-present a token already verified. A cached
 * verification is reused only while (a) the token itself is still valid: until its `exp` (and
 * `iat + max_token_age` when configured) MINUS the clock skew, so the cache is always stricter
 * than jose would be, and (b) at most this long after it was verified. (b) is how key rotation
 * reaches cached tokens without tracking every key source: a key removed from a JWKS/bundle stops
 * vouching for tokens it verified within 5 minutes — the same order as jose's own remote JWKS
 * cache (cacheMaxAge 10 minutes), so the cache adds no window a JWKS URL does not already have.
 */
export const VERIFIED_CACHE_MAX_AGE_MS = 5 * 60_000;

interface Verified {
  readonly identity: AttestedIdentity;
  /** Epoch ms after which the token itself (exp, max_token_age) no longer holds, minus skew. */
  readonly validUntil: number;
}

interface JwtVerifier {
  readonly name: string;
  verify(jwt: DecodedJwt): Promise<Verified>;
}

/**
 * `attestor` is the configured attestor that refused; null when the token was refused before
 * one could be chosen (malformed, too large, a symmetric `alg`).
 */
function attestFailed(check: AttestCheck, attestor: string | null, message: string): TesseraError {
  const by = attestor === null ? 'before an attestor could be chosen' : `by attestor "${attestor}"`;
  return fail('TESSERA_ATTEST_FAILED', `attestation failed (${check}) ${by}: ${message}`, { check, attestor });
}

/** What an attestor expects of a token, named in its refusals (configuration, never secret). */
interface Expected {
  readonly issuer?: string;
  readonly audience: string;
}

/** Maps jose's errors (thrown by jwt-verify.ts and jose's key sets) to the check that failed; never echoes token content. */
function mapJoseError(e: unknown, attestor: string, expected: Expected): TesseraError {
  if (isTesseraError(e)) return e;
  const err = e as { code?: string; claim?: string; reason?: string; message?: string };
  switch (err.code) {
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return attestFailed('algorithm', attestor, 'the token is signed with an algorithm this attestor does not allow');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return attestFailed('signature', attestor, 'the signature does not verify with the configured keys');
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return attestFailed('signature', attestor, 'no key in the configured key set matches the token (unknown kid, or a key not usable for JWT signatures)');
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return attestFailed('signature', attestor, 'several keys match a token without a kid; the token must name its key');
    case 'ERR_JWT_EXPIRED':
      return attestFailed('expired', attestor, 'the token has expired (exp)');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (err.reason === 'missing') return attestFailed('claims', attestor, `the token lacks the required "${err.claim}" claim`);
      if (err.claim === 'iss') return attestFailed('issuer', attestor, `the token issuer (iss) is not "${expected.issuer ?? '?'}", the issuer this attestor is configured for (attestors[].issuer in tessera.yaml)`);
      if (err.claim === 'aud') return attestFailed('audience', attestor, `the token audience (aud) does not include "${expected.audience}", the audience this attestor expects (attestors[].audience in tessera.yaml; for a Kubernetes projected token, the serviceAccountToken audience of the pod)`);
      if (err.claim === 'nbf') return attestFailed('not_yet_valid', attestor, 'the token is not valid yet (nbf)');
      if (err.claim === 'iat') return attestFailed(err.reason === 'check_failed' && /age/i.test(err.message ?? '') ? 'expired' : 'not_yet_valid', attestor, `the token iat check failed: ${err.message ?? ''}`);
      return attestFailed('claims', attestor, `claim "${err.claim}" is invalid`);
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return attestFailed('format', attestor, 'the token is not a well-formed signed JWT');
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return fail('TESSERA_BUNDLE_INVALID', `attestor "${attestor}": the key set could not be loaded (${err.code}); check the JWKS URL or file`);
    default:
      if (err.code === 'ERR_JOSE_GENERIC' || e instanceof TypeError) {
        return fail('TESSERA_BUNDLE_INVALID', `attestor "${attestor}": the key set could not be fetched; check the JWKS URL and that it is reachable`);
      }
      return attestFailed('signature', attestor, 'the token could not be verified');
  }
}


/** The pod claims of a projected service-account token (named in refusals). */
const POD_NAME_CLAIM = 'kubernetes.io.pod.name';
const POD_UID_CLAIM = 'kubernetes.io.pod.uid';

/** RFC 1123 label (Kubernetes namespace names): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** RFC 1123 subdomain (service account and pod names): dot-separated labels, at most 253. */
function isDnsSubdomain(v: string): boolean {
  return v.length <= 253 && v.split('.').every((l) => DNS_LABEL.test(l));
}

/**
 * Kubernetes projected service-account token → `spiffe://<td>/ns/<namespace>/sa/<serviceaccount>`,
 * with attributes `namespace`, `service_account` and `pod` taken from the verified
 * `kubernetes.io` claim (the only source of Kubernetes attributes, ADR 0021). Kubernetes names
 * are RFC 1123 labels/subdomains; a token carrying anything else was not minted by a real API
 * server for a real object, so it is refused rather than mapped.
 */
function kubernetesIdentity(claims: JWTPayload, trustDomain: string, attestor: string): { spiffeId: string; attributes: Record<string, string> } {
  const k8s = claims['kubernetes.io'] as { namespace?: unknown; serviceaccount?: { name?: unknown }; pod?: { name?: unknown; uid?: unknown } } | undefined;
  if (!k8s || typeof k8s !== 'object' || Array.isArray(k8s)) {
    throw fail('TESSERA_ATTEST_CLAIM_MISSING', `attestor "${attestor}" (template kubernetes) needs the "kubernetes.io" claim of a projected service-account token`, { claim: 'kubernetes.io' });
  }
  const ns = k8s.namespace;
  const sa = k8s.serviceaccount && typeof k8s.serviceaccount === 'object' ? k8s.serviceaccount.name : undefined;
  if (typeof ns !== 'string' || ns === '') throw fail('TESSERA_ATTEST_CLAIM_MISSING', `attestor "${attestor}": the token has no kubernetes.io.namespace claim`, { claim: 'kubernetes.io.namespace' });
  if (typeof sa !== 'string' || sa === '') throw fail('TESSERA_ATTEST_CLAIM_MISSING', `attestor "${attestor}": the token has no kubernetes.io.serviceaccount.name claim`, { claim: 'kubernetes.io.serviceaccount.name' });
  if (!DNS_LABEL.test(ns)) throw attestFailed('spiffe_id', attestor, 'kubernetes.io.namespace is not a Kubernetes namespace name (RFC 1123 label: lowercase letters, digits and "-", at most 63)');
  if (!isDnsSubdomain(sa)) throw attestFailed('spiffe_id', attestor, 'kubernetes.io.serviceaccount.name is not a Kubernetes name (RFC 1123 subdomain)');
  const attributes: Record<string, string> = { namespace: ns, service_account: sa };
  const pod = k8s.pod && typeof k8s.pod === 'object' ? k8s.pod.name : undefined;
  if (pod !== undefined) {
    if (typeof pod !== 'string' || !isDnsSubdomain(pod)) throw attestFailed('claims', attestor, `${POD_NAME_CLAIM} is not a Kubernetes name (RFC 1123 subdomain)`);
    attributes.pod = pod;
    // The pod's uid (docs/k8s-pods.md): what a pod deletion revokes by. A pod name is reused
    // (StatefulSets), its uid never.
    const uid = (k8s.pod as { uid?: unknown }).uid;
    if (uid !== undefined) {
      if (typeof uid !== 'string' || !POD_UID.test(uid)) throw attestFailed('claims', attestor, `${POD_UID_CLAIM} is not a Kubernetes uid (letters, digits and "-", at most 64)`);
      attributes.pod_uid = uid;
    }
  }
  return { spiffeId: parseSpiffeId(`spiffe://${trustDomain}/${KUBERNETES_PREFIX}/${ns}/sa/${sa}`).id, attributes };
}

/** The `kubernetes.io` claim a TokenReview answer stands for, so both modes map identities the same way. */
function claimsOfReview(r: { namespace: string; serviceAccount: string; podName?: string; podUid?: string }): JWTPayload {
  const pod = r.podName !== undefined ? { pod: { name: r.podName, ...(r.podUid !== undefined ? { uid: r.podUid } : {}) } } : {};
  return { 'kubernetes.io': { namespace: r.namespace, serviceaccount: { name: r.serviceAccount }, ...pod } };
}

function keySourceFor(a: Extract<AttestorConfig, { kind: 'jwt' }>, deps: AttestationDeps): KeySource {
  if (a.jwks_file) return jwksFileSource(a.jwks_file, 'jwks');
  const url = new URL(a.jwks_url as string);
  // jose caches the key set and refetches on an unknown kid (rate-limited by its cooldown).
  const remote = createRemoteJWKSet(url, { timeoutDuration: 5000, ...(deps.fetch ? { [customFetch]: deps.fetch } : {}) });
  return { getKey: async () => remote as JWTVerifyGetKey };
}

export function createAttestation(deps: AttestationDeps): Attestation {
  const { clock, store, trustDomain } = deps;
  const skewMs = deps.clockSkewMs ?? 30_000;
  const skewS = Math.round(skewMs / 1000);
  const cacheMaxAgeMs = deps.verifiedCacheMaxAgeMs ?? VERIFIED_CACHE_MAX_AGE_MS;
  // Keyed by the WHOLE token string (never a prefix or hash): a hit means these exact bytes were
  // verified. Least recently used first out; per-identity quota; auth epoch (AuthCache).
  const verified = new AuthCache<Verified>({ capacity: deps.verifiedCacheSize ?? 10_000, perOwner: deps.verifiedCachePerAgent ?? 1000, epoch: deps.epoch ?? createAuthEpoch(), clock });
  const cacheCounter: Counter | undefined = deps.metrics?.counter('tessera_attestation_cache_total', 'JWT attestation verifications reused (hit) or performed (miss)');
  /** `exp` (and `iat + max_token_age`) in ms, minus skew: how long the token itself holds. */
  const validUntil = (payload: JWTPayload, maxTokenAgeMs?: number): number => {
    let until = (payload.exp ?? 0) * 1000 - skewMs; // exp is required by every attestor
    if (maxTokenAgeMs !== undefined) until = Math.min(until, (payload.iat ?? 0) * 1000 + maxTokenAgeMs - skewMs);
    return until;
  };
  const jwtByIssuer = new Map<string, JwtVerifier>();
  const spiffeByTd = new Map<string, JwtVerifier>();
  let joinAttestor: string | undefined;
  /** Template first segment → attestor name. */
  const prefixOwner = new Map<string, string>();

  for (const a of deps.attestors) {
    if (a.kind === 'join_token') {
      joinAttestor ??= a.name;
      continue;
    }
    if (a.kind === 'jwt') {
      if (jwtByIssuer.has(a.issuer)) throw fail('TESSERA_CONFIG_INVALID', `attestors: two jwt attestors use issuer ${a.issuer}; each issuer may appear once`);
      const algorithms = a.algorithms.filter((x) => ASYMMETRIC.has(x));
      const template: CompiledTemplate | 'kubernetes' = a.template === 'kubernetes' ? 'kubernetes' : compileTemplate(a.template, `attestors.${a.name}.template`);
      const labels = compileLabelClaims(a.label_claims, a.name);
      if (template !== 'kubernetes') {
        // A jwt attestor mints identities of Tessera's own trust domain only (federation is `kind: spiffe`).
        if (template.authority !== '{trust_domain}' && template.authority !== trustDomain) {
          throw fail('TESSERA_CONFIG_INVALID', `attestors.${a.name}.template names trust domain "${template.authority}", but this Tessera's trust_domain is "${trustDomain}"; use {trust_domain}`);
        }
        // Each templated attestor owns its first segment, so two attestors never mint the same ID.
        const owner = prefixOwner.get(template.prefix);
        if (owner) throw fail('TESSERA_CONFIG_INVALID', `attestors: "${a.name}" and "${owner}" both start their template with "/${template.prefix}/"; give each attestor its own first segment so their identities cannot collide`);
        prefixOwner.set(template.prefix, a.name);
      }
      const attestorKind = template === 'kubernetes' ? 'kubernetes' : 'jwt';
      if (a.mode === 'tokenreview') {
        const reviewer = deps.tokenReview;
        if (!reviewer) throw fail('TESSERA_CONFIG_INVALID', `attestors.${a.name}: mode tokenreview needs the Kubernetes API (kubernetes.api in tessera.yaml, or in-cluster defaults)`);
        jwtByIssuer.set(a.issuer, {
          name: a.name,
          async verify(jwt) {
            // The API server verifies everything (signature, expiry, audience, the bound pod still
            // existing); the unverified claims only bound how long the verdict is reused.
            const reviewed = await reviewer.review(`${jwt.signingInput}.${jwt.encodedSignature}`, a.audience);
            const mapped = kubernetesIdentity(claimsOfReview(reviewed), trustDomain, a.name);
            return {
              identity: { spiffeId: mapped.spiffeId, attestor: a.name, attestorKind: 'kubernetes', attributes: { ...mapped.attributes, issuer: a.issuer } },
              validUntil: Math.min(validUntil(jwt.claims), clock.now() + TOKENREVIEW_REUSE_MS),
            };
          },
        });
        continue;
      }
      const keys = keySourceFor(a, deps);
      const allowed = new Set(algorithms);
      const maxTokenAgeS = a.max_token_age ? Math.round(a.max_token_age / 1000) : undefined;
      jwtByIssuer.set(a.issuer, {
        name: a.name,
        async verify(jwt) {
          let payload: JWTPayload;
          try {
            payload = await verifyDecodedJwt(jwt, {
              getKey: await keys.getKey(),
              issuer: a.issuer,
              audience: a.audience,
              algorithms: allowed,
              requiredClaims: ['exp'],
              nowS: Math.floor(clock.now() / 1000),
              toleranceS: skewS,
              ...(maxTokenAgeS !== undefined ? { maxTokenAgeS } : {}),
            });
          } catch (e) {
            throw mapJoseError(e, a.name, { issuer: a.issuer, audience: a.audience });
          }
          const mapped =
            template === 'kubernetes'
              ? kubernetesIdentity(payload, trustDomain, a.name)
              : { spiffeId: template.render({ trustDomain, claims: payload }), attributes: {} as Record<string, string> };
          return {
            identity: { spiffeId: mapped.spiffeId, attestor: a.name, attestorKind, attributes: { ...labelAttributes(payload, labels, a.name), ...mapped.attributes, issuer: a.issuer } },
            validUntil: validUntil(payload, a.max_token_age || undefined),
          };
        },
      });
      continue;
    }
    // a.kind === 'spiffe'
    if (spiffeByTd.has(a.trust_domain)) throw fail('TESSERA_CONFIG_INVALID', `attestors: two spiffe attestors use trust domain ${a.trust_domain}`);
    const keys: KeySource = a.bundle_file
      ? jwksFileSource(a.bundle_file, 'spiffe')
      : spiffeBundleUrlSource({ url: a.bundle_url as string, refreshMs: a.bundle_refresh, clock, ...(deps.fetch ? { fetch: deps.fetch } : {}) });
    spiffeByTd.set(a.trust_domain, {
      name: a.name,
      async verify(jwt) {
        let payload: JWTPayload;
        try {
          // JWT-SVID §3 (alg), §3.1 (sub), §3.2 (aud required), §3.3 (exp required).
          payload = await verifyDecodedJwt(jwt, {
            getKey: await keys.getKey(),
            audience: a.audience,
            algorithms: SVID_ALGORITHMS,
            requiredClaims: ['sub', 'aud', 'exp'],
            nowS: Math.floor(clock.now() / 1000),
            toleranceS: skewS,
          });
        } catch (e) {
          throw mapJoseError(e, a.name, { audience: a.audience });
        }
        const problem = spiffeIdProblem(String(payload.sub));
        if (problem) throw attestFailed('spiffe_id', a.name, 'the JWT-SVID sub is not a valid SPIFFE ID (JWT-SVID §3.1)');
        const sub = parseSpiffeId(payload.sub);
        if (sub.trustDomain !== a.trust_domain) throw attestFailed('trust_domain', a.name, `the JWT-SVID sub is not in trust domain "${a.trust_domain}"`);
        return { identity: { spiffeId: sub.id, attestor: a.name, attestorKind: 'spiffe', attributes: { trust_domain: sub.trustDomain } }, validUntil: validUntil(payload) };
      },
    });
  }

  async function recordAgent(identity: AttestedIdentity): Promise<void> {
    if (deps.agents) {
      deps.agents.record(identity);
      return;
    }
    const now = clock.now();
    // Portable upsert (SQLite ≥ 3.24 and PostgreSQL ≥ 9.5 both support ON CONFLICT ... DO UPDATE).
    await store.run(
      `INSERT INTO agents (spiffe_id, attestor, attributes, first_seen, last_seen, logins) VALUES (?, ?, ?, ?, ?, 1)
       ON CONFLICT (spiffe_id) DO UPDATE SET attestor = excluded.attestor, attributes = excluded.attributes, last_seen = excluded.last_seen, logins = agents.logins + 1`,
      [identity.spiffeId, identity.attestor, JSON.stringify(identity.attributes), now, now],
    );
  }

  /** The token decoded once, and the attestor that verifies it. */
  function selectJwtAttestor(token: string): { verifier: JwtVerifier; jwt: DecodedJwt } {
    let jwt: DecodedJwt;
    try {
      // Unverified: used ONLY to pick the attestor, which then verifies everything, signature first.
      jwt = decodeJwt(token, (header) => {
        if (typeof header.alg !== 'string' || !ASYMMETRIC.has(header.alg)) {
          throw attestFailed('algorithm', null, `algorithm ${JSON.stringify(String(header.alg)).slice(0, 20)} is never accepted for attestation (only asymmetric signatures)`);
        }
      });
    } catch (e) {
      if (isTesseraError(e)) throw e;
      throw attestFailed('format', null, 'the subject token is not a well-formed signed JWT (RFC 7519)');
    }
    const claims = jwt.claims;
    if (typeof claims.iss === 'string') {
      const byIss = jwtByIssuer.get(claims.iss);
      if (byIss) return { verifier: byIss, jwt };
    }
    if (typeof claims.sub === 'string' && claims.sub.startsWith('spiffe://')) {
      // The trust domain is read loosely here so that a malformed sub in a known trust domain
      // reaches that attestor and is refused by its full `sub` check (with a precise reason).
      const td = /^spiffe:\/\/([^/]*)/.exec(claims.sub)?.[1] ?? '';
      const bySub = spiffeByTd.get(td);
      if (bySub) return { verifier: bySub, jwt };
    }
    throw fail('TESSERA_ATTEST_NO_ATTESTOR', 'no configured attestor accepts this token: its issuer (iss) matches no jwt attestor and its sub is not a SPIFFE ID of a configured spiffe trust domain; see docs/attestors.md');
  }

  /** Verified JWT attestation, reused from the cache while it holds (VERIFIED_CACHE_MAX_AGE_MS). */
  async function verifyJwt(token: string): Promise<Verified> {
    const now = clock.now();
    const epoch = verified.epoch;
    const hit = verified.get(token);
    if (hit) {
      cacheCounter?.inc({ result: 'hit' });
      return hit;
    }
    cacheCounter?.inc({ result: 'miss' });
    const { verifier, jwt } = selectJwtAttestor(token);
    const v = await verifier.verify(jwt);
    const until = Math.min(v.validUntil, now + cacheMaxAgeMs);
    // Frozen: every hit hands out the same object.
    verified.set(token, Object.freeze({ identity: Object.freeze({ ...v.identity, attributes: Object.freeze({ ...v.identity.attributes }) }), validUntil: v.validUntil }), { owner: v.identity.spiffeId, epoch, until });
    return v;
  }

  /**
   * Every identity is in a trust domain this Tessera serves: its own for join tokens and `jwt`
   * attestors, the attestor's configured one for `spiffe` (checked in its verifier as well).
   * Defence in depth: the mappers above cannot produce anything else.
   */
  function requireServedDomain(identity: AttestedIdentity): void {
    const td = parseSpiffeId(identity.spiffeId).trustDomain;
    const ok = identity.attestorKind === 'spiffe' ? spiffeByTd.get(td)?.name === identity.attestor : td === trustDomain;
    if (!ok) throw attestFailed('trust_domain', identity.attestor, `the identity is in trust domain "${td}", which this attestor may not vouch for (Tessera's trust domain is "${trustDomain}")`);
  }

  /** Join tokens: trust domain and `admit` are checked on the stored SPIFFE ID before the token is consumed. */
  async function attestJoinToken(subjectToken: string, meta: RequestMeta, admit: AdmitIdentity | undefined): Promise<AttestedIdentity> {
    if (!joinAttestor || !deps.joinTokens) throw fail('TESSERA_ATTEST_NO_ATTESTOR', 'join tokens are not enabled; add a `kind: join_token` attestor to tessera.yaml');
    const name = joinAttestor;
    const consumed = await deps.joinTokens.consume(subjectToken, meta, (spiffeId) => {
      requireServedDomain({ spiffeId, attestor: name, attestorKind: 'join_token', attributes: {} });
      admit?.(spiffeId);
    });
    // Operator-set labels only: a join token proves the SPIFFE ID, never Kubernetes attributes.
    const attributes: Record<string, string> = {};
    for (const [k, v] of Object.entries(consumed.labels)) attributes[`label.${k}`] = v;
    return { spiffeId: consumed.spiffeId, attestor: name, attestorKind: 'join_token', attributes };
  }

  return {
    async attest(subjectToken: string, subjectTokenType: string, meta: RequestMeta, options: { admit?: AdmitIdentity } = {}): Promise<AttestedIdentity> {
      let identity: AttestedIdentity;
      if (subjectTokenType === TOKEN_TYPE_JOIN) {
        identity = await attestJoinToken(subjectToken, meta, options.admit);
      } else if (subjectTokenType === TOKEN_TYPE_JWT) {
        if (typeof subjectToken !== 'string' || subjectToken.length > 16_384) throw attestFailed('format', null, 'the subject token is empty or larger than 16 KiB');
        const v = await verifyJwt(subjectToken);
        identity = v.identity;
        requireServedDomain(identity);
        options.admit?.(identity.spiffeId);
        // A pod's first login is durable before its token leaves (the pod watch must know it).
        if (deps.pods && identity.attestorKind === 'kubernetes' && identity.attributes.pod_uid !== undefined) await deps.pods.seen(identity, v.validUntil + skewMs);
      } else {
        throw fail('TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE', `subject_token_type must be ${TOKEN_TYPE_JWT} or ${TOKEN_TYPE_JOIN}`);
      }
      await recordAgent(identity);
      return identity;
    },
  };
}
