import { TesseraError } from './errors.js';

/**
 * Credential shapes that must never be recorded in clear: the audit log refuses an event that
 * carries one (src/audit/validate.ts), so the edge refuses them in every name that ends up in an
 * audit event (secret paths, SPIFFE IDs, engine and role names, labels, task ids…) with a 4xx
 * instead of letting the audit write fail with a 5xx after the fact. One definition for both.
 */

/**
 * The two shapes as RegExp sources, the one definition of each: the audit log and the edge match
 * them anywhere in a string (below); the gateway's output scrubber (src/gateway/scrub/shapes.ts)
 * uses the same sources behind its start-of-token rule.
 *
 * A JWS/JWT compact serialization (RFC 7515 §7.1): base64url JSON header starting `{"` → `eyJ`,
 * a payload (a JWT's starts `eyJ` too; any JWS counts), and a signature that may be empty.
 */
export const JWT_SOURCE = 'eyJ[A-Za-z0-9_-]{4,}\\.[A-Za-z0-9_-]{7,}\\.[A-Za-z0-9_-]*';
/** Tessera's opaque tokens (`tsr_admin_…`, `tsr_join_…`): prefix plus ≥ 20 random base64url chars. */
export const TESSERA_TOKEN_SOURCE = 'tsr_[a-z]+_[A-Za-z0-9_-]{20,}';

export const JWT_LIKE = new RegExp(JWT_SOURCE);
export const TESSERA_TOKEN_LIKE = new RegExp(TESSERA_TOKEN_SOURCE);

/** What the value looks like (`"a JWT"`, `"a Tessera token"`), or undefined when it looks like neither. */
export function credentialLike(value: string): string | undefined {
  if (JWT_LIKE.test(value)) return 'a JWT';
  if (TESSERA_TOKEN_LIKE.test(value)) return 'a Tessera token (tsr_…)';
  return undefined;
}

/**
 * Throws TESSERA_REQUEST_CREDENTIAL_LIKE (400) when `value` contains a credential shape. `field`
 * names the input for the message; the value itself is never echoed.
 */
export function refuseCredentialLike(value: string, field: string): void {
  const shape = credentialLike(value);
  if (shape) {
    throw new TesseraError(
      'TESSERA_REQUEST_CREDENTIAL_LIKE',
      `${field} contains what looks like ${shape}; names are recorded in clear (listings, the audit log), so they must not carry credentials. Put secrets in values, never in names`,
      { field },
    );
  }
}

const JWT_LIKE_G = new RegExp(JWT_LIKE.source, 'g');
const TESSERA_TOKEN_LIKE_G = new RegExp(TESSERA_TOKEN_LIKE.source, 'g');

/** Free text (an error message from a backend, a parser) with every credential shape replaced by `[redacted]`. */
export function redactCredentialLike(text: string): string {
  return text.replace(JWT_LIKE_G, '[redacted]').replace(TESSERA_TOKEN_LIKE_G, '[redacted]');
}
