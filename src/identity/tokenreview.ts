/**
 * The `tokenreview` mode of a jwt attestor (docs/attestors.md#tokenreview, ADR 0267): the
 * presented service-account token is validated by the Kubernetes API server itself, through the
 * TokenReview API (`authentication.k8s.io/v1`, POST /apis/authentication.k8s.io/v1/tokenreviews),
 * for clusters whose issuer is not publicly discoverable (no JWKS Tessera can read). Vault's
 * Kubernetes auth method works the same way.
 *
 * Pure core: the HTTP call is the `post` port (src/k8s/pods/api.ts adapts @kubernetes/client-node),
 * the answer is checked with zod, results are cached briefly in memory keyed by the SHA-256 of
 * the token (the token itself is never kept), bounded (least recently used out first).
 *
 * What the API server answers (kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-review-v1/):
 *   status.authenticated   true when the token is valid (signature, expiry, and the bound pod /
 *                          secret still exists: a deleted pod's token is refused here)
 *   status.audiences       the audiences of spec.audiences the token is valid for
 *   status.user.username   `system:serviceaccount:<namespace>:<name>`
 *   status.user.extra      `authentication.kubernetes.io/pod-name` / `pod-uid` (each a one-item list)
 *
 * Errors: TESSERA_TOKENREVIEW_REJECTED (not authenticated), TESSERA_TOKENREVIEW_AUDIENCE (valid,
 * but not for this attestor's audience), TESSERA_TOKENREVIEW_USER_INVALID (not a service account,
 * or names a real API server never produces), TESSERA_TOKENREVIEW_UNAVAILABLE (the API could not
 * be asked or answered nonsense: fail closed).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../shared/clock.js';
import { fail, isTesseraError, type TesseraError } from '../shared/errors.js';

/** The service account (and pod) the API server vouched for. */
export interface ReviewedServiceAccount {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly podName?: string;
  readonly podUid?: string;
}

/** POSTs a TokenReview object and resolves with the API server's answer (parsed JSON), or rejects. */
export type TokenReviewPost = (review: TokenReviewRequest) => Promise<unknown>;

export interface TokenReviewRequest {
  readonly apiVersion: 'authentication.k8s.io/v1';
  readonly kind: 'TokenReview';
  readonly spec: { readonly token: string; readonly audiences: readonly string[] };
}

export interface TokenReviewer {
  /** Throws the TESSERA_TOKENREVIEW_* errors above; never echoes the token or the API's error text. */
  review(token: string, audience: string): Promise<ReviewedServiceAccount>;
}

export interface TokenReviewerDeps {
  readonly post: TokenReviewPost;
  readonly clock: Clock;
  /** How long a positive answer is reused (ms, default 10 s; 0 disables). Negative answers are never cached. */
  readonly cacheTtlMs?: number;
  /** At most this many cached answers (default 10,000). */
  readonly cacheSize?: number;
  /** The API call's deadline (ms, default 5 s); past it the login fails closed. */
  readonly timeoutMs?: number;
}

const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';
const SA_PREFIX = 'system:serviceaccount:';

const answerSchema = z.object({
  status: z.object({
    authenticated: z.boolean().optional(),
    audiences: z.array(z.string()).optional(),
    user: z.object({
      username: z.string().max(1024).optional(),
      extra: z.record(z.string(), z.array(z.string().max(1024)).max(16)).optional(),
    }).optional(),
  }),
});

const unavailable = (why: string): TesseraError => fail('TESSERA_TOKENREVIEW_UNAVAILABLE', `the Kubernetes TokenReview API could not validate the token (${why}); the login is refused (fail closed). Check kubernetes.api and that Tessera's service account is bound to system:auth-delegator`);

/** `system:serviceaccount:<ns>:<sa>` → its parts; undefined for any other user (a person, a node). */
export function parseServiceAccountUsername(username: string): { namespace: string; serviceAccount: string } | undefined {
  if (!username.startsWith(SA_PREFIX)) return undefined;
  const rest = username.slice(SA_PREFIX.length).split(':');
  if (rest.length !== 2 || !rest[0] || !rest[1]) return undefined;
  return { namespace: rest[0], serviceAccount: rest[1] };
}

function toReviewed(answer: unknown, audience: string): ReviewedServiceAccount {
  const parsed = answerSchema.safeParse(answer);
  if (!parsed.success) throw unavailable('the API server answered something that is not a TokenReview status');
  const st = parsed.data.status;
  if (st.authenticated !== true) {
    throw fail('TESSERA_TOKENREVIEW_REJECTED', 'the Kubernetes API server did not authenticate the service-account token (expired, revoked, or its pod or service account no longer exists)');
  }
  // An API server that ignores spec.audiences answers none: refused, never taken as "any".
  if (!st.audiences?.includes(audience)) {
    throw fail('TESSERA_TOKENREVIEW_AUDIENCE', `the service-account token is not valid for audience "${audience}" (attestors[].audience; the pod's projected token audience)`);
  }
  const sa = parseServiceAccountUsername(st.user?.username ?? '');
  if (!sa) throw fail('TESSERA_TOKENREVIEW_USER_INVALID', 'the token authenticates a Kubernetes user that is not a service account (system:serviceaccount:<namespace>:<name>)');
  const one = (key: string): string | undefined => {
    const v = st.user?.extra?.[key];
    if (v === undefined) return undefined;
    if (v.length !== 1) throw fail('TESSERA_TOKENREVIEW_USER_INVALID', `the TokenReview answer carries ${v.length} values for ${key}; exactly one is expected`);
    return v[0];
  };
  const podName = one(POD_NAME);
  const podUid = one(POD_UID);
  return { ...sa, ...(podName !== undefined ? { podName } : {}), ...(podUid !== undefined ? { podUid } : {}) };
}

export function createTokenReviewer(deps: TokenReviewerDeps): TokenReviewer {
  const ttl = deps.cacheTtlMs ?? 10_000;
  const size = deps.cacheSize ?? 10_000;
  const timeoutMs = deps.timeoutMs ?? 5_000;
  /** SHA-256(audience \0 token) → answer; Map order is recency (re-inserted on a hit). */
  const cache = new Map<string, { value: ReviewedServiceAccount; until: number }>();

  async function ask(token: string, audience: string): Promise<ReviewedServiceAccount> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(unavailable(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    let answer: unknown;
    try {
      answer = await Promise.race([deps.post({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } }), deadline]);
    } catch (e) {
      if (isTesseraError(e)) throw e;
      const status = (e as { code?: unknown; statusCode?: unknown }).code ?? (e as { statusCode?: unknown }).statusCode;
      throw unavailable(typeof status === 'number' ? `HTTP ${status}` : 'the API server is unreachable');
    } finally {
      clearTimeout(timer);
    }
    return toReviewed(answer, audience);
  }

  return {
    async review(token, audience) {
      const key = createHash('sha256').update(audience).update('\0').update(token).digest('base64url');
      const now = deps.clock.now();
      const hit = cache.get(key);
      if (hit) {
        cache.delete(key);
        if (hit.until > now) {
          cache.set(key, hit);
          return hit.value;
        }
      }
      const value = await ask(token, audience);
      if (ttl > 0 && size > 0) {
        if (cache.size >= size) cache.delete(cache.keys().next().value as string);
        cache.set(key, { value, until: now + ttl });
      }
      return value;
    },
  };
}
