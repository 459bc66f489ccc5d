/**
 * The authenticated caller of an agent-facing endpoint, produced by token verification
 * (src/tokens) and consumed by policy, secrets, leases and the gateway.
 */

/**
 * What kind of attestor proved an identity, as policy sees it (Cedar `principal.attestor_kind`,
 * docs/adr/0021-identity-attributes.md):
 * - `join_token`: a one-time token an operator created for exactly this SPIFFE ID;
 * - `kubernetes`: a `jwt` attestor with `template: kubernetes` (a projected service-account token);
 * - `jwt`: a `jwt` attestor with a SPIFFE ID template (OIDC / CI workload tokens);
 * - `spiffe`: a JWT-SVID from a configured SPIFFE trust domain;
 * - `oauth_client`: an OAuth client (an MCP client, `tessera login --oidc`) a person logged in
 *   through Tessera's authorization server; it acts for that person only (docs/users.md), its
 *   `client_id` is the `client_id` tag.
 */
export const ATTESTOR_KINDS = ['join_token', 'kubernetes', 'jwt', 'spiffe', 'oauth_client'] as const;
export type AttestorKind = (typeof ATTESTOR_KINDS)[number];

/**
 * Attributes only a `kubernetes` attestor may set, from the verified `kubernetes.io` claim of a
 * projected service-account token. They never come from a SPIFFE path, a label or a CI claim.
 */
export const KUBERNETES_ATTRIBUTES = ['namespace', 'service_account', 'pod', 'pod_uid'] as const;

/**
 * A Kubernetes object uid (`metadata.uid`; a UUID on every real API server) as Tessera accepts
 * it for the `pod_uid` attribute and `pod` revocations: letters, digits and "-", at most 64.
 */
export const POD_UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;

/**
 * An agent role name (`scope=role:<name>` at login, Cedar `Role::"<name>"`, docs/policies.md#roles):
 * lowercase letters, digits, "_" and "-", at most 63 — never a "/", so it can never name an
 * engine role (`Role::"<engine>/<role>"`).
 */
export const ROLE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** ROLE_NAME in words, for the messages of every place that checks a role name. */
export const ROLE_NAME_RULE = '1 to 63 lowercase letters, digits, "_" or "-", starting with a letter or digit';

/**
 * The one role-name check: the server at login (src/identity/role.ts), the injector's
 * `tessera.io/role` annotation (src/k8s/injector) and the sidecar's `--role` (src/agent) all call
 * it, so a pod is refused at admission or start, never later at login, for a name login refuses.
 */
export function isRoleName(value: string): boolean {
  return ROLE_NAME.test(value);
}

export function isAttestorKind(v: unknown): v is AttestorKind {
  return typeof v === 'string' && (ATTESTOR_KINDS as readonly string[]).includes(v);
}

export interface AgentPrincipal {
  /** The agent's SPIFFE ID, e.g. `spiffe://example.org/ns/prod/sa/patient-reader`. */
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** The SPIFFE ID path, e.g. `/ns/prod/sa/patient-reader`. */
  readonly path: string;
  /** Facts from attestation (namespace, service_account, attestor, labels...). Strings only. */
  readonly attributes: Readonly<Record<string, string>>;
  /** Name of the attestor that proved the identity (tessera.yaml `attestors[].name`); absent when unknown. */
  readonly attestor?: string;
  /** Kind of that attestor; absent when unknown (then no Kubernetes attribute is believed). */
  readonly attestorKind?: AttestorKind;
  /** The role the acting agent assumed at login (`tessera.role` claim; Cedar `context.role`), if any. */
  readonly role?: string;
  /** `jti` of the presented token. Sensitive: HMAC before auditing. */
  readonly jti: string;
  /** Token expiry, epoch ms. */
  readonly expiresAt: number;
  /** Which Tessera token authenticated the request (absent: an agent token, as before task tokens). */
  readonly tokenKind?: 'agent' | 'task';
  /** Scope strings carried by the token; undefined means "no scope restriction beyond policy" (plain agent token). */
  readonly scope?: readonly string[];
  /** Task id (`txn`) for task tokens. */
  readonly task?: string;
  /** Parent task id (`ptxn`); absent for a root task. */
  readonly parentTask?: string;
  /** Root task id (`rtxn`). */
  readonly rootTask?: string;
  /** Every ancestor task id, root first (`anc`): revoking any of them refuses this token. */
  readonly ancestors?: readonly string[];
  /**
   * The delegators, oldest first (the agent that opened the root task first; the acting agent
   * itself excluded): `chain.length` is the task depth. Empty for a root task.
   */
  readonly chain?: readonly string[];
  /** Task depth (0 = root) and the tree's bound on it. */
  readonly depth?: number;
  readonly maxDepth?: number;
  /** The sub-agent label when the acting sub-agent has no identity of its own (it acts as `spiffeId`). */
  readonly label?: string;
  /** Task facts (`tctx`), string values only. */
  readonly tctx?: Readonly<Record<string, string>>;
  /** The token's `sub`: the original principal (the root agent; a user when acting for one). */
  readonly subject?: string;
  /** The token's audiences. */
  readonly audience?: readonly string[];
  /** The RFC 8693 actor chain, oldest first (task tokens): the audit and the admin tree show it. */
  readonly actors?: readonly { readonly sub: string; readonly label?: string }[];
  /** The user the task acts for (on-behalf-of: the task token's `sub` when it is not a SPIFFE ID). */
  readonly user?: string;
  /**
   * What policy knows of that user (the task token's `usr` claim, docs/users.md): the
   * users.issuers name, the mapped claims (Cedar `User` tags) and groups (`Group` parents).
   */
  readonly userClaims?: { readonly issuer: string; readonly attrs: Readonly<Record<string, string>>; readonly groups: readonly string[] };
  readonly purpose?: string;
  /**
   * Confirmation (RFC 7800 §3.1): the token is DPoP-bound to the key with this RFC 7638 SHA-256
   * thumbprint (RFC 9449 §6.1), agent and task tokens alike. The request pipeline's authenticate
   * step (src/pipeline/authenticate.ts) then required a valid proof by that key for the request;
   * policy sees it as `context.dpop`.
   */
  readonly cnf?: { readonly jkt: string };
}

/**
 * The attributes policy may believe for an identity proven by an attestor of `kind`: Kubernetes
 * attributes only when a `kubernetes` attestor proved them (ADR 0021); everything else as is.
 */
export function provenAttributes(kind: AttestorKind | undefined, attributes: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(attributes)) {
    if (kind !== 'kubernetes' && (KUBERNETES_ATTRIBUTES as readonly string[]).includes(k)) continue;
    out[k] = v;
  }
  return out;
}

/**
 * The verified claims every Tessera token (agent or task) carries about its acting agent and
 * itself: `sub`, `aud` (RFC 7519 §4.1.3: a string or an array), `exp` (epoch seconds), `jti`,
 * and the `tessera` attestation facts (ADR 0021).
 */
export interface AttestedClaims {
  readonly sub: string;
  readonly aud: string | readonly string[];
  readonly exp: number;
  readonly jti: string;
  readonly tessera?: { readonly attestor?: string; readonly kind?: AttestorKind; readonly attrs?: Readonly<Record<string, string>>; readonly role?: string | undefined } | undefined;
}

/**
 * The principal fields a verified token's claims give, the same for agent and task tokens:
 * the attributes policy may believe (provenAttributes, plus the attestor name), the attestor and
 * its kind, `jti`, `expiresAt` (epoch ms), the token kind, `subject` (`sub`) and `audience`
 * (`aud` as an array).
 */
export function attestedPrincipalFields(c: AttestedClaims, tokenKind: 'agent' | 'task'): Pick<AgentPrincipal, 'attributes' | 'attestor' | 'attestorKind' | 'role' | 'jti' | 'expiresAt' | 'tokenKind' | 'subject' | 'audience'> {
  const kind = c.tessera?.kind;
  const attestor = c.tessera?.attestor;
  return {
    // Kubernetes attributes only from a kubernetes attestor (a token without a kind proves none).
    attributes: { ...provenAttributes(kind, c.tessera?.attrs ?? {}), ...(attestor ? { attestor } : {}) },
    ...(attestor ? { attestor } : {}),
    ...(kind ? { attestorKind: kind } : {}),
    ...(c.tessera?.role !== undefined ? { role: c.tessera.role } : {}),
    jti: c.jti,
    expiresAt: c.exp * 1000,
    tokenKind,
    subject: c.sub,
    audience: typeof c.aud === 'string' ? [c.aud] : c.aud,
  };
}
