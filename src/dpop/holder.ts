/**
 * Proof by the bound key (RFC 9449 §4.3 check 12, §5, §7.1; docs/dpop.md): the one check that a
 * DPoP-bound credential — an access token at a resource, a subject or actor token at the token
 * endpoint, a token or refresh token at the revocation endpoint, a refresh token at its grant —
 * came with a proof by the key it is bound to. Every place a bound credential is presented calls
 * this (through DpopGuard.proveHolder, or the proof verifier's check 12), never a copy of it.
 */
import { TesseraError, type ErrorCode } from '../shared/errors.js';

/** What a refusal says: which credential, and the codes of the endpoint (stable per endpoint). */
export interface HolderCheck {
  /** The credential, for the message: "this token", "the subject token", "this refresh token" … */
  readonly what: string;
  /** `details.field` of the refusal (a request parameter), when the credential is one. */
  readonly field?: string;
  /** No proof was sent. Default TESSERA_DPOP_PROOF_MISSING. */
  readonly missing?: ErrorCode;
  /** A proof by another key. Default TESSERA_DPOP_KEY_MISMATCH. */
  readonly mismatch?: ErrorCode;
  /** What the holder should do, appended to the message (for example "only the key holder may revoke it"). */
  readonly hint?: string;
}

/**
 * Throws unless the holder of a credential bound to `bound` (its RFC 7638 `cnf.jkt`; undefined or
 * null: unbound, nothing to prove) proved that key: `proofJkt` is the thumbprint of the request's
 * verified DPoP proof (undefined: none was sent). Codes per `check` (defaults: the DPoP codes,
 * 401). Pure: the caller marks the refusal with its DPoP challenge where the scheme asks for one.
 */
export function proveHolder(bound: string | null | undefined, proofJkt: string | undefined, check: HolderCheck): void {
  if (bound === undefined || bound === null) return;
  const details = check.field !== undefined ? { field: check.field } : undefined;
  const hint = check.hint ? `; ${check.hint}` : '';
  if (proofJkt === undefined) {
    throw new TesseraError(check.missing ?? 'TESSERA_DPOP_PROOF_MISSING', `${check.what} is DPoP-bound: send a DPoP proof signed with its key in the \`DPoP\` header (RFC 9449 §4)${hint}`, details);
  }
  if (proofJkt !== bound) {
    throw new TesseraError(check.mismatch ?? 'TESSERA_DPOP_KEY_MISMATCH', `the DPoP proof is signed with another key than the one ${check.what} is bound to (cnf.jkt, RFC 9449 §4.3 check 12)${hint}`, details);
  }
}
