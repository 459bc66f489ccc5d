/**
 * The gateway's side of an upstream connection for everything but calls: the capabilities it
 * declares to the upstream, and the handlers that hand the upstream's notifications and
 * server→client requests to the relay hub (hub.ts).
 *
 * The gateway declares sampling and elicitation to every upstream (so servers that offer tools
 * using them offer them); whether one request reaches a client is decided per request by policy
 * (`upstream.sample` / `upstream.elicit`), by the client's own capabilities and by attribution
 * (ADR 0175, 0176).
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type ClientCapabilities,
} from '@modelcontextprotocol/sdk/types.js';
import type { RelayHub } from './hub.js';
import type { RelayConnView } from './types.js';

/** What the gateway declares to upstreams (MCP 2025-11-25 "Lifecycle" §Capability Negotiation). */
export const UPSTREAM_CLIENT_CAPABILITIES: ClientCapabilities = { sampling: {}, elicitation: { form: {}, url: {} } };

export interface UpstreamRelayHooks {
  /** The upstream's tool list changed (the gateway's cached listing is dropped). */
  readonly toolsChanged: () => void;
  /** The gateway URI of an upstream resource URI (resources/uri.ts gatewayUri). */
  readonly exposedUri: (uri: string) => string;
}

/** Installs the relay's handlers on an upstream client (before it connects). */
export function relayUpstream(client: Client, view: RelayConnView, hub: RelayHub, hooks: UpstreamRelayHooks): void {
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    hooks.toolsChanged();
    hub.listChanged(view, 'notifications/tools/list_changed');
  });
  client.setNotificationHandler(ResourceListChangedNotificationSchema, () => hub.listChanged(view, 'notifications/resources/list_changed'));
  client.setNotificationHandler(PromptListChangedNotificationSchema, () => hub.listChanged(view, 'notifications/prompts/list_changed'));
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => hub.log(view, n.params));
  // Only to the sessions that subscribed this URI on this very connection (relay/subscriptions.ts).
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => hub.resourceUpdated(client, view, n.params.uri, hooks.exposedUri(n.params.uri)));
  client.setRequestHandler(CreateMessageRequestSchema, (req, extra) => hub.serverRequest(view, 'sampling/createMessage', req.params as Record<string, unknown>, extra.signal) as never);
  client.setRequestHandler(ElicitRequestSchema, (req, extra) => hub.serverRequest(view, 'elicitation/create', req.params as Record<string, unknown>, extra.signal) as never);
  // The SDK reports a progress notification whose token matches no request of ours as an error:
  // it is dropped (never routed by guess), and counted.
  const previous = client.onerror;
  client.onerror = (e) => {
    if (/progress notification for an unknown token/.test(e.message)) hub.dropUnattributed(view, 'notifications/progress');
    previous?.(e);
  };
}
