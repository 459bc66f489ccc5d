/**
 * The DPoP rules of every enforcement point and of the token endpoint (RFC 9449; docs/dpop.md,
 * docs/adr/0110-dpop-binding-at-every-enforcement-point.md):
 *
 * - Resources (API routes, MCP gateway), after the token itself verified:
 *   - a bound token (`cnf.jkt`) needs `Authorization: DPoP <token>` and a valid proof by its
 *     key for this request (§7.1); as `Bearer` it is refused (TESSERA_DPOP_TOKEN_BOUND);
 *   - an unbound token with the DPoP scheme is refused (TESSERA_DPOP_TOKEN_NOT_BOUND);
 *   - an unbound token that configuration requires to be bound (`tokens.dpop.require`) is
 *     refused (TESSERA_DPOP_REQUIRED).
 * - Token endpoint: a `DPoP` header, when sent, is verified (htm POST, htu the endpoint, no
 *   `ath`) and its key's thumbprint is what the issued token is bound to (§5); the exchange
 *   refuses a missing proof when configuration requires binding for that kind of token.
 *
 * Every refusal is marked with its DPoP challenge (./challenge.ts).
 */
import type { AgentPrincipal } from '../shared/principal.js';
import type { Clock } from '../shared/clock.js';
import { TesseraError, isTesseraError } from '../shared/errors.js';
import { withDpopChallenge } from './challenge.js';
import type { HtuMatcher } from './htu.js';
import { PublicKeyCache } from './jwk.js';
import { createNonceSource, type NonceSource } from './nonce.js';
import { createProofVerifier, type ProofVerifier } from './proof.js';
import { ReplayCache } from './replay.js';
import { proveHolder, type HolderCheck } from './holder.js';
import type { DpopSettings } from './settings.js';

export { DPOP_REQUIREMENTS, type DpopRequirement, type DpopSettings } from './settings.js';
export type { HolderCheck } from './holder.js';

/** Kinds of token issued at the token endpoint, for `requireBinding`. */
export type IssuedKind = 'agent' | 'task' | 'delegated';

/** An `Authorization` header's scheme and token (RFC 6750 §2.1, RFC 9449 §7.1). */
export interface PresentedToken {
  readonly scheme: 'Bearer' | 'DPoP';
  readonly token: string;
}

/** What a resource request brings besides its token. */
export interface PresentedRequest {
  readonly scheme: 'Bearer' | 'DPoP';
  readonly method: string;
  /** Request target as received (path and query). */
  readonly target: string;
  /** The `DPoP` header (Node gives a string; repeated headers are joined). */
  readonly proof: string | readonly string[] | undefined;
}

export interface DpopGuard {
  readonly settings: DpopSettings;
  /**
   * Enforces the binding rules on a request whose token already verified (`principal`); throws
   * a TESSERA_DPOP_* error marked with its challenge. Resolves the nonce to send back when the
   * proof used a stale one (server nonces on), else undefined.
   */
  checkResource(principal: AgentPrincipal, token: string, req: PresentedRequest): Promise<{ nonce?: string }>;
  /**
   * Token endpoint (RFC 9449 §5): verifies the `DPoP` header when one is sent and resolves the
   * proof key's thumbprint (`jkt`) to bind the issued token to; undefined without a proof.
   */
  tokenRequestProof(req: { method: string; target: string; proof: string | readonly string[] | undefined }): Promise<string | undefined>;
  /**
   * Throws TESSERA_DPOP_PROOF_MISSING when `tokens.dpop.require` asks for a bound token of this
   * kind and the exchange carried no proof: `agent` (a login), `task` (a root task) and
   * `delegated` (a child task, depth ≥ 1). Whether a bound subject or actor token was proven is
   * the task exchange's narrowing rule (src/tasks/narrow.ts `childBinding`), not this check.
   */
  requireBinding(kind: IssuedKind, proofJkt: string | undefined): void;
  /**
   * The rule of `tokens.dpop.require` for a token presented as a credential at the token
   * endpoint (the subject or actor token of a task exchange), the same as at every enforcement
   * point: throws TESSERA_DPOP_REQUIRED for an unbound token that must be bound (`always`: any;
   * `delegated`: a task token at depth ≥ 1), so a proof at the exchange cannot turn a token the
   * resources refuse into a bound one.
   */
  requireBoundToken(principal: AgentPrincipal): void;
  /**
   * Proof by the bound key (src/dpop/holder.ts, RFC 9449 §4.3 check 12, §5): throws unless a
   * credential bound to `bound` (`cnf.jkt`, or a stored binding; null/undefined: unbound) came
   * with a verified proof by that key (`proofJkt`, from tokenRequestProof). Codes per `check`
   * (default TESSERA_DPOP_PROOF_MISSING / TESSERA_DPOP_KEY_MISMATCH, marked with the challenge).
   */
  proveHolder(bound: string | null | undefined, proofJkt: string | undefined, check: HolderCheck): void;
  /** The nonce for a `DPoP-Nonce` header; undefined when server nonces are off. */
  nonce(): string | undefined;
  /** Marks any refusal of a DPoP-scheme request with the DPoP challenge (RFC 9449 §7.1). */
  mark<E extends TesseraError>(e: E): E;
}

export interface DpopGuardDeps {
  readonly settings: DpopSettings;
  readonly clock: Clock;
  readonly htu: HtuMatcher;
  /** Secret shared by every replica, for stateless nonces (needed when `settings.nonce`). */
  readonly nonceKey?: Uint8Array;
}

/**
 * A delegated token, as `tokens.dpop.require: delegated` means it: a task token at depth ≥ 1
 * (someone handed its authority on to a sub-agent; Cedar `context.depth` ≥ 1). Agent tokens and
 * root task tokens (depth 0) are not delegated.
 */
export function isDelegated(p: AgentPrincipal): boolean {
  return p.tokenKind === 'task' && (p.depth ?? 0) >= 1;
}

/**
 * Parses `Authorization: Bearer <token>` or `Authorization: DPoP <token>` (token68, scheme
 * case-insensitive); undefined for anything else.
 */
export function parseAuthorization(header: unknown): PresentedToken | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^(Bearer|DPoP)[ ]+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header);
  if (!m) return undefined;
  return { scheme: m[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer', token: m[2]! };
}

export function createDpopGuard(deps: DpopGuardDeps): DpopGuard {
  const { settings, clock } = deps;
  if (settings.nonce && !deps.nonceKey) throw new TesseraError('TESSERA_INTERNAL', 'DPoP nonces need a nonce key');
  const nonces: NonceSource | undefined = settings.nonce ? createNonceSource({ key: deps.nonceKey!, lifetimeMs: settings.nonceLifetimeMs, clock }) : undefined;
  const replay = new ReplayCache({ capacity: settings.replayCacheSize, perKey: settings.replayCachePerKey, windowMs: 2 * settings.iatWindowMs, clock });
  const verifier: ProofVerifier = createProofVerifier({
    algorithms: settings.algorithms, iatWindowMs: settings.iatWindowMs, htu: deps.htu, replay, clock, keys: new PublicKeyCache(),
    ...(nonces ? { nonces } : {}),
  });

  const mark = <E extends TesseraError>(e: E): E => withDpopChallenge(e, { algs: settings.algorithms, ...(nonces && e.code === 'TESSERA_DPOP_NONCE_REQUIRED' ? { nonce: nonces.current() } : {}) });
  const marked = (e: unknown): unknown => (isTesseraError(e) ? mark(e) : e);

  function needsBinding(p: AgentPrincipal): boolean {
    return settings.require === 'always' || (settings.require === 'delegated' && isDelegated(p));
  }

  function requireBoundToken(p: AgentPrincipal): void {
    if (p.cnf === undefined && needsBinding(p)) {
      throw mark(new TesseraError('TESSERA_DPOP_REQUIRED', `this token must be DPoP-bound (tokens.dpop.require: ${settings.require}${settings.require === 'delegated' ? ': a delegated task token' : ''}); log in or exchange again with a DPoP proof`));
    }
  }

  return {
    settings,
    async checkResource(principal, token, req) {
      const jkt = principal.cnf?.jkt;
      if (jkt === undefined) {
        if (req.scheme === 'DPoP') throw mark(new TesseraError('TESSERA_DPOP_TOKEN_NOT_BOUND', 'this token is not DPoP-bound; send it as `Authorization: Bearer <token>`, or log in with a DPoP proof to get a bound token'));
        requireBoundToken(principal);
        return {};
      }
      if (req.scheme !== 'DPoP') throw mark(new TesseraError('TESSERA_DPOP_TOKEN_BOUND', 'this token is DPoP-bound: send it as `Authorization: DPoP <token>` with a fresh `DPoP` proof signed by its key (RFC 9449 §7.1)'));
      try {
        const r = await verifier.verify(req.proof, { method: req.method, target: req.target, accessToken: token, jkt });
        return r.nonceStale && nonces ? { nonce: nonces.current() } : {};
      } catch (e) {
        throw marked(e);
      }
    },

    async tokenRequestProof(req) {
      if (req.proof === undefined) return undefined;
      try {
        return (await verifier.verify(req.proof, { method: req.method, target: req.target })).jkt;
      } catch (e) {
        throw marked(e);
      }
    },

    requireBinding(kind, proofJkt) {
      if (proofJkt !== undefined) return;
      const required = settings.require === 'always' || (settings.require === 'delegated' && kind === 'delegated');
      if (required) {
        throw mark(new TesseraError('TESSERA_DPOP_PROOF_MISSING', `this exchange must issue a DPoP-bound token (tokens.dpop.require: ${settings.require}); send a DPoP proof in the \`DPoP\` header (RFC 9449 §5)`));
      }
    },

    requireBoundToken,

    proveHolder(bound, proofJkt, check) {
      try {
        proveHolder(bound, proofJkt, check);
      } catch (e) {
        throw isTesseraError(e) && e.code.startsWith('TESSERA_DPOP_') ? mark(e) : e;
      }
    },

    nonce() {
      return nonces?.current();
    },

    mark,
  };
}
