import type { RequestMeta } from '../server/app.js';

/** The outcome of a successful attestation: who the workload is, and facts for policy. */
export interface AttestedIdentity {
  readonly spiffeId: string;
  /** Name of the attestor that vouched (from tessera.yaml), e.g. `k8s-prod`. */
  readonly attestor: string;
  /** Strings only: `namespace`, `service_account`, `pod`, `label.<k>`, ... */
  readonly attributes: Readonly<Record<string, string>>;
}

/** RFC 8693 §3 token type URIs Tessera accepts as login subject tokens. */
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_JOIN = 'urn:tessera:token-type:join-token';

/** Selects and runs the attestor for a subject token; throws TESSERA_ATTEST_* / TESSERA_JOIN_TOKEN_* errors. */
export interface Attestation {
  attest(subjectToken: string, subjectTokenType: string, meta: RequestMeta): Promise<AttestedIdentity>;
}
