/**
 * The rotation service (docs/rotation.md, ADRs 0275–0279): rotates a secret now
 * (`rotate`), runs the job's pass over every secret with a rotator (`pass`, leader-locked in
 * `runOnce`), and reports status and health.
 *
 * One rotation, crash-safe like the leases' intent rows (ADR 0275):
 *  1. claim: in one transaction, the current version is still the one read (else
 *     TESSERA_ROTATION_CONFLICT) and the intent row is inserted (if one exists:
 *     TESSERA_ROTATION_IN_PROGRESS). From here `kv put` / `kv rm` of the secret are refused.
 *  2. a locally generated value is sealed into the intent BEFORE the source changes;
 *  3. the rotator applies it (or, `http`, the source returns it and it is sealed right after);
 *  4. commit: the new version, the intent's removal and the state row in ONE transaction
 *     (kv's own, with its `secret.written` event).
 * A failure after the value was sealed keeps the intent (released): the next attempt resumes
 * with the same value — the working credential is never lost. A failure before anything was
 * sent drops it. Failures are counted, retried with exponential backoff, audited and shown.
 */
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/port.js';
import type { Clock } from '../shared/clock.js';
import type { AuditWriter } from '../audit/port.js';
import type { AuditActor, AuditWhere } from '../audit/events.js';
import type { Logger } from '../shared/logger.js';
import type { MetricsRegistry } from '../shared/metrics.js';
import type { KvService } from '../secrets/kv.js';
import type { Sealer } from '../secrets/sealer.js';
import type { EnginePasswords } from '../engines/postgres/engine.js';
import { parseSecretPath } from '../secrets/path.js';
import { fail, isTesseraError, TesseraError } from '../shared/errors.js';
import type { RotationConfig } from './config.js';
import { parseRotator, rotatorFromJson, rotatorToJson, type RotatorKind, type RotatorSpec } from './options.js';
import { backoffMs, dueAt, eachLimited, nextEventAt, shouldAttempt } from './schedule.js';
import { loadOne, loadRotated, patchState, readIntent, type SecretRotationRow } from './rows.js';
import { BEFORE_EFFECT_CODES, type Rotator } from './rotators/types.js';
import { engineRootRotator, postgresStaticRotator } from './rotators/postgres.js';
import { httpRotator } from './rotators/http.js';
import { manualRotator } from './rotators/manual.js';
import type { SsrfGuard } from '../proxy/ssrf.js';

export const LEADER_LOCK = 'tessera-rotation';
/** An intent not updated for this long, held by no run of this process, was abandoned by a crashed replica. */
export const DEFAULT_STALE_MS = 5 * 60_000;
/** How long /readyz reuses a rotation health summary (ms). */
const HEALTH_CACHE_MS = 5000;
/** Secrets looked at per pass. */
const PASS_LIMIT = 100_000;

export interface RotationDeps {
  readonly store: Store;
  readonly kv: KvService;
  readonly sealer: Sealer;
  readonly clock: Clock;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  readonly config: RotationConfig;
  readonly engines?: EnginePasswords;
  readonly metrics?: MetricsRegistry;
  /** True on the embedded store: this process is the only one, every foreign intent was abandoned. */
  readonly singleProcess: boolean;
  readonly staleMs?: number;
  readonly guard?: SsrfGuard;
}

export interface RotateOptions {
  readonly expectedVersion?: number;
  readonly actor?: AuditActor;
  readonly where?: AuditWhere;
}

export interface RotationResult {
  readonly path: string;
  readonly rotator: RotatorKind;
  readonly from_version: number;
  readonly version: number;
  readonly retire_at: number | null;
  readonly recovered: boolean;
}

export interface PassReport {
  readonly examined: number;
  readonly rotated: number;
  readonly failed: number;
  readonly retired: number;
  readonly alerted: number;
}

export interface StatusEntry {
  readonly path: string;
  readonly rotator: string;
  readonly rotator_error?: string;
  readonly current_version: number;
  readonly rotation_period_s: number | null;
  readonly last_rotated_at: number | null;
  readonly due_at: number | null;
  readonly overdue: boolean;
  readonly next_at: number | null;
  readonly failures: number;
  readonly next_attempt_at: number | null;
  readonly last_error_code: string | null;
  readonly retire_at: number | null;
  readonly in_progress: boolean;
}

export interface RotationHealth {
  readonly overdue: number;
  readonly in_progress: number;
  readonly failing: readonly { path: string; failures: number; code: string | null }[];
}

export interface RotationService {
  rotate(path: string, options?: RotateOptions): Promise<RotationResult>;
  /** One pass over every secret with a rotator (no lock: `runOnce` takes it). */
  pass(): Promise<PassReport>;
  /** `pass` under the cluster-wide leader lock; `{ leader: false }` when another replica holds it. */
  runOnce(): Promise<{ leader: true; value: PassReport } | { leader: false }>;
  status(): Promise<StatusEntry[]>;
  /** For /readyz: reused for 5 s. */
  health(): Promise<RotationHealth>;
  /** The same, read now. */
  healthNow(): Promise<RotationHealth>;
  /** Validates a rotator from the edge and returns the JSON to store (src/secrets/routes.ts). */
  checkRotator(input: unknown): string;
  start(intervalMs?: number): void;
  stop(): Promise<void>;
}

const SYSTEM: AuditActor = { id: 'system' };
const intentAad = (path: string, fromVersion: number): string => `rotation-intent|${path}|${fromVersion}`;

export function createRotationService(deps: RotationDeps): RotationService {
  const { store, kv, sealer, clock, audit, logger, config } = deps;
  const staleMs = deps.staleMs ?? DEFAULT_STALE_MS;
  const endpointNames = new Set(Object.keys(config.http_rotators));
  const retry = { initialMs: config.retry.initial, maxMs: config.retry.max };
  const abort = new AbortController();
  const rotators: Record<RotatorKind, Rotator> = {
    'postgres-static': postgresStaticRotator(deps.engines) as Rotator,
    'engine-root': engineRootRotator(deps.engines) as Rotator,
    http: httpRotator({
      endpoints: config.http_rotators,
      readClientSecret: async (path, endpoint) => (await kv.get(path, { ctx: { actor: SYSTEM, purpose: `credential of http rotator ${endpoint}` } })).value,
      ...(deps.guard ? { guard: deps.guard } : {}),
    }) as Rotator,
    manual: manualRotator as Rotator,
  };
  const m = deps.metrics;
  const failuresTotal = m?.counter('tessera_rotation_failures_total', 'Failed rotation steps, by rotator and stage (generate, apply, seal, store, resume, retire, config)');
  const rotationsTotal = m?.counter('tessera_rotations_total', 'Rotations committed, by rotator');
  const overdueGauge = m?.gauge('tessera_rotation_overdue_secrets', 'Secrets with a rotator past their due time (as of the last pass or status)');
  /** Paths rotating in this process, and the run ids of the intents it holds. */
  const active = new Set<string>();
  const localRuns = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let healthCache: { at: number; value: Promise<RotationHealth> } | undefined;

  const appendQuietly = (event: Parameters<AuditWriter['append']>[0]): Promise<void> =>
    audit.append(event).then(() => undefined, (e: unknown) => logger.error({ err: (e as Error).message, kind: event.kind }, 'rotation audit event not recorded'));

  function resumable(owner: string, updatedAt: number, now: number): boolean {
    if (owner === '') return true;
    if (localRuns.has(owner)) return false;
    return deps.singleProcess || now - updatedAt > staleMs;
  }

  async function sealIntent(path: string, fromVersion: number, runId: string, value: string, ref: string | null): Promise<void> {
    const plain = Buffer.from(value, 'utf8');
    try {
      const sealed = sealer.seal(plain, intentAad(path, fromVersion));
      await store.run('UPDATE rotation_intents SET sealed = ?, master_key_id = ?, ref = ?, updated_at = ? WHERE path = ? AND owner = ?', [sealed, sealer.keyId, ref, clock.now(), path, runId]);
    } finally {
      plain.fill(0);
    }
  }

  function openIntent(path: string, fromVersion: number, sealed: Buffer, keyId: string | null): string {
    if (keyId !== sealer.keyId) throw fail('TESSERA_SECRET_DECRYPT_FAILED', `the rotation intent of ${path} is sealed by master key ${keyId ?? '?'}, not the loaded ${sealer.keyId}`);
    const plain = sealer.open(sealed, intentAad(path, fromVersion));
    try {
      return plain.toString('utf8');
    } finally {
      plain.fill(0);
    }
  }

  /** After a failure: keep the intent (released, resumable at once) when the value may be in use at the source, else drop it. */
  async function releaseOrDrop(path: string, runId: string, keep: boolean): Promise<void> {
    const sql = keep ? "UPDATE rotation_intents SET owner = '', updated_at = ? WHERE path = ? AND owner = ?" : 'DELETE FROM rotation_intents WHERE path = ? AND owner = ?';
    await store.run(sql, keep ? [clock.now(), path, runId] : [path, runId]).catch((e: unknown) => logger.error({ err: (e as Error).message, path }, 'rotation intent not released'));
  }

  async function recordFailure(row: SecretRotationRow, kind: string, stage: string, e: unknown): Promise<void> {
    const now = clock.now();
    const failures = row.state.failures + 1;
    const next = now + backoffMs(failures, retry);
    const code = isTesseraError(e) ? e.code : 'TESSERA_INTERNAL';
    const message = isTesseraError(e) ? e.message.slice(0, 300) : 'internal error (see the server log)';
    if (!isTesseraError(e)) logger.error({ err: (e as Error)?.message, path: row.path }, 'rotation failed');
    await patchState(store, row.path, { failures, next_attempt_at: next, last_attempt_at: now, last_error_code: code, last_error: message }, now).catch((err: unknown) => logger.error({ err: (err as Error).message, path: row.path }, 'rotation state not recorded'));
    failuresTotal?.inc({ rotator: kind, stage });
    await appendQuietly({ kind: 'rotation.failed', actor: SYSTEM, action: 'secret.rotate', resource: `secret:${row.path}`, result: 'failure', reason: { code, message }, details: { rotator: kind, from_version: row.currentVersion, failures, next_attempt_at: next, stage } });
  }

  async function commit(row: SecretRotationRow, spec: RotatorSpec, rotator: Rotator, value: string, ref: string | null, recovered: boolean, opts: RotateOptions): Promise<RotationResult> {
    const now = clock.now();
    const grace = 'grace_period' in spec && spec.grace_period !== undefined ? spec.grace_period : config.grace_period;
    const retireAt = rotator.retire ? now + grace : null;
    const stored = rotator.stored?.(spec, value, now) ?? value;
    const ctx = { actor: opts.actor ?? SYSTEM, ...(opts.where ? { where: opts.where } : {}), purpose: `rotation (${spec.kind})` };
    const r = await kv.put(row.path, stored, undefined, ctx, {
      fromVersion: row.currentVersion,
      inTx: async (tx) => {
        await tx.run('DELETE FROM rotation_intents WHERE path = ?', [row.path]);
        await patchState(tx, row.path, {
          last_rotated_at: now, last_attempt_at: now, failures: 0, next_attempt_at: null, last_error_code: null, last_error: null, rotated_at: now,
          retire_version: retireAt === null ? null : row.currentVersion, retire_ref: retireAt === null ? null : row.state.currentRef, retire_at: retireAt, current_ref: ref,
        }, now);
      },
    });
    rotationsTotal?.inc({ rotator: spec.kind });
    await appendQuietly({ kind: 'rotation.succeeded', ...ctx, action: 'secret.rotate', resource: `secret:${row.path}`, result: 'success', details: { rotator: spec.kind, from_version: row.currentVersion, version: r.version, ...(recovered ? { recovered } : {}), ...(retireAt !== null ? { retire_at: retireAt } : {}) } });
    return { path: row.path, rotator: spec.kind, from_version: row.currentVersion, version: r.version, retire_at: retireAt, recovered };
  }

  async function retire(row: SecretRotationRow, spec: RotatorSpec): Promise<boolean> {
    const rotator = rotators[spec.kind];
    const now = clock.now();
    const clear = { retire_version: null, retire_ref: null, retire_at: null };
    if (!rotator.retire || row.state.retireVersion === null) {
      await patchState(store, row.path, clear, now);
      return true;
    }
    try {
      const r = await rotator.retire(spec, { path: row.path, version: row.state.retireVersion, ref: row.state.retireRef, rotatedAt: row.state.rotatedAt ?? now, signal: abort.signal });
      await patchState(store, row.path, clear, clock.now());
      await appendQuietly({ kind: 'rotation.retired', actor: SYSTEM, action: 'secret.rotate', resource: `secret:${row.path}`, result: 'success', details: { rotator: spec.kind, version: row.state.retireVersion, result: r.result, ...(r.sessionsEnded !== undefined ? { sessions_ended: r.sessionsEnded } : {}) } });
      return true;
    } catch (e) {
      const code = isTesseraError(e) ? e.code : 'TESSERA_INTERNAL';
      await patchState(store, row.path, { retire_at: clock.now() + retry.initialMs, last_error_code: code, last_error: isTesseraError(e) ? e.message.slice(0, 300) : 'internal error' }, clock.now()).catch(() => undefined);
      failuresTotal?.inc({ rotator: spec.kind, stage: 'retire' });
      await appendQuietly({ kind: 'rotation.failed', actor: SYSTEM, action: 'secret.retire', resource: `secret:${row.path}`, result: 'failure', reason: { code }, details: { rotator: spec.kind, from_version: row.state.retireVersion, failures: row.state.failures, next_attempt_at: clock.now() + retry.initialMs, stage: 'retire' } });
      return false;
    }
  }

  /** Claims the secret (version check + intent insert in one transaction); the run id, or throws. */
  async function claim(row: SecretRotationRow, runId: string): Promise<void> {
    const now = clock.now();
    await store.transaction(async (tx) => {
      const cur = await tx.get<{ v: number }>('SELECT current_version AS v FROM secrets WHERE path = ?', [row.path]);
      if (!cur) throw fail('TESSERA_SECRET_NOT_FOUND', `no secret at ${row.path}`);
      if (Number(cur.v) !== row.currentVersion) throw fail('TESSERA_ROTATION_CONFLICT', `${row.path} was written meanwhile (now version ${Number(cur.v)}); retry`);
      const r = await tx.run('INSERT INTO rotation_intents (path, from_version, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO NOTHING', [row.path, row.currentVersion, runId, now, now]);
      if (r.changes === 0) throw fail('TESSERA_ROTATION_IN_PROGRESS', `${row.path} is being rotated by another run; retry later`);
    });
  }

  async function fresh(row: SecretRotationRow, spec: RotatorSpec, rotator: Rotator, runId: string, opts: RotateOptions): Promise<RotationResult> {
    await claim(row, runId);
    let stage = 'generate';
    let sealed = false;
    try {
      const generated = rotator.generate?.();
      if (generated !== undefined) {
        await sealIntent(row.path, row.currentVersion, runId, generated, null);
        sealed = true;
      }
      stage = 'apply';
      const res = await rotator.apply(spec, { path: row.path, fromVersion: row.currentVersion, signal: abort.signal }, generated);
      // The retirement after the grace period names the current credential's id: an answer that
      // hands back that same id would have Tessera retire the credential it just made current.
      if (res.ref !== undefined && row.state.currentRef !== null && res.ref === row.state.currentRef) {
        throw fail('TESSERA_ROTATION_HTTP_RESPONSE_INVALID', `the rotator answered create with the id of the current credential (version ${row.currentVersion}); retiring it would revoke the new one. Nothing was stored`);
      }
      if (!sealed) {
        stage = 'seal';
        await sealIntent(row.path, row.currentVersion, runId, res.value, res.ref ?? null);
        sealed = true;
      }
      stage = 'store';
      return await commit(row, spec, rotator, res.value, res.ref ?? null, false, opts);
    } catch (e) {
      await releaseOrDrop(row.path, runId, sealed && !(isTesseraError(e) && BEFORE_EFFECT_CODES.has(e.code)));
      await recordFailure(row, spec.kind, stage, e);
      throw e;
    }
  }

  async function resume(row: SecretRotationRow, spec: RotatorSpec, rotator: Rotator, runId: string, opts: RotateOptions): Promise<RotationResult> {
    const now = clock.now();
    const intent = row.intent!;
    const took = await store.run('UPDATE rotation_intents SET owner = ?, updated_at = ? WHERE path = ? AND owner = ? AND updated_at = ?', [runId, now, row.path, intent.owner, intent.updatedAt]);
    if (took.changes === 0) throw fail('TESSERA_ROTATION_IN_PROGRESS', `${row.path} is being rotated by another run; retry later`);
    const held = await readIntent(store, row.path);
    if (!held || held.sealed === null || held.fromVersion !== row.currentVersion) {
      // Nothing sealed: nothing was sent with a value Tessera must keep. Start over.
      await store.run('DELETE FROM rotation_intents WHERE path = ? AND owner = ?', [row.path, runId]);
      return fresh({ ...row, intent: null }, spec, rotator, runId, opts);
    }
    try {
      const value = openIntent(row.path, held.fromVersion, held.sealed, held.masterKeyId);
      await rotator.resume(spec, { path: row.path, fromVersion: row.currentVersion, signal: abort.signal }, value);
      return await commit(row, spec, rotator, value, held.ref, true, opts);
    } catch (e) {
      await releaseOrDrop(row.path, runId, true);
      await recordFailure(row, spec.kind, 'resume', e);
      throw e;
    }
  }

  async function rotateHeld(path: string, opts: RotateOptions): Promise<RotationResult> {
    const row = await loadOne(store, path);
    if (!row) throw fail('TESSERA_SECRET_NOT_FOUND', `no secret at ${path}`);
    if (!row.hasRotator) throw fail('TESSERA_ROTATION_NOT_CONFIGURED', `${path} has no rotator; set one with tessera kv put ${path} … --rotator <kind> (docs/rotation.md)`);
    const spec = rotatorFromJson(row.rotator, endpointNames)!;
    if (spec.kind === 'manual') throw fail('TESSERA_ROTATION_MANUAL', `${path} has the manual rotator: rotate the credential where it lives, then store it with tessera kv put`);
    if (opts.expectedVersion !== undefined && opts.expectedVersion !== row.currentVersion) {
      throw fail('TESSERA_ROTATION_CONFLICT', `${path} is at version ${row.currentVersion}, not ${opts.expectedVersion}: it was written meanwhile`, { current_version: row.currentVersion });
    }
    const now = clock.now();
    if (row.intent && !resumable(row.intent.owner, row.intent.updatedAt, now)) throw fail('TESSERA_ROTATION_IN_PROGRESS', `${path} is being rotated; retry later`);
    // A retirement still pending from the previous rotation goes first (this rotation replaces what it would retire).
    if (row.state.retireAt !== null && !row.intent) await retire(row, spec);
    const rotator = rotators[spec.kind];
    const runId = randomBytes(9).toString('base64url');
    localRuns.add(runId);
    try {
      return row.intent ? await resume(row, spec, rotator, runId, opts) : await fresh(row, spec, rotator, runId, opts);
    } finally {
      localRuns.delete(runId);
    }
  }

  async function rotate(rawPath: string, opts: RotateOptions = {}): Promise<RotationResult> {
    const path = parseSecretPath(rawPath);
    if (active.has(path)) throw fail('TESSERA_ROTATION_IN_PROGRESS', `${path} is being rotated; retry later`);
    active.add(path);
    try {
      return await rotateHeld(path, opts);
    } finally {
      active.delete(path);
    }
  }

  async function alert(row: SecretRotationRow, kind: string, due: number): Promise<void> {
    await patchState(store, row.path, { alerted_version: row.currentVersion }, clock.now());
    await appendQuietly({ kind: 'rotation.due', actor: SYSTEM, action: 'secret.rotate', resource: `secret:${row.path}`, result: 'failure', reason: { code: 'TESSERA_ROTATION_MANUAL', message: 'due for manual rotation' }, details: { rotator: kind, version: row.currentVersion, due_at: due } });
  }

  const schedule = (row: SecretRotationRow) => ({ periodMs: row.periodMs, versionCreatedAt: row.versionCreatedAt, failures: row.state.failures, nextAttemptAt: row.state.nextAttemptAt });

  async function pass(): Promise<PassReport> {
    const rows = await loadRotated(store, PASS_LIMIT);
    const now = clock.now();
    let rotated = 0;
    let failed = 0;
    let retired = 0;
    let alerted = 0;
    let overdue = 0;
    const work: (() => Promise<void>)[] = [];
    const attempt = (path: string) => work.push(() => rotate(path).then(() => void rotated++, () => void failed++));
    for (const row of rows) {
      const due = dueAt(row);
      if (due !== null && due <= now) overdue++;
      let spec: RotatorSpec;
      try {
        spec = rotatorFromJson(row.rotator, endpointNames)!;
      } catch (e) {
        if (shouldAttempt(schedule(row), now)) {
          work.push(() => recordFailure(row, 'unknown', 'config', e).then(() => void failed++));
        }
        continue;
      }
      if (row.intent) {
        if (resumable(row.intent.owner, row.intent.updatedAt, now) && (row.intent.owner !== '' || shouldAttempt({ ...schedule(row), periodMs: 0, versionCreatedAt: 0 }, now))) attempt(row.path);
        continue;
      }
      if (row.state.retireAt !== null && row.state.retireAt <= now) {
        work.push(() => retire(row, spec).then((ok) => void (ok ? retired++ : failed++)));
        continue;
      }
      if (!shouldAttempt(schedule(row), now)) continue;
      if (spec.kind === 'manual') {
        if (row.state.alertedVersion !== row.currentVersion) work.push(() => alert(row, spec.kind, due!).then(() => void alerted++));
        continue;
      }
      attempt(row.path);
    }
    await eachLimited(work, config.max_concurrency, (job) => job().catch((e: unknown) => logger.error({ err: (e as Error).message }, 'rotation pass step failed')));
    overdueGauge?.set(overdue - rotated);
    return { examined: rows.length, rotated, failed, retired, alerted };
  }

  async function status(): Promise<StatusEntry[]> {
    const rows = await loadRotated(store, PASS_LIMIT);
    const now = clock.now();
    const out = rows.map((row): StatusEntry => {
      let kind = 'unknown';
      let rotatorError: string | undefined;
      try {
        kind = rotatorFromJson(row.rotator, endpointNames)!.kind;
      } catch (e) {
        rotatorError = isTesseraError(e) ? e.code : 'TESSERA_INTERNAL';
      }
      const due = dueAt(row);
      return {
        path: row.path, rotator: kind, ...(rotatorError ? { rotator_error: rotatorError } : {}), current_version: row.currentVersion,
        rotation_period_s: row.periodMs === null ? null : row.periodMs / 1000, last_rotated_at: row.state.lastRotatedAt, due_at: due, overdue: due !== null && due <= now,
        next_at: nextEventAt({ ...schedule(row), retireAt: row.state.retireAt }), failures: row.state.failures, next_attempt_at: row.state.nextAttemptAt,
        last_error_code: row.state.lastErrorCode, retire_at: row.state.retireAt, in_progress: row.intent !== null,
      };
    });
    overdueGauge?.set(out.filter((e) => e.overdue).length);
    return out;
  }

  const runOnce = (): Promise<{ leader: true; value: PassReport } | { leader: false }> => store.withLeaderLock(LEADER_LOCK, () => pass());

  return {
    rotate,
    pass,
    runOnce,
    status,
    async health() {
      // /readyz is probed often: one status read per HEALTH_CACHE_MS, shared by concurrent probes.
      const now = clock.now();
      if (healthCache && now - healthCache.at < HEALTH_CACHE_MS) return healthCache.value;
      const value = status().then((s) => ({
        overdue: s.filter((e) => e.overdue).length,
        in_progress: s.filter((e) => e.in_progress).length,
        failing: s.filter((e) => e.failures > 0 || e.rotator_error).slice(0, 20).map((e) => ({ path: e.path, failures: e.failures, code: e.last_error_code ?? e.rotator_error ?? null })),
      }));
      healthCache = { at: now, value };
      value.catch(() => {
        if (healthCache?.value === value) healthCache = undefined;
      });
      return value;
    },
    async healthNow() {
      const s = await status();
      return {
        overdue: s.filter((e) => e.overdue).length,
        in_progress: s.filter((e) => e.in_progress).length,
        failing: s.filter((e) => e.failures > 0 || e.rotator_error).slice(0, 20).map((e) => ({ path: e.path, failures: e.failures, code: e.last_error_code ?? e.rotator_error ?? null })),
      };
    },
    checkRotator: (input) => rotatorToJson(parseRotator(input, endpointNames)),
    start(intervalMs = config.interval) {
      if (timer) return;
      timer = setInterval(() => {
        if (running) return;
        running = runOnce()
          .catch((e: unknown) => logger.error({ err: (e as Error).message }, 'rotation pass failed'))
          .finally(() => (running = undefined));
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      abort.abort(new TesseraError('TESSERA_UNAVAILABLE', 'shutting down'));
      await running;
    },
  };
}
