/**
 * The MCP methods the gateway serves besides tools (docs/gateway.md "MCP methods"): resources,
 * prompts and completion, and the capabilities a session advertises for them. http.ts builds one
 * SDK `Server` per session with `capabilities(principal)` and lets `register` add the handlers.
 */
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type ServerCapabilities,
} from '@modelcontextprotocol/sdk/types.js';
import type { AuditWriter } from '../audit/port.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import { TesseraError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { AnswerKit } from './answer.js';
import { createCompletion } from './completion.js';
import { RPC, RpcError, responseTooLarge, type Caller } from './core.js';
import type { ToolNameFormat } from './names.js';
import { createServerProbe } from './probe.js';
import { parseScope, requiredScopeFor, scopeCoversName, scopeNameOf } from '../policy/scope.js';
import { createPrompts, type GatewayPrompts } from './prompts/index.js';
import { createResources, type GatewayResources } from './resources/index.js';
import { createServe } from './served.js';
import type { Upstream } from './upstream.js';
import type { Subscriptions } from './relay/subscriptions.js';
import { createResourceSubscriptions } from './resources/subscribe.js';

/** What a session's handlers get from http.ts: the caller of one request, and its error mapping. */
export interface SessionHooks {
  callerOf(extra: unknown): { caller: Caller; signal: AbortSignal };
  asRpc(e: unknown, requestId: string | undefined): RpcError;
}

export interface GatewayFeatures {
  readonly resources: GatewayResources;
  readonly prompts: GatewayPrompts;
  /** The capabilities an initialize answers `principal` with (capabilitiesFor). */
  capabilities(principal: AgentPrincipal): ServerCapabilities;
  /**
   * The scope a `resources/read` or `prompts/get` message needs when the token's scope does not
   * cover it (for the HTTP 403 scope challenge, as for tools/call); undefined when it is covered,
   * when the token has no scope, or when the message names nothing the gateway can resolve
   * without asking an upstream (the request itself then refuses it).
   */
  missingScope(principal: AgentPrincipal, method: unknown, params: unknown): string | undefined;
  /** Adds the handlers of the capabilities declared in `caps` to a session's SDK server. */
  register(server: Server, caps: ServerCapabilities, hooks: SessionHooks): void;
}

/**
 * The gateway's capabilities for one caller (MCP lifecycle, "Capability Negotiation"): tools
 * always; `resources` / `prompts` only when policy and the token's scope could permit the caller
 * some resource / prompt of some server (probe.ts: no upstream is started to decide);
 * `completions` when either does; `logging` when some upstream the caller may use declares it
 * (relay/downstream.ts loggingAvailable). With the relay (src/gateway/relay), list changes are
 * forwarded (`listChanged`) and resources can be subscribed to. Keep every capability decision here.
 */
export function capabilitiesFor(can: { readonly resources: boolean; readonly prompts: boolean; readonly logging?: boolean; readonly relay?: boolean }): ServerCapabilities {
  const relay = can.relay === true;
  return {
    tools: { listChanged: relay },
    ...(can.resources ? { resources: relay ? { subscribe: true, listChanged: true } : {} } : {}),
    ...(can.prompts ? { prompts: relay ? { listChanged: true } : {} } : {}),
    ...(can.resources || can.prompts ? { completions: {} } : {}),
    ...(relay && can.logging ? { logging: {} } : {}),
  };
}

export interface FeaturesDeps {
  readonly upstreams: readonly Upstream[];
  readonly authorizer: RequestAuthorizer;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  readonly kit: AnswerKit;
  readonly nameFormat?: ToolNameFormat;
  readonly auditArgumentValues: boolean;
  /** Whether upstream notifications are relayed (src/gateway/relay), and logging is available to a caller. */
  readonly relay?: { readonly logging: (principal: AgentPrincipal) => boolean; readonly subscriptions: Subscriptions };
}

export function createFeatures(deps: FeaturesDeps): GatewayFeatures {
  const probe = createServerProbe(deps.authorizer);
  const serve = createServe({ authorizer: deps.authorizer, audit: deps.audit, logger: deps.logger, kit: deps.kit });
  const shared = { upstreams: deps.upstreams, authorizer: deps.authorizer, kit: deps.kit, serve, probe, logger: deps.logger };
  const resources = createResources(shared);
  const prompts = createPrompts({ ...shared, ...(deps.nameFormat ? { nameFormat: deps.nameFormat } : {}), auditArgumentValues: deps.auditArgumentValues });
  const completion = createCompletion({ serve, prompts, resources });
  const subscribing = deps.relay ? createResourceSubscriptions({ serve, resources, subscriptions: deps.relay.subscriptions }) : undefined;

  return {
    resources,
    prompts,
    capabilities: (p) => capabilitiesFor({ resources: resources.mayUseAny(p), prompts: prompts.mayUseAny(p), ...(deps.relay ? { relay: true, logging: deps.relay.logging(p) } : {}) }),
    missingScope(p, method, params) {
      if (p.scope === undefined || params === null || typeof params !== 'object') return undefined;
      const ref = method === 'resources/read' ? resources.refOf((params as { uri?: unknown }).uri) : method === 'prompts/get' ? prompts.refOf((params as { name?: unknown }).name) : undefined;
      if (!ref) return undefined;
      const name = scopeNameOf(ref)!;
      if (scopeCoversName(p.scope, name.kind, name.segments)) return undefined;
      const needed = requiredScopeFor(ref)!;
      try {
        parseScope(needed); // a name a scope cannot spell (a space in a prompt name): refused by the request itself
        return needed;
      } catch {
        return undefined;
      }
    },
    register(server, caps, hooks) {
      // One handler shape: the caller, the work, SDK-visible errors with Tessera codes.
      const handle = <R>(work: (caller: Caller, signal: AbortSignal) => Promise<R>) => async (_req: unknown, extra: unknown): Promise<never> => {
        const { caller, signal } = hooks.callerOf(extra);
        try {
          return (await work(caller, signal)) as never;
        } catch (e) {
          throw hooks.asRpc(e, caller.requestId);
        }
      };
      /** The gateway federates whole listings: it never hands out a cursor, so none is valid. */
      const noCursor = (cursor: unknown): void => {
        if (cursor !== undefined) throw new TesseraError('TESSERA_GATEWAY_PARAMS_INVALID', 'params.cursor: the gateway returns whole listings and gives no cursor; send the request without one');
      };
      // A method of a capability this session was not given (messages.ts knows it, no handler
      // is registered): the same answer as an unknown method, with its code.
      server.fallbackRequestHandler = async (req) => {
        throw new RpcError(RPC.METHOD_NOT_FOUND, `${req.method} is not available in this session: policy (or the token's scope) permits you nothing it serves, so initialize did not advertise it`, { code: 'TESSERA_GATEWAY_METHOD_NOT_FOUND' });
      };
      if (caps.resources) {
        server.setRequestHandler(ListResourcesRequestSchema, (req, extra) => handle(async (c, s) => {
          noCursor(req.params?.cursor);
          return budgeted(c, { resources: await resources.list(c, s) });
        })(req, extra));
        server.setRequestHandler(ListResourceTemplatesRequestSchema, (req, extra) => handle(async (c, s) => {
          noCursor(req.params?.cursor);
          return budgeted(c, { resourceTemplates: await resources.templates(c, s) });
        })(req, extra));
        server.setRequestHandler(ReadResourceRequestSchema, (req, extra) => handle((c, s) => resources.read(req.params.uri, c, s))(req, extra));
        if (caps.resources.subscribe && subscribing) {
          server.setRequestHandler(SubscribeRequestSchema, (req, extra) => handle((c, s) => subscribing.subscribe(req.params.uri, c, s))(req, extra));
          server.setRequestHandler(UnsubscribeRequestSchema, (req, extra) => handle((c, s) => subscribing.unsubscribe(req.params.uri, c, s))(req, extra));
        }
      }
      if (caps.prompts) {
        server.setRequestHandler(ListPromptsRequestSchema, (req, extra) => handle(async (c, s) => {
          noCursor(req.params?.cursor);
          return budgeted(c, { prompts: await prompts.list(c, s) });
        })(req, extra));
        server.setRequestHandler(GetPromptRequestSchema, (req, extra) => handle((c, s) => prompts.get(req.params.name, req.params.arguments, c, s))(req, extra));
      }
      if (caps.completions) {
        server.setRequestHandler(CompleteRequestSchema, (req, extra) => handle((c, s) => completion.complete(req.params, c, s))(req, extra));
      }
    },
  };
}

/** A listing charged to the request's response budget (ADR 0141). */
function budgeted<T>(caller: Caller, value: T): T {
  if (caller.budget && !caller.budget.charge(Buffer.byteLength(JSON.stringify(value)))) {
    throw responseTooLarge(caller.budget.limit);
  }
  return value;
}
