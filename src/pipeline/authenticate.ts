/**
 * The authenticate step of the one request pipeline: a presented credential → the acting
 * principal. Every place a credential is presented — the `Authorization` header at an
 * enforcement point (the API routes, the MCP gateway, later the proxy), the `subject_token` and
 * `actor_token` of a token exchange (RFC 8693 §2.1) — goes through `authenticatePresented`, so
 * none can skip a part of it:
 *
 *   0. the source's refused credentials (ADR 0142, src/shared/auth-failures.ts): a source over
 *      `server.auth_failure_rate_limit` is refused before any verification (429
 *      TESSERA_AUTH_RATE_LIMITED);
 *   1. the token (agent or task: their JOSE `typ` is pinned by the token service), for its
 *      audience, with revocation of the token, the acting agent, the task and every ancestor
 *      task, the user and every agent of the chain — from in-memory sets, never the store;
 *   2. its DPoP binding (RFC 9449): at a resource (§7), a bound token (`cnf.jkt`) only as
 *      `Authorization: DPoP` with a valid proof by its key (htm, htu, ath, iat, nonce, replay), an
 *      unbound one only as `Bearer`; everywhere, an unbound token only when `tokens.dpop.require`
 *      does not want it bound (`delegated`: a task token at depth ≥ 1; `always`: every token).
 *      At the token endpoint, which key the new token is bound to is the exchange's narrowing
 *      rule (src/tasks/narrow.ts childBinding, through src/dpop/holder.ts proveHolder).
 *
 * Every refusal is charged to its source (a 4xx other than 429: the credential's fault, not a
 * limit or an outage of ours) and audited as `auth.token_refused`, aggregated per source, actor,
 * resource and code (never the token or the proof). A refused Tessera-signed token — and a
 * refusal after the token itself verified — keeps its claimed identity, marked `verified: false`
 * (issue 7 item 18); an unverifiable one is `unauthenticated`, its claimed SPIFFE ID in
 * `details.claimed_sub`. Any refusal of a DPoP-scheme request carries the DPoP challenge (§7.1).
 */
import type { AuditWriter } from '../audit/port.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { AgentAuthenticator, RequestMeta } from '../server/app.js';
import type { DpopGuard, PresentedRequest } from '../dpop/guard.js';
import { isTesseraError } from '../shared/errors.js';
import type { AuthFailureGuard, SourceMeta } from '../shared/auth-failures.js';
import { attributeRefusal, auditTokenRefusal, type TokenService } from '../tokens/service.js';

/** What every presentation of a credential needs. */
export interface PresentedDeps {
  readonly audit: Pick<AuditWriter, 'append'>;
  /** Marks a refusal of a DPoP-scheme request with the DPoP challenge. */
  readonly dpop: Pick<DpopGuard, 'mark'>;
  /**
   * Refused credentials per source (src/shared/auth-failures.ts): checked before any
   * verification, charged per refusal, refusal events aggregated. Absent: every refusal is
   * audited on its own and nothing is limited (unit tests).
   */
  readonly failures?: AuthFailureGuard;
}

/** Where a credential was presented: a request's `Authorization` header, or a token request parameter. */
export type PresentedAt = 'authorization' | 'subject_token' | 'actor_token';

/** One presented credential: how to verify it, whose it is once verified, and its DPoP binding. */
export interface Presentation<T> {
  readonly at: PresentedAt;
  /** The credential's own verification (signature, type, claims, audience, revocation); throws TESSERA_* errors. */
  verify(): Promise<T>;
  /** The acting principal of the verified credential: a later refusal is attributed to it. */
  principalOf(verified: T): AgentPrincipal | undefined;
  /**
   * Who presents it, when already authenticated (the acting agent presenting a person's token):
   * a refusal is attributed to it (unverified) when the credential itself names no principal.
   */
  readonly presentedBy?: AgentPrincipal;
  /** The DPoP binding rules for this presentation (after verification); throws TESSERA_DPOP_* errors. */
  bind?(verified: T): Promise<unknown> | void;
  /** The `Authorization` scheme: a refusal of a `DPoP` one carries the DPoP challenge. */
  readonly scheme?: 'Bearer' | 'DPoP';
  /** The refusal event's `resource` (`mcp` for the gateway, `token-exchange` at the token endpoint). */
  readonly resource?: string;
}

/** Errors already audited as a refused credential (so an outer handler does not audit them twice). */
const refusedCredentials = new WeakSet<object>();

/**
 * Whether `e` (or an error it wraps, its `cause`: a parameter's refusal of the token endpoint) is
 * the refusal of a presented credential, already audited by authenticatePresented.
 */
export function isRefusedCredential(e: unknown): boolean {
  for (let x = e, i = 0; typeof x === 'object' && x !== null && i < 4; x = (x as { cause?: unknown }).cause, i++) {
    if (refusedCredentials.has(x)) return true;
  }
  return false;
}

/**
 * Authenticates one presented credential (steps 0–2 above) and resolves what `verify` resolved.
 * Throws the refusal unchanged (TESSERA_TOKEN_*, TESSERA_DPOP_*, the verifier's own codes; 429
 * TESSERA_AUTH_RATE_LIMITED before any verification), after charging and auditing it.
 */
export async function authenticatePresented<T>(deps: PresentedDeps, meta: SourceMeta, p: Presentation<T>): Promise<T> {
  // Before any signature, hash or lookup: a source that sent too many refused credentials.
  deps.failures?.admit(meta);
  let verified: T | undefined;
  let done = false;
  try {
    verified = await p.verify();
    done = true;
    await p.bind?.(verified);
    return verified;
  } catch (e) {
    if (isTesseraError(e)) {
      const principal = (done ? p.principalOf(verified as T) : undefined) ?? p.presentedBy;
      if (principal) attributeRefusal(e, principal.spiffeId);
      // RFC 9449 §7.1: a DPoP request is answered with a DPoP challenge, whatever was wrong.
      if (p.scheme === 'DPoP') deps.dpop.mark(e);
      // A refused credential costs its source (not a limit or an outage of ours: 429 and 5xx are not its fault).
      if (e.status >= 400 && e.status < 500 && e.status !== 429) deps.failures?.charge(meta);
      // The request is refused either way.
      const where = { source: meta.source, ...(meta.replica ? { replica: meta.replica } : {}), ...(meta.requestId ? { requestId: meta.requestId } : {}) };
      await auditTokenRefusal(deps.failures?.events ?? deps.audit, e, where, p.resource).catch(() => undefined);
      refusedCredentials.add(e);
    }
    throw e;
  }
}

export interface RequestAuthenticatorDeps extends PresentedDeps {
  readonly tokens: Pick<TokenService, 'verify'>;
  /** DPoP binding rules (RFC 9449): the same guard for every enforcement point. */
  readonly dpop: Pick<DpopGuard, 'checkResource' | 'mark'>;
}

/**
 * An authenticator for one audience (RFC 8707): Tessera's API (`<issuer>`) or its MCP gateway
 * (`<issuer>/mcp`). `resource` labels the refusal events (`mcp` for the gateway).
 * `authenticate(token, meta, request)`: `request` is the `Authorization` scheme the token came
 * with, the method, the target as received and the `DPoP` header. Throws TESSERA_TOKEN_* and
 * TESSERA_DPOP_* errors (401; TESSERA_DPOP_RATE_LIMITED 429, TESSERA_DPOP_REPLAY_CACHE_FULL 503).
 */
export function createRequestAuthenticator(deps: RequestAuthenticatorDeps, options: { audience: string; resource?: string }): AgentAuthenticator {
  return {
    authenticate(token: string, meta: RequestMeta, request: PresentedRequest): Promise<AgentPrincipal> {
      return authenticatePresented(deps, meta, {
        at: 'authorization',
        verify: () => deps.tokens.verify(token, { audience: options.audience }),
        principalOf: (principal) => principal,
        bind: (principal) => deps.dpop.checkResource(principal, token, request),
        scheme: request.scheme,
        ...(options.resource ? { resource: options.resource } : {}),
      });
    },
  };
}
