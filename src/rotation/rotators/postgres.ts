/**
 * `postgres-static` and `engine-root` (docs/rotation.md, ADR 0276).
 *
 * postgres-static: an existing role (an application's login) gets a Tessera-generated password,
 * set as a SCRAM-SHA-256 verifier (RFC 5802/7677, computed in src/engines/postgres/scram.ts)
 * through the engine's management connection. PostgreSQL keeps ONE password per role, so the
 * grace period cannot keep the old password accepted for new logins: it is how long sessions
 * opened with the old password may go on (PostgreSQL authenticates only at connect); after it,
 * those sessions are ended (`end_sessions`, default true). The previous version stays readable
 * in kv history.
 *
 * engine-root: the engine's own management password is changed to one only Tessera knows
 * (`ALTER ROLE CURRENT_USER`), verified by a fresh login, then stored where the engine keeps its
 * connection (the sealed URL). The kv secret holds a non-secret record of the rotation.
 */
import { randomBytes } from 'node:crypto';
import { fail } from '../../shared/errors.js';
import { encodePassword } from '../../engines/postgres/scram.js';
import type { EnginePasswords } from '../../engines/postgres/engine.js';
import type { RotatorSpec } from '../options.js';
import type { Rotator } from './types.js';

type PgStatic = Extract<RotatorSpec, { kind: 'postgres-static' }>;
type EngineRoot = Extract<RotatorSpec, { kind: 'engine-root' }>;

const generate = (): string => encodePassword(randomBytes(32));

function engineOf(engines: EnginePasswords | undefined, name: string): EnginePasswords {
  if (!engines || !engines.has(name)) throw fail('TESSERA_ROTATION_ENGINE_MISSING', `the rotator names postgres engine configuration "${name}", which does not exist; configure it or fix the rotator's engine`, { engine: name });
  return engines;
}

export function postgresStaticRotator(engines: EnginePasswords | undefined): Rotator<PgStatic> {
  return {
    generate,
    async apply(spec, call, value) {
      await engineOf(engines, spec.engine).setRolePassword(spec.engine, spec.role, value!, call.signal);
      return { value: value! };
    },
    async resume(spec, call, value) {
      // ALTER ROLE with the same password is idempotent (a new salt, the same password).
      await engineOf(engines, spec.engine).setRolePassword(spec.engine, spec.role, value, call.signal);
    },
    async retire(spec, call) {
      if (!spec.end_sessions) return { result: 'kept_sessions' };
      const n = await engineOf(engines, spec.engine).endSessionsBefore(spec.engine, spec.role, call.rotatedAt, call.signal);
      return { result: 'sessions_ended', sessionsEnded: n };
    },
  };
}

export function engineRootRotator(engines: EnginePasswords | undefined): Rotator<EngineRoot> {
  /** `resuming`: an earlier attempt may have changed it already — try the new password first. */
  async function makeCurrent(spec: EngineRoot, value: string, signal: AbortSignal, resuming: boolean): Promise<void> {
    const e = engineOf(engines, spec.engine);
    // Never lose it: the value is sealed in the intent already; change, verify a fresh login, then commit.
    if (!resuming || !(await e.tryRootPassword(spec.engine, value))) {
      await e.changeRootPassword(spec.engine, value, signal);
      if (!(await e.tryRootPassword(spec.engine, value))) {
        throw fail('TESSERA_ROTATION_VERIFY_FAILED', `the database did not accept the new management password of engine "${spec.engine}" on a fresh login; not committed, retried with backoff`, { engine: spec.engine });
      }
    }
    await e.commitRootPassword(spec.engine, value);
  }
  return {
    generate,
    async apply(spec, call, value) {
      await makeCurrent(spec, value!, call.signal, false);
      return { value: value! };
    },
    resume: (spec, call, value) => makeCurrent(spec, value, call.signal, true),
    stored(spec, _value, now) {
      return JSON.stringify({ engine: spec.engine, username: engines?.has(spec.engine) ? engines.rootUsername(spec.engine) : null, rotated_at: new Date(now).toISOString(), note: 'the password is held only in the engine configuration (sealed)' });
    },
  };
}
