import type { RequestMeta } from '../server/app.js';
import type { AttestorKind } from '../shared/principal.js';

/** The outcome of a successful attestation: who the workload is, and facts for policy. */
export interface AttestedIdentity {
  readonly spiffeId: string;
  /** Name of the attestor that vouched (from tessera.yaml), e.g. `k8s-prod`. */
  readonly attestor: string;
  /** What kind of attestor that is; decides which attributes policy believes (docs/adr/0021-identity-attributes.md). */
  readonly attestorKind: AttestorKind;
  /**
   * Strings only. `namespace`, `service_account`, `pod` only from a `kubernetes` attestor;
   * `issuer` (jwt), `trust_domain` (spiffe), `label.<k>` (labels and `label_claims`).
   */
  readonly attributes: Readonly<Record<string, string>>;
}

/**
 * Called by `Attestation.attest` once the subject token is verified and the SPIFFE ID known, but
 * BEFORE anything is consumed (a join token is still unused): throw to refuse the login. Used for
 * the agent revocation check, so a refused login never burns the one-time join token.
 */
export type AdmitIdentity = (spiffeId: string) => void;

/** RFC 8693 §3 token type URIs Tessera accepts as login subject tokens. */
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_JOIN = 'urn:tessera:token-type:join-token';

/** Selects and runs the attestor for a subject token; throws TESSERA_ATTEST_* / TESSERA_JOIN_TOKEN_* errors. */
export interface Attestation {
  attest(subjectToken: string, subjectTokenType: string, meta: RequestMeta, options?: { admit?: AdmitIdentity }): Promise<AttestedIdentity>;
}
