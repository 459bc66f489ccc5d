/**
 * The `proxy:` section of tessera.yaml (docs/proxy.md, docs/configuration.md "proxy"): the
 * injection proxy's listener, its bounds and its routes. Validated once at load with messages a
 * person can act on; the running proxy compiles the routes once (src/proxy/routes-table.ts).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration } from '../config/duration.js';
import { secretPathField } from '../config/fields.js';
import { describeDuration } from '../shared/duration.js';
import { oauthCredentialField, presetField, routeLimitsField } from './provider-schema.js';
import { applyPreset } from './providers.js';

/** Route names: the reverse prefix `/<name>/`, Cedar `Route::"<name>"`, scope `http:<name>`. */
export const ROUTE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** A lowercase DNS name (RFC 1123 labels), or an IPv4 address. */
const DNS_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
/** An HTTP field name (RFC 9110 §5.1 token). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
/** A query parameter name put in the upstream URL (kept to what needs no encoding). */
const QUERY_NAME = /^[A-Za-z0-9_.~-]{1,64}$/;
/** A top-level JSON body field given to Cedar. */
const BODY_FIELD = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
export const MAX_BODY_FIELDS = 16;
export const MAX_ROUTES = 256;

/**
 * Headers the proxy always removes from what an agent sends upstream (besides the credential's
 * own header): Tessera's own (Authorization, Proxy-Authorization, DPoP), cookies, and the API-key
 * headers of the common SDKs and gateways — an SDK configured with the agent's Tessera token as
 * its "API key" sends it in one of these, and an agent never holds an upstream credential of its
 * own to send (A10-7). OpenAI/most: Authorization; Anthropic: x-api-key; Azure OpenAI: api-key;
 * Google: x-goog-api-key; GitLab: private-token; Azure APIM: ocp-apim-subscription-key;
 * Azure Functions: x-functions-key; OpenStack and others: x-auth-token; AWS: x-amz-security-token.
 */
export const ALWAYS_STRIPPED = [
  'authorization', 'proxy-authorization', 'cookie', 'dpop',
  'x-api-key', 'api-key', 'x-goog-api-key', 'private-token', 'ocp-apim-subscription-key', 'x-functions-key', 'x-auth-token', 'x-amz-security-token',
] as const;

const UNITS: Readonly<Record<string, number>> = { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3 };

/** `1048576`, `"512KB"`, `"10MB"`, `"1GiB"` (KB = KiB = 1024 bytes) → bytes; null when malformed. */
export function parseByteSize(v: string | number): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : null;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim());
  if (!m) return null;
  const unit = UNITS[(m[2] || 'b').toLowerCase()];
  if (unit === undefined) return null;
  const n = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : null;
}

const byteSize = (min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const n = parseByteSize(v);
    if (n === null || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `expected a size between ${min} bytes and ${max / 1024 ** 2}MB such as "10MB" or "512KB", got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return n;
  });

const durationIn = (min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === null || ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `expected a duration between ${describeDuration(min)} and ${describeDuration(max)} such as "60s", got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return ms;
  });

/** Why an upstream URL is refused, or undefined when it is usable. */
export function upstreamProblem(u: string): string | undefined {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    return `expected an absolute http:// or https:// URL such as "https://api.example.com/v1", got ${JSON.stringify(u)}`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `expected an http:// or https:// URL, got scheme "${url.protocol.slice(0, -1)}"`;
  if (url.username || url.password) return 'must not carry user:password@ (the credential goes in credential:, never in the URL)';
  if (url.search || u.includes('?')) return 'must not carry a query (?…): requests add their own';
  if (url.hash || u.includes('#')) return 'must not carry a fragment (#…)';
  // On the text as written: WHATWG URL parsing already resolved "." and ".." (also encoded) away.
  const rawPath = u.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
  if (/%2f|%5c|%2e|\\/i.test(rawPath) || rawPath.split('/').some((s) => s === '..' || s === '.')) return 'its base path must not contain "."/".." segments or encoded "/", "\\" or "."';
  return undefined;
}

/** Whether `s` is a CIDR block (`10.0.0.0/8`, `fd00::/8`) or a bare IP address. */
function isCidr(s: string): boolean {
  const [addr, bits, ...rest] = s.split('/');
  if (rest.length > 0 || addr === undefined) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** `host`, `host:port`, `[v6]:port` with a lowercase DNS name or an address. */
function isHostPort(s: string): boolean {
  const v6 = /^\[([0-9a-f:.]+)\](?::(\d{1,5}))?$/i.exec(s);
  if (v6) return isIP(v6[1]!) === 6 && (v6[2] === undefined || (Number(v6[2]) >= 1 && Number(v6[2]) <= 65535));
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(s);
  if (!m) return false;
  if (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return false;
  return DNS_NAME.test(m[1]!) || isIP(m[1]!) === 4;
}

export const CREDENTIAL_SOURCES = ['secret', 'lease', 'oauth'] as const;
export type CredentialSource = (typeof CREDENTIAL_SOURCES)[number];
/** The placeholders a `format` may use, per credential source. */
export const PLACEHOLDERS: Readonly<Record<CredentialSource, readonly string[]>> = { secret: ['value'], lease: ['username', 'password'], oauth: ['access_token'] };
/** The format used when none is given (lease: none, a format is required). */
const DEFAULT_FORMAT: Readonly<Record<CredentialSource, string | undefined>> = { secret: 'Bearer {value}', lease: undefined, oauth: 'Bearer {access_token}' };

const credentialSchema = z.object({
  secret: secretPathField.optional(),
  lease: z.object({
    engine: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'expected an engine name such as "postgres"'),
    role: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'expected a role name'),
    ttl: durationIn(1000, 86_400_000).optional(),
  }).strict().optional(),
  /** PROVIDERS part (src/proxy/provider-schema.ts): token_url, client_id, client_secret (kv path), scope, audience, auth_method. */
  oauth: oauthCredentialField.optional(),
  header: z.string().regex(HEADER_NAME, 'expected an HTTP header name such as "Authorization" or "x-api-key"').optional(),
  format: z.string().min(1).max(512).optional(),
  query: z.string().regex(QUERY_NAME, 'expected a query parameter name (letters, digits, "_", ".", "~", "-")').optional(),
}).strict().superRefine((c, ctx) => {
  const sources = CREDENTIAL_SOURCES.filter((s) => c[s] !== undefined);
  if (sources.length !== 1) {
    ctx.addIssue({ code: 'custom', message: `set exactly one credential source: secret, lease or oauth (got ${sources.length === 0 ? 'none' : sources.join(' and ')})` });
    return;
  }
  const source = sources[0]!;
  if (c.header !== undefined && c.query !== undefined) ctx.addIssue({ code: 'custom', path: ['query'], message: 'set header or query, not both' });
  if (c.format !== undefined) {
    const allowed = PLACEHOLDERS[source];
    const used = [...c.format.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1]!);
    const stray = c.format.replace(/\{[^{}]*\}/g, '');
    if (/[{}]/.test(stray)) ctx.addIssue({ code: 'custom', path: ['format'], message: `unbalanced "{" or "}" in ${JSON.stringify(c.format)}` });
    for (const u of used) if (!allowed.includes(u)) ctx.addIssue({ code: 'custom', path: ['format'], message: `placeholder {${u}} is not available for a ${source} credential; use ${allowed.map((a) => `{${a}}`).join(' or ')}` });
    if (used.length === 0) ctx.addIssue({ code: 'custom', path: ['format'], message: `the format names no placeholder; use ${allowed.map((a) => `{${a}}`).join(' or ')}` });
    if (/[\r\n\0]/.test(c.format)) ctx.addIssue({ code: 'custom', path: ['format'], message: 'the format must not contain CR, LF or NUL' });
  } else if (DEFAULT_FORMAT[source] === undefined && c.query === undefined) {
    ctx.addIssue({ code: 'custom', path: ['format'], message: 'a lease credential needs a format, e.g. "Basic {username}:{password}" or "{password}"' });
  }
});

const routeSchema = z.object({
  name: z.string().regex(ROUTE_NAME, 'expected a route name: lowercase letters, digits, "_" and "-", starting with a letter or digit, at most 63 characters'),
  preset: presetField.optional(),
  upstream: z.string().superRefine((u, ctx) => {
    const p = upstreamProblem(u);
    if (p) ctx.addIssue({ code: 'custom', message: `upstream ${p}` });
  }).optional(),
  hosts: z.array(z.string().regex(DNS_NAME, 'expected a lowercase DNS name such as "api.openai.com"')).max(64).optional(),
  upstream_ca_file: z.string().min(1).optional(),
  credential: credentialSchema,
  strip_headers: z.array(z.string().regex(HEADER_NAME, 'expected an HTTP header name')).max(64).default([]),
  body_fields: z.array(z.string().regex(BODY_FIELD, 'expected a top-level JSON field name such as "model"')).max(MAX_BODY_FIELDS, `at most ${MAX_BODY_FIELDS} body_fields`).default([]),
  allow_private: z.array(z.string().refine((s) => isCidr(s) || isHostPort(s), 'expected a CIDR block ("10.0.0.0/8"), an address, or host[:port] ("internal.svc:8080")')).max(64).default([]),
  /** PROVIDERS part: per-window request and token limits per agent, task and user. */
  limits: routeLimitsField.optional(),
}).strict().superRefine((r, ctx) => {
  if (r.upstream === undefined && r.preset === undefined) ctx.addIssue({ code: 'custom', path: ['upstream'], message: 'set upstream (or a preset that gives one)' });
  const dup = r.body_fields.find((f, i) => r.body_fields.indexOf(f) !== i);
  if (dup) ctx.addIssue({ code: 'custom', path: ['body_fields'], message: `body field "${dup}" is listed twice` });
});

export const proxyConfigSchema = z.object({
  /** Absent: no proxy listener (`tessera dev` listens on the server's port + 1). */
  listen: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:8201').optional(),
  max_request_bytes: byteSize(0, 1024 ** 3).prefault('10MB'),
  timeout: durationIn(100, 600_000).prefault('60s'),
  leaf_ttl: durationIn(60_000, 30 * 86_400_000).prefault('24h'),
  /** Open CONNECT tunnels (intercepted or not) per agent SPIFFE ID (src/proxy/connect.ts); 429 TESSERA_PROXY_TUNNEL_LIMIT beyond. */
  max_tunnels_per_agent: z.number({ error: 'expected a whole number of tunnels from 1 to 100000, e.g. 64' }).int('expected a whole number of tunnels from 1 to 100000, e.g. 64').min(1, 'expected a whole number of tunnels from 1 to 100000, e.g. 64').max(100_000, 'expected a whole number of tunnels from 1 to 100000, e.g. 64').default(64),
  // Presets fill the keys a route leaves out before it is validated (src/proxy/providers.ts).
  routes: z.array(z.preprocess(applyPreset, routeSchema)).max(MAX_ROUTES).default([]),
}).strict().superRefine((p, ctx) => {
  const names = new Map<string, number>();
  const hosts = new Map<string, string>();
  p.routes.forEach((r, i) => {
    const first = names.get(r.name);
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['routes', i, 'name'], message: `route name "${r.name}" is already used by routes[${first}]; route names must be unique` });
    else names.set(r.name, i);
    for (const h of hostsOf(r)) {
      const other = hosts.get(h);
      if (other !== undefined && other !== r.name) ctx.addIssue({ code: 'custom', path: ['routes', i, 'hosts'], message: `host "${h}" is already served by route "${other}"; a host belongs to one route (set hosts on one of them; hosts: [] serves none)` });
      else hosts.set(h, r.name);
    }
  });
});

export type ProxyConfig = z.output<typeof proxyConfigSchema>;
export type ProxyRouteConfig = ProxyConfig['routes'][number];
export type ProxyCredentialConfig = ProxyRouteConfig['credential'];

/** The forward-proxy hosts of a route: `hosts`, else the upstream's host name. */
export function hostsOf(r: Pick<ProxyRouteConfig, 'hosts' | 'upstream'>): string[] {
  if (r.hosts) return [...r.hosts];
  if (!r.upstream) return [];
  try {
    return [new URL(r.upstream).hostname.replace(/^\[|\]$/g, '')];
  } catch {
    return [];
  }
}

/** The credential source a route uses. */
export function sourceOf(c: ProxyCredentialConfig): CredentialSource {
  return c.secret !== undefined ? 'secret' : c.lease !== undefined ? 'lease' : 'oauth';
}

/** The credential's format, defaults applied (validation guarantees one exists). */
export function formatOf(c: ProxyCredentialConfig): string {
  if (c.format !== undefined) return c.format;
  const source = sourceOf(c);
  // A query parameter carries the bare value; a header the scheme (`Bearer …`).
  if (c.query !== undefined) return `{${PLACEHOLDERS[source][0]!}}`;
  return DEFAULT_FORMAT[source] ?? '{password}';
}
