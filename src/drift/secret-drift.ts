/**
 * Secret hygiene (docs/drift.md "Secret hygiene"): secrets past their rotation date, secrets never
 * read, and secrets policy hands to any agent at all.
 *
 * "Any agent" is asked of Cedar directly: the policy engine's `explain` (no decision cache) with
 * a probe principal that has nothing — a SPIFFE ID of the trust domain under a random path, no
 * attestor, no attributes, no labels, no task, no scope — for `secret.inject` (inject-mode) or
 * `secret.read` (read-mode) on each secret. A permit that still applies names no agent: it is
 * reported with the policies that decided. Cedar's symbolic analysis (cedar-policy-symcc) is not
 * part of @cedar-policy/cedar-wasm 4.13 (its exports: authorization, partial evaluation,
 * validation, formatting), so this is a concrete probe, not a proof over every principal.
 */
import { randomBytes } from 'node:crypto';
import type { PolicyRequest } from '../policy/types.js';
import type { AgentPrincipal } from '../shared/principal.js';
import type { Store } from '../store/port.js';
import { broadFinding, secretFindings, type Finding, type SecretFacts } from './findings.js';

/** At most this many secrets are examined per check (the report says when more exist). */
export const MAX_SECRETS_CHECKED = 10_000;

export interface SecretDriftDeps {
  readonly store: Store;
  readonly trustDomain: string;
  /** The policy engine's explain (src/policy/engine.ts): decision and determining policies, uncached. */
  readonly explain?: (request: PolicyRequest) => { decision: 'allow' | 'deny'; policies: readonly { id: string; effect: string }[] };
}

interface Row {
  path: string;
  mode: string;
  rotation_period_s: number | null;
  created_at: number;
  updated_at: number;
  current_created_at: number | null;
  last_read_at: number | null;
  [k: string]: unknown;
}

/** A principal that carries nothing a policy could single out. */
export function probePrincipal(trustDomain: string, now: number): AgentPrincipal {
  const path = `/tessera-drift-probe/${randomBytes(8).toString('hex')}`;
  return { spiffeId: `spiffe://${trustDomain}${path}`, trustDomain, path, attributes: {}, jti: `drift-probe-${randomBytes(8).toString('hex')}`, expiresAt: now + 60_000 };
}

export async function readSecretFacts(store: Store): Promise<{ facts: SecretFacts[]; truncated: boolean }> {
  const rows = await store.all<Row>(
    `SELECT s.path, s.mode, s.rotation_period_s, s.created_at, s.updated_at, v.created_at AS current_created_at, s.last_read_at
     FROM secrets s LEFT JOIN secret_versions v ON v.path = s.path AND v.version = s.current_version ORDER BY s.path LIMIT ?`, [MAX_SECRETS_CHECKED + 1]);
  const facts = rows.slice(0, MAX_SECRETS_CHECKED).map((r): SecretFacts => ({
    path: String(r.path),
    mode: r.mode === 'read' ? 'read' : 'inject',
    rotationPeriodMs: r.rotation_period_s === null ? null : Number(r.rotation_period_s) * 1000,
    createdAt: Number(r.created_at),
    currentAt: Number(r.current_created_at ?? r.updated_at),
    lastReadAt: r.last_read_at === null || r.last_read_at === undefined ? null : Number(r.last_read_at),
  }));
  return { facts, truncated: rows.length > MAX_SECRETS_CHECKED };
}

export async function secretDriftFindings(deps: SecretDriftDeps, now: number, opts: { neverReadAfterMs: number; broadProbe: boolean }): Promise<Finding[]> {
  const { facts, truncated } = await readSecretFacts(deps.store);
  const out = secretFindings(facts, now, opts.neverReadAfterMs);
  if (opts.broadProbe && deps.explain) {
    const probe = probePrincipal(deps.trustDomain, now);
    for (const s of facts) {
      const action = s.mode === 'inject' ? 'secret.inject' : 'secret.read';
      let e;
      try {
        e = deps.explain({ principal: probe, action, resource: { type: 'Secret', path: s.path } });
      } catch {
        continue; // no policy set loaded: reported by the policy check
      }
      if (e.decision === 'allow') out.push(broadFinding(s.path, s.mode, e.policies.filter((p) => p.effect === 'permit').map((p) => p.id)));
    }
  }
  if (truncated) out.push({ id: 'check_failed:secrets', kind: 'check', code: 'check_failed', severity: 'info', subject: 'secrets', message: `only the first ${MAX_SECRETS_CHECKED} secrets (by path) were checked` });
  return out;
}
