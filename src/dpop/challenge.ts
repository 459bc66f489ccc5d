/**
 * The HTTP side of a DPoP refusal (RFC 9449 §7.1, §8, §9): which `WWW-Authenticate` challenge and
 * `DPoP-Nonce` header an error answers with. The guard (./guard.ts) marks the errors it throws
 * (and token errors on `Authorization: DPoP` requests); the HTTP layers (src/server/app.ts,
 * src/gateway/http.ts) read the mark. Errors without a mark keep the Bearer challenge.
 */
import type { TesseraError } from '../shared/errors.js';
import { challenge } from '../shared/www-authenticate.js';

export interface DpopChallenge {
  /** Algorithms accepted for proofs (`algs`, RFC 9449 §7.1). */
  readonly algs: readonly string[];
  /** The nonce to send in `DPoP-Nonce` (server nonces on). */
  readonly nonce?: string;
}

const marks = new WeakMap<TesseraError, DpopChallenge>();

/** Marks `e` as a refusal of a DPoP request: it answers with a DPoP challenge. Returns `e`. */
export function withDpopChallenge<E extends TesseraError>(e: E, challenge: DpopChallenge): E {
  marks.set(e, challenge);
  return e;
}

export function dpopChallengeOf(e: unknown): DpopChallenge | undefined {
  return e !== null && typeof e === 'object' ? marks.get(e as TesseraError) : undefined;
}

/**
 * `WWW-Authenticate` value for a DPoP refusal (RFC 9449 §7.1): `DPoP error="…",
 * error_description="…", algs="ES256 …"`, plus any `extra` auth-params (realm, resource_metadata).
 */
export function dpopWwwAuthenticate(e: TesseraError, c: DpopChallenge, extra: Readonly<Record<string, string>> = {}): string {
  return challenge('DPoP', {
    ...extra,
    ...(e.oauthError ? { error: e.oauthError, error_description: e.message } : {}),
    algs: c.algs.join(' '),
  });
}
