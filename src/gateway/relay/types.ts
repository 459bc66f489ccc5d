/**
 * What the relay (src/gateway/relay) knows of the two sides it connects: an upstream connection
 * (src/gateway/upstream.ts) and the downstream MCP sessions (src/gateway/http.ts).
 */
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { AuditWhere } from '../../audit/events.js';
import type { AgentPrincipal } from '../../shared/principal.js';
import type { SecretInput } from '../scrub/index.js';
import type { InflightRef } from './attribution.js';

/** One upstream connection, as the relay sees it. */
export interface RelayConnView {
  readonly server: string;
  /** The values injected into this connection now: every one is scrubbed from what it sends. */
  secrets(): readonly SecretInput[];
  /** Sessions that have used this connection (open or not; the hub knows which are open). */
  sessions(): Iterable<string>;
  /** Calls in flight on it, with their downstream session and request. */
  calls(): Iterable<InflightRef>;
}

/** One downstream MCP session, as the relay sees it. */
export interface RelaySession {
  readonly id: string;
  /** The principal of its latest request (the token is re-verified on every request). */
  principal(): AgentPrincipal;
  where(): AuditWhere;
  /** The session's SDK server: what it sends, it sends to that client only. */
  readonly server: Server;
  /** Whether a request of it is answered on an SSE stream (relay/streaming.ts). */
  streams(requestId: RequestId): boolean;
}

/** Bounds of what the relay holds per session (docs/configuration.md "gateway"). */
export interface RelayLimits {
  /** Notifications being sent to one session at once; more are dropped. */
  readonly queue: number;
  /** Notifications per second to one session (token bucket); more are dropped. */
  readonly rate: { readonly perSecond: number; readonly burst: number };
  /** Sampling/elicitation requests waiting for one session's client at once. */
  readonly serverRequests: number;
  /** How long the gateway waits for the client to answer one of them (ms). */
  readonly serverRequestTimeoutMs: number;
}
