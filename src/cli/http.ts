import { Transport, encodePath, type FetchLike } from '../sdk/http.js';

/**
 * Operator-side client for `/v1/admin/*` (Bearer admin token). Built on the SDK's
 * Transport so the CLI and the SDK map errors identically.
 */
export class AdminClient {
  private readonly t: Transport;
  constructor(
    options: { addr: string; fetch?: FetchLike; timeoutMs?: number },
    private readonly token: string,
  ) {
    this.t = new Transport({ ...options, userAgent: 'tessera-cli' });
  }

  get addr(): string {
    return this.t.addr;
  }

  private req<T>(method: string, path: string, opts: { json?: unknown; query?: Record<string, string | number | boolean | undefined> } = {}): Promise<T> {
    return this.t.request<T>(method, path, { ...opts, token: this.token });
  }

  createJoinToken(body: { spiffe_id: string; ttl?: string; labels?: Record<string, string> }) {
    return this.req<{ token: string; id: string; spiffe_id: string; expires_at: string | number }>('POST', '/v1/admin/join-tokens', { json: body });
  }
  listJoinTokens() {
    return this.req<unknown>('GET', '/v1/admin/join-tokens');
  }
  /** POST /v1/admin/operator-tokens (docs/operators.md): the value is in the answer, once. */
  createOperatorToken(body: { name: string; role?: string; ttl?: string }) {
    return this.req<{ id: string; name: string; role: string; expires_at: string | null; token: string }>('POST', '/v1/admin/operator-tokens', { json: body });
  }
  listOperatorTokens() {
    return this.req<{ tokens: Record<string, unknown>[] }>('GET', '/v1/admin/operator-tokens');
  }
  revokeOperatorToken(id: string) {
    return this.req<{ id: string; revoked: boolean }>('DELETE', `/v1/admin/operator-tokens/${encodeURIComponent(id)}`);
  }
  listAgents() {
    return this.req<unknown>('GET', '/v1/admin/agents');
  }
  /** POST /v1/admin/rotation/<path> (docs/rotation.md). */
  rotateSecret(path: string, expectedVersion?: number) {
    return this.req<{ path: string; rotator: string; from_version: number; version: number; retire_at: number | null; recovered: boolean }>('POST', `/v1/admin/rotation/${encodePath(path)}`, { json: expectedVersion !== undefined ? { expected_version: expectedVersion } : {} });
  }
  rotationStatus() {
    return this.req<{ secrets?: { path: string; rotator: string; rotator_error?: string; current_version: number; last_rotated_at: number | null; due_at: number | null; overdue: boolean; next_at: number | null; failures: number; last_error_code: string | null; in_progress: boolean }[]; overdue: number; failing: number; in_progress: number }>('GET', '/v1/admin/rotation');
  }
  putSecret(path: string, body: { value: string; mode?: string; description?: string; owner?: string; rotation_period?: string; rotator?: Record<string, unknown> }) {
    return this.req<Record<string, unknown>>('PUT', `/v1/admin/secrets/${encodePath(path)}`, { json: body });
  }
  getSecret(path: string, version?: number) {
    return this.req<Record<string, unknown>>('GET', `/v1/admin/secrets/${encodePath(path)}`, { query: { version } });
  }
  listSecrets(prefix: string) {
    return this.req<unknown>('GET', '/v1/admin/secrets', { query: { prefix } });
  }
  deleteSecret(path: string) {
    return this.req<unknown>('DELETE', `/v1/admin/secrets/${encodePath(path)}`);
  }
  policyCheck(body: { principal: { spiffe_id: string; attributes?: Record<string, string>; attestor?: string; attestor_kind?: string; scope?: string[]; task?: string; purpose?: string; user?: string }; action: string; resource: string; context?: Record<string, unknown> }) {
    return this.req<Record<string, unknown>>('POST', '/v1/admin/policy/check', { json: body });
  }
  policyStatus() {
    return this.req<Record<string, unknown>>('GET', '/v1/admin/policy/status');
  }
  createRevocation(body: { kind: string; target: string; reason?: string; ttl?: string }) {
    return this.req<Record<string, unknown>>('POST', '/v1/admin/revocations', { json: body });
  }
  listRevocations(query: { active?: boolean; kind?: string } = {}) {
    return this.req<unknown>('GET', '/v1/admin/revocations', { query });
  }
  liftRevocation(id: string) {
    return this.req<unknown>('DELETE', `/v1/admin/revocations/${encodeURIComponent(id)}`);
  }
  listLeases(query: { state?: string; irrevocable?: boolean; owner?: string }) {
    return this.req<unknown>('GET', '/v1/admin/leases', { query });
  }
  revokeLease(id: string) {
    return this.req<Record<string, unknown>>('DELETE', `/v1/admin/leases/${encodeURIComponent(id)}`);
  }
  proxyRoutes() {
    return this.req<{ enabled: boolean; listen?: string; routes: Record<string, unknown>[] }>('GET', '/v1/admin/proxy/routes');
  }
  proxyTest(body: { url: string; method?: string; agent: string; body?: Record<string, string | number | boolean> }) {
    return this.req<Record<string, unknown>>('POST', '/v1/admin/proxy/test', { json: body });
  }
  /** Drift (docs/drift.md): the report, the pinned tools, approvals. */
  drift() {
    return this.req<Record<string, unknown>>('GET', '/v1/admin/drift');
  }
  driftTools(query: { status?: string }) {
    return this.req<{ tools: Record<string, unknown>[] }>('GET', '/v1/admin/drift/tools', { query });
  }
  approveTool(body: { tool: string; digest?: string }) {
    return this.req<{ tool: Record<string, unknown> }>('POST', '/v1/admin/drift/tools/approve', { json: body });
  }
  approveEngineGroup(body: { name: string }) {
    return this.req<{ approved: string }>('POST', '/v1/admin/drift/engine/approve', { json: body });
  }
  exposure(query: { by?: string; since?: string; kind?: string }) {
    return this.req<ExposureJson>('GET', '/v1/admin/exposure', { query });
  }
  listTasks(query: { root?: string; agent?: string; sub?: string; user?: string; roots?: boolean; state?: string; since?: string; before?: string; limit?: number }) {
    return this.req<{ tasks: Record<string, unknown>[]; next?: string }>('GET', '/v1/admin/tasks', { query });
  }
  taskTree(txn: string, query: { events?: boolean } = {}) {
    return this.req<{ task: TaskNodeJson; nodes: number; truncated: Record<string, boolean> }>('GET', `/v1/admin/tasks/${encodeURIComponent(txn)}`, { query });
  }
  audit(query: { after_seq?: number; actor?: string; txn?: string; kind?: string; limit?: number }) {
    return this.req<{ events: Record<string, unknown>[]; next_seq: number }>('GET', '/v1/admin/audit', { query });
  }
  /** Starts (or joins) a verify job; poll it with auditJob(). */
  startAuditVerify(body: { full?: boolean; archives?: boolean } = {}) {
    return this.req<{ job: AuditJobJson; created?: boolean }>('POST', '/v1/admin/audit/verify', { json: body });
  }
  startAuditArchive() {
    return this.req<{ job: AuditJobJson; created?: boolean }>('POST', '/v1/admin/audit/archive', { json: {} });
  }
  auditJob(id: string) {
    return this.req<{ job: AuditJobJson }>('GET', `/v1/admin/audit/jobs/${encodeURIComponent(id)}`);
  }
  /** Checks up to 128 witnessed heads (`{seq, ts, hash, key_id, signature}`) against the server's store. */
  auditWitness(heads: readonly { seq: number; ts: number; hash: string; key_id: string; signature: string }[]) {
    return this.req<Record<string, unknown>>('POST', '/v1/admin/audit/witness', { json: { heads } });
  }
}

/** A node of GET /v1/admin/tasks/:txn (docs/tasks.md "The task tree"). */
/** GET /v1/admin/exposure (docs/exposure.md). */
export interface ExposureJson {
  generated_at: string;
  since: string;
  by: string;
  kind: string | null;
  groups: { key: string; count: number; live: number; p50_s: number; p95_s: number; max_s: number; credential_seconds: number }[];
  live: { kind: string; id: string; agent: string; task: string | null; user: string | null; issued_at: string; expires_at: string; remaining_s: number }[];
  live_total?: number;
  truncated?: boolean;
}

export interface TaskNodeJson {
  txn?: unknown;
  [k: string]: unknown;
  children?: TaskNodeJson[];
}

/** A verify/archive job as GET /v1/admin/audit/jobs/:id returns it (docs/audit.md). */
export interface AuditJobJson {
  id: string;
  kind: string;
  state: 'running' | 'done' | 'failed' | 'abandoned';
  replica?: string;
  progress?: Record<string, number>;
  result?: unknown;
  error?: { code: string; message: string };
}

/** Agent-side call used by `tessera creds` (Bearer agent token). */
export function agentTransport(options: { addr: string; fetch?: FetchLike }): Transport {
  return new Transport({ ...options, userAgent: 'tessera-cli' });
}
