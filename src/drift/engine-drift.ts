/**
 * Engine drift (docs/drift.md "Engine drift"): each PostgreSQL engine configuration's group
 * roles, memberships and grants against what the engine declared and what was first seen.
 *
 * The engine declares which groups its roles' users join (`groups`); it does not declare the
 * groups' own grants, so those are pinned the first time drift reads them (like a tool on first
 * sight) and any later change is reported until the database is fixed or the change accepted
 * (`tessera drift approve-engine <config>/<group>`). Independent of any pin: a declared group
 * that is missing or privileged, an engine user holding a membership no role declares, and a
 * user with the engine's prefix and no open lease (what the reconcile drops) are reported.
 */
import type { AuditActor, AuditWhere } from '../audit/events.js';
import type { AuditWriter } from '../audit/port.js';
import { openLeaseUsernames, type EngineInspection } from '../engines/postgres/index.js';
import type { Clock } from '../shared/clock.js';
import { fail } from '../shared/errors.js';
import type { Store } from '../store/port.js';
import { groupChangedFinding, groupDigest, makeFinding, type Finding } from './findings.js';
import { approveObserved, clearObserved, getPin, insertPin, observePin } from './pins.js';

/** Group attributes that let a member outlast or escape its revocation, or read everything. */
const PRIVILEGED = new Set(['superuser', 'createrole', 'createdb', 'replication', 'bypassrls']);
const SYSTEM: AuditActor = { id: 'system' };

export interface EngineDriftDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly audit: AuditWriter;
  readonly inspect: (signal?: AbortSignal) => Promise<EngineInspection[]>;
}


export function createEngineDrift(deps: EngineDriftDeps) {
  const { store, clock, audit } = deps;

  async function pinGroup(subject: string, snap: EngineInspection['groups'][number]): Promise<Finding | undefined> {
    const now = groupDigest(snap);
    const t = clock.now();
    let pin = await getPin(store, 'engine', subject);
    if (!pin) {
      await audit.commit(store, (tx) => insertPin(tx, { kind: 'engine', subject, digest: now.digest, parts: now.parts, approved: true, by: 'first-sight', now: t }), (ok) => (ok ? { kind: 'drift.engine_pinned', actor: SYSTEM, action: 'drift.engine.observe', resource: `engine:postgres/${subject}`, result: 'success', details: { group: subject, digest: now.digest } } : null));
      return undefined;
    }
    if (pin.approvedDigest === now.digest) {
      if (pin.observedDigest !== null) await clearObserved(store, 'engine', subject, now.digest);
      return undefined;
    }
    if (pin.observedDigest !== now.digest) {
      const before = pin;
      await audit.commit(store, (tx) => observePin(tx, { kind: 'engine', subject, digest: now.digest, parts: now.parts, now: t }), (won) => (won ? {
        kind: 'drift.engine_changed', actor: SYSTEM, action: 'drift.engine.observe', resource: `engine:postgres/${subject}`, result: 'success', reason: { code: 'TESSERA_DRIFT_ENGINE_CHANGED' },
        details: { group: subject, approved_digest: before.approvedDigest ?? '', observed_digest: now.digest, fields: Object.keys(now.parts).filter((k) => before.approvedParts[k] !== now.parts[k]) },
      } : null));
      pin = (await getPin(store, 'engine', subject)) ?? pin;
    }
    return groupChangedFinding(subject, pin, now, snap);
  }

  function staticFindings(i: EngineInspection, leased: ReadonlySet<string>): Finding[] {
    const out: Finding[] = [];
    const declared = new Set(i.roles.flatMap((r) => r.groups));
    for (const g of i.groups) {
      const subject = `${i.config}/${g.name}`;
      const users = i.roles.filter((r) => r.groups.includes(g.name)).map((r) => r.role);
      if (!g.exists) {
        out.push(makeFinding({ kind: 'engine', code: 'engine_group_missing', severity: 'critical', subject, message: `the group role does not exist in the database, but role${users.length > 1 ? 's' : ''} ${users.join(', ')} declare${users.length > 1 ? '' : 's'} it: issuing fails`, details: { roles: users } }));
        continue;
      }
      const bad = g.attributes.filter((a) => PRIVILEGED.has(a));
      if (bad.length) out.push(makeFinding({ kind: 'engine', code: 'engine_group_privileged', severity: 'critical', subject, message: `the group role carries ${bad.join(', ')}: every database user of ${users.join(', ')} gets it; remove it (ALTER ROLE … NO${bad[0]!.toUpperCase()})`, details: { attributes: bad, roles: users } }));
    }
    for (const u of i.users) {
      const extra = u.memberOf.filter((m) => !declared.has(m));
      if (extra.length) out.push(makeFinding({ kind: 'engine', code: 'engine_user_undeclared_membership', severity: 'warning', subject: `${i.config}/${u.name}`, message: `the engine user is a member of ${extra.join(', ')}, which no role of configuration ${i.config} declares: granted by hand`, details: { member_of: extra } }));
      if (!leased.has(u.name)) out.push(makeFinding({ kind: 'engine', code: 'engine_orphan_user', severity: 'warning', subject: `${i.config}/${u.name}`, message: `the database user has the engine's prefix "${i.prefix}" but no open lease: the reconcile disables and drops it; if it is not Tessera's, rename it or change the prefix`, details: { prefix: i.prefix } }));
    }
    return out;
  }

  return {
    /** Every engine finding; a configuration that could not be read gives one `check_failed`. */
    async findings(signal?: AbortSignal): Promise<Finding[]> {
      const inspections = await deps.inspect(signal);
      if (inspections.length === 0) return [];
      const leased = await openLeaseUsernames(store);
      const out: Finding[] = [];
      for (const i of inspections) {
        if (i.error) {
          out.push(makeFinding({ kind: 'check', code: 'check_failed', severity: 'warning', subject: `engine:postgres/${i.config}`, message: `not checked: ${i.error.message}`, details: { code: i.error.code } }));
          continue;
        }
        out.push(...staticFindings(i, leased));
        for (const g of i.groups) {
          if (!g.exists) continue;
          const f = await pinGroup(`${i.config}/${g.name}`, g);
          if (f) out.push(f);
        }
      }
      return out;
    },
    /** Accepts the group role as the database holds it now (its observed digest). */
    async approve(subject: string, opts: { actor: AuditActor; where?: AuditWhere }): Promise<void> {
      if (!/^[a-z0-9][a-z0-9_-]{0,62}\/[^\s/]{1,63}$/.test(subject)) throw fail('TESSERA_DRIFT_REQUEST_INVALID', `name: expected <config>/<group>, got ${JSON.stringify(subject.slice(0, 80))}`, { field: 'name' });
      const p = await getPin(store, 'engine', subject);
      if (!p) throw fail('TESSERA_DRIFT_UNKNOWN_SUBJECT', `no group role ${subject} has been checked by drift yet`, { name: subject });
      if (p.observedDigest === null) throw fail('TESSERA_DRIFT_NOTHING_PENDING', `${subject}: the database holds what was approved; nothing to approve`, { name: subject });
      const expected = p.observedDigest;
      const ok = await audit.commit(store, (tx) => approveObserved(tx, { kind: 'engine', subject, expected, by: opts.actor.id, now: clock.now() }), (won) => (won ? { kind: 'drift.engine_approved', actor: opts.actor, action: 'drift.engine.approve', resource: `engine:postgres/${subject}`, result: 'success', ...(opts.where ? { where: opts.where } : {}), details: { group: subject, digest: expected } } : null));
      if (!ok) throw fail('TESSERA_DRIFT_DIGEST_MISMATCH', `${subject}: what is pending changed meanwhile; run \`tessera drift\` again`, { name: subject });
    },
  };
}

export type EngineDrift = ReturnType<typeof createEngineDrift>;
