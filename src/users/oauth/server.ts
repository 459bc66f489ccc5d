/**
 * Tessera as the OAuth 2.1 authorization server that MCP clients and `tessera login --oidc` see
 * (MCP authorization 2025-06-18 / 2025-11-25; docs/users.md; ADR 0131):
 *
 *   /v1/oauth/authorize   RFC 6749 §4.1.1 + PKCE (RFC 7636, S256 only): checks the client (a
 *                         registered one or a client ID metadata document) and its redirect URI,
 *                         then sends the person to the OpenID Provider (login.ts);
 *   /v1/oauth/callback    the provider's answer: state, code + PKCE, ID token + nonce → the
 *                         person (users.issuers mapping) → a single-use authorization code for the
 *                         client (RFC 6749 §4.1.2, with `iss`, RFC 9207);
 *   /v1/oauth/token       grant_type=authorization_code (PKCE verifier, same client and
 *                         redirect_uri) and grant_type=refresh_token (rotated on every use; a
 *                         reused one revokes its family, RFC 9700 §4.14.2): a task token for the
 *                         person with the client as actor (src/tasks/for-client.ts);
 *   /v1/oauth/revoke      RFC 7009 for refresh tokens (the family and its tasks).
 *
 * Codes and refresh tokens are random (256 bits), returned once, stored as keyed HMACs only.
 */
import { clearOrHmac } from '../../audit/clear-or-hmac.js';
import { refuseRepeatedParameters } from '../../server/validate.js';
import { proveHolder } from '../../dpop/holder.js';
import { z } from 'zod';
import type { AuditWriter } from '../../audit/port.js';
import type { AuditActor, AuditWhere } from '../../audit/events.js';
import type { Store } from '../../store/port.js';
import type { Clock } from '../../shared/clock.js';
import type { RevocationChecker } from '../../shared/revocation.js';
import type { RequestMeta } from '../../server/app.js';
import { TesseraError, fail, isTesseraError } from '../../shared/errors.js';
import { constantTimeEqual, randomId, randomToken, sha256 } from '../../shared/crypto.js';
import { parseScope, isSubset } from '../../policy/scope.js';
import type { TaskExchange } from '../../tasks/exchange.js';
import type { ClientGrant } from '../../tasks/for-client.js';
import { TASK_LIMITS } from '../../tasks/claims.js';
import type { AuthorizationServerConfig, UserIssuerConfig } from '../config.js';
import { identityFromUsr, mapUserClaims, usrClaimOf, usrClaimSchema, type UserIdentity } from '../identity.js';
import { redirectMatches, type ClientResolver, type OAuthClient } from './clients.js';
import type { FederatedLogin } from './login.js';
import { getCode, getRefresh, insertCode, insertLogin, insertRefresh, pruneExpired, recordCodeYield, revokeFamily, rotateRefresh, takeLogin, useCode } from './store.js';

export const GRANT_AUTHORIZATION_CODE = 'authorization_code';
export const GRANT_REFRESH_TOKEN = 'refresh_token';
export const CODE_PREFIX = 'tsr_code_';
export const REFRESH_PREFIX = 'tsr_refresh_';

/** RFC 6749 §5.1 response (with the task id, as task exchanges answer). */
export interface GrantTokenResponse {
  readonly access_token: string;
  readonly token_type: 'Bearer' | 'DPoP';
  readonly expires_in: number;
  readonly scope: string;
  readonly refresh_token?: string;
  readonly txn: string;
}

export interface AuthorizationServer {
  /** GET /v1/oauth/authorize: where to send the browser. Throws (never redirects) when the client or redirect URI is bad. */
  authorize(query: unknown, meta: RequestMeta): Promise<string>;
  /** GET /v1/oauth/callback: where to send the browser. Throws TESSERA_OAUTH_STATE_INVALID when no login matches. */
  callback(url: URL, meta: RequestMeta): Promise<string>;
  /** The token endpoint's authorization_code and refresh_token grants. `proofJkt`: a verified DPoP proof's key thumbprint. */
  grant(params: Readonly<Record<string, unknown>>, meta: RequestMeta, options: { proofJkt?: string | undefined }): Promise<GrantTokenResponse>;
  /** RFC 7009 for a refresh token: its family and the tasks it opened. Unknown tokens are ignored (RFC 7009 §2.2). */
  /**
   * RFC 7009 for a refresh token: its family and the tasks it opened. A DPoP-bound one (RFC 9449)
   * only with a proof by its key: `proofJkt` verifies the request's proof (called only then) and
   * resolves its key's thumbprint. Throws TESSERA_DPOP_PROOF_MISSING / TESSERA_DPOP_KEY_MISMATCH.
   */
  revokeRefreshToken(token: string, meta: RequestMeta, proofJkt?: () => Promise<string | undefined>): Promise<void>;
  /** RFC 8414 fields this server adds to the metadata. */
  metadata(): Record<string, unknown>;
  /** Housekeeping (expired logins, codes, refresh families). */
  prune(): Promise<void>;
}

export interface AuthorizationServerDeps {
  readonly config: AuthorizationServerConfig;
  readonly loginIssuer: UserIssuerConfig;
  readonly issuer: string;
  /** Tessera's audiences (RFC 8707 resources a token may be for); the first is the default for API logins. */
  readonly audiences: readonly string[];
  readonly trustDomain: string;
  readonly store: Store;
  readonly audit: AuditWriter;
  readonly clock: Clock;
  readonly tasks: Pick<TaskExchange, 'openForGrant'>;
  readonly revoker: { revoke(req: { kind: 'task'; target: string; reason?: string; expiresAt?: number; actor?: AuditActor; where?: AuditWhere }): Promise<unknown> };
  readonly revocations: Pick<RevocationChecker, 'isRevoked'>;
  readonly clients: ClientResolver;
  readonly login: FederatedLogin;
}

/** Scope tokens OAuth clients commonly send that mean nothing to Tessera (ignored, not refused). */
const IGNORED_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);
const PKCE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
const PKCE_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
/** A client's `state`: printable ASCII (RFC 6749 §A.5: VSCHAR), echoed back on its redirect. */
const CLIENT_STATE = /^[\x20-\x7e]{1,1024}$/;
/** How long a revoked task is remembered past its token's life (skew tolerance). */
const REVOCATION_MARGIN_MS = 10 * 60_000;

const str = (max: number) => z.string().min(1).max(max);
const authorizeSchema = z.object({
  response_type: z.string().max(64).optional(),
  client_id: str(2048),
  redirect_uri: str(2048).optional(),
  state: z.string().max(1024).optional(),
  scope: z.string().max(TASK_LIMITS.scopes * (TASK_LIMITS.scopeChars + 1)).optional(),
  code_challenge: z.string().max(256).optional(),
  code_challenge_method: z.string().max(16).optional(),
  resource: z.union([str(2048), z.array(str(2048)).max(4)]).optional(),
}).loose();

const codeGrantSchema = z.object({
  code: str(256),
  redirect_uri: str(2048),
  client_id: str(2048),
  code_verifier: z.string().max(256).optional(),
  resource: z.union([str(2048), z.array(str(2048)).max(4)]).optional(),
}).loose();

const refreshGrantSchema = z.object({
  refresh_token: str(256),
  client_id: str(2048),
  scope: z.string().max(TASK_LIMITS.scopes * (TASK_LIMITS.scopeChars + 1)).optional(),
  resource: z.union([str(2048), z.array(str(2048)).max(4)]).optional(),
}).loose();

/** Parses a request's parameters (TESSERA_REQUEST_INVALID naming the field); only `resource` may repeat (RFC 8707 §2). */
function parse<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  refuseRepeatedParameters(raw, ['resource']);
  const r = schema.safeParse(raw ?? {});
  if (r.success) return r.data;
  const i = r.error.issues[0];
  const field = i?.path.join('.') || 'request';
  throw new TesseraError('TESSERA_REQUEST_INVALID', `${field}: ${i?.code === 'invalid_type' && i.input === undefined ? 'is required' : i?.message ?? 'invalid'}`, { field });
}


export function createAuthorizationServer(deps: AuthorizationServerDeps): AuthorizationServer {
  const { config, audit, store, clock } = deps;
  const mcpAudience = deps.audiences.find((a) => a.endsWith('/mcp')) ?? deps.audiences[0]!;

  const whereOf = (meta: RequestMeta): AuditWhere => ({ source: meta.source, replica: meta.replica, requestId: meta.requestId });

  /** Tessera scope strings of a request: unknown OIDC-ish words are ignored; the default when none remain. */
  function scopesOf(text: string | undefined): string[] {
    const out: string[] = [];
    for (const s of (text ?? '').split(' ').filter(Boolean)) {
      if (IGNORED_SCOPES.has(s)) continue;
      parseScope(s); // throws TESSERA_OAUTH_INVALID_SCOPE
      if (!out.includes(s)) out.push(s);
    }
    if (out.length > TASK_LIMITS.scopes) throw fail('TESSERA_OAUTH_INVALID_SCOPE', `at most ${TASK_LIMITS.scopes} scope strings`);
    return out.length ? out : config.default_scope.split(' ').filter(Boolean);
  }

  /** The one RFC 8707 resource of a grant: a token is issued for one audience here. */
  function resourceOf(v: string | string[] | undefined): string {
    if (Array.isArray(v) && v.length > 1) throw fail('TESSERA_OAUTH_INVALID_TARGET', `resource is given ${v.length} times; this server issues a token for one resource: send one of ${deps.audiences.join(', ')} (RFC 8707)`, { field: 'resource' });
    const r = Array.isArray(v) ? v[0] : v;
    if (r === undefined) return mcpAudience;
    if (!deps.audiences.includes(r)) throw fail('TESSERA_OAUTH_INVALID_TARGET', `resource "${r.slice(0, 200)}" is not served by this Tessera; use one of ${deps.audiences.join(', ')} (RFC 8707)`);
    return r;
  }

  function redirectWith(redirectUri: string, params: Record<string, string | undefined>): string {
    const u = new URL(redirectUri);
    for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
    return u.toString();
  }

  /** RFC 6749 §4.1.2.1: an error the client hears about on its redirect URI (never for a bad client or redirect URI). */
  function errorRedirect(redirectUri: string, state: string | undefined, e: TesseraError): string {
    // A state the request could not use (not printable ASCII) is not echoed back.
    const echo = state !== undefined && CLIENT_STATE.test(state) ? state : undefined;
    return redirectWith(redirectUri, { error: e.oauthError ?? 'invalid_request', error_description: e.message.slice(0, 300), tessera_code: e.code, state: echo, iss: deps.issuer });
  }

  async function refused(meta: RequestMeta, e: unknown, details: { client_id?: string | undefined; grant?: string; user?: string | undefined }): Promise<void> {
    if (!isTesseraError(e) || e.code === 'TESSERA_AUDIT_UNAVAILABLE') return;
    await audit.append({
      kind: 'oauth.refused', actor: { id: 'unauthenticated', ...(details.user ? { user: details.user } : {}) }, action: 'oauth.authorize', resource: 'oauth', result: e.status >= 500 ? 'error' : 'deny',
      reason: { code: e.code }, where: whereOf(meta),
      // Caller-chosen text: a credential-shaped client_id or grant is recorded as its HMAC, never lost.
      details: { code: e.code, ...(details.client_id ? { client_id: clearOrHmac(details.client_id, (v) => audit.hmac(v), 512) } : {}), ...(details.grant ? { grant: clearOrHmac(details.grant, (v) => audit.hmac(v), 128) } : {}) },
    }).catch(() => undefined);
  }

  async function clientOf(clientId: string): Promise<OAuthClient> {
    return deps.clients.resolve(clientId);
  }

  /** Tasks opened before this cannot have a live access token any more. */
  const liveSince = (): number => clock.now() - config.access_token_ttl - REVOCATION_MARGIN_MS;

  /** Revokes the tasks a family (or a code) opened: their tokens are refused at once. */
  async function revokeTasks(txns: readonly string[], reason: string, meta: RequestMeta): Promise<void> {
    const expiresAt = clock.now() + config.access_token_ttl + REVOCATION_MARGIN_MS;
    for (const t of new Set(txns)) await deps.revoker.revoke({ kind: 'task', target: t, reason, expiresAt, actor: { id: 'system' }, where: whereOf(meta) });
  }

  /** A new refresh token: 256 random bits, kept only as a keyed HMAC. */
  function newRefresh(): { token: string; hmac: string } {
    const token = randomToken(REFRESH_PREFIX);
    return { token, hmac: audit.hmac(`refresh:${token}`) };
  }

  function grantFor(client: OAuthClient, user: UserIdentity, scope: readonly string[], resource: string, notAfter: number, jkt: string | undefined): ClientGrant {
    const path = new URL(client.spiffeId).pathname;
    return {
      user, client: { spiffeId: client.spiffeId, trustDomain: deps.trustDomain, path, clientId: client.clientId }, scope, resource,
      purpose: `${client.kind === 'registered' ? client.clientId : `MCP client ${new URL(client.clientId).host}`} for ${user.id}`.slice(0, TASK_LIMITS.purposeChars),
      ttlMs: config.access_token_ttl, notAfter, jkt,
    };
  }

  /** Whether this grant may carry a refresh token, and bound to which key. */
  function refreshBinding(proofJkt: string | undefined): { issue: boolean; jkt: string | null } {
    if (proofJkt !== undefined) return { issue: true, jkt: proofJkt };
    return { issue: config.refresh_binding === 'optional', jkt: null };
  }

  async function codeGrant(raw: Readonly<Record<string, unknown>>, meta: RequestMeta, proofJkt: string | undefined): Promise<GrantTokenResponse> {
    const p = parse(codeGrantSchema, raw);
    const codeHmac = audit.hmac(`code:${p.code}`);
    const row = await getCode(store, codeHmac);
    const now = clock.now();
    if (!row) throw fail('TESSERA_OAUTH_CODE_INVALID', 'the authorization code is unknown (mistyped, or from another server); start the login again');
    if (!(await useCode(store, codeHmac, now))) {
      // RFC 6749 §4.1.2: a code used twice: revoke what it first yielded.
      const current = await getCode(store, codeHmac);
      const txns = current?.txn ? [current.txn] : [];
      if (current?.family) txns.push(...(await revokeFamily(store, current.family, liveSince())));
      await revokeTasks(txns, 'authorization code replayed', meta);
      await audit.append({ kind: 'oauth.refresh_revoked', actor: { id: 'system', user: row.userId }, action: 'oauth.revoke', resource: 'oauth', result: 'success', where: whereOf(meta), details: { family: current?.family ?? '', cause: 'code_replay', tasks: txns.length } });
      throw fail('TESSERA_OAUTH_CODE_INVALID', 'the authorization code was already used; what it yielded is revoked. Start the login again');
    }
    if (row.expiresAt <= now) throw fail('TESSERA_OAUTH_CODE_INVALID', 'the authorization code has expired; start the login again');
    if (p.client_id !== row.clientId) throw fail('TESSERA_OAUTH_CLIENT_INVALID', 'the authorization code was issued to another client');
    if (p.redirect_uri !== row.redirectUri) throw fail('TESSERA_OAUTH_REDIRECT_URI_INVALID', 'redirect_uri differs from the one of the authorization request (RFC 6749 §4.1.3)');
    if (p.code_verifier === undefined) throw fail('TESSERA_OAUTH_PKCE_REQUIRED', 'code_verifier is required (PKCE, RFC 7636)');
    if (!PKCE_VERIFIER.test(p.code_verifier)) throw fail('TESSERA_OAUTH_PKCE_INVALID', 'code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)');
    if (!constantTimeEqual(sha256(p.code_verifier).toString('base64url'), row.codeChallenge)) throw fail('TESSERA_OAUTH_PKCE_INVALID', 'code_verifier does not match the code_challenge (RFC 7636 §4.6)');
    if (p.resource !== undefined && resourceOf(p.resource) !== row.resource) throw fail('TESSERA_OAUTH_INVALID_TARGET', 'resource differs from the one of the authorization request');
    const client = await clientOf(row.clientId);
    const user = identityFromUsr(row.userId, usrClaimSchema.parse(JSON.parse(row.usr)));
    if (deps.revocations.isRevoked({ spiffeId: client.spiffeId, user: user.id })) throw fail('TESSERA_USER_REVOKED', `user ${user.id} is revoked`);
    const familyExpiresAt = now + config.refresh_token_ttl;
    const binding = refreshBinding(proofJkt);
    const task = await deps.tasks.openForGrant(grantFor(client, user, row.scope.split(' '), row.resource, familyExpiresAt, proofJkt), meta);
    let refresh: { token: string; hmac: string } | undefined;
    const family = randomId('rtf_');
    if (binding.issue) refresh = newRefresh();
    await audit.commit(store, async (tx) => {
      if (refresh) {
        await insertRefresh(tx, refresh.hmac, { family, clientId: row.clientId, scope: row.scope, resource: row.resource, userId: user.id, usr: row.usr, jkt: binding.jkt, state: 'active', txn: task.txn, createdAt: now, familyExpiresAt, idleExpiresAt: Math.min(familyExpiresAt, now + config.refresh_idle_ttl) });
      }
      await recordCodeYield(tx, codeHmac, refresh ? family : null, task.txn);
    }, {
      kind: 'oauth.token_issued', actor: { id: client.spiffeId, user: user.id }, action: 'oauth.token', resource: 'oauth', result: 'success', txn: task.txn, where: whereOf(meta),
      details: { grant: GRANT_AUTHORIZATION_CODE, client_id: row.clientId, family: refresh ? family : '', ...(refresh ? { refresh_hmac: refresh.hmac } : {}), bound: binding.jkt !== null },
    });
    return { access_token: task.access_token, token_type: task.token_type, expires_in: task.expires_in, scope: task.scope, txn: task.txn, ...(refresh ? { refresh_token: refresh.token } : {}) };
  }

  async function refreshGrant(raw: Readonly<Record<string, unknown>>, meta: RequestMeta, proofJkt: string | undefined): Promise<GrantTokenResponse> {
    const p = parse(refreshGrantSchema, raw);
    const hmac = audit.hmac(`refresh:${p.refresh_token}`);
    const row = await getRefresh(store, hmac);
    const now = clock.now();
    if (!row) throw fail('TESSERA_OAUTH_REFRESH_INVALID', 'the refresh token is unknown; log in again');
    const reuse = async (): Promise<never> => {
      // RFC 9700 §4.14.2: a rotated refresh token came back: the family is compromised.
      const txns = await revokeFamily(store, row.family, liveSince());
      await revokeTasks(txns, 'refresh token reused', meta);
      await audit.append({ kind: 'oauth.refresh_revoked', actor: { id: 'system', user: row.userId }, action: 'oauth.revoke', resource: 'oauth', result: 'success', where: whereOf(meta), details: { family: row.family, cause: 'reuse', tasks: txns.length } });
      throw fail('TESSERA_OAUTH_REFRESH_REUSED', 'this refresh token was already used; as it may have been stolen, every token of this login is revoked. Log in again');
    };
    // A bound token proves nothing without its key: whoever merely saw an old one (a backup, a
    // log) must not end the person's login with it (as revokeRefreshToken requires the key too).
    proveHolder(row.jkt, proofJkt, { what: 'the refresh token', missing: 'TESSERA_OAUTH_REFRESH_KEY_MISMATCH', mismatch: 'TESSERA_OAUTH_REFRESH_KEY_MISMATCH' });
    if (row.state === 'rotated') return reuse();
    if (row.state === 'revoked') throw fail('TESSERA_OAUTH_REFRESH_INVALID', 'the refresh token is revoked; log in again');
    if (row.familyExpiresAt <= now) throw fail('TESSERA_OAUTH_REFRESH_INVALID', 'the login has expired (users.authorization_server.refresh_token_ttl); log in again');
    if (row.idleExpiresAt <= now) throw fail('TESSERA_OAUTH_REFRESH_INVALID', 'the refresh token was unused for too long (users.authorization_server.refresh_idle_ttl); log in again');
    if (p.client_id !== row.clientId) throw fail('TESSERA_OAUTH_CLIENT_INVALID', 'the refresh token was issued to another client');
    const scope = p.scope === undefined ? row.scope.split(' ') : scopesOf(p.scope);
    if (!isSubset(scope, row.scope.split(' '))) throw fail('TESSERA_OAUTH_INVALID_SCOPE', 'a refresh may narrow the scope, never widen it (RFC 6749 §6)');
    if (p.resource !== undefined && resourceOf(p.resource) !== row.resource) throw fail('TESSERA_OAUTH_INVALID_TARGET', 'resource differs from the one of the login');
    const user = identityFromUsr(row.userId, usrClaimSchema.parse(JSON.parse(row.usr)));
    const client = await clientOf(row.clientId);
    if (deps.revocations.isRevoked({ spiffeId: client.spiffeId, user: user.id })) throw fail('TESSERA_OAUTH_REFRESH_INVALID', `user ${user.id} (or this client) is revoked; refreshes are refused while the revocation is in force`);
    // The access token is bound to the same key as the refresh token (or to the new proof's).
    const jkt = row.jkt ?? proofJkt;
    const task = await deps.tasks.openForGrant(grantFor(client, user, scope, row.resource, row.familyExpiresAt, jkt), meta);
    const next = newRefresh();
    let rotated = false;
    await audit.commit(store, async (tx) => {
      rotated = await rotateRefresh(tx, hmac, now);
      if (!rotated) return;
      await insertRefresh(tx, next.hmac, { ...row, state: 'active', txn: task.txn, jkt: row.jkt ?? proofJkt ?? null, createdAt: now, idleExpiresAt: Math.min(row.familyExpiresAt, now + config.refresh_idle_ttl) });
    }, {
      kind: 'oauth.token_issued', actor: { id: client.spiffeId, user: user.id }, action: 'oauth.token', resource: 'oauth', result: 'success', txn: task.txn, where: whereOf(meta),
      details: { grant: GRANT_REFRESH_TOKEN, client_id: row.clientId, family: row.family, refresh_hmac: next.hmac, bound: (row.jkt ?? proofJkt) !== undefined && (row.jkt ?? proofJkt) !== null },
    });
    if (!rotated) {
      // Lost a race with another use of the same token: a replay. The token just minted goes too.
      await revokeTasks([task.txn], 'refresh token reused', meta);
      return reuse();
    }
    return { access_token: task.access_token, token_type: task.token_type, expires_in: task.expires_in, scope: task.scope, txn: task.txn, refresh_token: next.token };
  }

  return {
    async authorize(query, meta) {
      let clientId: string | undefined;
      try {
        const q = parse(authorizeSchema, query);
        clientId = q.client_id;
        const client = await clientOf(q.client_id);
        // RFC 6749 §4.1.2.1 / §10.15: never redirect to an unchecked URI (open redirector).
        // OAuth 2.1 §4.1.1: redirect_uri is always sent (a loopback client's port changes every run).
        const redirectUri = q.redirect_uri;
        if (redirectUri === undefined) throw fail('TESSERA_OAUTH_REDIRECT_URI_INVALID', 'redirect_uri is required');
        if (!redirectMatches(client.redirectUris, redirectUri)) throw fail('TESSERA_OAUTH_REDIRECT_URI_INVALID', `redirect_uri is not one of the client's registered redirect URIs${client.kind === 'metadata_document' ? ' (its client ID metadata document)' : ''}`);
        try {
          if (q.response_type !== 'code') throw fail('TESSERA_OAUTH_RESPONSE_TYPE_UNSUPPORTED', 'response_type must be "code"');
          if (q.code_challenge === undefined || q.code_challenge_method !== 'S256') throw fail('TESSERA_OAUTH_PKCE_REQUIRED', 'send code_challenge with code_challenge_method=S256 (PKCE, RFC 7636; "plain" is refused)');
          if (!PKCE_CHALLENGE.test(q.code_challenge)) throw fail('TESSERA_OAUTH_PKCE_REQUIRED', 'code_challenge must be the base64url SHA-256 of the verifier (43 characters)');
          if (q.state !== undefined && !CLIENT_STATE.test(q.state)) throw fail('TESSERA_REQUEST_INVALID', 'state must be printable ASCII', { field: 'state' });
          const scope = scopesOf(q.scope);
          const resource = resourceOf(q.resource);
          const state = randomToken('');
          const now = clock.now();
          await insertLogin(store, audit.hmac(`oidc-login-state:${state}`), { clientId: client.clientId, redirectUri, clientState: q.state ?? null, codeChallenge: q.code_challenge, scope: scope.join(' '), resource, createdAt: now, expiresAt: now + config.login_ttl });
          return (await deps.login.authorizationUrl(state)).toString();
        } catch (e) {
          if (!isTesseraError(e) || e.status >= 500) throw e;
          await refused(meta, e, { client_id: clientId });
          return errorRedirect(redirectUri, q.state, e);
        }
      } catch (e) {
        await refused(meta, e, { client_id: clientId });
        throw e;
      }
    },

    async callback(url, meta) {
      // RFC 6749 §3.1: a repeated parameter is refused before the login is looked up (and used up).
      const repeated = ['state', 'code', 'iss', 'error', 'error_description'].find((k) => url.searchParams.getAll(k).length > 1);
      if (repeated) {
        const e = fail('TESSERA_REQUEST_INVALID', `${repeated}: is given more than once; this callback was not made by the OpenID Provider (RFC 6749 §3.1)`, { field: repeated });
        await refused(meta, e, {});
        throw e;
      }
      const state = url.searchParams.get('state');
      const login = state && state.length <= 256 ? await takeLogin(store, audit.hmac(`oidc-login-state:${state}`)) : undefined;
      const now = clock.now();
      if (!state || !login || login.expiresAt <= now) {
        const e = fail('TESSERA_OAUTH_STATE_INVALID', 'this login callback matches no login in progress (unknown or reused state, or the login took too long); start the login again from the application');
        await refused(meta, e, {});
        throw e;
      }
      const back = (e: TesseraError): string => errorRedirect(login.redirectUri, login.clientState ?? undefined, e);
      try {
        const opError = url.searchParams.get('error');
        if (opError !== null) throw fail('TESSERA_OAUTH_LOGIN_FAILED', `the OpenID Provider refused the login: ${opError.slice(0, 100)}`, { cause: opError.slice(0, 100) });
        const claims = await deps.login.finish(url, state);
        const user = mapUserClaims(deps.loginIssuer, claims);
        const client = await clientOf(login.clientId);
        if (deps.revocations.isRevoked({ spiffeId: client.spiffeId, user: user.id })) throw fail('TESSERA_USER_REVOKED', `user ${user.id} is revoked`);
        const code = randomToken(CODE_PREFIX);
        const codeHmac = audit.hmac(`code:${code}`);
        await audit.commit(store, (tx) => insertCode(tx, codeHmac, {
          clientId: login.clientId, redirectUri: login.redirectUri, codeChallenge: login.codeChallenge, scope: login.scope, resource: login.resource,
          userId: user.id, usr: JSON.stringify(usrClaimOf(user)), userExpiresAt: now + config.refresh_token_ttl, createdAt: now, expiresAt: now + config.code_ttl,
        }), { kind: 'oauth.authorized', actor: { id: client.spiffeId, user: user.id }, action: 'oauth.authorize', resource: 'oauth', result: 'success', where: whereOf(meta), details: { client_id: login.clientId.slice(0, 512), code_hmac: codeHmac } });
        return redirectWith(login.redirectUri, { code, state: login.clientState ?? undefined, iss: deps.issuer });
      } catch (e) {
        if (!isTesseraError(e) || e.code === 'TESSERA_AUDIT_UNAVAILABLE') throw e;
        await refused(meta, e, { client_id: login.clientId });
        return back(e);
      }
    },

    async grant(params, meta, options) {
      const type = params['grant_type'];
      try {
        if (type === GRANT_AUTHORIZATION_CODE) return await codeGrant(params, meta, options.proofJkt);
        return await refreshGrant(params, meta, options.proofJkt);
      } catch (e) {
        await refused(meta, e, { client_id: typeof params['client_id'] === 'string' ? params['client_id'] : undefined, grant: String(type) });
        throw e;
      }
    },

    async revokeRefreshToken(token, meta, proofJkt) {
      const row = await getRefresh(store, audit.hmac(`refresh:${token}`));
      if (!row) return;
      if (row.jkt !== null) {
        // Whoever merely saw a bound refresh token must not end the user's session and its tasks.
        proveHolder(row.jkt, proofJkt ? await proofJkt() : undefined, { what: 'this refresh token', hint: 'only the key holder may revoke it (htm POST, htu the revocation endpoint)' });
      }
      const txns = await revokeFamily(store, row.family, liveSince());
      await revokeTasks(txns, 'refresh token revoked by its holder (RFC 7009)', meta);
      await audit.append({ kind: 'oauth.refresh_revoked', actor: { id: 'system', user: row.userId }, action: 'oauth.revoke', resource: 'oauth', result: 'success', where: whereOf(meta), details: { family: row.family, cause: 'holder', tasks: txns.length } });
    },

    metadata() {
      return {
        authorization_endpoint: `${deps.issuer}/v1/oauth/authorize`,
        response_types_supported: ['code'],
        response_modes_supported: ['query'],
        code_challenge_methods_supported: ['S256'],
        client_id_metadata_document_supported: config.client_metadata.enabled,
        authorization_response_iss_parameter_supported: true,
        grant_types_extra: [GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN],
      };
    },

    prune: () => pruneExpired(store, clock.now()),
  };
}
