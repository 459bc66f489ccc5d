/**
 * Task token issuance through RFC 8693 token exchange (`POST /v1/oauth/token` with
 * `subject_token_type=urn:ietf:params:oauth:token-type:access_token`), one handler per case
 * (oidc-provider style): the subject token's verified type decides.
 *   - an agent token  → root.ts:     open a root task;
 *   - a task token    → delegate.ts: delegate a child task to a sub-agent (`actor_token` = its
 *     own agent token, or `label` for one without an identity);
 *   - a person's token from a trusted OpenID Provider (`subjectKind: 'user'`) with the agent's
 *     token as `actor_token` → on-behalf.ts: a root task acting for that person.
 * This module holds what both share: verifying the subject token, the per-agent rate, the Cedar
 * `token.delegate` decision, signing, and the commit of the task row with its audit event
 * (ADR 0041: the token is returned only once both are durable).
 */
import type { AuditWriter } from '../audit/port.js';
import type { AuditActor, AuditWhere } from '../audit/events.js';
import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { RequestMeta } from '../server/app.js';
import type { ResourceRef } from '../policy/types.js';
import { refusalOf, type RequestAuthorizer } from '../pipeline/authorize.js';
import type { DelegationContext } from '../policy/entities.js';
import type { TokenService, TaskTokenInput, VerifiedToken } from '../tokens/service.js';
import { auditTokenRefusal } from '../tokens/service.js';
import { authenticatePresented, isRefusedCredential } from '../pipeline/authenticate.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import type { TokenBuckets } from '../shared/rate-limit.js';
import type { DpopGuard } from '../dpop/guard.js';
import type { LimitAuditor } from '../shared/limit-audit.js';
import type { AuthFailureGuard } from '../shared/auth-failures.js';
import { insertTask, type TaskNode } from './store.js';
import { insertExposures, type ExposureRow } from '../exposure/store.js';
import { parseTaskParams, refuseClaimParameters, type RawTaskParams, type TaskParams } from './params.js';
import { TOKEN_TYPE_ACCESS_TOKEN, actorsOf, type TaskClaims } from './claims.js';
import { openRootTask } from './root.js';
import { delegateTask } from './delegate.js';
import { openUserTask, verifyActingAgent, type OnBehalfDeps } from './on-behalf.js';
import { asParameterRefusal, presentedDepsOf, type AgentToken } from './actor-token.js';
import { openClientTask, type ClientGrant } from './for-client.js';

export { TOKEN_TYPE_ACCESS_TOKEN };

/** RFC 8693 §2.2.1 response for a task token, with the granted `scope` (RFC 6749 §5.1) and the task id. */
export interface TaskTokenResponse {
  readonly access_token: string;
  readonly issued_token_type: typeof TOKEN_TYPE_ACCESS_TOKEN;
  /** `DPoP` when the token is sender-constrained (RFC 9449 §5), else `Bearer`. */
  readonly token_type: 'Bearer' | 'DPoP';
  readonly expires_in: number;
  readonly scope: string;
  /** The new task's id (Tessera extension, RFC 6749 §5.1 allows additional parameters). */
  readonly txn: string;
}

export interface TaskExchangeRequest {
  readonly subjectToken: string;
  readonly actorToken?: string | undefined;
  readonly actorTokenType?: string | undefined;
  /** `audience` and `resource` values together (RFC 8693 §2.1, RFC 8707). */
  readonly audience: readonly string[];
  /** The whole request, for refusing claim-named parameters. */
  readonly raw: Readonly<Record<string, unknown>>;
  readonly params: RawTaskParams;
  readonly meta: RequestMeta;
  /**
   * RFC 7638 thumbprint of the key the request's DPoP proof (RFC 9449 §4, §5) was verified with,
   * by the token endpoint (src/tokens/exchange.ts), before the subject token was used. The new
   * token is bound to it (`cnf.jkt`); it must be the key of a bound subject or actor token.
   * Absent: no proof was sent. Never taken from a request parameter.
   */
  readonly proofJkt?: string | undefined;
  /** `user`: the subject token is a person's (on-behalf.ts); default: one of Tessera's own. */
  readonly subjectKind?: 'tessera' | 'user';
  /** RFC 8693 `subject_token_type` as sent (a user token's kind is checked against it). */
  readonly subjectTokenType?: string | undefined;
}

export interface TaskExchangeDeps {
  readonly tokens: Pick<TokenService, 'verifyToken' | 'issueTaskTokenAsync'>;
  /** Cedar (token.delegate), through the request pipeline's authorizer. */
  readonly authorizer: RequestAuthorizer;
  readonly store: Store;
  readonly audit: AuditWriter;
  /**
   * Refused credentials per source (src/shared/auth-failures.ts): a refused subject or actor
   * token is charged to its source and its event aggregated. Absent: audited one by one.
   */
  readonly failures?: AuthFailureGuard;
  readonly clock: Clock;
  /** Every audience Tessera serves: a subject or actor token must be for one of them. */
  readonly audiences: readonly string[];
  /** tokens.task_ttl: default and longest lifetime of a task token. */
  readonly taskTtlMs: number;
  /** tokens.delegation.max_depth: the bound of a root task's tree. */
  readonly maxDepth: number;
  /** tokens.delegation.require_dpop_for_labels. */
  readonly requireBindingForLabels: boolean;
  /**
   * `tokens.dpop.require` (src/dpop/guard.ts): a root task is a `task`, a child a `delegated`
   * token (`requireBinding`: TESSERA_DPOP_PROOF_MISSING when that kind must be bound and no proof
   * was sent); and the subject and actor tokens must themselves be bound when the resources would
   * refuse them unbound (`requireBoundToken`), so an exchange never launders one.
   */
  readonly dpop: Pick<DpopGuard, 'requireBinding' | 'requireBoundToken' | 'mark'>;
  /** tokens.delegation.rate_limit, per acting agent; absent: no limit (unit tests). */
  readonly limit?: { readonly buckets: TokenBuckets; readonly audit?: LimitAuditor };
  /** Agents acting for people (`users.issuers`); absent: a user token is refused (TESSERA_USER_ISSUER_UNTRUSTED). */
  readonly onBehalf?: OnBehalfDeps;
}

export interface TaskExchange {
  exchange(req: TaskExchangeRequest): Promise<TaskTokenResponse>;
  /**
   * A root task for a person through an OAuth client of Tessera's authorization server (a
   * redeemed authorization code or refresh token; for-client.ts). Same decisions, row and audit
   * as every task.
   */
  openForGrant(grant: ClientGrant, meta: RequestMeta): Promise<TaskTokenResponse>;
}

/** What one handler decided: the claims to sign and the node to store. */
export interface TaskSpec {
  readonly input: TaskTokenInput;
  /** Who asked (the delegating agent): the audit actor and the Cedar principal. */
  readonly delegator: AgentPrincipal;
  /** The sub-agent: its SPIFFE ID, or the acting SPIFFE ID of a label sub-agent. */
  readonly delegatee: string;
  readonly label?: string;
}

/** Shared by the handlers. */
export interface HandlerContext {
  readonly deps: TaskExchangeDeps;
  readonly req: TaskExchangeRequest;
  readonly params: TaskParams;
  readonly now: number;
  readonly where: AuditWhere;
  /** Cedar `token.delegate` for `delegator` → `resource`; throws TESSERA_TASK_DELEGATION_DENIED. */
  decide(delegator: AgentPrincipal, resource: ResourceRef, delegation: DelegationContext): void;
}

function actorOf(p: AgentPrincipal): AuditActor {
  return { id: p.spiffeId, ...(p.chain && p.chain.length ? { chain: p.chain } : {}), ...(p.user ? { user: p.user } : {}) };
}

function whereOf(meta: RequestMeta): AuditWhere {
  return { source: meta.source, replica: meta.replica, requestId: meta.requestId };
}

export function createTaskExchange(deps: TaskExchangeDeps): TaskExchange {
  const { tokens, audit } = deps;
  const presentedDeps = presentedDepsOf(deps);

  function charge(p: AgentPrincipal, where: AuditWhere): void {
    const l = deps.limit;
    if (!l) return;
    const r = l.buckets.take(p.spiffeId);
    if (r.ok) return;
    const retry = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
    l.audit?.refused({ limit: 'task.per_agent', key: p.spiffeId, actor: actorOf(p), where, retryAfterS: retry });
    throw new TesseraError('TESSERA_TASK_RATE_LIMITED', `this agent opens or delegates more tasks than tokens.delegation.rate_limit allows; retry in ${retry} s, and reuse a task token for its whole task`, { limit: 'task.per_agent', retry_after_s: retry });
  }

  /**
   * The subject token (agent or task token, for a Tessera audience), authenticated by the request
   * pipeline like a credential at every enforcement point (charged, audited, attributed). RFC 6749
   * §5.2 / RFC 8693 §2.2.2: an unusable subject token is a grant error, not a resource server's
   * invalid_token: TESSERA_OAUTH_INVALID_GRANT, the verification step that refused it in
   * `details.cause`. TESSERA_AUTH_RATE_LIMITED, TESSERA_AUDIT_UNAVAILABLE and TESSERA_INTERNAL pass unchanged.
   */
  async function verifySubject(req: TaskExchangeRequest): Promise<VerifiedToken> {
    try {
      return await authenticatePresented(presentedDeps, req.meta, {
        at: 'subject_token',
        verify: () => tokens.verifyToken(req.subjectToken, { audiences: deps.audiences, kinds: ['agent', 'task'] }),
        principalOf: (v) => v.principal,
        // tokens.dpop.require applies to the subject as at every enforcement point (TESSERA_DPOP_REQUIRED).
        bind: (v) => deps.dpop.requireBoundToken(v.principal),
        resource: 'token-exchange',
      });
    } catch (e) {
      throw asParameterRefusal(e, 'TESSERA_OAUTH_INVALID_GRANT', 'subject_token', (err) => err.message);
    }
  }

  /** The acting agent of an on-behalf-of exchange: its parameters, then its token through the pipeline. */
  async function verifyActor(req: TaskExchangeRequest): Promise<AgentToken> {
    try {
      return await verifyActingAgent(deps, req.actorToken, req.actorTokenType, req.meta);
    } catch (e) {
      // A missing or mistyped actor token was never authenticated: audited here, as a refused credential.
      if (isTesseraError(e) && !isRefusedCredential(e) && e.code === 'TESSERA_USER_ACTOR_INVALID') {
        await auditTokenRefusal(presentedDeps.failures?.events ?? audit, e, whereOf(req.meta), 'token-exchange').catch(() => undefined);
      }
      throw e;
    }
  }

  async function issue(ctx: HandlerContext, spec: TaskSpec): Promise<TaskTokenResponse> {
    const issued = await tokens.issueTaskTokenAsync(spec.input);
    const c = issued.claims;
    const actors = actorsOf(c.act).map((a) => ({ sub: a.sub, ...(a.label !== undefined ? { label: a.label } : {}) }));
    const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
    const jtiHmac = audit.hmac(issued.jti);
    const node: TaskNode = {
      txn: c.txn, parent: c.ptxn ?? null, root: c.rtxn, depth: c.depth, maxDepth: c.max_depth, sub: c.sub,
      actor: actors[actors.length - 1]!.sub, actors, label: spec.label ?? null, user: spec.delegator.user ?? null,
      scope: c.scope.split(' '), purpose: c.purpose, tctx: c.tctx ?? {}, audience: aud, jkt: c.cnf?.jkt ?? null, jtiHmac,
      createdAt: issued.issuedAt, expiresAt: issued.expiresAt,
      // The acting agent's pod (a kubernetes attestor's proven attribute): a deleted pod's tasks.
      podUid: c.tessera?.kind === 'kubernetes' ? (c.tessera.attrs?.pod_uid ?? null) : null,
    };
    // The row and its event commit together; the token leaves only once both are durable.
    // The exposure window (ADR 0150) opens with the task row and its event.
    const window: ExposureRow = { id: jtiHmac, kind: 'task_token', agent: node.actor, task: c.txn, root: c.rtxn, user: node.user, resource: null, issuedAt: issued.issuedAt, expiresAt: issued.expiresAt, closedAt: null, closedBy: null, podUid: node.podUid ?? null };
    await audit.commit(deps.store, async (tx) => {
      await insertTask(tx, node, c.anc);
      await insertExposures(tx, [window]);
    }, {
      kind: 'task.created', actor: actorOf(spec.delegator), action: 'token.exchange', resource: 'task', result: 'success', txn: c.txn, purpose: c.purpose, where: ctx.where,
      details: {
        token_type: 'task', jti_hmac: jtiHmac, expires_at: issued.expiresAt, scope: c.scope, root: c.rtxn, ...(c.ptxn ? { parent: c.ptxn } : {}),
        depth: c.depth, max_depth: c.max_depth, delegatee: spec.delegatee, ...(spec.label ? { label: spec.label } : {}), bound: c.cnf !== undefined, ...(c.cnf ? { dpop_jkt: c.cnf.jkt } : {}), audience: aud,
        ...(c.tctx && Object.keys(c.tctx).length ? { tctx: c.tctx } : {}),
      },
    });
    return {
      access_token: issued.token,
      issued_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      token_type: c.cnf ? 'DPoP' : 'Bearer',
      expires_in: Math.max(1, c.exp - c.iat),
      scope: c.scope,
      txn: c.txn,
    };
  }

  /** Cedar token.delegate through the pipeline's authorizer (agent ∩ user); refused as TESSERA_TASK_DELEGATION_DENIED. */
  function decideWith(principal: AgentPrincipal, resource: ResourceRef, delegation: DelegationContext): void {
    const request = { principal, action: 'token.delegate', resource, context: { delegation } } as const;
    const d = deps.authorizer.authorize(request);
    if (d.allowed) return;
    const whom = resource.type === 'SubAgent' ? `sub-agent "${resource.label}"` : resource.type === 'Agent' && resource.spiffeId === principal.spiffeId ? 'itself (a root task)' : resource.type === 'Agent' ? resource.spiffeId : 'this resource';
    throw refusalOf(d, request, { denied: 'TESSERA_TASK_DELEGATION_DENIED', userDenied: 'TESSERA_TASK_DELEGATION_DENIED', tried: `to delegate to ${whom} (Cedar action token.delegate, scope ${delegation.scopes.join(' ')})` });
  }

  return {
    async openForGrant(grant, meta) {
      const where: AuditWhere = { source: meta.source, replica: meta.replica, requestId: meta.requestId };
      const ctx: HandlerContext = {
        deps, req: { subjectToken: '', audience: [grant.resource], raw: {}, params: {}, meta }, params: parseTaskParams({}), now: deps.clock.now(), where, decide: decideWith,
      };
      try {
        return await issue(ctx, openClientTask(ctx, grant));
      } catch (e) {
        if (isTesseraError(e) && e.code !== 'TESSERA_AUDIT_UNAVAILABLE') {
          await audit.append({
            kind: 'task.refused', actor: { id: grant.client.spiffeId, user: grant.user.id }, action: 'token.exchange', resource: 'task', result: e.status >= 500 ? 'error' : 'deny',
            reason: { code: e.code, ...(Array.isArray(e.details?.policies) ? { policies: e.details.policies as string[] } : {}) }, where,
            details: { code: e.code, scope: grant.scope.join(' ') },
          }).catch(() => undefined);
        }
        throw e;
      }
    },

    async exchange(req) {
      const where = whereOf(req.meta);
      refuseClaimParameters(req.raw);
      const params = parseTaskParams(req.params);
      // On behalf of a person, the acting agent (its actor token) asks; else the subject token's holder.
      const actor = req.subjectKind === 'user' ? await verifyActor(req) : undefined;
      const subject = actor ? undefined : await verifySubject(req);
      const delegator = actor ? actor.principal : subject!.principal;
      charge(delegator, where);
      const ctx: HandlerContext = {
        deps, req, params, now: deps.clock.now(), where,
        decide: decideWith,
      };
      try {
        // tokens.dpop.require: `always` wants every task token bound, `delegated` every child (depth ≥ 1).
        // A task for a person is a root task.
        deps.dpop.requireBinding(actor || subject!.kind === 'agent' ? 'task' : 'delegated', req.proofJkt);
        const spec = actor
          ? await openUserTask(ctx, deps.onBehalf ?? noUsers, actor)
          : subject!.kind === 'agent' ? await openRootTask(ctx, subject!) : await delegateTask(ctx, subject!);
        return await issue(ctx, spec);
      } catch (e) {
        // Refusals after the subject is known are audited under the delegating agent and, for a
        // delegation, in the parent's task (so the tree shows the refused attempt).
        // A refused credential (the actor_token, a person's token) is audited once, as such.
        if (isTesseraError(e) && e.code !== 'TESSERA_AUDIT_UNAVAILABLE' && e.code !== 'TESSERA_TASK_RATE_LIMITED' && !isRefusedCredential(e)) {
          await audit.append({
            kind: 'task.refused', actor: actorOf(delegator), action: 'token.exchange', resource: 'task', result: e.status >= 500 ? 'error' : 'deny',
            reason: { code: e.code, ...(Array.isArray(e.details?.policies) ? { policies: e.details.policies as string[] } : {}) },
            ...(delegator.task ? { txn: delegator.task } : {}), where,
            details: { code: e.code, ...(params.scope ? { scope: params.scope.join(' ') } : {}), ...(params.label ? { label: params.label } : {}) },
          }).catch(() => undefined);
        }
        throw e;
      }
    },
  };
}

/** No `users.issuers`: every user token is from an untrusted issuer. */
const noUsers: OnBehalfDeps = {
  users: {
    issuerOf: () => undefined,
    verify: () => Promise.reject(new TesseraError('TESSERA_USER_ISSUER_UNTRUSTED', 'no OpenID Provider is trusted for user tokens (users.issuers is empty)')),
  },
  revocations: { isRevoked: () => false },
};

/** The attestation facts a task token carries for its acting agent (copied from the token that proved it). */
export function attestationFacts(v: VerifiedToken): TaskClaims['tessera'] {
  return v.claims.tessera;
}
