/**
 * One audited gateway answer built from one upstream request (resources/read, prompts/get,
 * completion/complete): authorize (scope ∩ Cedar ∩ the user's entitlement) → ask the upstream
 * (bounded, cancellable: Upstream.request) → scrub what it returned (and its errors) of every
 * value injected into it and every credential shape → charge the request's response budget →
 * audit exactly one event of `kind` whatever happened → answer, or refuse with a stable code.
 *
 * The work itself (which request, which upstream call, how the result is scrubbed) is the
 * caller's; this module is the part every such method shares.
 */
import type { AuditWriter } from '../audit/port.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import type { Decision, PolicyRequest } from '../policy/types.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { countHits, type Scrubber, type ScrubHit, type SecretInput } from './scrub/index.js';
import { NO_SECRETS, type AnswerKit, type HitSource } from './answer.js';
import { RpcError, responseTooLarge, rpcCodeFor, type Caller } from './core.js';
import { UpstreamRpcError, type Upstream, type UpstreamRequestOptions } from './upstream.js';

export type ServedKind = 'gateway.resource_read' | 'gateway.resource_subscribe' | 'gateway.prompt_get' | 'gateway.completion';

export interface ServedSpec {
  readonly kind: ServedKind;
  readonly action: 'resource.read' | 'resource.subscribe' | 'resource.unsubscribe' | 'prompt.get' | 'completion.complete';
  /** The item for the audit (`<server>/<item>` once known; the agent's text until then). */
  readonly itemKind: 'resource' | 'prompt' | 'completion';
}

/** What the work of one answer may do; each step records what the audit event says. */
export interface Exchange {
  /** Names the server and item once the request says them (audit `resource`, hits). */
  target(server: string, item: string, details?: Readonly<Record<string, unknown>>): void;
  /** Adds audit details (argument digests and the like). */
  note(details: Readonly<Record<string, unknown>>): void;
  /**
   * Authorizes `request`; a refusal throws: TESSERA_TOKEN_INSUFFICIENT_SCOPE naming `scope`,
   * TESSERA_POLICY_USER_DENIED, or `denied()` (the method's own code).
   */
  authorize(request: PolicyRequest, scope: string, denied: () => TesseraError): void;
  /** Refuses as a policy refusal (audited `deny`), for a refusal decided before `authorize`. */
  deny(err: TesseraError): never;
  /** One request to `upstream` (Upstream.request); its secrets are then scrubbed from everything. */
  upstream<T>(upstream: Upstream, what: string, run: (client: Client, options: UpstreamRequestOptions) => Promise<T>): Promise<T>;
  /** Scrubs `value` with `how` (default: every string) and the connection's secrets; hits audited. */
  scrub<T>(value: T, how?: (scrubber: Scrubber, value: T) => { value: T; hits: readonly ScrubHit[]; replaced?: number }): Promise<T>;
}

export interface ServedDeps {
  readonly authorizer: RequestAuthorizer;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  readonly kit: AnswerKit;
}

export type Serve = <T>(caller: Caller, signal: AbortSignal, spec: ServedSpec, work: (x: Exchange) => Promise<T>) => Promise<T>;

const MAX_DETAIL_TEXT = 256;

export function createServe(deps: ServedDeps): Serve {
  const { authorizer, audit, logger, kit } = deps;

  return async function serve<T>(caller: Caller, signal: AbortSignal, spec: ServedSpec, work: (x: Exchange) => Promise<T>): Promise<T> {
    const started = performance.now();
    const p = caller.principal;
    let server = '';
    let item = '';
    let details: Record<string, unknown> = {};
    let decision: Decision | undefined;
    let upstreamStatus = 'not_called';
    let secrets: readonly SecretInput[] = NO_SECRETS;
    const hits: ScrubHit[] = [];
    let replaced = 0;
    let denied = false;

    const source = (): HitSource => ({ action: spec.action, server, item, itemKind: spec.itemKind });
    const scrubWith = async <V>(value: V, inError: boolean, how?: (s: Scrubber, v: V) => { value: V; hits: readonly ScrubHit[]; replaced?: number }): Promise<V> => {
      const scrubber = kit.scrubberFor(secrets);
      const s: { value: V; hits: readonly ScrubHit[]; replaced?: number } = how ? how(scrubber, value) : scrubber.scrubValue(value);
      if (s.hits.length) {
        hits.push(...s.hits);
        await kit.auditHits(s.hits, source(), caller, inError);
      }
      replaced += s.replaced ?? 0;
      return s.value;
    };

    const x: Exchange = {
      target(s, i, d) {
        server = s;
        item = i;
        if (d) details = { ...details, ...d };
      },
      note(d) {
        details = { ...details, ...d };
      },
      authorize(request, scope, refused) {
        try {
          decision = authorizer.authorize(request);
        } catch (e) {
          throw isTesseraError(e) ? e : new TesseraError('TESSERA_INTERNAL', 'the policy request could not be built');
        }
        if (decision.allowed) return;
        denied = true;
        if (decision.scopeDenied) throw new TesseraError('TESSERA_TOKEN_INSUFFICIENT_SCOPE', `the token scope does not cover ${scope}; request a token with that scope`, { scope });
        if (decision.userDenied) throw new TesseraError('TESSERA_POLICY_USER_DENIED', `policy permits the agent, but not for user ${p.user ?? '?'} on whose behalf it acts`);
        throw refused();
      },
      deny(err) {
        denied = true;
        throw err;
      },
      async upstream(u, what, run) {
        upstreamStatus = 'failed';
        const r = await u.request(what, caller, signal, run);
        secrets = r.secrets;
        upstreamStatus = 'ok';
        return r.value;
      },
      scrub: (value, how) => scrubWith(value, false, how),
    };

    const finish = async (result: 'allow' | 'deny' | 'error', code: string | undefined): Promise<void> => {
      const ms = performance.now() - started;
      const outcome = result === 'deny' ? 'refused' : result === 'error' ? 'failed' : hits.length > 0 ? 'redacted' : 'delivered';
      const named = server !== '' ? kit.auditName(`${server}/${item}`) : kit.auditName(item.slice(0, MAX_DETAIL_TEXT));
      await audit.append({
        kind: spec.kind, actor: kit.actor(p), action: spec.action, resource: named, result,
        reason: { ...(decision?.policies.length ? { policies: decision.policies } : {}), ...(code ? { code } : {}) },
        ...(p.task ? { txn: p.task } : {}),
        ...(p.purpose ? { purpose: p.purpose } : {}),
        where: caller.where,
        details: {
          ...details, server: kit.auditName(server), item: kit.auditName(item),
          decision: decision ? (decision.allowed ? 'allow' : decision.scopeDenied ? 'deny:scope' : 'deny') : 'none',
          upstream_status: upstreamStatus, outcome, latency_ms: Math.round(ms * 1000) / 1000, scrub_hits: hits.length,
          ...(hits.length > 0 ? { redactions: countHits(hits) } : {}),
          ...(replaced > 0 ? { items_replaced: replaced } : {}),
          session_hmac: kit.sessionHmac(caller.sessionId),
        },
      });
    };

    const withId = (data: Record<string, unknown>): Record<string, unknown> => ({ ...data, ...(caller.requestId ? { request_id: caller.requestId } : {}) });

    let value: T;
    try {
      value = await work(x);
    } catch (e) {
      if (e instanceof UpstreamRpcError) {
        upstreamStatus = `rpc_error:${e.rpcCode}`;
        const message = await scrubWith(e.message, true);
        const data = e.data === undefined ? undefined : await scrubWith(e.data, true);
        await finish('error', 'TESSERA_GATEWAY_UPSTREAM_ERROR');
        throw new RpcError(e.rpcCode, message, withId({ code: 'TESSERA_GATEWAY_UPSTREAM_ERROR', ...(data !== undefined ? { upstream: data } : {}) }));
      }
      if (!isTesseraError(e)) logger.warn({ server, err: (e as Error).message?.slice(0, 300) }, `gateway: ${spec.action} failed`);
      const err = isTesseraError(e) ? e : new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${server || 'the upstream'}: the request failed`);
      if (err.code === 'TESSERA_GATEWAY_UPSTREAM_TIMEOUT') upstreamStatus = 'timeout';
      else if (err.code === 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE') upstreamStatus = 'too_large';
      const message = await scrubWith(err.message, true);
      const errDetails = err.details ? await scrubWith(err.details, true) : undefined;
      await finish(denied ? 'deny' : 'error', err.code);
      throw new RpcError(rpcCodeFor(err.code), message, withId({ code: err.code, ...(errDetails ? { details: errDetails } : {}) }));
    }
    // A batch's results together are bounded (ADR 0141).
    if (caller.budget && !caller.budget.charge(Buffer.byteLength(JSON.stringify(value)))) {
      const err = responseTooLarge(caller.budget.limit);
      await finish('error', err.code);
      throw new RpcError(rpcCodeFor(err.code), err.message, withId({ code: err.code }));
    }
    await finish('allow', undefined);
    return value;
  };
}
