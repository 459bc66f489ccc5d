/**
 * Opening a root task for a person through an OAuth client of Tessera's authorization server
 * (an MCP client, `tessera login --oidc`; docs/users.md, ADR 0131): the person logged in at
 * the OpenID Provider (authorization code + PKCE), the client redeemed the code or a refresh
 * token. The task token's `sub` is the person, its `act` the client — the client IS the actor:
 * it acts as `spiffe://<td>/oauth-client/…` with attestor kind `oauth_client` and its
 * `client_id` as a tag, so Cedar can tell which client acts for whom. Cedar `token.delegate`
 * must permit the client (principal Agent) and the person (principal User), as for any task.
 */
import { randomId } from '../shared/crypto.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { UserIdentity } from '../users/identity.js';
import { usrClaimOf } from '../users/identity.js';
import { nestActors } from './claims.js';
import { childExpiry } from './narrow.js';
import type { HandlerContext, TaskSpec } from './exchange.js';

/** What the authorization server hands over once a grant checked out. */
export interface ClientGrant {
  readonly user: UserIdentity;
  /** The client's SPIFFE ID and its client_id (clients.ts clientSpiffeId). */
  readonly client: { readonly spiffeId: string; readonly trustDomain: string; readonly path: string; readonly clientId: string };
  readonly scope: readonly string[];
  /** The audience of the access token (RFC 8707 resource): one of Tessera's. */
  readonly resource: string;
  readonly purpose: string;
  /** The access token's lifetime, ms (users.authorization_server.access_token_ttl). */
  readonly ttlMs: number;
  /** Nothing may outlive this (the refresh token family), epoch ms. */
  readonly notAfter: number;
  /** RFC 7638 thumbprint of a verified DPoP proof of the token request: the access token is bound to it. */
  readonly jkt?: string | undefined;
}

export const CLIENT_ATTESTOR = 'authorization_server';

/** The client as the pipeline sees it while the grant is decided (no token of its own exists yet). */
export function clientPrincipal(g: ClientGrant, expiresAt: number): AgentPrincipal {
  return {
    spiffeId: g.client.spiffeId, trustDomain: g.client.trustDomain, path: g.client.path,
    attributes: { client_id: g.client.clientId, attestor: CLIENT_ATTESTOR }, attestor: CLIENT_ATTESTOR, attestorKind: 'oauth_client',
    jti: 'grant', expiresAt, tokenKind: 'agent', audience: [g.resource],
    user: g.user.id, userClaims: { issuer: g.user.issuer, attrs: g.user.attrs, groups: g.user.groups },
  };
}

export function openClientTask(ctx: HandlerContext, g: ClientGrant): TaskSpec {
  const { deps } = ctx;
  // Never beyond tokens.task_ttl (the signing keys' overlap is sized for it) nor the login's family.
  const exp = childExpiry(ctx.now, Math.floor(g.notAfter / 1000), undefined, Math.min(g.ttlMs, deps.taskTtlMs), deps.taskTtlMs, 'login');
  const delegator = clientPrincipal(g, exp * 1000);
  const maxDepth = deps.maxDepth;
  ctx.decide(delegator, { type: 'Agent', spiffeId: delegator.spiffeId, principal: delegator }, { scopes: [...g.scope], purpose: g.purpose, depth: 0, max_depth: maxDepth, bound: g.jkt !== undefined, tctx: {} });
  const txn = randomId('task_');
  return {
    delegator,
    delegatee: delegator.spiffeId,
    input: {
      sub: g.user.id,
      aud: g.resource,
      exp,
      act: nestActors([{ sub: delegator.spiffeId }]),
      txn,
      rtxn: txn,
      anc: [],
      scope: g.scope.join(' '),
      purpose: g.purpose,
      depth: 0,
      max_depth: maxDepth,
      ...(g.jkt !== undefined ? { cnf: { jkt: g.jkt } } : {}),
      tessera: { attestor: CLIENT_ATTESTOR, kind: 'oauth_client', attrs: { client_id: g.client.clientId } },
      usr: usrClaimOf(g.user),
    },
  };
}
