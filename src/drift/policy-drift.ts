/**
 * Policy drift (docs/drift.md "Policy drift"): the loaded policy set's digest and where it came
 * from (directory; Git commit, branch and dirty flag when the directory is in a Git work tree),
 * shown in `/readyz` (check `policy_source`, detail only: it never makes a replica unready),
 * the metrics `tessera_policy_set_info{digest,git_commit}` and `tessera_drift_policy_expected_match`,
 * and the audit (`drift.policy_changed`, once per new digest across replicas). A configured
 * `drift.policy.expected_digest` that differs is a critical finding.
 */
import type { AuditActor } from '../audit/events.js';
import type { AuditWriter } from '../audit/port.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Gauge, MetricsRegistry } from '../shared/metrics.js';
import type { Store } from '../store/port.js';
import type { Finding } from './findings.js';
import { makeFinding } from './findings.js';
import { gitSourceOf, type GitSource } from './git.js';
import { getPin, insertPin, replaceApproved } from './pins.js';

export interface PolicySourceInfo {
  readonly dir: string;
  readonly loaded: boolean;
  readonly digest?: string;
  readonly git?: GitSource;
  readonly expected_digest?: string;
  readonly matches_expected?: boolean;
  /** When this digest was first loaded by this replica, ISO 8601. */
  readonly since?: string;
}

export interface PolicyDriftDeps {
  /** The policy engine's status (src/policy/engine.ts PolicyStatus). */
  readonly status: () => { readonly ready: boolean; readonly dir: string; readonly digest?: string };
  readonly store: Store;
  readonly clock: Clock;
  readonly audit: AuditWriter;
  readonly logger: Logger;
  readonly metrics?: MetricsRegistry;
  readonly expectedDigest?: string;
  /** Ask `git status` for the dirty flag (default true). */
  readonly gitDirty?: boolean;
}

const SYSTEM: AuditActor = { id: 'system' };

export function createPolicyDrift(deps: PolicyDriftDeps) {
  let info: PolicySourceInfo = { dir: deps.status().dir, loaded: false, ...(deps.expectedDigest ? { expected_digest: deps.expectedDigest } : {}) };
  let lastDigest: string | undefined;
  let lastLabels: Record<string, string> | undefined;
  let running: Promise<void> | undefined;
  const infoGauge: Gauge | undefined = deps.metrics?.gauge('tessera_policy_set_info', 'The loaded policy set: 1 for its digest and Git commit (0 for earlier ones)');
  const matchGauge: Gauge | undefined = deps.expectedDigest ? deps.metrics?.gauge('tessera_drift_policy_expected_match', '1 when the loaded policy set has drift.policy.expected_digest, 0 when not') : undefined;

  async function record(digest: string, git: GitSource | undefined, dir: string): Promise<void> {
    const now = deps.clock.now();
    const pin = await getPin(deps.store, 'policy', 'set');
    const previous = pin?.approvedDigest ?? undefined;
    if (previous === digest) return;
    const event = {
      kind: 'drift.policy_changed', actor: SYSTEM, action: 'drift.policy.observe', resource: 'policy-set', result: 'success',
      details: {
        dir, digest, ...(previous ? { previous_digest: previous } : {}),
        ...(git?.commit ? { git_commit: git.commit } : {}), ...(git?.dirty !== undefined ? { git_dirty: git.dirty } : {}),
        ...(deps.expectedDigest ? { expected_digest: deps.expectedDigest, matches_expected: deps.expectedDigest === digest } : {}),
      },
    } as const;
    await deps.audit.commit(deps.store, (tx) => (previous === undefined
      ? insertPin(tx, { kind: 'policy', subject: 'set', digest, parts: {}, approved: true, by: 'policy-load', now })
      : replaceApproved(tx, { kind: 'policy', subject: 'set', from: previous, to: digest, by: 'policy-load', now })), (won) => (won ? event : null));
  }

  async function observeOnce(): Promise<void> {
    const st = deps.status();
    if (!st.ready || !st.digest) {
      info = { ...info, dir: st.dir, loaded: false };
      return;
    }
    if (st.digest === lastDigest) return;
    const git = await gitSourceOf(st.dir, { dirty: deps.gitDirty !== false }).catch(() => undefined);
    const matches = deps.expectedDigest ? deps.expectedDigest === st.digest : undefined;
    info = {
      dir: st.dir, loaded: true, digest: st.digest, ...(git ? { git } : {}), since: new Date(deps.clock.now()).toISOString(),
      ...(deps.expectedDigest ? { expected_digest: deps.expectedDigest, matches_expected: matches! } : {}),
    };
    const labels = { digest: st.digest, git_commit: git?.commit ?? '' };
    if (lastLabels) infoGauge?.set(0, lastLabels);
    infoGauge?.set(1, labels);
    lastLabels = labels;
    matchGauge?.set(matches ? 1 : 0);
    if (matches === false) deps.logger.warn({ digest: st.digest, expected: deps.expectedDigest, dir: st.dir }, 'drift: the loaded policy set is not the expected one (drift.policy.expected_digest)');
    await record(st.digest, git, st.dir);
    lastDigest = st.digest;
  }

  return {
    /** Looks at the loaded set; cheap when its digest did not change. Never throws. */
    observe(): Promise<void> {
      running ??= observeOnce().catch((e: unknown) => deps.logger.warn({ err: (e as Error).message }, 'drift: recording the policy set failed')).finally(() => {
        running = undefined;
      });
      return running;
    },
    info: (): PolicySourceInfo => info,
    /** Re-reads the Git dirty flag (the files may change without a reload: a dirty work tree is reported either way). */
    async refreshGit(): Promise<void> {
      if (!info.loaded) return;
      const git = await gitSourceOf(info.dir, { dirty: deps.gitDirty !== false }).catch(() => undefined);
      info = { ...info, ...(git ? { git } : {}) };
    },
    findings(): Finding[] {
      const out: Finding[] = [];
      if (!info.loaded) {
        out.push(makeFinding({ kind: 'policy', code: 'policy_not_loaded', severity: 'critical', subject: info.dir, message: 'no valid policy set is loaded: every request is refused; `tessera policy validate` shows why' }));
        return out;
      }
      if (info.matches_expected === false) {
        out.push(makeFinding({
          kind: 'policy', code: 'policy_digest_mismatch', severity: 'critical', subject: info.dir,
          message: `the loaded policy set (${info.digest}) is not the expected one (${info.expected_digest}, drift.policy.expected_digest)${info.git?.commit ? `; the directory is at commit ${info.git.commit.slice(0, 12)}` : ''}`,
          ...(info.since ? { since: info.since } : {}),
          details: { digest: info.digest, expected_digest: info.expected_digest, ...(info.git ? { git: info.git } : {}) },
        }));
      }
      if (info.git?.dirty === true) {
        out.push(makeFinding({ kind: 'policy', code: 'policy_dirty', severity: 'warning', subject: info.dir, message: `the policy directory has changes not committed to Git${info.git.commit ? ` (HEAD ${info.git.commit.slice(0, 12)})` : ''}: what runs is not what the repository holds`, details: { git: info.git } }));
      }
      return out;
    },
    readinessCheck() {
      return { name: 'policy_source', check: async () => ({ ok: true, detail: info }) };
    },
  };
}

export type PolicyDrift = ReturnType<typeof createPolicyDrift>;
