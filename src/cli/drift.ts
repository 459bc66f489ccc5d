/**
 * `tessera drift` and `tessera gateway tools …` (docs/drift.md, docs/cli.md).
 *
 * `tessera drift` exits 0 when no finding reaches the threshold (`--fail-on`, else the server's
 * `drift.fail_on`), 1 when one does, 2 when the report could not be had or a part of the check
 * failed (a `check_failed` finding of warning or above): a CI step can gate on it.
 * Server values go through `cell` (tool names and descriptions come from upstreams).
 */
import { Option, type Command } from 'commander';
import type { AdminClient } from './http.js';
import { CliError, EXIT, toCliError, usage } from './io.js';
import { cell, table } from './format.js';
// The server's own sets (test/cli/enums.test.ts): pure modules, no server code loaded.
import { SEVERITIES } from '../drift/config.js';
import { FINDING_KINDS } from '../drift/findings.js';

interface Deps {
  readonly admin: (cmd: Command) => AdminClient;
  readonly isJson: (cmd: Command) => boolean;
  readonly out: (s: string) => void;
  readonly printJson: (v: unknown) => void;
}

const rank = (s: unknown): number => SEVERITIES.indexOf(s as (typeof SEVERITIES)[number]);
const TOOL_REF = /^[a-z0-9][a-z0-9_-]{0,62}\/[A-Za-z0-9_.-]{1,128}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** `tessera drift` fails with 2 on any error (CI tells "drift found" from "could not check"). */
const asCheckError = (e: unknown): never => {
  const c = toCliError(e);
  throw new CliError(c.code, c.message, EXIT.USAGE, c.extra);
};

interface FindingJson { id: string; kind: string; code: string; severity: string; subject: string; message: string; since?: string }

export function registerDriftCommands(program: Command, deps: Deps): void {
  const drift = program.command('drift').description('drift: upstream tool definitions, engine grants, the policy set and secret hygiene held against what was approved');
  drift
    .command('check', { isDefault: true })
    .description('run a drift check and show the findings (exit 0: none at the threshold, 1: some, 2: the check failed)')
    .addOption(new Option('--fail-on <severity>', "the severity from which to exit 1 (default: the server's drift.fail_on)").choices(SEVERITIES))
    .addOption(new Option('--kind <kind>', 'show only this kind of finding').choices(FINDING_KINDS))
    .action(async (opts: { failOn?: string; kind?: string }, cmd: Command) => {
      const r = (await deps.admin(cmd).drift().catch(asCheckError)) as { findings?: FindingJson[]; fail_on?: string; worst?: string; policy?: Record<string, unknown>; tools?: Record<string, unknown>; checked_at?: string };
      const all = Array.isArray(r.findings) ? r.findings : [];
      const shown = opts.kind ? all.filter((f) => f.kind === opts.kind) : all;
      if (deps.isJson(cmd)) deps.printJson(opts.kind ? { ...r, findings: shown } : r);
      else {
        const pol = r.policy ?? {};
        const git = pol['git'] as { commit?: string; dirty?: boolean } | undefined;
        deps.out(`policy set ${cell(pol['digest'] ?? 'not loaded')}${git?.commit ? ` (git ${cell(git.commit.slice(0, 12))}${git.dirty ? ', dirty' : ''})` : ''}${pol['expected_digest'] ? (pol['matches_expected'] ? ', as expected' : `, EXPECTED ${cell(pol['expected_digest'])}`) : ''}`);
        const t = r.tools ?? {};
        deps.out(`tools: ${cell(t['pinned'] ?? 0)} pinned, ${cell(t['changed'] ?? 0)} changed, ${cell(t['unapproved'] ?? 0)} awaiting approval (first sight: ${cell(t['first_sight'] ?? '-')}, on change: ${cell(t['on_change'] ?? '-')})`);
        deps.out('');
        deps.out(shown.length ? table(shown.map((f) => ({ severity: f.severity, kind: f.kind, code: f.code, subject: f.subject, message: f.message })), ['severity', 'kind', 'code', 'subject', 'message']) : 'no drift found');
      }
      const failOn = opts.failOn ?? r.fail_on ?? 'warning';
      if (all.some((f) => f.kind === 'check' && rank(f.severity) >= rank('warning'))) throw new CliError('TESSERA_DRIFT_CHECK_FAILED', 'part of the drift check could not run (see the check_failed findings)', EXIT.USAGE);
      const over = all.filter((f) => rank(f.severity) >= rank(failOn));
      if (over.length) throw new CliError('TESSERA_DRIFT_FINDINGS', `${over.length} drift finding${over.length === 1 ? '' : 's'} at or above ${failOn}`, EXIT.REFUSED);
    });
  drift
    .command('approve-engine <config/group>')
    .description('accept a PostgreSQL group role as the database holds it now (after reviewing its engine_group_changed finding)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const r = await deps.admin(cmd).approveEngineGroup({ name });
      if (deps.isJson(cmd)) return deps.printJson(r);
      deps.out(`approved ${cell(r.approved)}`);
    });
  drift
    .command('policy-digest <dir>')
    .description('print the digest of the policy set in DIR (offline), for drift.policy.expected_digest')
    .action(async (dir: string, _opts: unknown, cmd: Command) => {
      const { loadPolicyDir, policySetDigest, formatPolicyError } = await import('../policy/loader.js');
      const r = loadPolicyDir(dir);
      if (!r.ok) throw new CliError('TESSERA_POLICY_INVALID', `the policy set in ${dir} is not valid: ${r.errors.slice(0, 3).map(formatPolicyError).join('; ')}`, EXIT.USAGE);
      const digest = policySetDigest(r.set);
      if (deps.isJson(cmd)) return deps.printJson({ dir, digest, policies: r.set.policies.size, files: r.set.files.length });
      deps.out(digest);
    });

  const gateway = program.command('gateway').description('the MCP gateway');
  const tools = gateway.command('tools').description("upstream tools and their pinned definitions (docs/drift.md)");
  const list = (status: 'pending' | 'all') => async (_opts: unknown, cmd: Command): Promise<void> => {
    const r = await deps.admin(cmd).driftTools({ status });
    if (deps.isJson(cmd)) return deps.printJson(r);
    const rows = (r.tools ?? []).map((t) => ({ ...t, changed_fields: Array.isArray(t['changed_fields']) ? (t['changed_fields'] as string[]).join(',') : '' }));
    deps.out(rows.length ? table(rows, ['name', 'status', 'changed_fields', 'observed_digest', 'observed_at', 'approved_at', 'approved_by']) : status === 'pending' ? 'no tool awaits approval' : 'no tool pinned yet');
  };
  tools.command('pending').description('tools whose definition changed or that were never approved').action(list('pending'));
  tools.command('list').description('every pinned or pending upstream tool').action(list('all'));
  tools
    .command('approve <server/tool>')
    .description('accept the current definition of an upstream tool (served again at once)')
    .option('--digest <sha256>', 'approve only if the pending definition still has this digest (as `tessera gateway tools pending` showed it)')
    .action(async (name: string, opts: { digest?: string }, cmd: Command) => {
      if (!TOOL_REF.test(name)) throw usage(`expected <server>/<tool> (e.g. github/create_issue), got ${JSON.stringify(name.slice(0, 80))}`);
      if (opts.digest !== undefined && !DIGEST.test(opts.digest)) throw usage('--digest: expected "sha256:" and 64 lower-case hex digits');
      const r = await deps.admin(cmd).approveTool({ tool: name, ...(opts.digest ? { digest: opts.digest } : {}) });
      if (deps.isJson(cmd)) return deps.printJson(r);
      deps.out(`approved ${cell(r.tool['name'])} at ${cell(r.tool['approved_digest'])}`);
    });
}
