/**
 * The proxy's routes, compiled once at start (no per-request parsing or compilation): the
 * upstream's origin and base path, the forward-proxy hosts, the headers stripped from what agents
 * send, and one keep-alive dispatcher per route (the SSRF part's pinned dispatcher in production).
 */
import { readFileSync } from 'node:fs';
import type { Dispatcher } from 'undici';
import { TesseraError } from '../shared/errors.js';
import { ALWAYS_STRIPPED, hostsOf, type ProxyConfig, type ProxyRouteConfig } from './config.js';
import type { DispatcherFactory } from './seams.js';

export interface CompiledRoute {
  readonly name: string;
  readonly config: ProxyRouteConfig;
  /** `https://api.example.com` (no trailing slash). */
  readonly origin: string;
  /** The upstream URL as configured (origin and base path). */
  readonly upstreamUrl: URL;
  /** The upstream's base path without a trailing slash ("" for none), percent-encoding kept. */
  readonly basePath: string;
  readonly host: string;
  readonly port: number;
  readonly hosts: readonly string[];
  /** Lower-case header names removed from the agent's request (always + the credential's header + strip_headers). */
  readonly strip: readonly string[];
  readonly bodyFields: readonly string[];
  readonly dispatcher: Dispatcher;
}

export interface RouteTable {
  readonly routes: readonly CompiledRoute[];
  byName(name: string): CompiledRoute | undefined;
  /** The route whose `hosts` include `host` (lower case, no port). */
  byHost(host: string): CompiledRoute | undefined;
  close(): Promise<void>;
}

/**
 * @param resolvePreset fills a preset route's defaults (PROVIDERS part's PRESETS); without it a
 *   route must name its upstream.
 * @throws TESSERA_CONFIG_INVALID for a route without an upstream, or an unreadable upstream_ca_file.
 */
export function compileRoutes(config: ProxyConfig, deps: { dispatcher: DispatcherFactory; resolvePreset?: (r: ProxyRouteConfig) => ProxyRouteConfig; connections?: number }): RouteTable {
  const routes: CompiledRoute[] = [];
  for (const raw of config.routes) {
    const r = deps.resolvePreset ? deps.resolvePreset(raw) : raw;
    if (!r.upstream) throw new TesseraError('TESSERA_CONFIG_INVALID', `proxy.routes "${r.name}": no upstream (preset "${r.preset ?? ''}" gives none in this build); set upstream`);
    const u = new URL(r.upstream);
    let ca: string | undefined;
    if (r.upstream_ca_file) {
      try {
        ca = readFileSync(r.upstream_ca_file, 'utf8');
      } catch (e) {
        throw new TesseraError('TESSERA_CONFIG_INVALID', `proxy.routes "${r.name}": upstream_ca_file ${r.upstream_ca_file} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    const strip = new Set<string>([...ALWAYS_STRIPPED, ...r.strip_headers.map((h) => h.toLowerCase())]);
    if (r.credential.query === undefined) strip.add((r.credential.header ?? 'authorization').toLowerCase());
    routes.push({
      name: r.name, config: r, origin: u.origin, upstreamUrl: u, basePath: u.pathname.replace(/\/+$/, ''), host: u.hostname.replace(/^\[|\]$/g, ''),
      port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80,
      hosts: hostsOf(r), strip: [...strip], bodyFields: r.body_fields,
      dispatcher: deps.dispatcher({ allow: r.allow_private }, { ...(ca ? { ca } : {}), ...(deps.connections ? { connections: deps.connections } : {}) }),
    });
  }
  const names = new Map(routes.map((r) => [r.name, r]));
  const hosts = new Map(routes.flatMap((r) => r.hosts.map((h) => [h, r] as const)));
  return {
    routes,
    byName: (n) => names.get(n),
    byHost: (h) => hosts.get(h.toLowerCase()),
    async close() {
      await Promise.all(routes.map((r) => r.dispatcher.close().catch(() => undefined)));
    },
  };
}
