/**
 * `tessera exposure` (docs/exposure.md, docs/cli.md): how long credentials stayed usable, by
 * agent, task, user or kind, and what is live now. Server values go through `cell` (agent ids,
 * task ids and user ids are chosen by others).
 */
import { Option, type Command } from 'commander';
import type { AdminClient } from './http.js';
import { usage } from './io.js';
import { cell, humanDuration, table } from './format.js';
import { EXPOSURE_GROUPINGS, EXPOSURE_KINDS } from '../exposure/kinds.js';

interface Deps {
  readonly admin: (cmd: Command) => AdminClient;
  readonly isJson: (cmd: Command) => boolean;
  readonly out: (s: string) => void;
  readonly printJson: (v: unknown) => void;
}

const SINCE = /^(\d+(\.\d+)?(ms|s|m|h|d)|\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2}))$/;

/** Seconds for people: `4m 59s`; `0s` for none. */
const secs = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? humanDuration(v * 1000) : '-');

export function registerExposureCommand(program: Command, deps: Deps): void {
  program
    .command('exposure')
    .description('exposure windows: how long each credential stayed usable (issued → expired or revoked), by agent, task, user or kind, and the credentials live now')
    .addOption(new Option('--by <grouping>', 'group windows by').choices(EXPOSURE_GROUPINGS).default('kind'))
    .option('--since <when>', 'windows issued since: a duration back from now (30m, 24h, 7d) or an RFC 3339 time', '24h')
    .addOption(new Option('--kind <kind>', 'only this kind of credential').choices(EXPOSURE_KINDS))
    .action(async (opts: { by: string; since: string; kind?: string }, cmd: Command) => {
      if (!SINCE.test(opts.since)) throw usage('--since: expected a duration back from now (30m, 24h, 7d) or an RFC 3339 time (2026-01-01T00:00:00Z)');
      const r = await deps.admin(cmd).exposure({ by: opts.by, since: opts.since, ...(opts.kind ? { kind: opts.kind } : {}) });
      if (deps.isJson(cmd)) return deps.printJson(r);
      deps.out(`exposure by ${cell(r.by)} since ${cell(r.since)}${r.kind ? ` (${cell(r.kind)} only)` : ''}`);
      const groups = (r.groups ?? []).map((g) => ({ [opts.by]: g.key, count: g.count, live: g.live, p50: secs(g.p50_s), p95: secs(g.p95_s), max: secs(g.max_s), 'credential-seconds': g.credential_seconds }));
      deps.out(groups.length ? table(groups, [opts.by, 'count', 'live', 'p50', 'p95', 'max', 'credential-seconds']) : 'no credentials issued in this period');
      const live = (r.live ?? []).map((l) => ({ ...l, remaining: secs(l.remaining_s) }));
      deps.out('');
      deps.out(live.length ? `live now (${cell(r.live_total ?? live.length)}):` : 'live now: none');
      if (live.length) deps.out(table(live, ['kind', 'id', 'agent', 'task', 'user', 'expires_at', 'remaining']));
      if (typeof r.live_total === 'number' && r.live_total > live.length) deps.out(`(${r.live_total - live.length} more: see --json or GET /v1/admin/exposure)`);
      if (r.truncated) deps.out('(truncated: too many windows in this period; narrow --since or --kind)');
    });
}
