/**
 * MCP resources through the gateway (spec 2025-11-25 "Resources"): `resources/list`,
 * `resources/templates/list` and `resources/read`, federated across upstream servers under
 * `tessera://<server>/<upstream URI>` (uri.ts, ADR 0170).
 *
 * - Listing: an upstream is asked (and started) only for a caller who may read something of it
 *   (probe.ts, action `resource.read`, scope `resource:`) and only when it declared the
 *   `resources` capability; each resource is listed only when Cedar (∩ scope) permits
 *   `resource.read` on it, so a listing shows exactly what the caller may read. A URI the
 *   federation refuses, or one holding a credential shape or a value injected into that upstream,
 *   is left out (identifiers are dropped, never rewritten). Other fields are scrubbed.
 * - Read: the URI is parsed (refusals have stable codes) → `resource.read` on
 *   `Resource::"<server>/<uri>"` with `context.uri` → the upstream's `resources/read` → the
 *   contents' URIs federated, text and blobs scrubbed like a tool result's (a blob that carried a
 *   secret is replaced by a text notice) → one `gateway.resource_read` audit event.
 */
import type { Resource, ResourceTemplate, ReadResourceResult } from '@modelcontextprotocol/sdk/types.js';
import { requiredScopeFor } from '../../policy/scope.js';
import { TesseraError } from '../../shared/errors.js';
import { credentialLike } from '../../shared/credential-like.js';
import type { AgentPrincipal } from '../../shared/principal.js';
import type { Caller } from '../core.js';
import type { ProbeKind } from '../probe.js';
import { noticeItem, scrubToolResult, type Scrubber, type SecretInput } from '../scrub/index.js';
import type { Exchange } from '../served.js';
import { listAll, type ItemsDeps, type PageOf } from '../listing.js';
import type { Upstream } from '../upstream.js';
import { gatewayUri, parseGatewayUri, upstreamUriFault, urisOfScopeName } from './uri.js';

export { gatewayUri, parseGatewayUri, upstreamUriFault, urisOfScopeName, GATEWAY_URI_SCHEME, MAX_RESOURCE_URI } from './uri.js';

export const RESOURCE_KIND: ProbeKind = { action: 'resource.read', scope: 'resource', ref: (server, uri) => ({ type: 'Resource', server, uri }), itemsOfScope: urisOfScopeName };

export type ResourcesDeps = ItemsDeps;

export interface GatewayResources {
  list(caller: Caller, signal: AbortSignal): Promise<Resource[]>;
  templates(caller: Caller, signal: AbortSignal): Promise<ResourceTemplate[]>;
  read(uri: string, caller: Caller, signal: AbortSignal): Promise<ReadResourceResult>;
  /** Whether the caller may read some resource of some server (capabilities). */
  mayUseAny(p: AgentPrincipal): boolean;
  /** The policy resource a gateway URI names, or undefined when it is not one the gateway serves. */
  refOf(uri: unknown): { type: 'Resource'; server: string; uri: string } | undefined;
  /** Whether the caller may read upstream URI `uri` of `server`: served (uri.ts rules) and `resource.read` permitted (scope ∩ Cedar). */
  mayRead(p: AgentPrincipal, server: string, uri: string): boolean;
  /** The server and upstream URI (template) of a gateway URI, authorized as `resource.read` (completion/complete). */
  authorizeTemplate(x: Exchange, uri: string, p: AgentPrincipal): { upstream: Upstream; uri: string };
}

export function createResources(deps: ResourcesDeps): GatewayResources {
  const { authorizer, kit, serve, probe, logger } = deps;
  const upstreams = new Map(deps.upstreams.map((u) => [u.server, u]));
  const servers = new Set(upstreams.keys());
  const refusedLogged = new Set<string>();

  function readable(p: AgentPrincipal, server: string, uri: string): boolean {
    try {
      return authorizer.authorize({ principal: p, action: 'resource.read', resource: { type: 'Resource', server, uri } }).allowed;
    } catch {
      return false;
    }
  }

  /** Why a listed URI is not served (federation rules, or a credential in an identifier); logged once per URI. */
  function hidden(server: string, uri: string, scrubber: Scrubber): boolean {
    const why = upstreamUriFault(server, uri) ?? (credentialLike(uri) !== undefined || scrubber.scrubText(uri).hits.length > 0 ? 'it looks like a credential' : undefined);
    if (why === undefined) return false;
    const key = `${server}\n${kit.auditName(uri)}`;
    if (!refusedLogged.has(key) && refusedLogged.size < 10_000) {
      refusedLogged.add(key);
      logger.warn({ server, uri: kit.auditName(uri), why }, 'gateway: an upstream resource URI is not served');
    }
    return true;
  }

  /** One listing of each upstream the caller may read from; a failing upstream hides only its own items. */
  async function gather<T>(caller: Caller, signal: AbortSignal, what: string, page: PageOf<T>): Promise<{ server: string; items: T[]; secrets: readonly SecretInput[] }[]> {
    const wanted = [...upstreams.values()].filter((u) => probe.mayUse(caller.principal, u.server, RESOURCE_KIND));
    return Promise.all(wanted.map(async (u) => {
      try {
        return { server: u.server, ...(await listAll(u, caller, signal, what, page)) };
      } catch (e) {
        logger.warn({ server: u.server, err: (e as Error).message?.slice(0, 300) }, `gateway: ${what} of an upstream failed; its items are not listed`);
        return { server: u.server, items: [] as T[], secrets: [] as SecretInput[] };
      }
    }));
  }

  /** The listed items the caller may read, their URIs federated and the rest scrubbed (hits audited). */
  async function federate<T extends { uri?: string; uriTemplate?: string }>(caller: Caller, field: 'uri' | 'uriTemplate', results: { server: string; items: T[]; secrets: readonly SecretInput[] }[]): Promise<T[]> {
    const out: T[] = [];
    for (const r of results) {
      const scrubber = kit.scrubberFor(r.secrets);
      for (const item of r.items) {
        const uri = item[field];
        if (typeof uri !== 'string' || hidden(r.server, uri, scrubber) || !readable(caller.principal, r.server, uri)) continue;
        const { [field]: _omit, ...rest } = item;
        const s = scrubber.scrubValue(rest);
        if (s.hits.length) await kit.auditHits(s.hits, { action: 'resource.list', server: r.server, item: uri, itemKind: 'resource' }, caller, false);
        out.push({ ...(s.value as object), [field]: gatewayUri(r.server, uri) } as T);
      }
    }
    return out;
  }

  /** The upstream of a parsed URI, which must offer resources. */
  function upstreamOf(server: string): Upstream {
    const u = upstreams.get(server);
    if (!u) throw new TesseraError('TESSERA_GATEWAY_RESOURCE_NOT_FOUND', 'no resource with that URI is served to you: the gateway has no such server; use a URI as resources/list gives it');
    return u;
  }

  function authorizeUri(x: Exchange, uri: string, p: AgentPrincipal): { upstream: Upstream; uri: string } {
    x.target('', uri);
    const parsed = parseGatewayUri(uri, servers);
    x.target(parsed.server, parsed.uri);
    const resource = { type: 'Resource' as const, server: parsed.server, uri: parsed.uri };
    x.authorize({ principal: p, action: 'resource.read', resource }, requiredScopeFor(resource)!, () => new TesseraError('TESSERA_GATEWAY_RESOURCE_DENIED', `policy does not permit resource.read on ${parsed.server}/… (this URI)`));
    return { upstream: upstreamOf(parsed.server), uri: parsed.uri };
  }

  return {
    mayUseAny(p) {
      return [...servers].some((s) => probe.mayUse(p, s, RESOURCE_KIND));
    },

    authorizeTemplate: authorizeUri,

    mayRead(p, server, uri) {
      return upstreamUriFault(server, uri) === undefined && readable(p, server, uri);
    },

    refOf(uri) {
      if (typeof uri !== 'string') return undefined;
      try {
        const r = parseGatewayUri(uri, servers);
        return { type: 'Resource', server: r.server, uri: r.uri };
      } catch {
        return undefined;
      }
    },

    async list(caller, signal) {
      const results = await gather<Resource>(caller, signal, 'resources/list', async (client, cursor, o) => {
        if (!client.getServerCapabilities()?.resources) return undefined;
        const r = await client.listResources(cursor ? { cursor } : {}, o);
        return { items: r.resources, next: r.nextCursor };
      });
      return federate(caller, 'uri', results);
    },

    async templates(caller, signal) {
      const results = await gather<ResourceTemplate>(caller, signal, 'resources/templates/list', async (client, cursor, o) => {
        if (!client.getServerCapabilities()?.resources) return undefined;
        const r = await client.listResourceTemplates(cursor ? { cursor } : {}, o);
        return { items: r.resourceTemplates, next: r.nextCursor };
      });
      return federate(caller, 'uriTemplate', results);
    },

    async read(uri, caller, signal) {
      return serve(caller, signal, { kind: 'gateway.resource_read', action: 'resource.read', itemKind: 'resource' }, async (x) => {
        const target = authorizeUri(x, uri, caller.principal);
        const server = target.upstream.server;
        const result = await x.upstream(target.upstream, `${server} resources/read`, async (client, o) => {
          if (!client.getServerCapabilities()?.resources) throw new TesseraError('TESSERA_GATEWAY_RESOURCE_NOT_FOUND', `no resource with that URI is served to you: ${server} offers no resources`);
          return client.readResource({ uri: target.uri }, o);
        });
        const contents = (result.contents ?? []).map((c) => ({ ...c, uri: typeof c.uri === 'string' && upstreamUriFault(server, c.uri) === undefined ? gatewayUri(server, c.uri) : uri }));
        return x.scrub({ ...result, contents } as ReadResourceResult, scrubContents);
      });
    },
  };
}

/**
 * Scrubs resource contents like tool result content (scrub/result.ts): each content is scanned
 * as an embedded `resource` item, so a `blob` is decoded and a blob that carried a secret is
 * replaced, here by a text content holding the notice (same URI).
 */
export function scrubContents(scrubber: Scrubber, result: ReadResourceResult): { value: ReadResourceResult; hits: ReturnType<Scrubber['scrubValue']>['hits']; replaced: number } {
  const { contents, ...rest } = result;
  const asItems = scrubToolResult(scrubber, { content: contents.map((c) => ({ type: 'resource', resource: c })) });
  const head = scrubber.scrubValue(rest);
  const items = asItems.value.content as Record<string, unknown>[];
  const back = items.map((it, i) => {
    const original = contents[i]!;
    if (it.type === 'resource' && it.resource && typeof it.resource === 'object') return it.resource as ReadResourceResult['contents'][number];
    const text = typeof it.text === 'string' ? it.text : noticeItem('resource', 'it carried a secret value').text;
    return { uri: original.uri, mimeType: 'text/plain', text };
  });
  return { value: { ...head.value, contents: back }, hits: [...asItems.hits, ...head.hits], replaced: asItems.replaced };
}
