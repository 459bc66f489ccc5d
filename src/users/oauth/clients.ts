/**
 * OAuth clients of Tessera's authorization server (docs/users.md "MCP clients"):
 *   - pre-registered public clients (`users.authorization_server.clients`, e.g. `tessera-cli`);
 *   - OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP
 *     authorization 2025-11-25 "Client ID Metadata Documents"): the `client_id` is an https URL
 *     with a path; Tessera fetches the JSON document there and uses its `redirect_uris`.
 *
 * The fetch is an SSRF surface (a client chooses the URL): https only, no redirects, a size and
 * time bound, and every address the host resolves to — checked at connect time, so DNS
 * rebinding cannot slip past — must be public unless the host is in `allow_private_hosts`.
 * Public clients only (`token_endpoint_auth_method: none`): PKCE is what protects the code.
 */
import { readConfigFile } from '../../config/check.js';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, request } from 'undici';
import { z } from 'zod';
import type { Clock } from '../../shared/clock.js';
import { fail } from '../../shared/errors.js';
import { credentialLike } from '../../shared/credential-like.js';
import { sha256 } from '../../shared/crypto.js';
import { isLoopbackHost, type AuthorizationServerConfig } from '../config.js';

export interface OAuthClient {
  readonly clientId: string;
  /** Where a client's login may land (exact; loopback any port, RFC 8252 §7.3). */
  readonly redirectUris: readonly string[];
  /** `metadata_document` or `registered`. */
  readonly kind: 'metadata_document' | 'registered';
  /** The SPIFFE ID it acts as (ADR 0131): `spiffe://<td>/oauth-client/<name>`. */
  readonly spiffeId: string;
  readonly name?: string;
}

export interface ClientResolver {
  /** Throws TESSERA_OAUTH_CLIENT_INVALID naming what is wrong. */
  resolve(clientId: string): Promise<OAuthClient>;
}

const PRIVATE = new BlockList();
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96]] as const) PRIVATE.addSubnet(net, bits, 'ipv6');

/** Loopback, private, link-local, CGNAT, multicast or reserved (IPv4-mapped IPv6 as its IPv4). */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1]!, 'ipv4');
  const family = isIP(address);
  if (family === 0) return true;
  return PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Why `clientId` cannot be a metadata document URL, or undefined. */
export function metadataUrlProblem(clientId: string): string | undefined {
  let u: URL;
  try {
    u = new URL(clientId);
  } catch {
    return 'is not a URL';
  }
  if (u.protocol !== 'https:') return 'must use https';
  if (u.pathname === '/' || u.pathname === '') return 'must have a path';
  if (u.username || u.password) return 'must not carry user:password@';
  if (u.hash || clientId.includes('#')) return 'must not have a fragment';
  if (/\/\.\.?(\/|$)/.test(u.pathname) || /%2e|%2f/i.test(clientId)) return 'must not have dot segments or encoded separators';
  if (u.href !== clientId) return 'must be in normal form (as a browser would write it)';
  if (clientId.length > 2048) return 'is longer than 2048 characters';
  return undefined;
}

const documentSchema = z.object({
  client_id: z.string(),
  client_name: z.string().max(256).optional(),
  redirect_uris: z.array(z.string().min(1).max(2048)).min(1).max(16),
  token_endpoint_auth_method: z.literal('none').optional(),
  grant_types: z.array(z.string().max(128)).max(16).optional(),
  response_types: z.array(z.string().max(64)).max(8).optional(),
}).loose();

/** A SPIFFE path segment from text: letters, digits, `.`, `-`, `_` (everything else becomes `-`). */
function segment(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9._-]/g, '-').replace(/^[.]+/, '').slice(0, 64) || 'client';
}

/** The SPIFFE ID an OAuth client acts as: its host (or registered id) and a hash of its client_id, so two clients never share one. */
export function clientSpiffeId(trustDomain: string, clientId: string, kind: OAuthClient['kind']): string {
  if (kind === 'registered') return `spiffe://${trustDomain}/oauth-client/${segment(clientId)}`;
  const host = segment(new URL(clientId).host);
  return `spiffe://${trustDomain}/oauth-client/${host}/${sha256(clientId).toString('hex').slice(0, 16)}`;
}

/** RFC 3986 redirect URI usable for a login: absolute, no fragment; http only on loopback (RFC 8252 §7.3, §8.3). */
function redirectProblem(uri: string): string | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return `"${uri.slice(0, 100)}" is not an absolute URI`;
  }
  if (u.hash) return 'a redirect URI must not have a fragment';
  if (u.protocol === 'http:' && !isLoopbackHost(u.hostname)) return 'http redirect URIs are allowed only on a loopback address (RFC 8252 §8.3)';
  if (u.protocol === 'javascript:' || u.protocol === 'data:' || u.protocol === 'file:') return `scheme ${u.protocol} is not a redirect`;
  if (credentialLike(uri)) return 'a redirect URI must not carry a credential';
  return undefined;
}

/**
 * Whether `requested` is one of `registered`: exact string match, except that a loopback http
 * URI matches whatever port (RFC 8252 §7.3: native apps listen on an ephemeral port).
 */
export function redirectMatches(registered: readonly string[], requested: string): boolean {
  // Compared as sent: the URL parser would drop spaces, tabs and line breaks and match anyway.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f]/.test(requested)) return false;
  if (registered.includes(requested)) return true;
  let r: URL;
  try {
    r = new URL(requested);
  } catch {
    return false;
  }
  if (r.protocol !== 'http:' || !isLoopbackHost(r.hostname) || r.hash) return false;
  return registered.some((x) => {
    try {
      const g = new URL(x);
      return g.protocol === 'http:' && g.hostname === r.hostname && g.pathname === r.pathname && g.search === r.search;
    } catch {
      return false;
    }
  });
}

export interface ClientResolverDeps {
  readonly config: AuthorizationServerConfig;
  readonly trustDomain: string;
  readonly clock: Clock;
}

export function createClientResolver(deps: ClientResolverDeps): ClientResolver {
  const cm = deps.config.client_metadata;
  const registered = new Map(deps.config.clients.map((c) => [c.client_id, c]));
  const cache = new Map<string, { client: OAuthClient; until: number }>();
  // Read at start: a missing or non-PEM file is TESSERA_CONFIG_INVALID naming the key (as `tessera config validate` says).
  const ca = cm.ca_file ? readConfigFile('users.authorization_server.client_metadata.ca_file', cm.ca_file, 'pem') : undefined;
  const allowPrivate = new Set(cm.allow_private_hosts.map((h) => h.toLowerCase()));

  /** Refuses private addresses at connect time (DNS rebinding cannot change the answer afterwards). */
  function guardedLookup(host: string): (hostname: string, options: object, cb: (err: Error | null, address: string | LookupAddress[], family?: number) => void) => void {
    return (hostname, options, cb) => {
      dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
        if (err) return cb(err, []);
        const bad = addresses.find((a) => isPrivateAddress(a.address));
        if (bad && !allowPrivate.has(host)) return cb(Object.assign(new Error(`${host} resolves to a private address`), { code: 'EPRIVATEADDRESS' }), []);
        const wantsAll = (options as { all?: boolean }).all === true;
        return wantsAll ? cb(null, addresses) : cb(null, addresses[0]!.address, addresses[0]!.family);
      });
    };
  }

  async function fetchDocument(clientId: string): Promise<OAuthClient> {
    const url = new URL(clientId);
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    if (isIP(host) && isPrivateAddress(host) && !allowPrivate.has(host)) throw fail('TESSERA_OAUTH_CLIENT_INVALID', `client_id ${clientId.slice(0, 200)} points at a private address`, { reason: 'private_address' });
    const agent = new Agent({ connect: { ...(ca ? { ca } : {}), lookup: guardedLookup(host) as never, timeout: cm.timeout }, headersTimeout: cm.timeout, bodyTimeout: cm.timeout });
    let text: string;
    try {
      const res = await request(url, { method: 'GET', dispatcher: agent, headers: { accept: 'application/json' }, maxRedirections: 0, signal: AbortSignal.timeout(cm.timeout) } as Parameters<typeof request>[1]);
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`HTTP ${res.statusCode}`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > cm.max_bytes) {
          res.body.destroy();
          throw new Error(`larger than ${cm.max_bytes} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (e) {
      throw fail('TESSERA_OAUTH_CLIENT_INVALID', `the client ID metadata document at ${clientId.slice(0, 200)} could not be fetched: ${(e as Error).message.slice(0, 200)}`, { reason: 'fetch' });
    } finally {
      void agent.close();
    }
    let doc: z.output<typeof documentSchema>;
    try {
      const parsed = documentSchema.safeParse(JSON.parse(text));
      if (!parsed.success) throw new Error(`${parsed.error.issues[0]?.path.join('.') || 'document'}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      doc = parsed.data;
    } catch (e) {
      throw fail('TESSERA_OAUTH_CLIENT_INVALID', `the client ID metadata document at ${clientId.slice(0, 200)} is invalid: ${(e as Error).message.slice(0, 200)}`, { reason: 'document' });
    }
    // The document must name itself (draft-ietf-oauth-client-id-metadata-document §4.1).
    if (doc.client_id !== clientId) throw fail('TESSERA_OAUTH_CLIENT_INVALID', 'the client ID metadata document names another client_id than its own URL', { reason: 'client_id_mismatch' });
    if (doc.grant_types && !doc.grant_types.includes('authorization_code')) throw fail('TESSERA_OAUTH_CLIENT_INVALID', 'the client ID metadata document does not allow the authorization_code grant', { reason: 'grant_types' });
    for (const r of doc.redirect_uris) {
      const problem = redirectProblem(r);
      if (problem) throw fail('TESSERA_OAUTH_CLIENT_INVALID', `the client ID metadata document lists an unusable redirect URI: ${problem}`, { reason: 'redirect_uris' });
    }
    return { clientId, redirectUris: doc.redirect_uris, kind: 'metadata_document', spiffeId: clientSpiffeId(deps.trustDomain, clientId, 'metadata_document'), ...(doc.client_name ? { name: doc.client_name } : {}) };
  }

  return {
    async resolve(clientId) {
      if (clientId.length === 0 || clientId.length > 2048) throw fail('TESSERA_OAUTH_CLIENT_INVALID', 'client_id is required (at most 2048 characters)');
      // A client_id is audited in clear: it never carries a credential.
      if (credentialLike(clientId)) throw fail('TESSERA_OAUTH_CLIENT_INVALID', 'client_id looks like a credential; client ids are recorded in clear');
      const r = registered.get(clientId);
      if (r) return { clientId, redirectUris: r.redirect_uris, kind: 'registered', spiffeId: clientSpiffeId(deps.trustDomain, clientId, 'registered') };
      if (!cm.enabled) throw fail('TESSERA_OAUTH_CLIENT_INVALID', `client_id "${clientId.slice(0, 100)}" is not registered (users.authorization_server.clients), and client ID metadata documents are disabled`);
      const problem = metadataUrlProblem(clientId);
      if (problem) throw fail('TESSERA_OAUTH_CLIENT_INVALID', `client_id "${clientId.slice(0, 200)}" is not a registered client, and as a client ID metadata document URL it ${problem}`, { reason: 'client_id' });
      const now = deps.clock.now();
      const hit = cache.get(clientId);
      if (hit && hit.until > now) return hit.client;
      const client = await fetchDocument(clientId);
      if (cm.cache_ttl > 0) {
        if (cache.size >= 1000) cache.delete(cache.keys().next().value!);
        cache.set(clientId, { client, until: now + cm.cache_ttl });
      }
      return client;
    },
  };
}
