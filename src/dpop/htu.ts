/**
 * The `htu` check of a DPoP proof (RFC 9449 §4.3 check 9): the proof names the HTTP target URI
 * of the request, without query and fragment, and the server compares it with the URI the
 * request was sent to after syntax-based and scheme-based normalization (RFC 3986 §6.2.2,
 * §6.2.3): scheme and host lowercased, default ports dropped, percent-encodings uppercased and
 * unreserved characters decoded, dot segments removed, an empty path made "/".
 *
 * Which URI "the request was sent to" is is decided by configuration, never by the `Host`
 * header alone: the origin must be one of Tessera's own (the issuer — `server.public_url`, or
 * the listen address —, the loopback names of a loopback listener, `server.allowed_hosts`),
 * and the path must be the request's path, under `server.public_url`'s path prefix when it has
 * one (a reverse proxy that serves Tessera under `/tessera/` and strips the prefix).
 *
 * Pure: no I/O.
 */
import { isLoopbackHost } from '../server/origin.js';

const DEFAULT_PORTS: Readonly<Record<string, string>> = { 'http:': '80', 'https:': '443' };
const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Percent-encoding normalization (RFC 3986 §6.2.2.1-2): uppercase hex, unreserved characters decoded. */
function normalizePercent(path: string): string {
  return path.replace(/%[0-9A-Fa-f]{2}/g, (m) => {
    const c = String.fromCharCode(parseInt(m.slice(1), 16));
    return UNRESERVED.test(c) ? c : m.toUpperCase();
  });
}

export interface NormalizedUri {
  /** `scheme://host[:port]`, lowercase, default port dropped. */
  readonly origin: string;
  /** Normalized path, never empty. */
  readonly path: string;
}

/**
 * Normalizes an absolute http(s) URI, dropping query and fragment; undefined when it is not one
 * (other schemes, user info, unparsable).
 */
export function normalizeUri(uri: string): NormalizedUri | undefined {
  if (uri.length > 4096) return undefined;
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return undefined;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username !== '' || u.password !== '') return undefined;
  // WHATWG URL already lowercases scheme and host, drops a default port, removes dot segments.
  const port = u.port && u.port !== DEFAULT_PORTS[u.protocol] ? `:${u.port}` : '';
  return { origin: `${u.protocol}//${u.hostname}${port}`, path: normalizePercent(u.pathname || '/') };
}

/** Normalizes a request target in origin-form (`/v1/whoami?x=1`, RFC 9112 §3.2.1): path only. */
export function normalizeRequestPath(target: string): string | undefined {
  if (!target.startsWith('/') || target.startsWith('//')) return undefined;
  return normalizeUri(`http://h${target}`)?.path;
}

export interface HtuBase {
  /** Normalized origin (`https://tessera.example.com`). */
  readonly origin: string;
  /** Path prefix without a trailing slash ("" for none). */
  readonly prefix: string;
}

export interface HtuMatcher {
  /**
   * True when the proof's `htu` names this server's URI for a request whose target (path and
   * query, as received) is `target`.
   */
  matches(htu: string, target: string): boolean;
}

export interface HtuMatcherInput {
  /** Bases with their path prefix: the issuer (`server.public_url` or the listen URL), loopback aliases. */
  readonly bases: readonly string[];
  /** Host names accepted on any port, with http or https (`server.allowed_hosts` entries without a port). */
  readonly anyPortHosts?: readonly string[];
}

export function createHtuMatcher(input: HtuMatcherInput): HtuMatcher {
  const bases = new Map<string, string>();
  for (const b of input.bases) {
    const n = normalizeUri(b);
    if (!n) continue;
    // The first base of an origin wins: the issuer (with its path prefix) comes first.
    if (!bases.has(n.origin)) bases.set(n.origin, n.path === '/' ? '' : n.path.replace(/\/$/, ''));
  }
  const anyPort = new Set((input.anyPortHosts ?? []).map((h) => h.toLowerCase()));
  const exact = [...bases].map(([origin, prefix]) => origin + prefix);
  return {
    matches(htu, target) {
      // Fast path: the client wrote exactly the base and the path as sent (what every client
      // does); normalizing both would give equal results.
      const q = target.search(/[?#]/);
      const path = q < 0 ? target : target.slice(0, q);
      if (path.startsWith('/') && !path.startsWith('//')) for (const b of exact) if (htu.length === b.length + path.length && htu.startsWith(b) && htu.endsWith(path)) return true;
      const got = normalizeUri(htu);
      const want = normalizeRequestPath(target);
      if (!got || want === undefined) return false;
      const prefix = bases.get(got.origin);
      if (prefix !== undefined) return got.path === prefix + want;
      if (anyPort.size > 0) {
        const host = new URL(got.origin).hostname;
        if (anyPort.has(host)) return got.path === want;
      }
      return false;
    },
  };
}

/**
 * Base URLs for the matcher from the server configuration: the issuer (`server.public_url` or
 * the listen URL), the listen URL, the loopback names of a loopback listener, and the
 * `server.allowed_hosts` entries with a port (http and https). Port-less `allowed_hosts`
 * entries are returned apart (any port).
 */
export function htuBasesOf(cfg: { issuer: string; listenHost: string; listenPort: number; allowedHosts: readonly string[] }): HtuMatcherInput {
  const host = cfg.listenHost.includes(':') && !cfg.listenHost.startsWith('[') ? `[${cfg.listenHost}]` : cfg.listenHost;
  const bases = [cfg.issuer, `http://${host}:${cfg.listenPort}`];
  if (isLoopbackHost(host)) for (const name of ['localhost', '127.0.0.1', '[::1]']) bases.push(`http://${name}:${cfg.listenPort}`);
  const anyPortHosts: string[] = [];
  for (const h of cfg.allowedHosts) {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(h);
    if (!m) continue;
    if (m[2] === undefined) anyPortHosts.push(m[1]!);
    else bases.push(`http://${m[1]}:${m[2]}`, `https://${m[1]}:${m[2]}`);
  }
  return { bases, anyPortHosts };
}
