/**
 * Origin and Host checks for every route (docs/adr/0063-origin-host-validation.md).
 *
 * MCP transports 2025-11-25 §"Security Warning": servers MUST validate `Origin` on incoming
 * connections and answer 403 when it is present and not allowed (DNS rebinding), and local
 * servers SHOULD bind to loopback only. A browser puts `Origin` on every cross-origin request
 * and on same-origin requests other than GET/HEAD, so:
 *
 * - `Origin` present: it must be one of Tessera's own origins (`server.public_url`, the listen
 *   address, and the loopback names of a loopback listener) or listed in
 *   `server.allowed_origins`. Origins are compared as (scheme, host, port) tuples (RFC 6454 §5):
 *   scheme and host case-insensitively, a default port equal to no port; nothing else (no
 *   suffix, prefix or wildcard match). `null` (sandboxed frames, file: pages) and anything that
 *   is not a single serialized origin are refused.
 * - `Host` (DNS rebinding, where a page on evil.example resolves its own name to 127.0.0.1 — or
 *   to a LAN address — and so sends no cross-origin `Origin` on GETs): checked on every listener
 *   (docs/adr/0067-host-check-every-listener.md). It must name the listen address, on a loopback
 *   or wildcard listener a loopback name on the listen port, on a wildcard listener one of the
 *   machine's addresses on the listen port, `server.public_url`'s host, or an `allowed_hosts`
 *   entry.
 *
 * Pure: no I/O; src/server/app.ts applies it in an onRequest hook.
 */

export interface OriginPolicy {
  /** Allowed origins, serialized (RFC 6454 §6.2) and lowercased. */
  readonly origins: ReadonlySet<string>;
  /** Allowed `Host` values (lowercase `host[:port]`); undefined when Host is not checked. */
  readonly hosts?: ReadonlySet<string>;
  /** Names allowed on any port (`allowed_hosts` entries without a port). */
  readonly anyPortHosts?: ReadonlySet<string>;
}

export type GuardRefusal = 'origin' | 'host';

const ORIGIN = /^([A-Za-z][A-Za-z0-9+.-]{0,31}):\/\/(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(\d{1,5}))?$/;
const HOST = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(\d{1,5}))?$/;
const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443', ws: '80', wss: '443' };

/**
 * The serialized origin of an `Origin` header value or a configured origin, lowercased; undefined
 * when the value is not exactly one `scheme://host[:port]` (no path, query, user info, trailing
 * slash, list, or `null`).
 */
export function parseOrigin(value: string): string | undefined {
  const m = ORIGIN.exec(value);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  const host = canonicalName(m[2]!);
  const port = m[3];
  if (host === undefined || (port !== undefined && (Number(port) > 65535 || (port.length > 1 && port.startsWith('0'))))) return undefined;
  const explicit = port !== undefined && port !== DEFAULT_PORTS[scheme] ? `:${Number(port)}` : '';
  return `${scheme}://${host}${explicit}`;
}

/** The origin of a URL (for public_url and the listen URL). */
export function originOfUrl(url: string): string {
  const u = new URL(url);
  return parseOrigin(`${u.protocol.slice(0, -1)}://${u.host}`) ?? `${u.protocol}//${u.host}`.toLowerCase();
}

/** Lowercase `host[:port]`, or undefined when the value is not a Host header (RFC 9110 §7.2). */
export function parseHost(value: string): { name: string; port?: number } | undefined {
  const m = HOST.exec(value);
  if (!m) return undefined;
  const name = canonicalName(m[1]!);
  if (name === undefined) return undefined;
  if (m[2] === undefined) return { name };
  const port = Number(m[2]);
  return port > 65535 ? undefined : { name, port };
}

/** `[v6]` in its canonical (WHATWG URL, compressed lowercase) form, or undefined if invalid. */
function canonicalIpv6(bracketed: string): string | undefined {
  try {
    return new URL(`http://${bracketed}/`).hostname;
  } catch {
    return undefined;
  }
}

/** Lowercase host name, IPv6 literals in canonical form; undefined when invalid. */
function canonicalName(name: string): string | undefined {
  const n = name.toLowerCase();
  return n.startsWith('[') ? canonicalIpv6(n) : n;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export interface OriginPolicyInput {
  /** Tessera's issuer (`server.public_url`, or the listen URL). */
  readonly issuer: string;
  /** The address it listens on. */
  readonly listenHost: string;
  readonly listenPort: number;
  /** `server.allowed_origins` (validated by the config schema). */
  readonly allowedOrigins: readonly string[];
  /** `server.allowed_hosts` (validated by the config schema). */
  readonly allowedHosts: readonly string[];
  /**
   * The machine's own addresses (every interface), for a wildcard listener (`0.0.0.0`, `::`):
   * reached by IP, which no rebinding name can be. src/main.ts passes os.networkInterfaces().
   */
  readonly localAddresses?: readonly string[];
}

/** `0.0.0.0`, `::` (and `[::]`, empty): the listener answers on every address of the machine. */
export function isWildcardHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === '' || h === '0.0.0.0' || h === '::' || h === '0:0:0:0:0:0:0:0';
}

export function buildOriginPolicy(input: OriginPolicyInput): OriginPolicy {
  const listenName = input.listenHost.includes(':') && !input.listenHost.startsWith('[') ? `[${input.listenHost}]` : input.listenHost;
  const loopback = isLoopbackHost(listenName);
  // A wildcard listener is reachable on loopback too, and on every interface address.
  const wildcard = isWildcardHost(input.listenHost);
  const issuer = new URL(input.issuer);
  const origins = new Set<string>([originOfUrl(input.issuer), originOfUrl(`http://${listenName}:${input.listenPort}`)]);
  const hosts = new Set<string>();
  const anyPort = new Set<string>();
  const addHost = (name: string, port: number | undefined, scheme = 'http'): void => {
    const n = canonicalName(name) ?? name.toLowerCase();
    if (port === undefined) {
      hosts.add(n);
      return;
    }
    hosts.add(`${n}:${port}`);
    if (String(port) === DEFAULT_PORTS[scheme]) hosts.add(n);
  };
  addHost(listenName, input.listenPort);
  addHost(issuer.hostname, Number(issuer.port || DEFAULT_PORTS[issuer.protocol.slice(0, -1)] || 0), issuer.protocol.slice(0, -1));
  if (wildcard) {
    for (const a of input.localAddresses ?? []) {
      const name = a.includes(':') && !a.startsWith('[') ? `[${a.replace(/%.*$/, '')}]` : a;
      if (parseHost(name)) addHost(name, input.listenPort);
    }
  }
  if (loopback || wildcard) {
    for (const name of ['localhost', '127.0.0.1', '[::1]']) {
      addHost(name, input.listenPort);
      origins.add(originOfUrl(`http://${name}:${input.listenPort}`));
    }
  }
  for (const o of input.allowedOrigins) {
    const p = parseOrigin(o);
    if (p) origins.add(p);
  }
  for (const h of input.allowedHosts) {
    const p = parseHost(h);
    if (!p) continue;
    if (p.port === undefined) anyPort.add(p.name);
    else hosts.add(`${p.name}:${p.port}`);
  }
  // DNS rebinding reaches any listener a browser can reach, loopback or not (pen-test F11,
  // docs/adr/0067-host-check-every-listener.md): Host is checked on every listener.
  return { origins, hosts, anyPortHosts: anyPort };
}

/**
 * Checks one request's `Origin` and `Host` headers (as Node gives them: a repeated header is a
 * comma-joined string or an array). Returns what is refused, or undefined when allowed.
 */
export function checkOriginAndHost(policy: OriginPolicy, headers: { origin?: string | string[]; host?: string | string[] }): GuardRefusal | undefined {
  const origin = headers.origin;
  if (origin !== undefined) {
    if (typeof origin !== 'string') return 'origin';
    const o = parseOrigin(origin);
    if (o === undefined || !policy.origins.has(o)) return 'origin';
  }
  if (policy.hosts) {
    const raw = headers.host;
    if (typeof raw !== 'string') return 'host';
    const h = parseHost(raw);
    if (!h) return 'host';
    const full = h.port === undefined ? h.name : `${h.name}:${h.port}`;
    if (!policy.hosts.has(full) && !policy.anyPortHosts?.has(h.name)) return 'host';
  }
  return undefined;
}
