/**
 * An input recorded in an audit event that the caller chose (a client_id, a grant type, a name):
 * in clear when it is harmless, else — when it holds a credential shape the audit log refuses
 * (src/shared/credential-like.ts: a JWT, a Tessera token) — as `hmac:<audit HMAC of the whole
 * value>`, so the event is still recorded (ADR 0041), the credential is not, and an operator can
 * find the value's events (`POST /v1/admin/audit/hmac`). Checked whole, then cut to `max`
 * characters (a cut could leave part of a credential no shape matches any more).
 */
import { credentialLike } from '../shared/credential-like.js';

export function clearOrHmac(value: string, hmac: (v: string) => string, max = 256): string {
  return credentialLike(value) !== undefined ? `hmac:${hmac(value)}` : value.slice(0, max);
}
