/**
 * The OAuth 2.0 client-credentials sources of the `credential.oauth` routes (RFC 6749 §4.4;
 * docs/proxy-providers.md "OAuth client credentials"; ADR 0216): one TokenSource per route
 * (src/proxy/oauth-client.ts — cached until expiry minus skew, single flight), its client secret
 * read from kv when a token is requested (`client_secret` is a kv path; the read is audited as
 * Tessera's own), its token request sent through the SSRF guard's pinned dispatcher with the
 * route's `allow_private` (an authorization server on a private address needs an exception too).
 */
import type { Dispatcher } from 'undici';
import type { Clock } from '../shared/clock.js';
import type { AccessTokenSource } from './credential.js';
import { createClientCredentialsSource } from './oauth-client.js';
import type { RouteTable } from './route-table.js';
import type { SsrfGuard } from './ssrf.js';

export interface OauthSources {
  /** The route's token source; undefined for a route without `credential.oauth`. */
  source(route: string): AccessTokenSource | undefined;
  close(): Promise<void>;
}

/**
 * @param clientSecret reads a kv secret as Tessera itself (`path`: the route's
 *   `credential.oauth.client_secret`; `route`: for the audit's purpose).
 */
export function createOauthSources(routes: RouteTable, deps: { clock: Clock; guard: Pick<SsrfGuard, 'dispatcher'>; clientSecret: (path: string, route: string) => Promise<string> }): OauthSources {
  const sources = new Map<string, AccessTokenSource>();
  const dispatchers: Dispatcher[] = [];
  for (const r of routes.routes) {
    const o = r.config.credential.oauth;
    if (!o) continue;
    const dispatcher = deps.guard.dispatcher({ allow: r.config.allow_private }, { connections: 2 });
    dispatchers.push(dispatcher);
    sources.set(r.name, createClientCredentialsSource({
      tokenUrl: o.token_url, clientId: o.client_id, clientSecret: () => deps.clientSecret(o.client_secret, r.name),
      ...(o.scope !== undefined ? { scope: o.scope } : {}), ...(o.audience !== undefined ? { audience: o.audience } : {}), authMethod: o.auth_method,
    }, { clock: deps.clock, dispatcher }));
  }
  return {
    source: (route) => sources.get(route),
    async close() {
      await Promise.all(dispatchers.map((d) => d.close().catch(() => undefined)));
    },
  };
}
