/**
 * The audit page's verification: `POST /v1/admin/audit/verify` answers 202 with a job, then
 * `GET /v1/admin/audit/jobs/<id>` is polled (bounded) until the job is no longer `running`.
 * This turns a job view (src/audit/jobs.ts AuditJobView, result src/audit/verify.ts
 * StoreVerifyResult) into what the page shows. Pure (test/console/audit-verify.test.ts).
 */

export interface AuditJob {
  readonly id: string;
  readonly kind: string;
  readonly state: 'running' | 'done' | 'failed' | 'abandoned' | string;
  readonly progress?: Record<string, number>;
  readonly result?: unknown;
  readonly error?: { code: string; message: string };
  readonly started_at?: string;
  readonly finished_at?: string;
}

export interface VerifyProblem {
  readonly seq: number;
  readonly kind: string;
  readonly message: string;
}

export type VerifySummary =
  | { readonly status: 'running'; readonly checked: number }
  | { readonly status: 'ok'; readonly checked: number; readonly toSeq?: number; readonly mode?: string; readonly notes: readonly string[] }
  | { readonly status: 'bad'; readonly checked: number; readonly firstBadSeq: number | undefined; readonly problems: readonly VerifyProblem[]; readonly notes: readonly string[] }
  | { readonly status: 'failed'; readonly code: string; readonly message: string };

const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export function summariseVerifyJob(job: AuditJob): VerifySummary {
  if (job.state === 'running') return { status: 'running', checked: num(job.progress?.checked) ?? 0 };
  const r = obj(job.result);
  const err = job.error ?? (obj(r.error).code ? (r.error as { code: string; message: string }) : undefined);
  if (job.state === 'failed' || job.state === 'abandoned' || err) {
    return { status: 'failed', code: err?.code ?? (job.state === 'abandoned' ? 'TESSERA_AUDIT_JOB_ABANDONED' : 'TESSERA_INTERNAL'), message: err?.message ?? (job.state === 'abandoned' ? 'the replica running this job stopped reporting; start the verification again' : 'the verification did not finish') };
  }
  const checked = num(r.checked) ?? 0;
  const notes = Array.isArray(r.notes) ? r.notes.filter((n): n is string => typeof n === 'string') : [];
  const problems: VerifyProblem[] = Array.isArray(r.problems)
    ? r.problems.map(obj).map((p) => ({ seq: num(p.seq) ?? 0, kind: String(p.kind ?? 'problem'), message: String(p.message ?? '') }))
    : [];
  if (r.ok === true && problems.length === 0) return { status: 'ok', checked, ...(num(r.to_seq) !== undefined ? { toSeq: num(r.to_seq) } : {}), ...(typeof r.mode === 'string' ? { mode: r.mode } : {}), notes };
  const seqs = problems.map((p) => p.seq).filter((s) => s > 0);
  return { status: 'bad', checked, firstBadSeq: seqs.length ? Math.min(...seqs) : undefined, problems, notes };
}

/** Delay before poll `n` (0-based): 250 ms doubling to 2 s; `undefined` after `maxPolls` (give up). */
export function pollDelay(n: number, maxPolls = 120): number | undefined {
  if (n >= maxPolls) return undefined;
  return Math.min(2000, 250 * 2 ** n);
}
