/**
 * Audit events: a typed union. Every event records who, what, when, where, why, the result,
 * the reason and the request id. Never a secret value or a token: identifiers that are
 * themselves sensitive (join-token ids, token `jti`s, lease ids handed to agents) are passed
 * through `AuditWriter.hmac()` before they are put in an event.
 */
export const AUDIT_RESULTS = ['success', 'failure', 'allow', 'deny', 'error'] as const;
export type AuditResult = (typeof AUDIT_RESULTS)[number];

export interface AuditActor {
  /** SPIFFE ID of the acting agent, or `admin:<token id>` for operators, or `system`. */
  readonly id: string;
  /** Delegation chain, outermost first (user → orchestrator → sub-agent). */
  readonly chain?: readonly string[];
  readonly user?: string;
  /**
   * `false` on a refused request: `id` is the identity the presented credential names — a
   * Tessera-signed token or a join token that was refused (revoked, expired, wrong audience,
   * reused …) — but the request was NOT authenticated as it. Absent: `id` is authenticated.
   * Kept in the `actor` column, so `tessera audit tail --actor <id>` finds these attempts.
   */
  readonly verified?: false;
}

export interface AuditWhere {
  readonly source?: string;
  readonly replica?: string;
  readonly requestId?: string;
}

interface Base<K extends string, D = Record<string, never>> {
  readonly kind: K;
  readonly actor: AuditActor;
  readonly action: string;
  readonly resource?: string;
  readonly result: AuditResult;
  /** Policy ids that decided, or the stable error code of a failure. */
  readonly reason?: { readonly policies?: readonly string[]; readonly code?: string; readonly message?: string };
  readonly txn?: string;
  readonly purpose?: string;
  readonly where?: AuditWhere;
  readonly details?: D;
}

/**
 * Refusal events written at most once per source and actor per window (src/shared/auth-failures.ts):
 * how many of the same were not written since the last one, and the window in seconds.
 */
interface Aggregated {
  readonly suppressed?: number;
  readonly window_s?: number;
}

export type AuditEvent =
  | Base<'auth.login', { attestor: string; token_jti_hmac?: string; expires_at?: number; dpop_jkt?: string; pod?: string | undefined; pod_uid?: string; role?: string } & Aggregated>
  | Base<'auth.join_token_reuse', { join_token_hmac: string }>
  | Base<'auth.token_refused', { code: string; claimed_sub?: string } & Aggregated>
  | Base<'auth.admin_refused', { code: string } & Aggregated>
  | Base<'token.issued', { token_type: string; jti_hmac: string; expires_at: number; scope?: string }>
  | Base<'token.revoked', { jti_hmac: string }>
  | Base<'task.created', { token_type: 'task'; jti_hmac: string; expires_at: number; scope: string; root: string; parent?: string; depth: number; max_depth: number; delegatee: string; label?: string; bound: boolean; dpop_jkt?: string; audience: readonly string[]; tctx?: Readonly<Record<string, string>> }>
  | Base<'task.refused', { code: string; scope?: string; label?: string }>
  | Base<'join_token.created', { join_token_hmac: string; spiffe_id: string; expires_at: number }>
  | Base<'join_token.used', { join_token_hmac: string; spiffe_id: string }>
  | Base<'admin_token.created', { token_id: string; name?: string; role?: string; expires_at?: string | null }>
  | Base<'admin_token.revoked', { token_id: string }>
  // Operator console sessions (src/console; docs/console.md). `session` is the non-secret session id (`cs_…`).
  | Base<'console.session_started', { session: string; via: string; role: string; name: string; expires_at: number }>
  | Base<'console.session_ended', { session: string; cause: string }>
  | Base<'policy.decision', { principal: string; cached: boolean }>
  | Base<'policy.reloaded', { files: number; policies: number; error?: string }>
  | Base<'secret.written', { version: number; mode: string }>
  | Base<'secret.read', { version?: number; mode?: string }>
  | Base<'secret.metadata_updated', { mode: string }>
  | Base<'secret.deleted', Record<string, never>>
  | Base<'secret.master_key_rotation_started', { master_key_id: string; previous_master_key_id: string }>
  | Base<'secret.master_key_rotated', { rewrapped: number; master_key_id: string }>
  // Secret rotation (src/rotation; docs/rotation.md).
  | Base<'rotation.succeeded', { rotator: string; from_version: number; version: number; recovered?: boolean; retire_at?: number }>
  | Base<'rotation.failed', { rotator: string; from_version: number; failures: number; next_attempt_at: number; stage: string }>
  | Base<'rotation.retired', { rotator: string; version: number; result: string; sessions_ended?: number }>
  | Base<'rotation.due', { rotator: string; version: number; due_at: number }>
  | Base<'engine.root_rotated', { engine: string; config: string; username: string }>
  | Base<'lease.created', { lease_hmac: string; engine: string; role: string; expires_at: number }>
  | Base<'lease.renewed', { lease_hmac: string; expires_at: number }>
  | Base<'lease.revoked', { lease_hmac: string; cause: string }>
  | Base<'lease.revoke_failed', { lease_hmac: string; attempts: number; irrevocable: boolean; disabled: boolean; stage: 'disable' | 'cleanup'; error: string }>
  | Base<'engine.configured', { engine: string; config: string; role?: string }>
  | Base<'engine.deleted', { engine: string; config: string; role?: string }>
  | Base<'revocation.created', { revocation_id: string; kind: string; target_hmac?: string; pod_uid?: string; expires_at?: number | null; agent_known?: boolean }>
  | Base<'revocation.lifted', { revocation_id: string }>
  | Base<'key.rotated', { kid: string; purpose: string }>
  | Base<'server.started', { version: string; replica: string }>
  | Base<'gateway.tool_call', { server: string; tool: string; args_sha256: string; args_json?: string; decision: string; upstream_status: string; latency_ms: number; scrub_hits: number; session_hmac?: string; outcome?: 'delivered' | 'redacted' | 'refused' | 'failed' | 'cancelled'; redactions?: Record<string, number>; items_replaced?: number }>
  | Base<'gateway.exfiltration_suspected', { server: string; tool: string; item?: 'resource' | 'prompt' | 'completion'; hit_kind: string; form: string; label?: string; path?: string; in_error: boolean; split?: boolean }>
  | Base<'gateway.resource_read', GatewayServedDetails>
  | Base<'gateway.resource_subscribe', GatewayServedDetails>
  | Base<'gateway.prompt_get', GatewayServedDetails & { args_sha256?: string; args_json?: string }>
  | Base<'gateway.completion', GatewayServedDetails & { ref_type?: string; argument?: string }>
  | Base<'gateway.server_request', { server: string; method: string; session_hmac?: string; code?: string; scrub_hits: number; outcome: 'answered' | 'refused' | 'failed' }>
  | Base<'gateway.subscription_ended', { server: string; uri_hmac: string; reason: 'denied' | 'stopped'; cause?: string; session_hmac: string }>
  | Base<'gateway.logging_level', { level: string; forwarded: readonly string[]; session_hmac: string }>
  | Base<'gateway.notifications_dropped', { server?: string; method: string; reason: 'queue' | 'rate' | 'unattributed' | 'expired'; session_hmac?: string }>
  | Base<'gateway.request_refused', { code: string; rpc_code: number; method?: string; field?: string; batch_size?: number; session_hmac?: string }>
  | Base<'gateway.session_opened', { session_hmac: string; protocol_version?: string }>
  | Base<'gateway.session_closed', { session_hmac: string; cause: string }>
  | Base<'gateway.upstream_started', { server: string; transport: string; isolation: string; run_as?: string }>
  | Base<'gateway.tool_name_refused', { server: string; tool: string; why: string }>
  | Base<'gateway.upstream_stopped', { server: string; transport: string; cause: string }>
  | Base<'oauth.authorized', { client_id: string; code_hmac: string }>
  | Base<'oauth.token_issued', { grant: string; client_id: string; family: string; refresh_hmac?: string; bound: boolean }>
  | Base<'oauth.refresh_revoked', { family: string; cause: 'reuse' | 'holder' | 'code_replay'; tasks: number }>
  | Base<'oauth.refused', { code: string; client_id?: string; grant?: string }>
  | Base<'proxy.request', { route: string; mode: string; method: string; path_template: string; status: number; upstream_status?: number; bytes_in: number; bytes_out: number; latency_ms: number; decision: string; credential?: string; redactions: number; redacted?: Record<string, number>; aborted?: boolean }>
  // Proxy (TLS part, src/proxy/ca.ts and connect.ts; docs/proxy-tls.md).
  | Base<'proxy.ca_created', { fingerprint: string; subject: string; not_after: number }>
  | Base<'proxy.tunnel', { phase: 'opened' | 'refused' | 'closed'; host: string; port: number; mode: 'intercept' | 'tunnel'; route?: string; code?: string; bytes_in?: number; bytes_out?: number; duration_ms?: number; cause?: string }>
  // Drift (src/drift, docs/drift.md).
  | Base<'drift.tool_pinned', { server: string; tool: string; digest: string }>
  | Base<'drift.tool_unapproved', { server: string; tool: string; digest: string }>
  | Base<'drift.tool_changed', { server: string; tool: string; approved_digest: string; observed_digest: string; fields: readonly string[]; handling: 'block' | 'flag' }>
  | Base<'drift.tool_approved', { server: string; tool: string; digest: string; previous_digest?: string }>
  | Base<'drift.engine_pinned', { group: string; digest: string }>
  | Base<'drift.engine_changed', { group: string; approved_digest: string; observed_digest: string; fields: readonly string[] }>
  | Base<'drift.engine_approved', { group: string; digest: string }>
  | Base<'drift.policy_changed', { dir: string; digest: string; previous_digest?: string; git_commit?: string; git_dirty?: boolean; expected_digest?: string; matches_expected?: boolean }>
  | Base<'drift.findings_changed', { total: number; by_kind: readonly string[]; worst: string; added: readonly string[]; resolved: readonly string[] }>
  | Base<'limit.exceeded', { limit: string; retry_after_s: number; suppressed: number; window_s: number }>;

export type AuditEventKind = AuditEvent['kind'];

/**
 * What the gateway records of one resources/read, prompts/get or completion/complete
 * (src/gateway/served.ts): `item` is the upstream URI, prompt name, or the completed reference.
 */
export interface GatewayServedDetails {
  readonly server: string;
  readonly item: string;
  readonly decision: string;
  readonly upstream_status: string;
  readonly outcome: 'delivered' | 'redacted' | 'refused' | 'failed';
  readonly latency_ms: number;
  readonly scrub_hits: number;
  readonly redactions?: Record<string, number>;
  readonly items_replaced?: number;
  readonly session_hmac: string;
}

/** What the store keeps for each event: the event plus its sequence number, time and chain hash. */
export interface AuditRecord {
  readonly seq: number;
  readonly ts: number;
  readonly prevHash: string;
  readonly hash: string;
  readonly event: AuditEvent;
}
