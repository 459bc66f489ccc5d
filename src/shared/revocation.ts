/**
 * What token verification asks the kill switch (src/revocations implements it from an
 * in-memory set kept in step with the store, so the check costs a few map lookups).
 */
export interface RevocationChecker {
  /** True when the token, its agent, its task (or an ancestor task) or its user is revoked. */
  isRevoked(subject: { spiffeId: string; jti: string; issuedAt: number; task?: string; user?: string }): boolean;
  /** True when new logins for this SPIFFE ID must be refused. */
  isAgentRevoked(spiffeId: string): boolean;
}
