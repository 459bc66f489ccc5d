/**
 * Which downstream MCP session (and request) an upstream's message belongs to. Pure.
 *
 * An upstream connection is opened for one caller key (gateway.stdio_isolation: one agent and
 * task, or one session) and may serve several sessions of that caller. A message the protocol
 * itself ties to a request (a progress notification: the gateway's own progress token) is
 * routed by that. Anything else an upstream sends — a log message, a sampling or elicitation
 * request — is attributed only when it cannot be anybody else's (ADR 0176):
 *   1. exactly one call in flight on the connection: that call's session and request;
 *   2. else calls in flight of one session only: that session;
 *   3. else no call in flight and exactly one open session attached: that session;
 *   4. otherwise it is not attributed (the caller drops or refuses it, counted and audited).
 */
import type { RequestId } from '@modelcontextprotocol/sdk/types.js';

export interface InflightRef {
  readonly sessionId: string;
  /** The downstream JSON-RPC id of the request the call serves (absent for internal calls). */
  readonly requestId?: RequestId;
}

export interface Target {
  readonly sessionId: string;
  /** Set when the message belongs to this downstream request (rule 1). */
  readonly requestId?: RequestId;
}

export function attribute(calls: Iterable<InflightRef>, sessions: Iterable<string>, isOpen: (sessionId: string) => boolean): Target | undefined {
  const live: InflightRef[] = [];
  for (const c of calls) if (isOpen(c.sessionId)) live.push(c);
  if (live.length === 1) {
    const only = live[0]!;
    return only.requestId !== undefined ? { sessionId: only.sessionId, requestId: only.requestId } : { sessionId: only.sessionId };
  }
  if (live.length > 1) {
    const ids = new Set(live.map((c) => c.sessionId));
    return ids.size === 1 ? { sessionId: live[0]!.sessionId } : undefined;
  }
  const open = [...new Set(sessions)].filter(isOpen);
  return open.length === 1 ? { sessionId: open[0]! } : undefined;
}
