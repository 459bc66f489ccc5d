/**
 * Drift findings (docs/drift.md "Findings"): one shape for every kind, and the pure analyses
 * that produce them from what was read. No I/O; times are epoch ms passed in.
 */
import type { Severity } from './config.js';
import { SEVERITIES } from './config.js';
import { changedFields, sha256Text, canonical } from './digest.js';
import type { Pin } from './pins.js';
import type { ToolPinView } from './tool-gate.js';

export const FINDING_KINDS = ['tool', 'engine', 'policy', 'secret', 'check'] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

/**
 * Stable finding codes (what a CI rule or a dashboard keys on), by kind:
 * tool_changed, tool_unapproved · engine_group_changed, engine_group_missing,
 * engine_group_privileged, engine_group_members, engine_user_undeclared_membership,
 * engine_orphan_user · policy_digest_mismatch, policy_dirty, policy_not_loaded ·
 * secret_rotation_overdue, secret_never_read, secret_broadly_available · check_failed.
 */
export interface Finding {
  /** Stable across checks while the finding lasts: `<code>:<subject>`. */
  readonly id: string;
  readonly kind: FindingKind;
  readonly code: string;
  readonly severity: Severity;
  readonly subject: string;
  readonly message: string;
  /** When the drift was first seen, ISO 8601, when known. */
  readonly since?: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

export const severityRank = (s: Severity): number => SEVERITIES.indexOf(s);

const iso = (ms: number | null | undefined): string | undefined => (ms === null || ms === undefined ? undefined : new Date(ms).toISOString());

function finding(f: Omit<Finding, 'id'>): Finding {
  return { id: `${f.code}:${f.subject}`, ...f };
}

/** Tools held against their approval: changed (warning when held back, critical when served flagged) and never approved (info). */
export function toolFindings(pins: readonly ToolPinView[], onChange: 'block' | 'flag'): Finding[] {
  const out: Finding[] = [];
  for (const p of pins) {
    if (p.status === 'changed') {
      out.push(finding({
        kind: 'tool', code: 'tool_changed', severity: onChange === 'flag' ? 'critical' : 'warning', subject: p.name,
        message: `the definition changed since it was approved (${p.changed_fields.join(', ') || 'definition'}); ${onChange === 'block' ? 'it is held back' : 'it is served, marked'} until \`tessera gateway tools approve ${p.name}\``,
        ...(p.observed_at ? { since: p.observed_at } : {}),
        details: { approved_digest: p.approved_digest, observed_digest: p.observed_digest, fields: p.changed_fields, handling: onChange },
      }));
    } else if (p.status === 'unapproved') {
      out.push(finding({
        kind: 'tool', code: 'tool_unapproved', severity: 'info', subject: p.name,
        message: `never approved (drift.tools.first_sight: require_approval): held back until \`tessera gateway tools approve ${p.name}\``,
        ...(p.observed_at ? { since: p.observed_at } : {}),
        details: { observed_digest: p.observed_digest },
      }));
    }
  }
  return out;
}

/** A secret's hygiene facts, as read from the store. */
export interface SecretFacts {
  readonly path: string;
  readonly mode: 'read' | 'inject';
  readonly rotationPeriodMs: number | null;
  readonly createdAt: number;
  /** When the current version was written. */
  readonly currentAt: number;
  readonly lastReadAt: number | null;
}

/**
 * Past its rotation date (warning; critical past two periods), and never read `neverReadAfterMs`
 * after it was written (info). Rotation is H6's job (src/rotation); this only reports it.
 */
export function secretFindings(secrets: readonly SecretFacts[], now: number, neverReadAfterMs: number): Finding[] {
  const out: Finding[] = [];
  for (const s of secrets) {
    if (s.rotationPeriodMs !== null && s.rotationPeriodMs > 0) {
      const due = s.currentAt + s.rotationPeriodMs;
      if (now > due) {
        const overdueMs = now - due;
        out.push(finding({
          kind: 'secret', code: 'secret_rotation_overdue', severity: overdueMs > s.rotationPeriodMs ? 'critical' : 'warning', subject: s.path,
          message: `past its rotation date by ${Math.floor(overdueMs / 86_400_000)}d ${Math.floor((overdueMs % 86_400_000) / 3_600_000)}h (rotation_period ${Math.round(s.rotationPeriodMs / 3_600_000)}h, current version written ${new Date(s.currentAt).toISOString()})`,
          since: new Date(due).toISOString(),
          details: { rotation_due_at: new Date(due).toISOString(), current_version_at: new Date(s.currentAt).toISOString() },
        }));
      }
    }
    if (s.lastReadAt === null && now - s.createdAt > neverReadAfterMs) {
      out.push(finding({
        kind: 'secret', code: 'secret_never_read', severity: 'info', subject: s.path,
        message: `never read or injected since it was written (${new Date(s.createdAt).toISOString()}); delete it if nothing needs it`,
        since: new Date(s.createdAt + neverReadAfterMs).toISOString(),
        details: { created_at: new Date(s.createdAt).toISOString(), mode: s.mode },
      }));
    }
  }
  return out;
}

/** An unknown agent may have this secret (the probe's answer). */
export function broadFinding(path: string, mode: 'read' | 'inject', policies: readonly string[]): Finding {
  const action = mode === 'inject' ? 'secret.inject' : 'secret.read';
  return finding({
    kind: 'secret', code: 'secret_broadly_available', severity: 'warning', subject: path,
    message: `policy permits ${action} to an agent it knows nothing about (any SPIFFE ID of the trust domain, no labels, no attestor); narrow ${policies.length ? `policy ${policies.join(', ')}` : 'the permitting policy'} to the agents that need it`,
    details: { action, mode, policies },
  });
}

/** One group role as pinned: what drift compares (its attributes, memberships both ways, privileges). */
export interface GroupSnapshot {
  readonly attributes: readonly string[];
  readonly memberOf: readonly string[];
  readonly members: readonly string[];
  readonly privileges: readonly string[];
}

/** The digest of a group's snapshot and of each of its four parts. */
export function groupDigest(g: GroupSnapshot): { digest: string; parts: Record<string, string> } {
  const parts = { attributes: sha256Text(canonical(g.attributes)), member_of: sha256Text(canonical(g.memberOf)), members: sha256Text(canonical(g.members)), privileges: sha256Text(canonical(g.privileges)) };
  return { digest: sha256Text(canonical(parts)), parts };
}

/** A changed group, from its pin and what the database holds now. */
export function groupChangedFinding(subject: string, pin: Pin, now: { digest: string; parts: Record<string, string> }, snapshot: GroupSnapshot): Finding {
  const fields = changedFields(pin.approvedParts, now.parts);
  return finding({
    kind: 'engine', code: 'engine_group_changed', severity: 'warning', subject,
    message: `the group role changed in the database since it was first checked (${fields.join(', ')}): grants or memberships were altered by hand; fix the database, or accept it with \`tessera drift approve-engine ${subject}\``,
    ...(iso(pin.observedAt) ? { since: iso(pin.observedAt)! } : {}),
    details: { fields, approved_digest: pin.approvedDigest, observed_digest: now.digest, privileges: snapshot.privileges.slice(0, 50), member_of: snapshot.memberOf, members: snapshot.members },
  });
}

export { finding as makeFinding };
