import { randomBytes } from 'node:crypto';
import { refusalOf, type RequestAuthorizer } from '../pipeline/authorize.js';
import { z } from 'zod';
import type { Store, SqlExecutor } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditActor, AuditWhere } from '../audit/events.js';
import type { PolicyAction } from '../policy/types.js';
import type { AgentPrincipal } from '../shared/principal.js';
import { TesseraError, fail } from '../shared/errors.js';
import { parseInput } from '../server/validate.js';
import { aesGcmOpen, aesGcmSeal, type Sealer } from './sealer.js';
import { parseSecretPath, parseSecretPrefix, type SecretPath } from './path.js';
import { SECRET_MODES, type SecretMode } from './modes.js';
import { NEXT_STEPS } from '../shared/next-steps.js';
import { rotatorFromJson } from '../rotation/options.js';

/**
 * The `kv` engine: static secrets at hierarchical paths, versioned, encrypted before they
 * reach the store.
 *
 * Envelope encryption (NIST SP 800-38D, AES-256-GCM): every version gets its own random
 * 32-byte data key; the value is sealed with it under AAD `kv|<path>|<version>`, and the data
 * key is wrapped by the master sealer under AAD `dek|<path>|<version>` (the sealer prefixes its
 * key id). A ciphertext or wrapped key copied to another path or version fails to open.
 * Version numbers are never reused, even after a delete, so an old ciphertext can never be
 * replayed under a new row's AAD.
 */
export { SECRET_MODES, type SecretMode } from './modes.js';

export interface SecretMetaInput {
  readonly description?: string | null;
  readonly owner?: string | null;
  /** `inject` (default): never returned to an agent; `read`: agents may read it if policy allows. */
  readonly mode?: SecretMode;
  /** How often the value should be rotated; whole seconds, null clears it. */
  readonly rotationPeriodMs?: number | null;
  /** The rotator (src/rotation/options.ts) as its stored JSON; null clears it. */
  readonly rotator?: string | null;
}

/**
 * A write made by the rotation job (src/rotation): the version it replaces must still be
 * current, and `inTx` runs in the same transaction as the new version (the intent row is
 * removed and the rotation state updated atomically with it).
 */
export interface RotationWrite {
  readonly fromVersion: number;
  readonly inTx?: (tx: SqlExecutor, version: number) => Promise<void>;
}

export interface SecretVersionInfo {
  readonly version: number;
  readonly createdAt: number;
  readonly destroyed: boolean;
}

export interface SecretMetadata {
  readonly path: string;
  readonly currentVersion: number;
  readonly mode: SecretMode;
  readonly description: string | null;
  readonly owner: string | null;
  readonly rotationPeriodMs: number | null;
  /** When the current version is due for rotation (its creation + the period), or null. */
  readonly rotationDueAt: number | null;
  /** The rotator (parsed JSON as stored), or null. */
  readonly rotator: Record<string, unknown> | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Present on `metadata()`; omitted by `list()`. */
  readonly versions?: readonly SecretVersionInfo[];
}

export interface SecretValue {
  readonly path: string;
  readonly version: number;
  readonly value: string;
  readonly metadata: SecretMetadata;
}

/** Who acts, for the audit event. */
export interface AuditContext {
  readonly actor: AuditActor;
  readonly where?: AuditWhere;
  readonly purpose?: string;
}

export interface KvService {
  /** Refused with TESSERA_ROTATION_IN_PROGRESS while a rotation holds the secret (unless `rotation` is that rotation's own write). */
  put(path: string, value: string, meta: SecretMetaInput | undefined, ctx: AuditContext, rotation?: RotationWrite): Promise<{ path: SecretPath; version: number }>;
  /** Internal/admin read. Audited as `secret.read` when `ctx` is given. */
  get(path: string, options?: { version?: number; ctx?: AuditContext }): Promise<SecretValue>;
  /** Agent read: `read`-mode secrets only, and only if policy permits `secret.read`. Always audited. */
  readForAgent(principal: AgentPrincipal, path: string, authorizer: RequestAuthorizer, where?: AuditWhere): Promise<{ path: SecretPath; version: number; value: string }>;
  /** Gateway/proxy: the value to inject, if policy permits `secret.inject` (any mode). Always audited. */
  resolveForInjection(principal: AgentPrincipal, path: string, authorizer: RequestAuthorizer, where?: AuditWhere): Promise<{ path: SecretPath; version: number; value: string }>;
  metadata(path: string): Promise<SecretMetadata>;
  /** Metadata of the secrets at or under `prefix` ('' = all), ordered by path; never values. */
  list(prefix?: string, options?: { limit?: number }): Promise<{ secrets: SecretMetadata[]; truncated: boolean }>;
  updateMetadata(path: string, patch: SecretMetaInput, ctx: AuditContext): Promise<SecretMetadata>;
  /** Deletes the secret and destroys every version (ciphertext and wrapped key wiped). */
  delete(path: string, ctx: AuditContext): Promise<{ path: SecretPath; versionsDestroyed: number }>;
}

export interface KvDeps {
  readonly store: Store;
  /** The current master key: wraps new data keys. */
  readonly sealer: Sealer;
  /** Earlier master keys still accepted for reading, while `rotate-master-key` runs. */
  readonly previousSealers?: readonly Sealer[];
  readonly clock: Clock;
  readonly audit: AuditWriter;
  /** Largest value accepted, in UTF-8 bytes (default 32 KiB). */
  readonly maxValueBytes?: number;
  /** Told of every agent read or injection that succeeded (drift's last-read record, src/drift/reads.ts); must not block. */
  readonly onRead?: (path: string) => void;
}

export const DEFAULT_MAX_VALUE_BYTES = 32 * 1024;
export const LIST_LIMIT_MAX = 1000;

/** AAD of a value sealed with its data key. */
export const valueAad = (path: string, version: number): string => `kv|${path}|${version}`;
/** AAD of a data key wrapped by the master key (the sealer prefixes its key id). */
export const dataKeyAad = (path: string, version: number): string => `dek|${path}|${version}`;

/** Metadata fields as accepted at the edge (HTTP, CLI). */
export const secretMetaSchema = z.object({
  description: z.string().max(1024).nullable().optional(),
  owner: z.string().max(256).nullable().optional(),
  mode: z.enum(SECRET_MODES).optional(),
  rotationPeriodMs: z.number().int().min(1000).max(10 * 366 * 86_400_000).refine((ms) => ms % 1000 === 0, 'must be whole seconds').nullable().optional(),
  rotator: z.string().max(4096).nullable().optional(),
}).strict();

interface SecretRow {
  path: string;
  current_version: number;
  mode: string;
  description: string | null;
  owner: string | null;
  rotation_period_s: number | null;
  rotator?: string | null;
  created_at: number;
  updated_at: number;
  current_created_at?: number | null;
}

interface VersionRow {
  version: number;
  ciphertext: Buffer;
  wrapped_key: Buffer;
  master_key_id: string;
  created_at: number;
  destroyed_at: number | null;
}

const SECRET_COLUMNS = 's.path, s.current_version, s.mode, s.description, s.owner, s.rotation_period_s, s.rotator, s.created_at, s.updated_at, v.created_at AS current_created_at';
const SECRET_FROM = 'secrets s LEFT JOIN secret_versions v ON v.path = s.path AND v.version = s.current_version';

export function createKvService(deps: KvDeps): KvService {
  const { store, sealer, clock, audit } = deps;
  const maxValueBytes = deps.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  const sealers = new Map<string, Sealer>([[sealer.keyId, sealer]]);
  for (const s of deps.previousSealers ?? []) if (!sealers.has(s.keyId)) sealers.set(s.keyId, s);

  function checkValue(value: unknown): string {
    if (typeof value !== 'string') throw fail('TESSERA_SECRET_VALUE_INVALID', 'the secret value must be a string');
    if (value.length === 0) throw fail('TESSERA_SECRET_VALUE_INVALID', 'the secret value must not be empty');
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > maxValueBytes) throw fail('TESSERA_SECRET_VALUE_INVALID', `the secret value is ${bytes} bytes; the limit is ${maxValueBytes} bytes (UTF-8)`);
    return value;
  }

  function checkMeta(meta: SecretMetaInput | undefined): SecretMetaInput {
    const m = parseInput(secretMetaSchema, meta ?? {}, 'secret metadata');
    if (typeof m.rotator === 'string') rotatorFromJson(m.rotator);
    return m;
  }

  /** A rotation holds the secret (src/rotation): other writes wait until it committed. */
  async function refuseDuringRotation(ex: SqlExecutor, path: SecretPath): Promise<void> {
    const held = await ex.get<{ from_version: number }>('SELECT from_version FROM rotation_intents WHERE path = ?', [path]);
    if (held) throw fail('TESSERA_ROTATION_IN_PROGRESS', `${path} is being rotated (from version ${Number(held.from_version)}); retry once the rotation committed (tessera kv rotation status)`);
  }

  function parseStoredRotator(text: string | null | undefined): Record<string, unknown> | null {
    if (!text) return null;
    try {
      const v = JSON.parse(text) as unknown;
      return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  }

  function toMetadata(row: SecretRow, versions?: SecretVersionInfo[]): SecretMetadata {
    const rotationPeriodMs = row.rotation_period_s === null ? null : Number(row.rotation_period_s) * 1000;
    const base = row.current_created_at ?? row.updated_at;
    return {
      path: row.path,
      currentVersion: Number(row.current_version),
      mode: row.mode === 'read' ? 'read' : 'inject',
      description: row.description,
      owner: row.owner,
      rotationPeriodMs,
      rotationDueAt: rotationPeriodMs === null ? null : Number(base) + rotationPeriodMs,
      rotator: parseStoredRotator(row.rotator),
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
      ...(versions ? { versions } : {}),
    };
  }

  async function loadSecret(ex: SqlExecutor, path: SecretPath): Promise<SecretRow | undefined> {
    return ex.get<SecretRow & Record<string, unknown>>(`SELECT ${SECRET_COLUMNS} FROM ${SECRET_FROM} WHERE s.path = ?`, [path]);
  }

  async function requireSecret(path: SecretPath): Promise<SecretRow> {
    const row = await loadSecret(store, path);
    if (!row) {
      const step = NEXT_STEPS.listSecrets();
      throw fail('TESSERA_SECRET_NOT_FOUND', `no secret at ${path}; list what exists with ${step.route}`, { next_step: step });
    }
    return row;
  }

  /** Opens one version: unwrap the data key with the master key that wrapped it, then the value. */
  function openVersion(path: SecretPath, row: VersionRow): string {
    const version = Number(row.version);
    if (row.destroyed_at !== null) throw fail('TESSERA_SECRET_NOT_FOUND', `version ${version} of ${path} was destroyed`);
    const s = sealers.get(row.master_key_id);
    if (!s) {
      throw fail(
        'TESSERA_SECRET_DECRYPT_FAILED',
        `version ${version} of ${path} is wrapped by master key ${row.master_key_id}, but the loaded master key is ${sealer.keyId}; load the right key or finish \`tessera operator rotate-master-key\``,
      );
    }
    const dek = s.open(row.wrapped_key, dataKeyAad(path, version));
    try {
      return aesGcmOpen(dek, row.ciphertext, valueAad(path, version)).toString('utf8');
    } finally {
      dek.fill(0);
    }
  }

  async function readVersion(path: SecretPath, version: number): Promise<VersionRow> {
    const row = await store.get<VersionRow & Record<string, unknown>>(
      'SELECT version, ciphertext, wrapped_key, master_key_id, created_at, destroyed_at FROM secret_versions WHERE path = ? AND version = ?',
      [path, version],
    );
    if (!row) throw fail('TESSERA_SECRET_NOT_FOUND', `${path} has no version ${version}`);
    return row;
  }

  function agentActor(p: AgentPrincipal): AuditActor {
    return { id: p.spiffeId, ...(p.chain ? { chain: p.chain } : {}), ...(p.user ? { user: p.user } : {}) };
  }

  /** Shared by the two agent paths: policy first (so an unauthorised caller learns nothing about the path), then mode, then decrypt. */
  async function agentRead(principal: AgentPrincipal, rawPath: string, authorizer: RequestAuthorizer, action: PolicyAction, where: AuditWhere | undefined) {
    const path = parseSecretPath(rawPath);
    const base = {
      kind: 'secret.read' as const,
      actor: agentActor(principal),
      action,
      resource: `secret:${path}`,
      ...(principal.task ? { txn: principal.task } : {}),
      ...(principal.purpose ? { purpose: principal.purpose } : {}),
      ...(where ? { where } : {}),
    };
    // The request pipeline: the token scope (`secret:<path-glob>`) ∩ Cedar for the acting agent.
    const request = { principal, action, resource: { type: 'Secret', path } } as const;
    const decision = authorizer.authorize(request);
    if (!decision.allowed) {
      const err = refusalOf(decision, request);
      await audit.append({ ...base, result: 'deny', reason: { policies: decision.policies, code: err.code }, details: {} });
      throw err;
    }
    const secret = await loadSecret(store, path);
    if (!secret) {
      await audit.append({ ...base, result: 'failure', reason: { policies: decision.policies, code: 'TESSERA_SECRET_NOT_FOUND' }, details: {} });
      throw fail('TESSERA_SECRET_NOT_FOUND', `no secret at ${path}`);
    }
    if (action === 'secret.read' && secret.mode !== 'read') {
      await audit.append({ ...base, result: 'deny', reason: { policies: decision.policies, code: 'TESSERA_SECRET_NOT_READABLE' }, details: { mode: secret.mode } });
      throw fail('TESSERA_SECRET_NOT_READABLE', `${path} is an inject-mode secret: only the gateway and proxy use it; an operator can switch it to mode "read" if agents must see the value`);
    }
    const version = Number(secret.current_version);
    let value: string;
    try {
      value = openVersion(path, await readVersion(path, version));
    } catch (e) {
      const code = e instanceof TesseraError ? e.code : 'TESSERA_INTERNAL';
      await audit.append({ ...base, result: 'error', reason: { policies: decision.policies, code }, details: { version } });
      throw e;
    }
    // Audit fails closed: the value is returned only once the read is recorded.
    await audit.append({ ...base, result: 'success', reason: { policies: decision.policies }, details: { version, mode: secret.mode } });
    deps.onRead?.(path);
    return { path, version, value };
  }

  function ctxFields(ctx: AuditContext) {
    return { actor: ctx.actor, ...(ctx.where ? { where: ctx.where } : {}), ...(ctx.purpose ? { purpose: ctx.purpose } : {}) };
  }

  return {
    async put(rawPath, rawValue, rawMeta, ctx, rotation) {
      const path = parseSecretPath(rawPath);
      const value = checkValue(rawValue);
      const meta = checkMeta(rawMeta);
      const now = clock.now();
      // The new version and its `secret.written` event commit together (ADR 0041).
      const result = await audit.commit(store, async (tx) => {
        const existing = await tx.get<{ mode: string; description: string | null; owner: string | null; rotation_period_s: number | null; rotator: string | null; current_version: number }>(
          'SELECT mode, description, owner, rotation_period_s, rotator, current_version FROM secrets WHERE path = ?',
          [path],
        );
        if (rotation) {
          if (!existing || Number(existing.current_version) !== rotation.fromVersion) {
            throw fail('TESSERA_ROTATION_CONFLICT', `${path} is no longer at version ${rotation.fromVersion}; the rotation was not stored`);
          }
        } else {
          await refuseDuringRotation(tx, path);
        }
        // MAX over all versions, destroyed ones included: a version number is never reused.
        const max = await tx.get<{ v: number | null }>('SELECT MAX(version) AS v FROM secret_versions WHERE path = ?', [path]);
        const version = Number(max?.v ?? 0) + 1;
        const mode = meta.mode ?? (existing?.mode === 'read' ? 'read' : 'inject');
        const description = meta.description !== undefined ? meta.description : (existing?.description ?? null);
        const owner = meta.owner !== undefined ? meta.owner : (existing?.owner ?? null);
        const rotationS = meta.rotationPeriodMs !== undefined ? (meta.rotationPeriodMs === null ? null : meta.rotationPeriodMs / 1000) : (existing?.rotation_period_s ?? null);
        const rotator = meta.rotator !== undefined ? meta.rotator : (existing?.rotator ?? null);

        const dek = randomBytes(32);
        const plain = Buffer.from(value, 'utf8');
        let ciphertext: Buffer;
        let wrapped: Buffer;
        try {
          ciphertext = aesGcmSeal(dek, plain, valueAad(path, version));
          wrapped = sealer.seal(dek, dataKeyAad(path, version));
        } finally {
          dek.fill(0);
          plain.fill(0);
        }
        await tx.run(
          'INSERT INTO secret_versions (path, version, ciphertext, wrapped_key, master_key_id, created_at) VALUES (?, ?, ?, ?, ?, ?)',
          [path, version, ciphertext, wrapped, sealer.keyId, now],
        );
        if (existing) {
          await tx.run(
            'UPDATE secrets SET current_version = ?, mode = ?, description = ?, owner = ?, rotation_period_s = ?, rotator = ?, updated_at = ? WHERE path = ?',
            [version, mode, description, owner, rotationS, rotator, now, path],
          );
        } else {
          await tx.run(
            'INSERT INTO secrets (path, current_version, mode, description, owner, rotation_period_s, rotator, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [path, version, mode, description, owner, rotationS, rotator, now, now],
          );
        }
        await rotation?.inTx?.(tx, version);
        return { version, mode };
      }, (r) => ({ kind: 'secret.written', ...ctxFields(ctx), action: 'secret.write', resource: `secret:${path}`, result: 'success', details: { version: r.version, mode: r.mode } }));
      return { path, version: result.version };
    },

    async get(rawPath, options = {}) {
      const path = parseSecretPath(rawPath);
      if (options.version !== undefined && (!Number.isSafeInteger(options.version) || options.version < 1)) {
        throw fail('TESSERA_REQUEST_INVALID', 'version must be a positive integer');
      }
      const secret = await requireSecret(path);
      const version = options.version ?? Number(secret.current_version);
      const value = openVersion(path, await readVersion(path, version));
      if (options.ctx) {
        await audit.append({ kind: 'secret.read', ...ctxFields(options.ctx), action: 'secret.admin_read', resource: `secret:${path}`, result: 'success', details: { version, mode: secret.mode } });
      }
      return { path, version, value, metadata: toMetadata(secret) };
    },

    readForAgent: (principal, path, authorizer, where) => agentRead(principal, path, authorizer, 'secret.read', where),
    resolveForInjection: (principal, path, authorizer, where) => agentRead(principal, path, authorizer, 'secret.inject', where),

    async metadata(rawPath) {
      const path = parseSecretPath(rawPath);
      const secret = await requireSecret(path);
      const versions = await store.all<{ version: number; created_at: number; destroyed_at: number | null }>(
        'SELECT version, created_at, destroyed_at FROM secret_versions WHERE path = ? ORDER BY version',
        [path],
      );
      return toMetadata(secret, versions.map((v) => ({ version: Number(v.version), createdAt: Number(v.created_at), destroyed: v.destroyed_at !== null })));
    },

    async list(rawPrefix = '', options = {}) {
      const prefix = parseSecretPrefix(rawPrefix);
      const limit = Math.min(Math.max(1, Math.trunc(options.limit ?? LIST_LIMIT_MAX)), LIST_LIMIT_MAX);
      // substr() instead of LIKE: `_` is a legal path character and a LIKE wildcard; and
      // byte-wise range scans are not portable across PostgreSQL collations.
      const where = prefix === '' ? '' : ' WHERE s.path = ? OR substr(s.path, 1, ?) = ?';
      const params = prefix === '' ? [] : [prefix, prefix.length + 1, `${prefix}/`];
      const rows = await store.all<SecretRow & Record<string, unknown>>(`SELECT ${SECRET_COLUMNS} FROM ${SECRET_FROM}${where} ORDER BY s.path LIMIT ?`, [...params, limit + 1]);
      return { secrets: rows.slice(0, limit).map((r) => toMetadata(r)), truncated: rows.length > limit };
    },

    async updateMetadata(rawPath, patch, ctx) {
      const path = parseSecretPath(rawPath);
      const meta = checkMeta(patch);
      const now = clock.now();
      const sets: string[] = [];
      const params: (string | number | null)[] = [];
      const set = (column: string, v: string | number | null): void => {
        sets.push(`${column} = ?`);
        params.push(v);
      };
      if (meta.mode !== undefined) set('mode', meta.mode);
      if (meta.description !== undefined) set('description', meta.description);
      if (meta.owner !== undefined) set('owner', meta.owner);
      if (meta.rotationPeriodMs !== undefined) set('rotation_period_s', meta.rotationPeriodMs === null ? null : meta.rotationPeriodMs / 1000);
      if (meta.rotator !== undefined) set('rotator', meta.rotator);
      sets.push('updated_at = ?');
      params.push(now);
      const secret = await audit.commit(store, async (tx) => {
        const { changes } = await tx.run(`UPDATE secrets SET ${sets.join(', ')} WHERE path = ?`, [...params, path]);
        if (changes === 0) throw fail('TESSERA_SECRET_NOT_FOUND', `no secret at ${path}`);
        return (await loadSecret(tx, path))!;
      }, (row) => ({ kind: 'secret.metadata_updated', ...ctxFields(ctx), action: 'secret.metadata', resource: `secret:${path}`, result: 'success', details: { mode: row.mode } }));
      return toMetadata(secret);
    },

    async delete(rawPath, ctx) {
      const path = parseSecretPath(rawPath);
      const now = clock.now();
      const event = { kind: 'secret.deleted', ...ctxFields(ctx), action: 'secret.delete', resource: `secret:${path}`, result: 'success', details: {} } as const;
      const destroyed = await audit.commit(store, async (tx) => {
        await refuseDuringRotation(tx, path);
        const { changes } = await tx.run('DELETE FROM secrets WHERE path = ?', [path]);
        if (changes === 0) throw fail('TESSERA_SECRET_NOT_FOUND', `no secret at ${path}`);
        await tx.run('DELETE FROM rotation_state WHERE path = ?', [path]);
        // Crypto-shredding: the wrapped data key is what makes a ciphertext readable; both are
        // overwritten with empty blobs. The rows stay as tombstones so version numbers are never reused.
        const r = await tx.run('UPDATE secret_versions SET ciphertext = ?, wrapped_key = ?, destroyed_at = ? WHERE path = ? AND destroyed_at IS NULL', [
          Buffer.alloc(0),
          Buffer.alloc(0),
          now,
          path,
        ]);
        return r.changes;
      }, event);
      return { path, versionsDestroyed: destroyed };
    },
  };
}
