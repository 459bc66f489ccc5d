/**
 * The report: the `--json` document (schema `tessera.k8s.scan/v1`, docs/k8s-scan.md "JSON"),
 * the rows of the table, and the CI verdict. Pure.
 */
import { SEVERITIES, severityRank, type Finding, type ScanResult, type Severity } from './scan.js';

export const REPORT_SCHEMA = 'tessera.k8s.scan/v1';

export interface ReportInput {
  readonly result: ScanResult;
  readonly source: { readonly kind: 'files'; readonly files: readonly string[] } | { readonly kind: 'api'; readonly context?: string; readonly namespace?: string };
  readonly options: { readonly max_age: string; readonly fail_on: Severity | 'none'; readonly all_pods: boolean; readonly agent_selectors: readonly string[]; readonly include_system_namespaces: boolean; readonly tessera_namespace: string };
  readonly ignored: Readonly<Record<string, number>>;
  readonly generatedAt: number;
}

export interface Report {
  readonly schema: typeof REPORT_SCHEMA;
  readonly generated_at: string;
  readonly source: ReportInput['source'];
  readonly options: ReportInput['options'];
  readonly summary: ScanResult['counts'] & {
    readonly findings: Record<Severity, number>;
    readonly failed: boolean;
    readonly skipped_namespaces: readonly string[];
    readonly ignored_kinds: Readonly<Record<string, number>>;
  };
  readonly notes: readonly string[];
  readonly findings: readonly Finding[];
}

/** True when a finding is at or above `failOn`. */
export const failsAt = (f: Finding, failOn: Severity | 'none'): boolean => failOn !== 'none' && severityRank(f.severity) >= severityRank(failOn);

export function buildReport(r: ReportInput): Report {
  const bySeverity = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
  for (const f of r.result.findings) bySeverity[f.severity]++;
  return {
    schema: REPORT_SCHEMA,
    generated_at: new Date(r.generatedAt).toISOString(),
    source: r.source,
    options: r.options,
    summary: {
      ...r.result.counts,
      findings: bySeverity,
      failed: r.result.findings.some((f) => failsAt(f, r.options.fail_on)),
      skipped_namespaces: r.result.skipped_namespaces,
      ignored_kinds: r.ignored,
    },
    notes: r.result.notes,
    findings: r.result.findings,
  };
}

/** What a finding is about, in a few words (`env OPENAI_API_KEY`, `volume creds → Secret x`). */
export function subjectOf(f: Finding): string {
  switch (f.rule) {
    case 'env-literal':
      return `env ${f.variable} = <${f.value?.shape ?? 'literal'}, ${f.value?.length} chars, ${f.value?.fingerprint}>`;
    case 'args-literal':
      return `${f.variable} = <${f.value?.shape ?? 'literal'}, ${f.value?.length} chars, ${f.value?.fingerprint}>`;
    case 'env-secret-ref':
      return `env ${f.variable} ← Secret ${f.secret?.name}/${f.secret?.key}`;
    case 'env-from-secret':
      return `envFrom Secret ${f.secret?.name}${f.secret?.keys ? ` (${f.secret.keys.join(', ')})` : ''}`;
    case 'secret-volume':
      return `volume ${f.volume?.name} at ${f.volume?.mount_path}${f.secret ? ` ← Secret ${f.secret.name}` : ''}`;
    case 'secret-age':
      return `Secret ${f.secret?.name} unchanged ${f.age?.days}d (${f.age?.source})`;
    case 'egress-unrestricted':
      return f.egress?.open_by ? `egress open by NetworkPolicy ${f.egress.open_by}` : 'egress: no NetworkPolicy';
  }
}

/** Table rows (src/cli/format.ts `table` escapes every cell). */
export function tableRows(findings: readonly Finding[]): Record<string, unknown>[] {
  return findings.map((f) => ({
    severity: f.severity,
    namespace: f.namespace,
    workload: `${f.workload.kind}/${f.workload.name}${f.pods.length > 1 ? ` (${f.pods.length} pods)` : ''}`,
    container: f.container ?? '-',
    finding: subjectOf(f),
    suggestion: `${f.suggestion.replacement}: ${f.suggestion.kv_path ? `kv ${f.suggestion.kv_path} ` : ''}(${f.suggestion.docs})`,
  }));
}

export const TABLE_COLUMNS = ['severity', 'namespace', 'workload', 'container', 'finding', 'suggestion'] as const;
