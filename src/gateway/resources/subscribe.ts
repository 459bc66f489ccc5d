/**
 * `resources/subscribe` and `resources/unsubscribe` through the gateway (MCP 2025-11-25
 * "Resources" §Subscriptions). A subscription is authorized like a read (`resource.read` on the
 * resource, `resource:` scope: being told a resource changed is reading a little of it), made on
 * the caller's own upstream connection, and recorded per session (relay/subscriptions.ts): the
 * upstream is asked to subscribe when the first session of that connection subscribes a URI and
 * to unsubscribe when the last one leaves. Its `notifications/resources/updated` then reach only
 * those sessions (relay/hub.ts). Audited as `gateway.resource_subscribe`.
 */
import { TesseraError } from '../../shared/errors.js';
import type { Caller } from '../core.js';
import type { Serve } from '../served.js';
import type { Subscriptions } from '../relay/subscriptions.js';
import type { GatewayResources } from './index.js';

export interface ResourceSubscriptions {
  subscribe(uri: string, caller: Caller, signal: AbortSignal): Promise<Record<string, never>>;
  unsubscribe(uri: string, caller: Caller, signal: AbortSignal): Promise<Record<string, never>>;
}

export function createResourceSubscriptions(deps: { serve: Serve; resources: Pick<GatewayResources, 'authorizeTemplate'>; subscriptions: Subscriptions }): ResourceSubscriptions {
  const { serve, resources, subscriptions } = deps;
  return {
    subscribe(uri, caller, signal) {
      return serve(caller, signal, { kind: 'gateway.resource_subscribe', action: 'resource.subscribe', itemKind: 'resource' }, async (x) => {
        const target = resources.authorizeTemplate(x, uri, caller.principal);
        const server = target.upstream.server;
        await x.upstream(target.upstream, `${server} resources/subscribe`, async (client, o) => {
          if (!client.getServerCapabilities()?.resources?.subscribe) throw new TesseraError('TESSERA_GATEWAY_RESOURCE_NOT_FOUND', `${server} offers no resource subscriptions`);
          // The session closed (or the request was cancelled) while the connection was being
          // acquired: its subscriptions were already forgotten, so recording one now would outlive
          // it and keep the connection from its idle stop for good.
          if (o.signal.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new TesseraError('TESSERA_GATEWAY_REQUEST_CANCELLED', `${server} resources/subscribe: the request was cancelled`);
          const added = subscriptions.add(client, caller.sessionId, target.uri);
          if (!added.ok) throw new TesseraError('TESSERA_GATEWAY_SUBSCRIPTION_LIMIT', `this session already holds ${subscriptions.maxPerSession} resource subscriptions; unsubscribe from one first`);
          // One upstream subscribe per URI and connection; every session waits for it (ADR 0177).
          if (added.first) subscriptions.track(client, target.uri, client.subscribeResource({ uri: target.uri }, o));
          try {
            await subscriptions.settled(client, target.uri);
          } catch (e) {
            subscriptions.remove(client, caller.sessionId, target.uri);
            throw e;
          }
        });
        return {};
      });
    },
    unsubscribe(uri, caller, signal) {
      return serve(caller, signal, { kind: 'gateway.resource_subscribe', action: 'resource.unsubscribe', itemKind: 'resource' }, async (x) => {
        const target = resources.authorizeTemplate(x, uri, caller.principal);
        await x.upstream(target.upstream, `${target.upstream.server} resources/unsubscribe`, async (client, o) => {
          if (subscriptions.remove(client, caller.sessionId, target.uri).last) await client.unsubscribeResource({ uri: target.uri }, o);
        });
        return {};
      });
    },
  };
}
