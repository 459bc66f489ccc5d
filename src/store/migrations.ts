/**
 * Schema migrations, written once in portable SQL. `BLOB` and `BIGINT` are rewritten per
 * dialect by the adapter (BYTEA/BIGINT on PostgreSQL, BLOB/INTEGER on SQLite).
 * Append new migrations; never edit one that has shipped. Ids are unique (often the ADR number);
 * migrations run in array order, which need not be id order.
 */
export interface Migration {
  readonly id: number;
  readonly name: string;
  readonly sql: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'core',
    sql: [
      `CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      )`,
      // Admin tokens: only a SHA-256 of the token is kept.
      `CREATE TABLE admin_tokens (
        id TEXT PRIMARY KEY,
        token_hash BLOB NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
      )`,
      // Join tokens: one-time, hashed, bound to a SPIFFE ID.
      `CREATE TABLE join_tokens (
        id TEXT PRIMARY KEY,
        token_hash BLOB NOT NULL UNIQUE,
        spiffe_id TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT
      )`,
      // Agents seen by an attestor (for /v1/admin/agents).
      `CREATE TABLE agents (
        spiffe_id TEXT PRIMARY KEY,
        attestor TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}',
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        logins BIGINT NOT NULL DEFAULT 0
      )`,
      // Token signing keys; the private JWK is sealed with the master key (see secrets/envelope).
      `CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        use_ TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        sealed_private BLOB NOT NULL,
        created_at BIGINT NOT NULL,
        activates_at BIGINT NOT NULL,
        retires_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      )`,
      `CREATE TABLE secrets (
        path TEXT PRIMARY KEY,
        current_version BIGINT NOT NULL,
        mode TEXT NOT NULL,
        description TEXT,
        owner TEXT,
        rotation_period_s BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      )`,
      `CREATE TABLE secret_versions (
        path TEXT NOT NULL,
        version BIGINT NOT NULL,
        ciphertext BLOB NOT NULL,
        wrapped_key BLOB NOT NULL,
        master_key_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        destroyed_at BIGINT,
        PRIMARY KEY (path, version)
      )`,
      `CREATE TABLE leases (
        id TEXT PRIMARY KEY,
        engine TEXT NOT NULL,
        role TEXT NOT NULL,
        path TEXT NOT NULL,
        owner_agent TEXT,
        task_id TEXT,
        user_id TEXT,
        state TEXT NOT NULL,
        engine_data TEXT NOT NULL DEFAULT '{}',
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        max_expires_at BIGINT NOT NULL,
        revoked_at BIGINT,
        revoke_attempts BIGINT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT,
        last_error TEXT
      )`,
      `CREATE INDEX leases_state_expires ON leases (state, expires_at)`,
      `CREATE INDEX leases_owner ON leases (owner_agent)`,
      `CREATE INDEX leases_task ON leases (task_id)`,
      `CREATE TABLE revocations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        reason TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        lifted_at BIGINT
      )`,
      `CREATE INDEX revocations_target ON revocations (kind, target)`,
      // Audit: append-only hash chain. seq is assigned by the writer, gap-free.
      `CREATE TABLE audit_events (
        seq BIGINT PRIMARY KEY,
        ts BIGINT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT,
        txn TEXT,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      )`,
      `CREATE INDEX audit_events_actor ON audit_events (actor, seq)`,
      `CREATE INDEX audit_events_txn ON audit_events (txn, seq)`,
      `CREATE TABLE audit_checkpoints (
        seq BIGINT PRIMARY KEY,
        ts BIGINT NOT NULL,
        hash TEXT NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL
      )`,
    ],
  },
  {
    // Leases: why a lease was revoked (expired, owner_revoked, create_failed, ...), and revoke by user.
    id: 50,
    name: 'leases_revoke_cause',
    sql: [`ALTER TABLE leases ADD COLUMN revoke_cause TEXT`, `CREATE INDEX leases_user ON leases (user_id)`, `CREATE INDEX revocations_lifted ON revocations (lifted_at)`],
  },
  {
    // Dynamic PostgreSQL engine (src/engines/postgres): configurations and roles. The management
    // connection URL is NOT here: it is sealed in meta under `sealed:engine/postgres/<name>/url`
    // (so master-key rotation re-wraps it); these columns are its non-secret parts for display.
    id: 80,
    name: 'engine_postgres',
    sql: [
      `CREATE TABLE pg_engine_configs (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        port BIGINT NOT NULL,
        dbname TEXT NOT NULL,
        username TEXT NOT NULL,
        pool_size BIGINT NOT NULL,
        connect_timeout_ms BIGINT NOT NULL,
        statement_timeout_ms BIGINT NOT NULL,
        prefix TEXT NOT NULL,
        scram_iterations BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      )`,
      `CREATE TABLE pg_engine_roles (
        name TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        group_roles TEXT NOT NULL,
        default_ttl_ms BIGINT NOT NULL,
        max_ttl_ms BIGINT NOT NULL,
        renewable BIGINT NOT NULL,
        creation_statements TEXT NOT NULL,
        revocation_statements TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      )`,
      `CREATE INDEX pg_engine_roles_config ON pg_engine_roles (config)`,
    ],
  },
  {
    // Postgres engine revocation: what happens to the objects a revoked user owns (`drop` or
    // `reassign` to `reassign_to`), see docs/adr/0071-revocation-disable-first.md.
    id: 87,
    name: 'engine_postgres_owned_objects',
    sql: [`ALTER TABLE pg_engine_roles ADD COLUMN owned_objects TEXT NOT NULL DEFAULT 'drop'`, `ALTER TABLE pg_engine_roles ADD COLUMN reassign_to TEXT`],
  },
  {
    // Task tree (src/tasks, docs/tasks.md, ADR 0100): one row per task node, written with its
    // `task.created` event. `task_ancestors` holds (ancestor, txn) for every ancestor of a node
    // AND the node itself, so a subtree is one indexed lookup (revocation drops the subtree's
    // leases with it; `audit tail --txn` shows the subtree's events).
    id: 100,
    name: 'tasks',
    sql: [
      `CREATE TABLE tasks (
        txn TEXT PRIMARY KEY,
        parent TEXT,
        root TEXT NOT NULL,
        depth BIGINT NOT NULL,
        max_depth BIGINT NOT NULL,
        sub TEXT NOT NULL,
        actor TEXT NOT NULL,
        actors TEXT NOT NULL,
        label TEXT,
        user_id TEXT,
        scope TEXT NOT NULL,
        purpose TEXT NOT NULL,
        tctx TEXT NOT NULL,
        audience TEXT NOT NULL,
        jkt TEXT,
        jti_hmac TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      )`,
      `CREATE INDEX tasks_root ON tasks (root, created_at)`,
      `CREATE INDEX tasks_parent ON tasks (parent)`,
      `CREATE INDEX tasks_created ON tasks (created_at)`,
      `CREATE INDEX tasks_actor ON tasks (actor, created_at)`,
      `CREATE INDEX tasks_user ON tasks (user_id)`,
      `CREATE TABLE task_ancestors (
        ancestor TEXT NOT NULL,
        txn TEXT NOT NULL,
        PRIMARY KEY (ancestor, txn)
      )`,
      `CREATE INDEX task_ancestors_txn ON task_ancestors (txn)`,
    ],
  },
  {
    // Tessera's authorization server (src/users/oauth, docs/users.md, ADR 0131): logins in
    // progress at the OpenID Provider (keyed by an HMAC of the state sent there; the PKCE
    // verifier and nonce are derived from the state, so nothing secret is stored), single-use
    // authorization codes and rotating refresh tokens, both stored only as HMACs.
    id: 130,
    name: 'oauth_authorization_server',
    sql: [
      `CREATE TABLE oauth_logins (
        state_hmac TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        client_state TEXT,
        code_challenge TEXT NOT NULL,
        scope TEXT NOT NULL,
        resource TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      )`,
      `CREATE TABLE oauth_codes (
        code_hmac TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        scope TEXT NOT NULL,
        resource TEXT NOT NULL,
        user_id TEXT NOT NULL,
        usr TEXT NOT NULL,
        user_expires_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        family TEXT,
        txn TEXT
      )`,
      `CREATE TABLE oauth_refresh_tokens (
        token_hmac TEXT PRIMARY KEY,
        family TEXT NOT NULL,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        resource TEXT NOT NULL,
        user_id TEXT NOT NULL,
        usr TEXT NOT NULL,
        jkt TEXT,
        state TEXT NOT NULL,
        txn TEXT,
        created_at BIGINT NOT NULL,
        family_expires_at BIGINT NOT NULL,
        idle_expires_at BIGINT NOT NULL,
        used_at BIGINT
      )`,
      `CREATE INDEX oauth_refresh_family ON oauth_refresh_tokens (family)`,
      `CREATE INDEX oauth_refresh_user ON oauth_refresh_tokens (user_id)`,
      `CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at)`,
      `CREATE INDEX oauth_logins_expires ON oauth_logins (expires_at)`,
    ],
  },
  {
    // Exposure windows (src/exposure, docs/exposure.md, ADR 0150): one row per agent token, task
    // token and injected secret use, issued → closed (revoked, or expired once the sweep has seen
    // it). `id` is the token's jti HMAC (never the token) or a `use_…` id. Lease windows are the
    // `leases` rows themselves (created_at → revoked_at); `leases_created` serves the report.
    // Open rows are few (the sweep closes expired ones), so `exposures_open` serves the closings.
    id: 150,
    name: 'exposures',
    sql: [
      `CREATE TABLE exposures (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        agent TEXT NOT NULL,
        task TEXT,
        root TEXT,
        user_id TEXT,
        resource TEXT,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        closed_at BIGINT,
        closed_by TEXT
      )`,
      `CREATE INDEX exposures_issued ON exposures (issued_at)`,
      `CREATE INDEX exposures_open ON exposures (closed_at, expires_at)`,
      `CREATE INDEX leases_created ON leases (created_at)`,
    ],
  },
  {
    // Audit retention and background jobs (docs/audit.md, ADR 0031): one signed prune statement
    // per archived segment (the statement JSON is what is signed; to_seq/from_seq are for
    // lookup only), and the state of verify/archive jobs so any replica can report them.
    id: 310,
    name: 'audit_prunes_and_jobs',
    sql: [
      `CREATE TABLE audit_prunes (
        to_seq BIGINT PRIMARY KEY,
        from_seq BIGINT NOT NULL,
        statement TEXT NOT NULL,
        signature TEXT NOT NULL,
        created_at BIGINT NOT NULL
      )`,
      `CREATE TABLE audit_jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        replica TEXT NOT NULL,
        state TEXT NOT NULL,
        params TEXT NOT NULL,
        progress TEXT NOT NULL,
        result TEXT,
        started_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        finished_at BIGINT
      )`,
      `CREATE INDEX audit_jobs_started ON audit_jobs (started_at)`,
    ],
  },
  {
    // Postgres engine roles: groups that are pg_* built-in roles or carry privileged attributes
    // only when the operator opts in (docs/adr/0064-engine-role-privileges.md).
    id: 320,
    name: 'engine_postgres_allow_privileged_groups',
    sql: [`ALTER TABLE pg_engine_roles ADD COLUMN allow_privileged_groups INTEGER NOT NULL DEFAULT 0`],
  },
  {
    // Operator tokens get a life cycle (docs/operators.md, ADR 0233): a name (unique among the
    // tokens not revoked), a role (`admin` | `auditor`), an optional expiry and who created them.
    // Existing tokens stay what they were: admins without expiry, the oldest named `init`, the
    // others `token-<n>` in creation order.
    id: 330,
    name: 'admin_token_life_cycle',
    sql: [
      `ALTER TABLE admin_tokens ADD COLUMN name TEXT NOT NULL DEFAULT 'token'`,
      `ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'`,
      `ALTER TABLE admin_tokens ADD COLUMN expires_at BIGINT`,
      `ALTER TABLE admin_tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT 'system'`,
      `UPDATE admin_tokens SET name = 'token-' || (SELECT COUNT(*) FROM admin_tokens b WHERE b.created_at < admin_tokens.created_at OR (b.created_at = admin_tokens.created_at AND b.id < admin_tokens.id))`,
      `UPDATE admin_tokens SET name = 'init' WHERE name = 'token-0'`,
      `CREATE UNIQUE INDEX admin_tokens_active_name ON admin_tokens (name) WHERE revoked_at IS NULL`,
    ],
  },
  {
    // Operator console sessions (src/console, docs/console.md, ADR 0236): only SHA-256 digests of
    // the session id (the cookie value) and of its CSRF token are kept. `token_id` is the operator
    // token a session came from (null for OIDC sessions): revoking it ends the session.
    // OIDC sign-ins in progress: keyed by the SHA-256 of `state`, taken (deleted) once; the PKCE
    // verifier and nonce are derived from the state, so the row holds nothing a reader could use.
    id: 336,
    name: 'console_sessions',
    sql: [
      `CREATE TABLE console_sessions (
        id_hash TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        via TEXT NOT NULL,
        csrf_hash TEXT NOT NULL,
        token_id TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        last_seen_at BIGINT NOT NULL,
        revoked_at BIGINT,
        end_cause TEXT
      )`,
      `CREATE INDEX console_sessions_token ON console_sessions (token_id)`,
      `CREATE INDEX console_sessions_expires ON console_sessions (expires_at)`,
      `CREATE TABLE console_oidc_logins (
        state_hash TEXT PRIMARY KEY,
        binding_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      )`,
      `CREATE INDEX console_oidc_logins_expires ON console_oidc_logins (expires_at)`,
    ],
  },
  {
    // Operator console read API (src/console, docs/console-api.md, ADR 0239). The audit event's
    // `result` gets its own column (written with every event from now on; earlier rows are filled
    // from their canonical body, where the top-level member reads `"result":"<value>"` exactly —
    // no event type has a nested `result` member), so the decisions chart (allow/deny per hour
    // over 24 h) and the audit page's `result` filter are index range scans. Keyset pagination
    // of the agents list (newest sighting first) gets its index. (Ids apply in ascending order:
    // this one follows 336.)
    id: 339,
    name: 'console_read_api',
    sql: [
      `ALTER TABLE audit_events ADD COLUMN result TEXT`,
      ...['success', 'failure', 'allow', 'deny', 'error'].map((r) => `UPDATE audit_events SET result = '${r}' WHERE result IS NULL AND body LIKE '%"result":"${r}"%'`),
      `CREATE INDEX audit_events_result_ts ON audit_events (result, ts)`,
      `CREATE INDEX audit_events_result_seq ON audit_events (result, seq)`,
      `CREATE INDEX agents_last_seen ON agents (last_seen, spiffe_id)`,
    ],
  },
  {
    // Pod lifecycle (src/k8s/pods, docs/k8s-pods.md, ADR 0266): the pods Tessera issued agent
    // tokens to (written before the first token of a pod leaves, so a watch that sees the pod go
    // knows it; `revoked_at` claims the revocation once across replicas), and the pod uid of the
    // agent that took a lease or opened a task, so a deleted pod's leases and task subtrees are
    // found with one indexed lookup.
    id: 340,
    name: 'k8s_pods',
    sql: [
      `CREATE TABLE k8s_pods (
        uid TEXT PRIMARY KEY,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        spiffe_id TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        token_expires_at BIGINT NOT NULL,
        revoked_at BIGINT,
        revoke_cause TEXT
      )`,
      `CREATE INDEX k8s_pods_open ON k8s_pods (revoked_at, namespace)`,
      `ALTER TABLE leases ADD COLUMN pod_uid TEXT`,
      `CREATE INDEX leases_pod ON leases (pod_uid)`,
      `ALTER TABLE tasks ADD COLUMN pod_uid TEXT`,
      `CREATE INDEX tasks_pod ON tasks (pod_uid)`,
      // Token windows of a pod's agents close with its revocation (ADR 0150, ADR 0266).
      `ALTER TABLE exposures ADD COLUMN pod_uid TEXT`,
      `CREATE INDEX exposures_pod ON exposures (pod_uid)`,
    ],
  },
  {
    // Secret rotation (src/rotation, docs/rotation.md, ADRs 0275–0279): the rotator named in a
    // secret's metadata (JSON, validated at the edge), the rotation job's per-secret state (last
    // success, failures and backoff, the retirement of the previous credential after the grace
    // period, the manual alert already given), and the intent row a rotation writes BEFORE any
    // external change: it claims the secret (kv puts wait for it to go) and holds the new value
    // sealed (AAD `rotation-intent|<path>|<from_version>`) until the new version is committed.
    id: 350,
    name: 'secret_rotation',
    sql: [
      `ALTER TABLE secrets ADD COLUMN rotator TEXT`,
      `CREATE TABLE rotation_state (
        path TEXT PRIMARY KEY,
        last_rotated_at BIGINT,
        last_attempt_at BIGINT,
        failures INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT,
        last_error_code TEXT,
        last_error TEXT,
        retire_version BIGINT,
        retire_ref TEXT,
        retire_at BIGINT,
        current_ref TEXT,
        rotated_at BIGINT,
        alerted_version BIGINT,
        updated_at BIGINT NOT NULL
      )`,
      `CREATE TABLE rotation_intents (
        path TEXT PRIMARY KEY,
        from_version BIGINT NOT NULL,
        owner TEXT NOT NULL,
        sealed BLOB,
        master_key_id TEXT,
        ref TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      )`,
    ],
  },
  {
    // Drift (src/drift, docs/drift.md, ADR 0281): what was approved, per kind of subject — an
    // upstream tool's definition (`tool`, subject `<server>/<tool>`), an engine group role's
    // privileges (`engine`, `<config>/<group>`), the loaded policy set (`policy`, `set`).
    // `approved_*` is null for a tool seen under require_approval and never approved;
    // `observed_*` is set while what runs differs from the approval (one audit event per
    // distinct observed digest: the conditional update decides which replica writes it).
    // Only digests are kept (per field in `*_parts`, JSON), never the upstream's text.
    id: 360,
    name: 'drift_pins',
    sql: [
      `CREATE TABLE drift_pins (
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        approved_digest TEXT,
        approved_parts TEXT,
        approved_at BIGINT,
        approved_by TEXT,
        observed_digest TEXT,
        observed_parts TEXT,
        observed_at BIGINT,
        first_seen_at BIGINT NOT NULL,
        PRIMARY KEY (kind, subject)
      )`,
    ],
  },
  {
    // Secret hygiene (docs/drift.md "Secret hygiene"): when a secret was last read or injected,
    // written at most once per hour per path off the request path (src/drift/reads.ts).
    id: 361,
    name: 'secrets_last_read',
    sql: [`ALTER TABLE secrets ADD COLUMN last_read_at BIGINT`],
  },
  {
    // Live leases (src/exposure/store.ts LEASE_LIVE and HANDED_OUT, ADR 0286): the leases whose
    // backend credential may exist and was handed out — the overview's and the metrics' live
    // count, the exposure report's live list and live_total — from a partial index holding only
    // them (not the lease history), covering those reads: the count walks it without touching
    // the table, the live list sorts its entries and reads only the rows it returns. The WHERE
    // repeats the queries' own terms, so both stores see that it applies. (Id after the
    // console's ADR numbers; ids apply in ascending order.)
    id: 386,
    name: 'leases_live_index',
    sql: [
      `CREATE INDEX leases_live ON leases (expires_at, id, state, revoke_cause)
        WHERE state IN ('active', 'revoking', 'disabled', 'irrevocable') AND state <> 'pending' AND (revoke_cause IS NULL OR revoke_cause NOT IN ('create_failed', 'abandoned_intent'))`,
    ],
  },
];
