/**
 * `tessera audit verify` and `tessera audit archive` (docs/cli.md, docs/audit.md). Online, both
 * start a background job on the server and poll it; `--witness` then streams the witness file's
 * signed heads to the server in batches. `--offline` runs on the data directory instead.
 */
import type { Command } from 'commander';
import type { AdminClient, AuditJobJson } from './http.js';
import { CliError, EXIT, defaultSleep, usage, waitForShutdown, type CliIo } from './io.js';
import { cell } from './format.js';
import type { Runtime } from './runtime.js';
import { checkVerifyInputs } from '../audit/offline.js';
import { NOTE_NO_WITNESS } from '../audit/verify.js';
import { emptyWitnessReport, mergeWitnessReports, readWitnessHeads, requireWitnessHeads, withWitness, type WitnessReport } from '../audit/witness.js';
import type { Problem } from '../audit/chain.js';
import { count } from '../shared/plural.js';

interface Deps {
  readonly io: CliIo;
  readonly runtime: Runtime;
  readonly admin: (cmd: Command) => AdminClient;
  readonly isJson: (cmd: Command) => boolean;
  readonly out: (s: string) => void;
  readonly printJson: (v: unknown) => void;
}

/** Polls a job until it is no longer running; Ctrl-C stops waiting (the job goes on). */
async function awaitJob(client: AdminClient, first: AuditJobJson, deps: Deps, intervalMs: number): Promise<AuditJobJson> {
  let job = first;
  const shutdown = waitForShutdown(deps.io);
  const stop = new AbortController();
  void shutdown.promise.then(() => stop.abort());
  const sleep = deps.io.sleep ?? defaultSleep;
  try {
    for (let i = 0; i < 10_000_000 && job.state === 'running'; i++) {
      await sleep(intervalMs, stop.signal);
      if (stop.signal.aborted) {
        throw new CliError('TESSERA_CLI_FAILED', `stopped waiting; the ${job.kind} job ${job.id} goes on on the server. To wait for its result, run \`tessera audit ${job.kind}\` again: it joins the job while it runs`, EXIT.REFUSED);
      }
      job = (await client.auditJob(job.id)).job;
    }
  } finally {
    shutdown.cancel();
  }
  if (job.state === 'failed') throw new CliError(job.error?.code ?? 'TESSERA_CLI_FAILED', job.error?.message ?? `the ${job.kind} job failed`, EXIT.REFUSED);
  if (job.state === 'abandoned') throw new CliError('TESSERA_CLI_FAILED', `the ${job.kind} job ${job.id} was abandoned (replica ${job.replica ?? '?'} stopped while running it); run the command again`, EXIT.REFUSED);
  return job;
}

/** Streams the witness file to the server, WITNESS_BATCH heads per request, and folds the answers. */
async function witnessOnline(client: AdminClient, path: string): Promise<WitnessReport> {
  let report = emptyWitnessReport();
  for await (const { heads, unreadable } of readWitnessHeads(path)) {
    report = mergeWitnessReports(report, { ...emptyWitnessReport(), unreadable_lines: unreadable });
    if (!heads.length) continue;
    const r = (await client.auditWitness(heads.map((h) => ({ seq: h.seq, ts: h.ts, hash: h.hash, key_id: h.keyId, signature: h.signature })))) as unknown as WitnessReport;
    report = mergeWitnessReports(report, { ...r, unreadable_lines: 0 });
  }
  requireWitnessHeads(report, path);
  return report;
}

function problemLine(p: unknown): string {
  if (p && typeof p === 'object' && 'kind' in p) {
    const q = p as Problem;
    return `seq ${cell(q.seq)} ${cell(q.kind)}: ${cell(q.message)}`;
  }
  return cell(p);
}

function printVerify(res: Record<string, unknown>, deps: Deps, cmd: Command): void {
  if (deps.isJson(cmd)) deps.printJson(res);
  else {
    const checked = res.checked ?? res.events ?? res.count;
    if (res.ok === false) {
      deps.out('audit log verification FAILED');
      const problems = Array.isArray(res.problems) ? res.problems : [res.message ?? res.error ?? 'unknown problem'];
      for (const p of problems) deps.out(`  ${problemLine(p)}`);
    } else {
      const mode = res.mode === 'incremental' ? ` (incremental, after seq ${cell(res.from_seq)})` : '';
      deps.out(`audit log verified${checked !== undefined ? `: ${counted(checked, 'event')}` : ''}${res.checkpoints !== undefined ? `, ${counted(res.checkpoints, 'signed checkpoint')}` : ''}${mode}`);
    }
    for (const n of Array.isArray(res.notes) ? res.notes : []) deps.out(`note: ${cell(n)}`);
  }
  if (res.ok === false) throw new CliError('TESSERA_AUDIT_VERIFY_FAILED', 'the audit log failed verification', EXIT.REFUSED);
}

export function registerAuditJobCommands(audit: Command, deps: Deps): void {
  const { runtime } = deps;
  audit
    .command('verify')
    .description('verify the hash chain and signed checkpoints: proves nothing was altered or removed (with --witness: nor rolled back)')
    .option('--full', 'online: re-read everything instead of resuming after the last verified position')
    .option('--witness <file>', 'a sink output (file/stdout/http sink JSONL) to prove the store holds every signed head it saw')
    .option('--archives', 'online: also verify the archived segments in the server\'s audit.retention.archive_dir')
    .option('--archive-dir <dir>', 'with --offline: directory of archived segments to verify too')
    .option('--offline', 'verify the local data directory without a running server (always full)')
    .option('--config <file>', 'with --offline: tessera.yaml')
    .option('--data-dir <dir>', 'with --offline: data directory')
    .option('--interval <ms>', 'online: how often to poll the job', (v) => pollInterval(v), 500)
    .action(async (opts: { full?: boolean; witness?: string; archives?: boolean; archiveDir?: string; offline?: boolean; config?: string; dataDir?: string; interval: number }, cmd: Command) => {
      if (opts.archiveDir !== undefined && !opts.offline) throw usage('--archive-dir needs --offline; online, --archives verifies the server\'s configured archive directory');
      if (opts.archives && opts.offline) throw usage('--archives is for online verification; offline, pass --archive-dir <dir>');
      checkVerifyInputs({ ...(opts.witness !== undefined ? { witnessPath: opts.witness } : {}) });
      let res: Record<string, unknown>;
      if (opts.offline) {
        if (!runtime.verifyAuditOffline) throw new CliError('TESSERA_CLI_UNSUPPORTED', 'offline verification is not available in this build; run it against the server', EXIT.REFUSED);
        res = ((await runtime.verifyAuditOffline({ configPath: opts.config, dataDir: opts.dataDir, ...(opts.witness !== undefined ? { witness: opts.witness } : {}), ...(opts.archiveDir !== undefined ? { archiveDir: opts.archiveDir } : {}) })) ?? {}) as Record<string, unknown>;
      } else {
        const client = deps.admin(cmd);
        const started = await client.startAuditVerify({ ...(opts.full ? { full: true } : {}), ...(opts.archives ? { archives: true } : {}) });
        const job = await awaitJob(client, started.job, deps, opts.interval);
        res = { ...((job.result ?? {}) as Record<string, unknown>), job: job.id };
        if (opts.witness !== undefined) {
          const w = await witnessOnline(client, opts.witness);
          res = withWitness({ ...res, ok: res.ok !== false, problems: (Array.isArray(res.problems) ? res.problems : []) as Problem[], notes: (Array.isArray(res.notes) ? res.notes : []) as string[] }, w, NOTE_NO_WITNESS);
        }
      }
      printVerify(res, deps, cmd);
    });

  audit
    .command('archive')
    .description('archive sealed segments older than audit.retention allows to files, and prune them from the store with a signed statement')
    .option('--offline', 'archive the local data directory (stop the server first when it uses the same SQLite file)')
    .option('--config <file>', 'with --offline: tessera.yaml')
    .option('--data-dir <dir>', 'with --offline: data directory')
    .option('--archive-dir <dir>', 'with --offline: where to write the segments (default audit.retention.archive_dir)')
    .option('--interval <ms>', 'online: how often to poll the job', (v) => pollInterval(v), 500)
    .action(async (opts: { offline?: boolean; config?: string; dataDir?: string; archiveDir?: string; interval: number }, cmd: Command) => {
      if (opts.archiveDir !== undefined && !opts.offline) throw usage('--archive-dir needs --offline; online, the server writes to its audit.retention.archive_dir');
      let res: Record<string, unknown>;
      if (opts.offline) {
        if (!runtime.archiveAuditOffline) throw new CliError('TESSERA_CLI_UNSUPPORTED', 'offline archiving is not available in this build; run it against the server', EXIT.REFUSED);
        res = ((await runtime.archiveAuditOffline({ configPath: opts.config, dataDir: opts.dataDir, ...(opts.archiveDir !== undefined ? { archiveDir: opts.archiveDir } : {}) })) ?? {}) as Record<string, unknown>;
      } else {
        const client = deps.admin(cmd);
        const started = await client.startAuditArchive();
        const job = await awaitJob(client, started.job, deps, opts.interval);
        res = { ...((job.result ?? {}) as Record<string, unknown>), job: job.id };
      }
      if (deps.isJson(cmd)) return deps.printJson(res);
      if (typeof res.skipped === 'string') return deps.out(`nothing archived: ${cell(res.skipped)}`);
      const segments = Array.isArray(res.segments) ? (res.segments as Record<string, unknown>[]) : [];
      if (!segments.length) deps.out(`nothing to archive: the store starts after seq ${cell(res.boundary ?? 0)} and everything newer is kept by audit.retention`);
      for (const s of segments) deps.out(`archived events ${cell(s.from_seq)}..${cell(s.to_seq)} to ${cell(s.file)} (${counted(s.bytes, 'byte')})`);
      if (segments.length || Number(res.pruned_events ?? 0) > 0) deps.out(`pruned ${counted(res.pruned_events, 'event')} from the store; it now starts after seq ${cell(res.boundary)}`);
    });
}

/** A count from a server response: spelled by `count` when it is a number, else shown escaped. */
function counted(v: unknown, singular: string): string {
  return typeof v === 'number' ? count(v, singular) : `${cell(v)} ${singular}s`;
}

function pollInterval(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 10 || n > 60_000) throw usage('--interval: expected milliseconds between 10 and 60000');
  return n;
}
