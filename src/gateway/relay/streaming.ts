/**
 * Per-request answer mode on the SDK's Streamable HTTP server transport (MCP 2025-11-25
 * "Transports" §"Sending Messages to the Server": the server answers a POST with either
 * `application/json` or `text/event-stream`).
 *
 * The gateway answers with JSON by default (one response, nothing streamed). A POST whose
 * request the client asked progress for (`params._meta.progressToken`), or that may make an
 * upstream ask the client something (sampling, elicitation), is answered with an SSE stream, so
 * the notifications and requests related to it reach the client on that stream. The SDK
 * transport has one mode per instance (`enableJsonResponse`); this module makes it per request:
 * the mode is read through an AsyncLocalStorage set around the handling of that POST and around
 * every `send` of a message related to one of its requests (ADR 0176).
 *
 * It relies on two members of the SDK transport (`_webStandardTransport._enableJsonResponse`,
 * `send`); when they are missing (another SDK version), `supported` is false and every answer
 * stays JSON: related notifications are then sent on the session's GET stream instead.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';

export interface RequestStreaming {
  /** False when the SDK transport lacks the members this relies on: everything is JSON. */
  readonly supported: boolean;
  /** Runs the handling of one POST, answered on an SSE stream when `sse` (its request ids streamed). */
  run<T>(sse: boolean, ids: readonly RequestId[], fn: () => Promise<T>): Promise<T>;
  /** Whether the request is answered on an SSE stream (so related messages reach the client on it). */
  streams(id: RequestId): boolean;
  /** Forgets the ids of a POST whose connection went away before its answer. */
  forget(ids: readonly RequestId[]): void;
}

interface WebTransport {
  _enableJsonResponse?: unknown;
  send?: (message: JSONRPCMessage, options?: { relatedRequestId?: RequestId }) => Promise<void>;
}

const isResponse = (m: JSONRPCMessage): m is JSONRPCMessage & { id: RequestId } => 'id' in m && ('result' in m || 'error' in m);

export function requestStreaming(transport: StreamableHTTPServerTransport): RequestStreaming {
  const web = (transport as unknown as { _webStandardTransport?: WebTransport })._webStandardTransport;
  const sse = new Set<RequestId>();
  if (!web || typeof web._enableJsonResponse !== 'boolean' || typeof web.send !== 'function') {
    return { supported: false, run: (_sse, _ids, fn) => fn(), streams: () => false, forget: () => undefined };
  }
  const mode = new AsyncLocalStorage<boolean>();
  // JSON unless the current POST (or the message being sent) belongs to a streamed request.
  Object.defineProperty(web, '_enableJsonResponse', { configurable: true, get: () => !(mode.getStore() ?? false), set: () => undefined });
  const send = web.send.bind(web);
  web.send = (message, options) => {
    const id = isResponse(message) ? message.id : options?.relatedRequestId;
    const streamed = id !== undefined && sse.has(id);
    if (streamed && isResponse(message)) sse.delete(id);
    // JSON needs no context of its own unless it is sent from within a streamed one: the
    // AsyncLocalStorage is entered only for streams, so a gateway whose clients never ask for
    // one never turns on Node's promise hooks (every promise of the process pays for them; ADR 0294).
    if (!streamed && mode.getStore() !== true) return send(message, options);
    return mode.run(streamed, () => send(message, options));
  };
  return {
    supported: true,
    run(on, ids, fn) {
      if (on) for (const id of ids) sse.add(id);
      if (!on && mode.getStore() !== true) return fn();
      return mode.run(on, fn);
    },
    streams: (id) => sse.has(id),
    forget(ids) {
      for (const id of ids) sse.delete(id);
    },
  };
}
