import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { TesseraError } from '../shared/errors.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditActor, AuditWhere } from '../audit/events.js';
import { parseInput } from '../server/validate.js';
import type { KeyManager } from './keys.js';
import type { TokenExchange } from './exchange.js';
import { GRANT_TOKEN_EXCHANGE } from './exchange.js';
import type { TokenService } from './service.js';
import { TOKEN_TYPE_JOIN, TOKEN_TYPE_JWT } from '../identity/types.js';
import { TOKEN_TYPE_ACCESS_TOKEN } from '../tasks/claims.js';
import type { DpopGuard } from '../dpop/guard.js';
import type { RequestMeta } from '../server/app.js';

export interface TokenRevoker {
  revokeToken(jti: string, tokenExpiresAt: number, ctx?: { reason?: string }): Promise<unknown>;
  /** A task token's holder ends its task: the task and its subtree are revoked (tokens and leases). */
  revoke(req: { kind: 'task'; target: string; reason?: string; expiresAt?: number; actor?: AuditActor; where?: AuditWhere }): Promise<unknown>;
}

/** How long a holder's task revocation outlives the task token (verification tolerates clock skew past `exp`). */
const TASK_REVOCATION_MARGIN_MS = 10 * 60_000;

export interface TokenRouteDeps {
  readonly exchange: TokenExchange;
  readonly keys: KeyManager;
  readonly tokens: TokenService;
  readonly revoker: TokenRevoker;
  readonly audit: AuditWriter;
  readonly issuer: string;
  readonly audiences: readonly string[];
  /** Algorithms accepted for DPoP proofs, published as `dpop_signing_alg_values_supported` (RFC 9449 §5.1). */
  readonly dpopAlgorithms: readonly string[];
  /** The current DPoP server nonce (RFC 9449 §8), when nonces are on: sent on answers to requests with a proof. */
  readonly dpopNonce?: () => string | undefined;
  /** Tells other replicas to reload the key set (called after an operator rotation). */
  readonly onKeysChanged?: () => void;
  /**
   * DPoP (RFC 9449): RFC 7009 revocation of a DPoP-bound token needs a proof by its key, as any
   * other use of it does — a bound token alone (leaked, stolen) must not end its task tree.
   */
  readonly dpop: Pick<DpopGuard, 'tokenRequestProof' | 'mark' | 'proveHolder'>;
  /**
   * Tessera's authorization server (src/users/oauth), when enabled: its RFC 8414 fields, and RFC
   * 7009 for its refresh tokens (`tsr_refresh_…`).
   */
  readonly authorizationServer?: { metadata(): Record<string, unknown>; revokeRefreshToken(token: string, meta: RequestMeta, proofJkt?: () => Promise<string | undefined>): Promise<void> };
  /**
   * Exposure windows (ADR 0150): `revoke_previous` refuses every token signed before the
   * rotation, so their windows close. `before`: the time read just before the rotation.
   */
  readonly exposure?: { keysRevoked(before: number): Promise<void> };
  /** For `before` above. */
  readonly clock?: { now(): number };
}

function requireForm(req: FastifyRequest): void {
  const ct = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  // RFC 6749 §3.2 / RFC 8693 §2.1: token endpoint requests are form-encoded.
  if (ct !== 'application/x-www-form-urlencoded') {
    throw new TesseraError('TESSERA_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'send the token request as application/x-www-form-urlencoded (RFC 6749 §3.2)');
  }
}

const tokenParam = z.object({ token: z.string().min(1).max(16_384), token_type_hint: z.string().max(64).optional() });

export function registerTokenRoutes(app: FastifyInstance, deps: TokenRouteDeps): void {
  const { issuer } = deps;

  // The per-source login limit runs in onRequest: before the body is read or parsed.
  app.post('/v1/oauth/token', { config: { oauth: true }, onRequest: async (req) => deps.exchange.admitSource(app.requestMeta(req)) }, async (req, reply) => {
    requireForm(req);
    const res = await deps.exchange.exchange(req.body, app.requestMeta(req), { method: req.method, target: req.url, proof: req.headers.dpop });
    // RFC 9449 §8.2: the current nonce with the answer, so the client's next proof carries it.
    const nonce = req.headers.dpop !== undefined ? deps.dpopNonce?.() : undefined;
    if (nonce) void reply.header('dpop-nonce', nonce);
    // RFC 6749 §5.1: token responses must not be cached.
    return reply.header('pragma', 'no-cache').send(res);
  });

  // RFC 7662 token introspection, for resource servers holding an admin token.
  app.post('/v1/oauth/introspect', { config: { oauth: true, readOnly: true }, preHandler: app.requireAdmin }, async (req) => {
    requireForm(req);
    const { token } = parseInput(tokenParam, req.body);
    try {
      const v = await deps.tokens.verifyAnyAudience(token, deps.audiences);
      const { claims } = v;
      // RFC 9449 §6.2: a bound token is introspected with its `cnf` and token_type DPoP.
      const base = {
        active: true, iss: claims.iss, sub: claims.sub, aud: claims.aud, exp: claims.exp, iat: claims.iat, jti: claims.jti,
        token_type: claims.cnf ? 'DPoP' : 'Bearer', ...(claims.cnf ? { cnf: { jkt: claims.cnf.jkt } } : {}),
      };
      if (v.kind === 'agent') return base;
      // RFC 7662 §2.2 allows any claims: a task token's task, chain and scope (never the token).
      const c = v.claims;
      return {
        ...base, tessera_token_type: 'task', scope: c.scope, act: c.act, txn: c.txn, ...(c.ptxn ? { ptxn: c.ptxn } : {}), rtxn: c.rtxn,
        depth: c.depth, max_depth: c.max_depth, purpose: c.purpose, ...(c.tctx ? { tctx: c.tctx } : {}),
      };
    } catch (e) {
      if (e instanceof TesseraError && e.code !== 'TESSERA_INTERNAL') return { active: false }; // RFC 7662 §2.2
      throw e;
    }
  });

  // RFC 7009 revocation: the holder of a token may revoke it. Invalid tokens still answer 200 (§2.2).
  app.post('/v1/oauth/revoke', { config: { oauth: true } }, async (req, reply) => {
    requireForm(req);
    const { token } = parseInput(tokenParam, req.body);
    // A refresh token of the authorization server: its family and the tasks it opened (RFC 7009 §2.1).
    if (deps.authorizationServer && token.startsWith('tsr_refresh_')) {
      const proofJkt = (): Promise<string | undefined> => deps.dpop.tokenRequestProof({ method: req.method, target: req.url, proof: req.headers.dpop });
      try {
        await deps.authorizationServer.revokeRefreshToken(token, app.requestMeta(req), proofJkt);
      } catch (e) {
        // A bound refresh token without a proof by its key: 400 invalid_dpop_proof with the challenge.
        if (e instanceof TesseraError && e.code.startsWith('TESSERA_DPOP_')) throw deps.dpop.mark(e);
        throw e;
      }
      return reply.status(200).send({});
    }
    let v: Awaited<ReturnType<TokenService['verifyAnyAudience']>>;
    try {
      v = await deps.tokens.verifyAnyAudience(token, deps.audiences);
    } catch (e) {
      if (!(e instanceof TesseraError) || e.code === 'TESSERA_AUDIT_UNAVAILABLE' || e.code === 'TESSERA_STORE_UNAVAILABLE' || e.code === 'TESSERA_INTERNAL') throw e;
      return reply.status(200).send({}); // RFC 7009 §2.2: an invalid token is no error
    }
    // A bound token is used only with a proof of its key (RFC 9449 §7), here too: otherwise
    // whoever saw a bound token could end its whole task tree without the key. Refused with the
    // DPoP code (400 invalid_dpop_proof), never silently ignored, so a client knows it did not happen.
    const jkt = v.claims.cnf?.jkt;
    if (jkt !== undefined) {
      const proofJkt = await deps.dpop.tokenRequestProof({ method: req.method, target: req.url, proof: req.headers.dpop });
      deps.dpop.proveHolder(jkt, proofJkt, { what: 'this token', hint: 'only the key holder may revoke a bound token (htm POST, htu this endpoint)' });
    }
    try {
      const { claims, principal } = v;
      const where = { source: req.ip, requestId: req.id };
      if (v.kind === 'task') {
        // The holder of a task token ends its task: the task and everything delegated below it
        // (the tokens by their `anc` claim, the leases by the task tree) — not just this jti.
        await deps.revoker.revoke({ kind: 'task', target: v.claims.txn, reason: 'task ended by its holder (RFC 7009)', expiresAt: claims.exp * 1000 + TASK_REVOCATION_MARGIN_MS, actor: { id: principal.spiffeId, ...(principal.chain?.length ? { chain: principal.chain } : {}) }, where });
      } else {
        await deps.revoker.revokeToken(claims.jti, claims.exp * 1000, { reason: 'revoked by holder (RFC 7009)' });
      }
      await deps.audit.append({
        kind: 'token.revoked', actor: { id: principal.spiffeId }, action: 'token.revoke', result: 'success', ...(principal.task ? { txn: principal.task } : {}),
        where, details: { jti_hmac: deps.audit.hmac(claims.jti) },
      });
    } catch (e) {
      if (!(e instanceof TesseraError) || e.code === 'TESSERA_AUDIT_UNAVAILABLE' || e.code === 'TESSERA_STORE_UNAVAILABLE') throw e;
    }
    return reply.status(200).send({});
  });

  // Who am I? The verified identity behind the bearer token (debugging attestation templates and
  // policies). Nothing secret: the caller already holds the token these facts come from.
  app.get('/v1/whoami', { preHandler: app.requireAgent }, async (req) => {
    const p = req.agent!;
    return {
      spiffe_id: p.spiffeId, trust_domain: p.trustDomain, path: p.path,
      attestor: p.attestor ?? null, attestor_kind: p.attestorKind ?? null,
      attributes: p.attributes, expires_at: new Date(p.expiresAt).toISOString(),
      token_type: p.tokenKind ?? 'agent',
      ...(p.task !== undefined
        ? { task: { txn: p.task, parent: p.parentTask ?? null, root: p.rootTask ?? p.task, depth: p.depth ?? 0, max_depth: p.maxDepth ?? 0, scope: p.scope ?? [], purpose: p.purpose ?? null, label: p.label ?? null, chain: p.chain ?? [], tctx: p.tctx ?? {}, bound: p.cnf !== undefined } }
        : {}),
    };
  });

  // Operator: rotate the token signing key now; `revoke_previous` (a key may be compromised)
  // removes every other key at once, so all tokens they signed are refused.
  app.post('/v1/admin/keys/rotate', { preHandler: app.requireAdmin }, async (req) => {
    const body = parseInput(z.object({ revoke_previous: z.boolean().default(false) }).strict(), req.body ?? {});
    const before = deps.clock?.now();
    const r = await deps.keys.rotateNow({ revokePrevious: body.revoke_previous, actor: `admin:${req.admin!.tokenId}` });
    deps.onKeysChanged?.();
    if (body.revoke_previous && before !== undefined) await deps.exposure?.keysRevoked(before);
    return { kid: r.kid, revoked: r.revoked };
  });

  app.get('/.well-known/jwks.json', async (_req, reply) => reply.header('cache-control', 'public, max-age=60').send(deps.keys.jwks()));
  app.get('/v1/bundle', async (_req, reply) => reply.header('cache-control', 'public, max-age=60').send(deps.keys.bundle()));

  // RFC 8414 §2 authorization server metadata.
  app.get('/.well-known/oauth-authorization-server', async (_req, reply) => {
    // The authorization server (when enabled) adds the authorization endpoint and its grants.
    const { grant_types_extra: extraGrants, ...as } = deps.authorizationServer?.metadata() ?? {};
    return reply.header('cache-control', 'public, max-age=300').send({
      issuer,
      token_endpoint: `${issuer}/v1/oauth/token`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      introspection_endpoint: `${issuer}/v1/oauth/introspect`,
      revocation_endpoint: `${issuer}/v1/oauth/revoke`,
      grant_types_supported: [GRANT_TOKEN_EXCHANGE, ...(Array.isArray(extraGrants) ? (extraGrants as string[]) : [])],
      response_types_supported: [],
      ...as,
      token_endpoint_auth_methods_supported: ['none'],
      introspection_endpoint_auth_methods_supported: ['bearer'],
      revocation_endpoint_auth_methods_supported: ['none'],
      // jwt and join-token log in; access_token (Tessera's own agent and task tokens) opens and
      // delegates tasks; a person's access_token, id_token or jwt with an actor_token acts for them.
      subject_token_types_supported: [TOKEN_TYPE_JWT, TOKEN_TYPE_JOIN, TOKEN_TYPE_ACCESS_TOKEN, 'urn:ietf:params:oauth:token-type:id_token'],
      dpop_signing_alg_values_supported: [...deps.dpopAlgorithms],
      service_documentation: `${issuer}/v1/openapi.json`,
    });
  });
}
