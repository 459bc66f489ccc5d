/**
 * The `users:` section of tessera.yaml (docs/users.md, docs/configuration.md): the OpenID
 * Providers whose tokens say who a person is, and Tessera's own authorization server for MCP
 * clients and the CLI (authorization code + PKCE, federated to one of those providers).
 *
 * This module must not import src/config/schema.ts (that one embeds it).
 */
import { z } from 'zod';
import { durationBetween } from '../config/fields.js';

/** Asymmetric JWS algorithms a user token may be signed with (RFC 8725 §3.1: never `none` or HMAC). */
export const USER_TOKEN_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** Cedar attribute and tag names: `principal.getTag("department")`. */
const ATTRIBUTE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** A claim name (top-level; a dotted path reads nested objects: `realm_access.roles`). */
const CLAIM_PATH = /^[A-Za-z0-9_:$@-]{1,64}(\.[A-Za-z0-9_:$@-]{1,64}){0,3}$/;
const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** Bounds on what a user token contributes to a task token (kept small: it travels with every request). */
export const USER_LIMITS = {
  attributes: 16,
  attributeChars: 256,
  groups: 64,
  groupChars: 128,
  userIdChars: 256,
} as const;

const httpsOrLoopback = z.url().refine((u) => {
  const url = new URL(u);
  return (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname))) && !url.username && !url.password && !url.hash;
}, 'expected an https:// URL (http:// only for a loopback address), without user:password@ or #fragment');

/** 127.0.0.0/8, ::1 or localhost: where an http:// URL cannot be intercepted on the network. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** How Tessera logs a person in at this provider (the authorization server's federation; RFC 6749 §4.1 + PKCE). */
const loginConfig = z.object({
  /** Tessera's client id at the provider. */
  client_id: z.string().min(1).max(256),
  /** The client secret, from an environment variable or a file (never written in the config). Absent: a public client (PKCE only). */
  client_secret_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'expected an environment variable name').optional(),
  client_secret_file: z.string().min(1).optional(),
  /** Scopes asked of the provider; `openid` is always sent. */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/)).max(16).default(['openid', 'profile', 'email']),
}).strict().refine((l) => !(l.client_secret_env && l.client_secret_file), { message: 'set at most one of client_secret_env or client_secret_file' });

export const userIssuerConfig = z.object({
  /** Short name: the Cedar `principal.issuer` of its users, shown in the audit log. */
  name: z.string().regex(NAME, 'expected a short name: lowercase letters, digits, "_" and "-", at most 32'),
  /** The provider's issuer identifier (`iss`), exactly as in its tokens. */
  issuer: httpsOrLoopback,
  /** JWKS location: `jwks_url`, or `discovery: true` to read `jwks_uri` from `<issuer>/.well-known/openid-configuration`. */
  jwks_url: httpsOrLoopback.optional(),
  discovery: z.boolean().default(false),
  /** Accepted `aud` values (at least one must be in the token). */
  audience: z.union([z.string().min(1).max(512), z.array(z.string().min(1).max(512)).min(1).max(8)]).transform((a) => (Array.isArray(a) ? a : [a])),
  /**
   * Which token proves the person: `access_token` — a JWT access token (RFC 9068, header `typ:
   * at+jwt`); `id_token` — an OpenID Connect ID token; `any` — either.
   */
  token: z.enum(['access_token', 'id_token', 'any']).default('access_token'),
  algorithms: z.array(z.enum(USER_TOKEN_ALGORITHMS)).min(1).default(['RS256', 'ES256']),
  /** The claim naming the person (string); `sub` by default. */
  user_id_claim: z.string().regex(CLAIM_PATH).default('sub'),
  /** Prepended to the user id, so two providers never name the same person (`corp:alice`). Distinct per issuer when there are several. */
  user_id_prefix: z.string().regex(/^[\x21-\x7e]{0,32}$/, 'expected up to 32 printable ASCII characters without spaces').default(''),
  /** Cedar `User` tags: tag name → claim (string, number or boolean). */
  attributes: z.record(z.string().regex(ATTRIBUTE_NAME, 'tag names are Cedar identifiers'), z.string().regex(CLAIM_PATH)).refine((r) => Object.keys(r).length <= USER_LIMITS.attributes, `at most ${USER_LIMITS.attributes} attributes`).default({}),
  /** A claim holding the person's groups (an array of strings, or one string): their Cedar `Group` parents. */
  groups_claim: z.string().regex(CLAIM_PATH).optional(),
  /** Refuse tokens older than this (from `iat`) even before `exp`; also the longest a user task lasts past its token. */
  max_age: durationBetween(1000, 7 * 86_400_000).optional(),
  /** How the authorization server logs a person in here (only for `users.authorization_server.login_issuer`). */
  login: loginConfig.optional(),
}).strict().refine((i) => Boolean(i.jwks_url) !== i.discovery, { message: 'set exactly one of jwks_url or discovery: true' });

/** Tessera as the OAuth authorization server that MCP clients and `tessera login --oidc` see (docs/users.md). */
export const authorizationServerConfig = z.object({
  enabled: z.boolean().default(false),
  /** The `users.issuers[].name` that people log in with (it needs a `login` block). */
  login_issuer: z.string().regex(NAME).optional(),
  /** Lifetime of the access tokens (task tokens for `<issuer>/mcp` or the API) the grants issue. */
  access_token_ttl: durationBetween(30_000, 3_600_000).prefault('10m'),
  /** A login at the provider must finish within this. */
  login_ttl: durationBetween(30_000, 3_600_000).prefault('10m'),
  /** Authorization codes are single-use and live this long (RFC 6749 §4.1.2: at most 10 minutes). */
  code_ttl: durationBetween(5_000, 600_000).prefault('60s'),
  /** A refresh token family (one login) lasts at most this long, whatever the rotations. */
  refresh_token_ttl: durationBetween(60_000, 90 * 86_400_000).prefault('30d'),
  /** A refresh token unused for this long is refused (the family lives on only while used). */
  refresh_idle_ttl: durationBetween(60_000, 90 * 86_400_000).prefault('7d'),
  /**
   * Refresh tokens bound to the client's key (RFC 9449 §5: a DPoP proof at the token endpoint).
   * `required`: a grant without a verified proof gets no refresh token; `optional`: bound when a
   * proof came, bearer otherwise.
   */
  refresh_binding: z.enum(['optional', 'required']).default('optional'),
  /** The scope a grant gets when the client asks for none (space-separated Tessera scope strings). */
  default_scope: z.string().min(1).max(4096).default('tool:*/*'),
  /** Pre-registered public clients (besides client ID metadata documents). `tessera login --oidc` uses `tessera-cli`. */
  clients: z.array(z.object({
    client_id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
    /** Exact redirect URIs; a loopback `http://127.0.0.1/...` URI matches any port (RFC 8252 §7.3). */
    redirect_uris: z.array(z.string().min(1).max(2048)).min(1).max(16),
  }).strict()).max(64).default([{ client_id: 'tessera-cli', redirect_uris: ['http://127.0.0.1/callback'] }]),
  /** OAuth Client ID Metadata Documents (client_id = an https URL of a JSON document). */
  client_metadata: z.object({
    enabled: z.boolean().default(true),
    timeout: durationBetween(100, 30_000).prefault('5s'),
    max_bytes: z.number().int().min(256).max(65_536).default(5120),
    /** How long a fetched document is reused. */
    cache_ttl: durationBetween(0, 86_400_000).prefault('5m'),
    /** Hosts of client_id URLs that may resolve to private or loopback addresses (tests, an internal client). Default: none. */
    allow_private_hosts: z.array(z.string().min(1).max(255)).max(32).default([]),
    /** Extra CA certificates (PEM) for fetching documents (an internal client's private CA). */
    ca_file: z.string().min(1).optional(),
  }).strict().prefault({}),
}).strict();

export const usersConfigSchema = z.object({
  issuers: z.array(userIssuerConfig).max(16).default([]),
  authorization_server: authorizationServerConfig.prefault({}),
}).strict().superRefine((u, ctx) => {
  const names = new Set<string>();
  const issuers = new Set<string>();
  const prefixes = new Set<string>();
  u.issuers.forEach((i, n) => {
    if (names.has(i.name)) ctx.addIssue({ code: 'custom', path: ['issuers', n, 'name'], message: `two issuers are named "${i.name}"` });
    if (issuers.has(i.issuer)) ctx.addIssue({ code: 'custom', path: ['issuers', n, 'issuer'], message: `issuer ${i.issuer} appears twice; each provider once` });
    // Two providers must never be able to name the same person (one could impersonate the other's users).
    if (u.issuers.length > 1 && prefixes.has(i.user_id_prefix)) ctx.addIssue({ code: 'custom', path: ['issuers', n, 'user_id_prefix'], message: `with several issuers each needs its own user_id_prefix (e.g. "${i.name}:"), so two providers can never name the same user` });
    names.add(i.name);
    issuers.add(i.issuer);
    prefixes.add(i.user_id_prefix);
  });
  const as = u.authorization_server;
  if (as.enabled) {
    const login = u.issuers.find((i) => i.name === as.login_issuer);
    if (!as.login_issuer || !login) ctx.addIssue({ code: 'custom', path: ['authorization_server', 'login_issuer'], message: 'name the users.issuers entry people log in with' });
    else if (!login.login) ctx.addIssue({ code: 'custom', path: ['authorization_server', 'login_issuer'], message: `users.issuers "${login.name}" needs a login block (client_id at the provider)` });
    else if (!login.discovery) ctx.addIssue({ code: 'custom', path: ['authorization_server', 'login_issuer'], message: `users.issuers "${login.name}" needs discovery: true (the login reads the provider's endpoints from its metadata)` });
  }
});

export type UsersConfig = z.output<typeof usersConfigSchema>;
export type UserIssuerConfig = z.output<typeof userIssuerConfig>;
export type AuthorizationServerConfig = z.output<typeof authorizationServerConfig>;
