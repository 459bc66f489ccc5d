/**
 * The drift check (docs/drift.md): every kind of drift in one report, for `tessera drift`,
 * `GET /v1/admin/drift`, the console's Drift page, the metric `tessera_drift_findings{kind}` and
 * the audit (`drift.findings_changed` when the set of findings changes, written by the periodic
 * check on one replica at a time).
 *
 * A check reads the tool pins (store), the policy source (memory), the engines' databases (one
 * connection per configuration, bounded by its timeouts) and the secrets table, and asks Cedar
 * one question per secret. Concurrent callers share one running check. A part that fails is a
 * `check_failed` finding, never a failed report.
 */
import type { AuditWriter } from '../audit/port.js';
import type { Clock } from '../shared/clock.js';
import { isTesseraError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Gauge, MetricsRegistry } from '../shared/metrics.js';
import type { Store } from '../store/port.js';
import { SEVERITIES, type DriftConfig, type Severity } from './config.js';
import type { EngineDrift } from './engine-drift.js';
import { FINDING_KINDS, makeFinding, severityRank, toolFindings, type Finding, type FindingKind } from './findings.js';
import type { PolicyDrift, PolicySourceInfo } from './policy-drift.js';
import { secretDriftFindings, type SecretDriftDeps } from './secret-drift.js';
import type { ToolPinning, ToolPinView } from './tool-gate.js';

export interface DriftReport {
  readonly checked_at: string;
  /** Sorted: most severe first, then by kind and subject. */
  readonly findings: readonly Finding[];
  readonly counts: Readonly<Record<Severity, number>>;
  readonly by_kind: Readonly<Record<FindingKind, number>>;
  readonly worst: Severity | 'none';
  /** `drift.fail_on`: the severity from which `tessera drift` exits 1. */
  readonly fail_on: Severity;
  readonly policy: PolicySourceInfo;
  readonly tools: { readonly pinned: number; readonly changed: number; readonly unapproved: number; readonly first_sight: string; readonly on_change: string };
}

export interface DriftServiceDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  readonly config: DriftConfig;
  readonly tools?: ToolPinning;
  readonly policy: PolicyDrift;
  readonly engine?: EngineDrift;
  readonly secrets: SecretDriftDeps;
}

export interface DriftService {
  check(signal?: AbortSignal): Promise<DriftReport>;
  /** The periodic check (leader-locked by the caller): checks and audits a changed set of findings. */
  checkAndAudit(): Promise<DriftReport>;
  readonly last: DriftReport | undefined;
}

function failed(subject: string, e: unknown): Finding {
  const code = isTesseraError(e) ? e.code : 'TESSERA_INTERNAL';
  return makeFinding({ kind: 'check', code: 'check_failed', severity: 'warning', subject, message: `not checked: ${isTesseraError(e) ? e.message : 'an internal error'}`, details: { code } });
}

export function createDriftService(deps: DriftServiceDeps): DriftService {
  const gauge: Gauge | undefined = deps.metrics?.gauge('tessera_drift_findings', 'Drift findings of the latest check, by kind (tool, engine, policy, secret, check)');
  let last: DriftReport | undefined;
  let running: Promise<DriftReport> | undefined;
  let lastIds: Set<string> | undefined;

  async function part(subject: string, run: () => Promise<Finding[]>): Promise<Finding[]> {
    try {
      return await run();
    } catch (e) {
      deps.logger.warn({ part: subject, code: isTesseraError(e) ? e.code : undefined, err: (e as Error).message?.slice(0, 300) }, 'drift: part of the check failed');
      return [failed(subject, e)];
    }
  }

  async function run(signal?: AbortSignal): Promise<DriftReport> {
    const now = deps.clock.now();
    let pins: ToolPinView[] = [];
    await deps.policy.observe();
    await deps.policy.refreshGit();
    const findings = [
      ...(await part('tools', async () => {
        pins = deps.tools ? await deps.tools.list() : [];
        return toolFindings(pins, deps.config.tools.on_change);
      })),
      ...deps.policy.findings(),
      ...(deps.engine ? await part('engines', () => deps.engine!.findings(signal)) : []),
      ...(await part('secrets', () => secretDriftFindings(deps.secrets, now, { neverReadAfterMs: deps.config.secrets.never_read_after, broadProbe: deps.config.secrets.broad_probe }))),
    ].sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || FINDING_KINDS.indexOf(a.kind) - FINDING_KINDS.indexOf(b.kind) || a.subject.localeCompare(b.subject) || a.code.localeCompare(b.code));
    const counts = Object.fromEntries(SEVERITIES.map((s) => [s, findings.filter((f) => f.severity === s).length])) as Record<Severity, number>;
    const byKind = Object.fromEntries(FINDING_KINDS.map((k) => [k, findings.filter((f) => f.kind === k).length])) as Record<FindingKind, number>;
    for (const k of FINDING_KINDS) gauge?.set(byKind[k], { kind: k });
    const worst = [...SEVERITIES].reverse().find((s) => counts[s] > 0) ?? 'none';
    last = {
      checked_at: new Date(now).toISOString(), findings, counts, by_kind: byKind, worst, fail_on: deps.config.fail_on, policy: deps.policy.info(),
      tools: { pinned: pins.filter((p) => p.status === 'approved').length, changed: pins.filter((p) => p.status === 'changed').length, unapproved: pins.filter((p) => p.status === 'unapproved').length, first_sight: deps.config.tools.first_sight, on_change: deps.config.tools.on_change },
    };
    return last;
  }

  const check = (signal?: AbortSignal): Promise<DriftReport> => {
    running ??= run(signal).finally(() => {
      running = undefined;
    });
    return running;
  };

  return {
    check,
    async checkAndAudit() {
      const r = await check();
      const ids = new Set(r.findings.map((f) => f.id));
      const before = lastIds ?? new Set<string>();
      const added = [...ids].filter((i) => !before.has(i));
      const resolved = [...before].filter((i) => !ids.has(i));
      lastIds = ids;
      if (added.length || resolved.length) {
        await deps.audit.append({
          kind: 'drift.findings_changed', actor: { id: 'system' }, action: 'drift.check', resource: 'drift', result: 'success',
          // `<kind>=<count>` strings: a member named `secret` would be refused by the audit log's credential check.
          details: { total: r.findings.length, by_kind: FINDING_KINDS.filter((k) => r.by_kind[k] > 0).map((k) => `${k}=${r.by_kind[k]}`), worst: r.worst, added: added.slice(0, 100), resolved: resolved.slice(0, 100) },
        });
      }
      return r;
    },
    get last() {
      return last;
    },
  };
}
