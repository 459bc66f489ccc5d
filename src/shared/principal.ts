/**
 * The authenticated caller of an agent-facing endpoint, produced by token verification
 * (src/tokens) and consumed by policy, secrets, leases and the gateway.
 */
export interface AgentPrincipal {
  /** The agent's SPIFFE ID, e.g. `spiffe://example.org/ns/prod/sa/patient-reader`. */
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** The SPIFFE ID path, e.g. `/ns/prod/sa/patient-reader`. */
  readonly path: string;
  /** Facts from attestation (namespace, service_account, attestor, labels...). Strings only. */
  readonly attributes: Readonly<Record<string, string>>;
  /** `jti` of the presented token. Sensitive: HMAC before auditing. */
  readonly jti: string;
  /** Token expiry, epoch ms. */
  readonly expiresAt: number;
  /** Scope strings carried by the token; undefined means "no scope restriction beyond policy" (plain agent token). */
  readonly scope?: readonly string[];
  /** Task id (`txn`) for task tokens. */
  readonly task?: string;
  /** Delegation chain, outermost first, for task tokens. */
  readonly chain?: readonly string[];
  readonly user?: string;
  readonly purpose?: string;
}
