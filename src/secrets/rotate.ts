import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import { TesseraError, fail } from '../shared/errors.js';
import type { Sealer } from './sealer.js';
import { dataKeyAad } from './kv.js';

/**
 * `tessera operator rotate-master-key`: re-wraps every blob sealed by the master key under a
 * new one. Three places hold such blobs:
 *  - `secret_versions.wrapped_key` (AAD `dek|<path>|<version>`; `master_key_id` says which key);
 *  - `signing_keys.sealed_private` (AAD `signing-key:<kid>`, sealed by the tokens module);
 *  - `meta` rows whose key starts with `sealed:` (value = base64 of a blob whose AAD is the
 *    meta key; the audit module keeps its HMAC and checkpoint keys there).
 * Only the small wrapped keys change; secret values (sealed with their data keys) are untouched.
 *
 * Each batch is one transaction, so a crash leaves every row either fully old or fully new.
 * Rows already under the new key are skipped (by `master_key_id`, or by trial-opening with the
 * new key where no key id is stored), which makes a second run resume and a third do nothing.
 */
export interface RotationProgress {
  readonly phase: 'secret_versions' | 'signing_keys' | 'meta';
  readonly done: number;
}

export interface RotationReport {
  readonly masterKeyId: string;
  readonly secretVersions: number;
  readonly signingKeys: number;
  readonly metaRows: number;
  /** Rows already under the new key. */
  readonly alreadyRotated: number;
  readonly rewrapped: number;
}

export interface RotateDeps {
  readonly store: Store;
  readonly oldSealer: Sealer;
  readonly newSealer: Sealer;
  readonly clock: Clock;
  /**
   * Records the rotation (the CLI always passes the installation's audit log): an intent event
   * is durable BEFORE the first row changes, and a completion event after the last (ADR 0041 —
   * the change spans many transactions, so it cannot commit with one event).
   */
  readonly audit?: AuditWriter;
  readonly onProgress?: (p: RotationProgress) => void;
  readonly batchSize?: number;
}

export const SIGNING_KEY_AAD = (kid: string): string => `signing-key:${kid}`;
export const SEALED_META_PREFIX = 'sealed:';

export async function rotateMasterKey(deps: RotateDeps): Promise<RotationReport> {
  const { store, oldSealer, newSealer } = deps;
  const batch = Math.max(1, Math.min(deps.batchSize ?? 100, 1000));
  if (oldSealer.keyId === newSealer.keyId) {
    throw fail('TESSERA_MASTER_KEY_INVALID', `the new master key is the same key as the old one (${newSealer.keyId}); generate a new key first`);
  }

  /** Re-seal under the new key, trying the new key first so resumed runs skip finished rows. */
  function reseal(blob: Buffer, aad: string, what: string): Buffer | null {
    try {
      newSealer.open(blob, aad).fill(0);
      return null;
    } catch {
      // not under the new key yet
    }
    let plain: Buffer;
    try {
      plain = oldSealer.open(blob, aad);
    } catch (e) {
      throw new TesseraError('TESSERA_SECRET_DECRYPT_FAILED', `${what} opens with neither the old master key (${oldSealer.keyId}) nor the new one (${newSealer.keyId}); rotation stopped, nothing after this row was changed`, undefined, { cause: e });
    }
    try {
      return newSealer.seal(plain, aad);
    } finally {
      plain.fill(0);
    }
  }

  await deps.audit?.append({
    kind: 'secret.master_key_rotation_started',
    actor: { id: 'system' },
    action: 'secret.rotate_master_key',
    result: 'success',
    details: { master_key_id: newSealer.keyId, previous_master_key_id: oldSealer.keyId },
  });

  // --- secret_versions: select by master_key_id, so every batch shrinks the remaining set.
  const pending = await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM secret_versions WHERE master_key_id <> ? AND destroyed_at IS NULL', [newSealer.keyId]);
  const maxBatches = Math.ceil(Number(pending?.n ?? 0) / batch) + 1;
  let secretVersions = 0;
  for (let i = 0; i < maxBatches; i++) {
    const n = await store.transaction(async (tx) => {
      const rows = await tx.all<{ path: string; version: number; wrapped_key: Buffer; master_key_id: string }>(
        'SELECT path, version, wrapped_key, master_key_id FROM secret_versions WHERE master_key_id <> ? AND destroyed_at IS NULL ORDER BY path, version LIMIT ?',
        [newSealer.keyId, batch],
      );
      for (const r of rows) {
        if (r.master_key_id !== oldSealer.keyId) {
          throw fail('TESSERA_MASTER_KEY_INVALID', `${r.path} version ${r.version} is wrapped by master key ${r.master_key_id}, which is neither the old (${oldSealer.keyId}) nor the new key; supply that key as the old key`);
        }
        const aad = dataKeyAad(r.path, Number(r.version));
        let plain: Buffer;
        try {
          plain = oldSealer.open(r.wrapped_key, aad);
        } catch (e) {
          throw new TesseraError('TESSERA_SECRET_DECRYPT_FAILED', `the data key of ${r.path} version ${r.version} does not open with the old master key (${oldSealer.keyId}); the row was altered or moved. Rotation stopped; earlier batches are committed and a rerun resumes`, undefined, { cause: e });
        }
        let sealed: Buffer;
        try {
          sealed = newSealer.seal(plain, aad);
        } finally {
          plain.fill(0);
        }
        await tx.run('UPDATE secret_versions SET wrapped_key = ?, master_key_id = ? WHERE path = ? AND version = ? AND master_key_id = ?', [sealed, newSealer.keyId, r.path, r.version, oldSealer.keyId]);
      }
      return rows.length;
    });
    secretVersions += n;
    deps.onProgress?.({ phase: 'secret_versions', done: secretVersions });
    if (n < batch) break;
  }

  let alreadyRotated = 0;

  // --- signing_keys: no key id column; keyset pagination by kid, trial-open with the new key.
  let signingKeys = 0;
  const kidCount = Number((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM signing_keys'))?.n ?? 0);
  let afterKid = '';
  for (let i = 0; i < Math.ceil(kidCount / batch) + 1; i++) {
    const page = await store.transaction(async (tx) => {
      const rows = await tx.all<{ kid: string; sealed_private: Buffer }>('SELECT kid, sealed_private FROM signing_keys WHERE kid > ? ORDER BY kid LIMIT ?', [afterKid, batch]);
      let changed = 0;
      let skipped = 0;
      for (const r of rows) {
        const next = reseal(Buffer.from(r.sealed_private), SIGNING_KEY_AAD(r.kid), `signing key ${r.kid}`);
        if (next === null) {
          skipped++;
          continue;
        }
        await tx.run('UPDATE signing_keys SET sealed_private = ? WHERE kid = ?', [next, r.kid]);
        changed++;
      }
      return { rows, changed, skipped };
    });
    signingKeys += page.changed;
    alreadyRotated += page.skipped;
    deps.onProgress?.({ phase: 'signing_keys', done: signingKeys });
    if (page.rows.length < batch) break;
    afterKid = page.rows[page.rows.length - 1]!.kid;
  }

  // --- meta `sealed:*` rows: value is base64 of the sealed blob, AAD is the meta key.
  let metaRows = 0;
  const metaCount = Number((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM meta WHERE substr(key, 1, ?) = ?', [SEALED_META_PREFIX.length, SEALED_META_PREFIX]))?.n ?? 0);
  let afterKey = '';
  for (let i = 0; i < Math.ceil(metaCount / batch) + 1; i++) {
    const page = await store.transaction(async (tx) => {
      const rows = await tx.all<{ key: string; value: string }>('SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? AND key > ? ORDER BY key LIMIT ?', [
        SEALED_META_PREFIX.length,
        SEALED_META_PREFIX,
        afterKey,
        batch,
      ]);
      let changed = 0;
      let skipped = 0;
      for (const r of rows) {
        const next = reseal(Buffer.from(r.value, 'base64'), r.key, `meta row ${r.key}`);
        if (next === null) {
          skipped++;
          continue;
        }
        await tx.run('UPDATE meta SET value = ? WHERE key = ?', [next.toString('base64'), r.key]);
        changed++;
      }
      return { rows, changed, skipped };
    });
    metaRows += page.changed;
    alreadyRotated += page.skipped;
    deps.onProgress?.({ phase: 'meta', done: metaRows });
    if (page.rows.length < batch) break;
    afterKey = page.rows[page.rows.length - 1]!.key;
  }

  const rewrapped = secretVersions + signingKeys + metaRows;
  if (deps.audit) {
    // Recorded after the data is re-wrapped; if the audit sink is down this rejects, and a rerun is a no-op that audits again.
    await deps.audit.append({
      kind: 'secret.master_key_rotated',
      actor: { id: 'system' },
      action: 'secret.rotate_master_key',
      result: 'success',
      details: { rewrapped, master_key_id: newSealer.keyId },
    });
  }
  return { masterKeyId: newSealer.keyId, secretVersions, signingKeys, metaRows, alreadyRotated, rewrapped };
}
