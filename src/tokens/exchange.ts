import type { Store } from '../store/port.js';
import { insertExposures, type ExposureRow } from '../exposure/store.js';
import { z } from 'zod';
import { loginRole, requireRole } from '../identity/role.js';
import type { Authorizer } from '../policy/types.js';
import type { Attestation } from '../identity/types.js';
import { TOKEN_TYPE_JOIN, TOKEN_TYPE_JWT } from '../identity/types.js';
import type { RevocationChecker } from '../shared/revocation.js';
import type { AuditWriter } from '../audit/port.js';
import type { RequestMeta } from '../server/app.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import { auditTokenRefusal, type TokenService } from './service.js';
import { sourceKey, type TokenBuckets } from '../shared/rate-limit.js';
import type { DpopGuard } from '../dpop/guard.js';
import type { AuthFailureGuard } from '../shared/auth-failures.js';
import type { LimitAuditor, LimitName } from '../shared/limit-audit.js';
import { TASK_LIMITS, TASK_TOKEN_TYP } from '../tasks/claims.js';
import type { TaskExchange, TaskTokenResponse } from '../tasks/exchange.js';
import { DOWNSTREAM_TOKEN_TYP } from './service.js';
import { NEXT_STEPS } from '../shared/next-steps.js';

export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
/** RFC 8693 §3: a person's OpenID Connect ID token (on behalf of a user, docs/users.md). */
export const TOKEN_TYPE_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';

/** RFC 8693 §2.2.1 successful response: a login's agent token, or a task token. */
export type TokenExchangeResponse = LoginResponse | TaskTokenResponse | GrantResponse;

/** RFC 6749 §5.1 response of the authorization_code and refresh_token grants (src/users/oauth). */
export interface GrantResponse {
  readonly access_token: string;
  readonly token_type: 'Bearer' | 'DPoP';
  readonly expires_in: number;
  readonly scope: string;
  readonly refresh_token?: string;
}

/** A login's answer; `token_type: DPoP` for a DPoP-bound token (RFC 9449 §5). */
export interface LoginResponse {
  readonly access_token: string;
  readonly issued_token_type: typeof TOKEN_TYPE_JWT;
  readonly token_type: 'Bearer' | 'DPoP';
  readonly expires_in: number;
}

/**
 * The HTTP facts of a token request its DPoP proof is checked against (RFC 9449 §5: htm POST,
 * htu the endpoint, no `ath`). The key of a valid proof is what the issued token is bound to —
 * a login's agent token, a root task's or a child's task token alike.
 */
export interface TokenRequestHttp {
  readonly method: string;
  /** Request target as received. */
  readonly target: string;
  /** The `DPoP` header, if any. */
  readonly proof: string | readonly string[] | undefined;
}

const many = z.union([z.string().min(1).max(2048), z.array(z.string().min(1).max(2048)).min(1).max(8)]).optional();

// RFC 8693 §2.1 request parameters, and the task parameters (docs/tasks.md "Parameters").
// Unknown parameters are ignored (RFC 6749 §3.2), except names of claims (src/tasks/params.ts).
const requestSchema = z.object({
  grant_type: z.string().min(1, 'grant_type is required'),
  subject_token: z.string().min(1).max(16_384),
  subject_token_type: z.string().min(1).max(256),
  audience: many,
  resource: many,
  requested_token_type: z.string().max(256).optional(),
  scope: z.string().max(TASK_LIMITS.scopes * (TASK_LIMITS.scopeChars + 1)).optional(),
  actor_token: z.string().max(16_384).optional(),
  actor_token_type: z.string().max(256).optional(),
  purpose: z.string().max(4 * TASK_LIMITS.purposeChars).optional(),
  tctx: z.string().max(2 * TASK_LIMITS.tctxJsonBytes).optional(),
  requested_ttl: z.string().max(32).optional(),
  max_depth: z.string().max(32).optional(),
  label: z.string().max(4 * TASK_LIMITS.labelChars).optional(),
  scope_mode: z.string().max(32).optional(),
});

/** Parameters only a task exchange takes: on a login they mean the client is confused, so they are refused. */
const TASK_ONLY = ['purpose', 'tctx', 'requested_ttl', 'max_depth', 'label', 'scope_mode'] as const;

/**
 * Parameters that would let a client name the key a token is bound to. A token is bound only to
 * the key of the request's own verified DPoP proof (RFC 9449 §5): a thumbprint by parameter
 * (`dpop_jkt` is an authorization-endpoint parameter, RFC 9449 §10) proves no key, so it is
 * refused rather than ignored (ignoring it would issue a bearer token the client believes bound).
 */
const KEY_PARAMETERS = ['dpop_jkt'] as const;

export interface TokenExchange {
  /**
   * The per-source login limit (`tokens.login_rate_limit.per_source`): call before the body is
   * parsed (a route `onRequest` hook). Throws TESSERA_LOGIN_RATE_LIMITED (429) with
   * `details.retry_after_s`.
   */
  admitSource(meta: RequestMeta): void;
  /**
   * `http`: the request's method, target and `DPoP` header; a valid proof binds the issued token
   * to its key (absent: no proof, as for a request without a `DPoP` header).
   */
  exchange(params: unknown, meta: RequestMeta, http?: TokenRequestHttp): Promise<TokenExchangeResponse>;
}

export interface TokenExchangeDeps {
  /** Decides `role.assume` for a login asking for a role (the policy engine); absent: every role is refused. */
  readonly roles?: Pick<Authorizer, 'authorize'>;
  readonly attestation: Attestation;
  readonly tokens: TokenService;
  readonly revocations: RevocationChecker;
  readonly audit: AuditWriter;
  /** DPoP (src/dpop): verifies a proof sent with the request and says when binding is required. */
  readonly dpop: DpopGuard;
  /** Audience of a token requested without `audience`/`resource`: Tessera's own API. */
  readonly defaultAudience: string;
  /** Every audience Tessera serves (its API, the MCP gateway, the proxy). RFC 8707 §2. */
  readonly allowedAudiences: readonly string[];
  /**
   * Logins per second (`tokens.login_rate_limit`): per source address before any work, per
   * verified identity before a token is issued. Absent: no limit (unit tests of the exchange).
   */
  readonly loginLimits?: { readonly perIdentity: TokenBuckets; readonly perSource: TokenBuckets; readonly audit?: LimitAuditor };
  /**
   * Refused credentials per source (src/shared/auth-failures.ts): checked in `admitSource`, a
   * refused attestation or presented token charged to its source, failure events aggregated.
   */
  readonly failures?: AuthFailureGuard;
  /**
   * The SPIFFE ID a join token is bound to, when it is valid and unused (read-only): lets the
   * per-identity limit refuse BEFORE the one-time token is consumed, so a refused login can be
   * retried with the same token.
   */
  readonly joinTokenIdentity?: (token: string) => Promise<string | undefined>;
  /**
   * Task tokens and delegation (src/tasks): exchanges whose subject is one of Tessera's own
   * tokens (`subject_token_type` access_token). Absent: refused as unsupported (unit tests).
   */
  readonly tasks?: TaskExchange;
  /** Whether a token claims a configured `users.issuers` issuer (unverified; routing only). */
  readonly userIssuer?: (token: string) => boolean;
  /**
   * Other grants at the same endpoint (Tessera's authorization server, src/users/oauth):
   * `authorization_code` and `refresh_token`. Absent: refused as unsupported.
   */
  readonly grants?: { readonly types: readonly string[]; handle(params: Readonly<Record<string, unknown>>, meta: RequestMeta, options: { readonly proofJkt?: string | undefined }): Promise<TokenExchangeResponse> };
  /**
   * The audit log's store: the agent token's exposure window (src/exposure, ADR 0150) is written
   * in the same commit as its `auth.login` event. Absent (unit tests): the event alone.
   */
  readonly store?: Store;
}

/**
 * Whether `token` claims to be one of Tessera's own (unverified: for routing and for a precise
 * refusal only, never to grant anything): its `typ` is a task or downstream token's, or it is a
 * `JWT` whose `iss` is this Tessera.
 */
/**
 * TESSERA_AGENT_REVOKED saying what lifts it: the revocation's id and end, with the step in
 * `details.next_step` (the CLI shows `tessera revoke lift <id>`). The id is an opaque handle only
 * an admin token can act on.
 */
function agentRevoked(revocations: RevocationChecker, spiffeId: string): TesseraError {
  const r = revocations.agentRevocation?.(spiffeId);
  if (!r) {
    const step = NEXT_STEPS.listRevocations();
    return new TesseraError('TESSERA_AGENT_REVOKED', `this agent is revoked; logins are refused until the revocation expires or an operator lifts it (find it with ${step.route})`, { next_step: step });
  }
  const step = NEXT_STEPS.liftRevocation(r.id);
  const until = r.expiresAt === null ? 'until an operator lifts it' : `until ${new Date(r.expiresAt).toISOString()} or until an operator lifts it`;
  return new TesseraError('TESSERA_AGENT_REVOKED', `this agent is revoked (revocation ${r.id}); logins are refused ${until}: ${step.route}`, { revocation_id: r.id, next_step: step });
}

function tesseraTokenKind(token: string, issuer: string): 'agent' | 'task' | 'downstream' | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || token.length > 16_384) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as { typ?: unknown } | null;
    if (header?.typ === TASK_TOKEN_TYP) return 'task';
    if (header?.typ === DOWNSTREAM_TOKEN_TYP) return 'downstream';
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { iss?: unknown } | null;
    if (payload?.iss === issuer) return 'agent';
  } catch {
    return undefined;
  }
  return undefined;
}

/** A request without HTTP facts (a direct call): no `DPoP` header, so no proof. */
const NO_PROOF: TokenRequestHttp = { method: 'POST', target: '/', proof: undefined };

const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export function createTokenExchange(deps: TokenExchangeDeps): TokenExchange {
  const { attestation, tokens, revocations, audit } = deps;

  /** Takes a login from a bucket, or throws TESSERA_LOGIN_RATE_LIMITED (audited without storms). */
  function charge(limit: LimitName, buckets: TokenBuckets | undefined, key: string, actor: string, meta: RequestMeta): void {
    if (!buckets) return;
    const r = buckets.take(key);
    if (r.ok) return;
    const retry = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
    deps.loginLimits?.audit?.refused({ limit, key, actor: { id: actor }, where: { source: meta.source, replica: meta.replica, requestId: meta.requestId }, retryAfterS: retry });
    const what = limit === 'login.per_source' ? 'from this address' : 'for this identity';
    throw new TesseraError('TESSERA_LOGIN_RATE_LIMITED', `too many logins ${what} (tokens.login_rate_limit); retry in ${retry} s, and reuse a token until it nears expiry`, { limit, retry_after_s: retry });
  }

  /** The thumbprint of a task exchange's verified proof (undefined without one); a refused proof is audited (never the proof). */
  async function taskRequestProof(http: TokenRequestHttp | undefined, meta: RequestMeta): Promise<string | undefined> {
    try {
      return await deps.dpop.tokenRequestProof(http ?? NO_PROOF);
    } catch (e) {
      if (isTesseraError(e)) {
        if (e.status === 401) deps.failures?.charge(meta);
        await auditTokenRefusal(deps.failures?.events ?? audit, e, { source: meta.source, replica: meta.replica, requestId: meta.requestId }, 'token-exchange').catch(() => undefined);
      }
      throw e;
    }
  }

  /** A key named by parameter proves nothing: refused (KEY_PARAMETERS). */
  function refuseKeyParameters(raw: Readonly<Record<string, unknown>>): void {
    const keyParam = KEY_PARAMETERS.find((k) => Object.hasOwn(raw, k));
    if (keyParam) {
      throw new TesseraError('TESSERA_REQUEST_INVALID', `${keyParam}: is not accepted here: a token is bound only to the key of the request's own DPoP proof (RFC 9449 §5); send a \`DPoP\` header signed with the key to bind (the sub-agent's, for a sub-agent of its own key)`, { field: keyParam });
    }
  }

  return {
    admitSource(meta) {
      // Map lookups, before the body is read, any store access or any signature check.
      deps.failures?.admit(meta);
      charge('login.per_source', deps.loginLimits?.perSource, sourceKey(meta.source), 'unauthenticated', meta);
    },

    async exchange(params, meta, http) {
      const raw = (params ?? {}) as Record<string, unknown>;
      // RFC 6749 §5.2: an unsupported grant type is its own error, checked first.
      if (typeof raw.grant_type === 'string' && deps.grants?.types.includes(raw.grant_type)) {
        refuseKeyParameters(raw);
        // RFC 9449 §5: the proof is verified before the code or refresh token is used; its key
        // binds the access token and the refresh token (a bound refresh token needs it again).
        const proofJkt = await taskRequestProof(http, meta);
        deps.dpop.requireBinding('task', proofJkt);
        return deps.grants.handle(raw, meta, { proofJkt });
      }
      if (typeof raw.grant_type === 'string' && raw.grant_type !== GRANT_TOKEN_EXCHANGE) {
        throw new TesseraError('TESSERA_OAUTH_UNSUPPORTED_GRANT_TYPE', `grant_type "${raw.grant_type.slice(0, 100)}" is not supported; use ${GRANT_TOKEN_EXCHANGE} (RFC 8693)`);
      }
      const parsed = requestSchema.safeParse(raw);
      if (!parsed.success) {
        const i = parsed.error.issues[0];
        const field = i?.path.join('.') || 'request';
        throw new TesseraError('TESSERA_REQUEST_INVALID', `${field}: ${i?.code === 'invalid_type' && i.input === undefined ? 'is required' : i?.message ?? 'invalid'}`, { field });
      }
      const p = parsed.data;
      refuseKeyParameters(raw);
      const task = p.subject_token_type === TOKEN_TYPE_ACCESS;
      if (!task && p.subject_token_type !== TOKEN_TYPE_JWT && p.subject_token_type !== TOKEN_TYPE_JOIN && p.subject_token_type !== TOKEN_TYPE_ID_TOKEN) {
        throw new TesseraError('TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE', `subject_token_type must be ${TOKEN_TYPE_JWT} or ${TOKEN_TYPE_JOIN} (log in), ${TOKEN_TYPE_ACCESS} (a Tessera agent or task token: open or delegate a task), or a person's ${TOKEN_TYPE_ACCESS}, ${TOKEN_TYPE_ID_TOKEN} or ${TOKEN_TYPE_JWT} with the agent's token as actor_token (act on their behalf)`);
      }
      if (p.requested_token_type !== undefined && p.requested_token_type !== TOKEN_TYPE_JWT && p.requested_token_type !== TOKEN_TYPE_ACCESS) {
        throw new TesseraError('TESSERA_OAUTH_INVALID_TARGET', `requested_token_type must be ${TOKEN_TYPE_JWT} or ${TOKEN_TYPE_ACCESS}`);
      }
      const audience = [...asList(p.audience), ...asList(p.resource)];
      for (const a of audience) {
        if (!deps.allowedAudiences.includes(a)) {
          throw new TesseraError(
            'TESSERA_OAUTH_INVALID_TARGET',
            `audience/resource "${a.slice(0, 200)}" is not served by this Tessera; use one of ${deps.allowedAudiences.join(', ')}, or none (the first). It is the audience of the token Tessera issues (RFC 8693 §2.1); the attestation's own aud is checked against the attestor's audience in tessera.yaml`,
          );
        }
      }
      const issuedBy = tesseraTokenKind(p.subject_token, tokens.issuer);
      // On behalf of a person (docs/users.md): a token that is not Tessera's own, with the acting
      // agent's token as actor_token (an ID token is never anything else).
      const forUser = issuedBy === undefined && deps.tasks !== undefined && (p.subject_token_type === TOKEN_TYPE_ID_TOKEN || (p.actor_token !== undefined && p.subject_token_type !== TOKEN_TYPE_JOIN) || (task && deps.userIssuer?.(p.subject_token) === true));
      if (forUser) {
        // RFC 9449 §5: as for any task, the proof is verified first and its key binds the task.
        const proofJkt = await taskRequestProof(http, meta);
        return deps.tasks!.exchange({
          subjectKind: 'user', subjectTokenType: p.subject_token_type,
          subjectToken: p.subject_token, actorToken: p.actor_token, actorTokenType: p.actor_token_type, audience, raw, meta, proofJkt,
          params: { scope: p.scope, purpose: p.purpose, tctx: p.tctx, requested_ttl: p.requested_ttl, max_depth: p.max_depth, label: p.label, scope_mode: p.scope_mode },
        });
      }
      if (task) {
        // Only Tessera's own tokens are access_token subjects here; the task exchange verifies them
        // (this peek only routes: it grants nothing).
        if (!deps.tasks || issuedBy === undefined) {
          throw new TesseraError('TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE', `a ${TOKEN_TYPE_ACCESS} subject must be a Tessera agent token (to open a task) or task token (to delegate)`);
        }
        // RFC 9449 §5: the proof is verified before the subject token is used; its key binds the
        // new task token, and the task exchange checks it against a bound subject or actor token.
        const proofJkt = await taskRequestProof(http, meta);
        return deps.tasks.exchange({
          subjectToken: p.subject_token, actorToken: p.actor_token, actorTokenType: p.actor_token_type, audience, raw, meta, proofJkt,
          params: { scope: p.scope, purpose: p.purpose, tctx: p.tctx, requested_ttl: p.requested_ttl, max_depth: p.max_depth, label: p.label, scope_mode: p.scope_mode },
        });
      }
      if (issuedBy !== undefined) {
        throw new TesseraError('TESSERA_OAUTH_NOT_ATTESTATION', issuedBy === 'task'
          ? `a task token is not an attestation: it cannot log in. To delegate from it, send it with subject_token_type=${TOKEN_TYPE_ACCESS}`
          : issuedBy === 'agent'
            ? `an agent token is not an attestation: log in again with the platform token (Kubernetes, OIDC, SPIFFE or a join token); to open a task, send it with subject_token_type=${TOKEN_TYPE_ACCESS}`
            : 'a token Tessera issued for an upstream is not an attestation');
      }
      if (p.actor_token !== undefined) throw new TesseraError('TESSERA_OAUTH_UNSUPPORTED_TOKEN_TYPE', `actor_token is for delegation only: send the parent task token as subject_token with subject_token_type=${TOKEN_TYPE_ACCESS}`);
      const taskParam = TASK_ONLY.find((k) => p[k] !== undefined);
      if (taskParam) throw new TesseraError('TESSERA_TASK_PARAMETER_INVALID', `${taskParam}: is a task parameter, but this is a login; open a task by sending an agent token with subject_token_type=${TOKEN_TYPE_ACCESS}`, { field: taskParam });
      const where = { source: meta.source, replica: meta.replica, requestId: meta.requestId };
      // The SPIFFE ID the subject token proved, once known: failures after that are attributed to
      // it (marked unverified: the login was refused), so `audit tail --actor <id>` finds them.
      let spiffeId: string | undefined;
      try {
        // RFC 9449 §5: a DPoP proof binds the issued token to its key. Checked before anything is
        // consumed (a join token is single-use): a bad proof must not burn it.
        const proofJkt = await deps.dpop.tokenRequestProof(http ?? NO_PROOF);
        deps.dpop.requireBinding('agent', proofJkt);
        const limits = deps.loginLimits;
        // A join token names its identity before it is used up: charge that identity first, so a
        // refused login does not burn the one-time token (an unknown or used one charges nothing).
        const joinIdentity = limits && p.subject_token_type === TOKEN_TYPE_JOIN ? await deps.joinTokenIdentity?.(p.subject_token) : undefined;
        if (joinIdentity) charge('login.per_identity', limits?.perIdentity, joinIdentity, joinIdentity, meta);
        const identity = await attestation.attest(p.subject_token, p.subject_token_type, meta, {
          // Checked before anything is consumed: a revoked agent's join token stays usable once
          // the revocation is lifted or expires.
          admit(id) {
            spiffeId = id;
            if (revocations.isAgentRevoked(id)) throw agentRevoked(revocations, id);
          },
        });
        spiffeId = identity.spiffeId;
        // Only a VERIFIED identity is charged (an unverified claim could drain another agent's bucket).
        if (!joinIdentity) charge('login.per_identity', limits?.perIdentity, identity.spiffeId, identity.spiffeId, meta);
        // Again after attestation: a revocation recorded while the join token was being consumed.
        if (revocations.isAgentRevoked(identity.spiffeId)) throw agentRevoked(revocations, identity.spiffeId);
        // A deleted pod's service-account token stays signed until it expires (docs/k8s-pods.md).
        if (identity.attestorKind === 'kubernetes' && identity.attributes.pod_uid !== undefined && revocations.isRevoked({ spiffeId: identity.spiffeId, attributes: identity.attributes })) {
          throw new TesseraError('TESSERA_K8S_WATCH_POD_DELETED', `pod ${identity.attributes.pod ?? '?'} (uid ${identity.attributes.pod_uid}) was deleted: its tokens are revoked and it cannot log in again`);
        }
        // A role (scope=role:<name>, docs/policies.md#roles): Cedar role.assume decides.
        const role = loginRole(p.scope);
        if (role !== undefined) requireRole(deps.roles, identity, role);
        const issued = await tokens.issueAgentTokenAsync(identity, { audience: audience.length ? [...new Set(audience)] : [deps.defaultAudience], ...(proofJkt ? { cnf: { jkt: proofJkt } } : {}), ...(role !== undefined ? { role } : {}) });
        // One audit event per login: `auth.login` carries the issued token's jti HMAC and expiry,
        // which is everything a separate `token.issued` would record (that kind stays for task
        // tokens). The token is returned only once the event is durable (fail closed: no audit, no token).
        const jtiHmac = audit.hmac(issued.jti);
        const login = {
          kind: 'auth.login', actor: { id: identity.spiffeId }, action: 'token.exchange', resource: 'agent-token', result: 'success', where,
          details: {
            attestor: identity.attestor, token_jti_hmac: jtiHmac, expires_at: issued.expiresAt, ...(proofJkt ? { dpop_jkt: proofJkt } : {}),
            // The pod a Kubernetes agent runs in (docs/k8s-pods.md): what a pod deletion revokes.
            ...(identity.attributes.pod_uid !== undefined ? { pod: identity.attributes.pod, pod_uid: identity.attributes.pod_uid } : {}),
            ...(role !== undefined ? { role } : {}),
          },
        } as const;
        // The exposure window opens in the same group commit as the event (ADR 0150).
        if (deps.store) {
          const window: ExposureRow = { id: jtiHmac, kind: 'agent_token', agent: identity.spiffeId, task: null, root: null, user: null, resource: null, issuedAt: issued.issuedAt, expiresAt: issued.expiresAt, closedAt: null, closedBy: null, podUid: identity.attestorKind === 'kubernetes' ? (identity.attributes.pod_uid ?? null) : null };
          await audit.commit(deps.store, (tx) => insertExposures(tx, [window]), login);
        } else {
          await audit.append(login);
        }
        return { access_token: issued.token, issued_token_type: TOKEN_TYPE_JWT, token_type: proofJkt ? 'DPoP' : 'Bearer', expires_in: Math.max(1, Math.round((issued.expiresAt - issued.issuedAt) / 1000)) };
      } catch (e) {
        // Limit refusals are audited by the limit auditor (one event per window), not per attempt.
        if (isTesseraError(e) && e.code !== 'TESSERA_AUDIT_UNAVAILABLE' && e.code !== 'TESSERA_LOGIN_RATE_LIMITED') {
          // A refused credential (not our own outage) costs its source; its event is aggregated
          // per source and actor (a forged attestation is `unauthenticated`).
          if (e.status >= 400 && e.status < 500) deps.failures?.charge(meta);
          await (deps.failures?.events ?? audit).append({
            kind: 'auth.login', actor: spiffeId ? { id: spiffeId, verified: false } : { id: 'unauthenticated' }, action: 'token.exchange', resource: 'agent-token', result: 'failure', where,
            reason: { code: e.code }, details: { attestor: p.subject_token_type === TOKEN_TYPE_JOIN ? 'join_token' : 'jwt' },
          });
        }
        throw e;
      }
    },
  };
}
