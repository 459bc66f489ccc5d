/**
 * The downstream side of the relay for one MCP session: the capabilities the gateway declares to
 * the client, whether a POST is answered on an SSE stream, and `logging/setLevel`.
 */
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { SetLevelRequestSchema, type ClientCapabilities, type ServerCapabilities } from '@modelcontextprotocol/sdk/types.js';
import type { AuditWriter } from '../../audit/port.js';
import type { Logger } from '../../shared/logger.js';
import type { AgentPrincipal } from '../../shared/principal.js';
import { isTesseraError } from '../../shared/errors.js';
import type { Upstream, UpstreamCaller } from '../upstream.js';
import type { RelayHub } from './hub.js';

/** Methods during which an upstream may ask the client something (sampling, elicitation). */
const ASKING_METHODS = new Set(['tools/call', 'resources/read', 'prompts/get']);

/**
 * Whether a POST is answered on an SSE stream (relay/streaming.ts): one of its requests asked
 * for progress (`params._meta.progressToken`), or may make an upstream ask a client that
 * declared sampling or elicitation. Everything else is answered with JSON.
 */
export function wantsStream(body: unknown, client: ClientCapabilities | undefined): boolean {
  const asks = client?.sampling !== undefined || client?.elicitation !== undefined;
  for (const m of Array.isArray(body) ? body : [body]) {
    if (m === null || typeof m !== 'object' || !('id' in m) || typeof (m as { method?: unknown }).method !== 'string') continue;
    const { method, params } = m as { method: string; params?: { _meta?: { progressToken?: unknown } } };
    const token = params?._meta?.progressToken;
    if (typeof token === 'string' || typeof token === 'number') return true;
    if (asks && ASKING_METHODS.has(method)) return true;
  }
  return false;
}

/**
 * Whether `logging` is advertised to a caller: some upstream it may use declared logging at its
 * latest handshake, or has not been reached yet (its capabilities are unknown until then).
 * Capabilities themselves are built in one place (features.ts capabilitiesFor).
 */
export function loggingAvailable(usable: readonly Pick<Upstream, 'capabilities'>[]): boolean {
  return usable.some((u) => u.capabilities === undefined || u.capabilities.logging !== undefined);
}

export interface SessionRelayDeps {
  readonly hub: RelayHub;
  readonly logger: Logger;
  readonly audit: AuditWriter;
  /** The upstreams this caller may use now (policy and scope). */
  readonly usable: (principal: AgentPrincipal) => readonly Upstream[];
  readonly callerOf: (extra: Parameters<Parameters<Server['setRequestHandler']>[1]>[1]) => { caller: UpstreamCaller & { sessionId: string }; signal: AbortSignal };
}

/**
 * `logging/setLevel` (MCP 2025-11-25 "Logging"): the session's own level (its log messages are
 * filtered to it), forwarded to the upstreams the caller may use that are already connected for
 * it and declared logging; none is started for it (no process spawned, nothing injected): a
 * connection made later gets the level at its handshake (upstream.ts). An upstream that fails is
 * skipped (logged). One `gateway.logging_level` audit event (ADR 0177).
 */
export function installSessionRelay(server: Server, capabilities: ServerCapabilities, deps: SessionRelayDeps): void {
  if (!capabilities.logging) return;
  server.setRequestHandler(SetLevelRequestSchema, async (req, extra) => {
    const { caller, signal } = deps.callerOf(extra);
    deps.hub.setLevel(caller.sessionId, req.params.level);
    const forwarded: string[] = [];
    await Promise.all(deps.usable(caller.principal).map(async (u) => {
      try {
        if (await u.setLogLevel(req.params.level, caller, signal)) forwarded.push(u.server);
      } catch (e) {
        deps.logger.warn({ server: u.server, code: isTesseraError(e) ? e.code : undefined, err: (e as Error).message?.slice(0, 300) }, 'gateway: logging/setLevel could not be forwarded to an upstream');
      }
    }));
    const p = caller.principal;
    await deps.audit.append({
      kind: 'gateway.logging_level', actor: { id: p.spiffeId, ...(p.chain ? { chain: p.chain } : {}), ...(p.user ? { user: p.user } : {}) }, action: 'logging.set_level', resource: 'mcp', result: 'success',
      ...(p.task ? { txn: p.task } : {}), where: caller.where,
      details: { level: req.params.level, forwarded: forwarded.sort(), session_hmac: deps.audit.hmac(caller.sessionId) },
    }).catch((e: unknown) => deps.logger.warn({ err: (e as Error).message }, 'audit of logging/setLevel failed'));
    return {};
  });
}
