/**
 * What token verification asks the kill switch (src/revocations implements it from an
 * in-memory set kept in step with the store, so the check costs a few map lookups).
 */
export interface RevocationSubject {
  /** The acting agent. */
  readonly spiffeId: string;
  /** The token's id, when there is a token (a grant checked for its user and client has none). */
  readonly jti?: string;
  readonly issuedAt?: number;
  /** The task (`txn`) and its ancestors (`anc`): revoking any of them refuses the token. */
  readonly task?: string;
  readonly ancestors?: readonly string[];
  readonly user?: string;
  /** The delegators: a revoked agent anywhere in the chain refuses the token. */
  readonly chain?: readonly string[];
  /**
   * The acting agent's proven attributes (AgentPrincipal.attributes): `pod_uid`, set only by a
   * `kubernetes` attestor, is checked against `pod` revocations (docs/k8s-pods.md).
   */
  readonly attributes?: Readonly<Record<string, string>>;
}

export interface RevocationChecker {
  /** True when the token, its agent, its task (or an ancestor task), its user or an agent of its chain is revoked. */
  isRevoked(subject: RevocationSubject): boolean;
  /**
   * A number that changes whenever a revocation is added to the set `isRevoked` consults (a local
   * revoke, or one learnt from the store). Lifts and expiries only remove, so a subject found NOT
   * revoked at generation g stays not revoked while the generation is g: the token service keeps
   * that answer with a cached verification instead of asking again. Absent: ask every time.
   */
  generation?(): number;
  /** True when new logins for this SPIFFE ID must be refused. */
  isAgentRevoked(spiffeId: string): boolean;
  /** The revocation in force for this SPIFFE ID (its id and end, epoch ms or null = until lifted), if any: what an operator lifts. */
  agentRevocation?(spiffeId: string): { readonly id: string; readonly expiresAt: number | null } | undefined;
}
