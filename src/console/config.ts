/**
 * The `console:` section of tessera.yaml (docs/console.md, docs/configuration.md): the operator
 * console's sessions and its optional OpenID Connect sign-in.
 *
 * This module must not import src/config/schema.ts (that one embeds it).
 */
import { z } from 'zod';
import { durationBetween } from '../config/fields.js';
import { isLoopbackHost } from '../users/config.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const httpsOrLoopback = z.url().refine((u) => {
  const url = new URL(u);
  return (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname))) && !url.username && !url.password && !url.hash;
}, 'expected an https:// URL (http:// only for a loopback address), without user:password@ or #fragment');

/** A claim name (top-level; a dotted path reads nested objects: `realm_access.roles`). */
const CLAIM_PATH = /^[A-Za-z0-9_:$@-]{1,64}(\.[A-Za-z0-9_:$@-]{1,64}){0,3}$/;

/** One role rule: the ID token's `claim` equals `equals`, or is an array that contains it. */
const roleRule = z.object({
  claim: z.string().regex(CLAIM_PATH, 'expected a claim name such as "groups" or "realm_access.roles"'),
  equals: z.union([z.string().min(1).max(256), z.number(), z.boolean()]),
}).strict();

export const consoleOidcConfig = z.object({
  /** The provider's issuer identifier; its discovery document is read from `<issuer>/.well-known/openid-configuration`. */
  issuer: httpsOrLoopback,
  /** Tessera's client id at the provider. */
  client_id: z.string().min(1).max(256),
  /** The client secret, from an environment variable or a file (never written in the config). Absent: a public client (PKCE only). */
  client_secret_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'expected an environment variable name').optional(),
  client_secret_file: z.string().min(1).optional(),
  /** The callback registered at the provider; default `<server.public_url>/v1/console/oidc/callback`. */
  redirect_uri: httpsOrLoopback.optional(),
  /** Scopes asked of the provider; `openid` is always sent. */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/)).max(16).default(['openid', 'profile', 'email']),
  /** Which identities get which role: `admin` rules are tried first; no match → 403 TESSERA_CONSOLE_NO_ROLE. */
  roles: z.object({
    admin: z.array(roleRule).max(32).default([]),
    auditor: z.array(roleRule).max(32).default([]),
  }).strict().prefault({}),
}).strict().refine((o) => !(o.client_secret_env && o.client_secret_file), { message: 'set at most one of client_secret_env or client_secret_file' });

export const consoleConfigSchema = z.object({
  /** Serve the console's session routes (and accept session cookies on operator routes). */
  enabled: z.boolean().default(true),
  /** The longest a console session lives after sign-in, however active. */
  session_ttl: durationBetween(5 * MINUTE, 7 * 24 * HOUR).prefault('8h'),
  /** A session unused for this long ends. */
  idle_timeout: durationBetween(MINUTE, 24 * HOUR).prefault('30m'),
  /** Live-update streams (`GET /v1/admin/events`) open at once per replica; more are refused with 503. */
  max_streams: z.number().int().min(1).max(10_000).default(64),
  /** Of those, at most this many held by one operator (one token or OIDC identity, all its sessions): one cannot starve the others. */
  max_streams_per_operator: z.number().int().min(1).max(10_000).default(8),
  /** Sign-in with an OpenID Provider besides operator tokens (authorization code + PKCE). */
  oidc: consoleOidcConfig.optional(),
}).strict().refine((c) => c.idle_timeout <= c.session_ttl, { message: 'console.idle_timeout must not be longer than console.session_ttl', path: ['idle_timeout'] });

export type ConsoleConfig = z.output<typeof consoleConfigSchema>;
export type ConsoleOidcConfig = z.output<typeof consoleOidcConfig>;
export type RoleRule = z.output<typeof roleRule>;
