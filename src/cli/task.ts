/**
 * `tessera task list` and `tessera task tree <txn>` (docs/cli.md, docs/tasks.md): the task
 * trees agents opened and delegated, for operators. Every value that came from the server goes
 * through `cell` (src/shared/terminal.ts): purposes, labels and task facts are agent-chosen text.
 */
import { Option, type Command } from 'commander';
import type { AdminClient, TaskNodeJson } from './http.js';
import { usage } from './io.js';
import { cell, fmtTime, table } from './format.js';
import { TASK_STATES } from '../tasks/states.js';

interface Deps {
  readonly admin: (cmd: Command) => AdminClient;
  readonly isJson: (cmd: Command) => boolean;
  readonly out: (s: string) => void;
  readonly printJson: (v: unknown) => void;
}

const TXN = /^task_[A-Za-z0-9_-]{22}$/;

function limitOf(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw usage('--limit: expected a whole number from 1 to 1000');
  return n;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** One node's lines: the headline, then its details indented under it. */
function nodeLines(n: TaskNodeJson, prefix: string, childPrefix: string, showEvents: boolean): string[] {
  const who = `${cell(n.actor)}${n.label ? ` (sub-agent ${cell(n.label)})` : ''}`;
  const lines = [`${prefix}${cell(n.txn)}  ${who}  [${cell(n.state)}]  depth ${cell(n.depth)}/${cell(n.max_depth)}${n.bound ? '  DPoP-bound' : ''}  until ${fmtTime(n.expires_at)}`];
  const d = (s: string): void => void lines.push(`${childPrefix}    ${s}`);
  d(`purpose: ${cell(n.purpose)}`);
  d(`scope:   ${list(n.scope).map(cell).join(' ') || '-'}`);
  const tctx = n.tctx && typeof n.tctx === 'object' ? Object.entries(n.tctx as Record<string, unknown>) : [];
  if (tctx.length) d(`facts:   ${tctx.map(([k, v]) => `${cell(k)}=${cell(v)}`).join(' ')}`);
  for (const t of list(n.tokens) as Record<string, unknown>[]) d(`token:   jti hmac ${cell(t.jti_hmac)}`);
  for (const l of list(n.leases) as Record<string, unknown>[]) d(`lease:   ${cell(l.engine)}/${cell(l.role)} ${cell(l.lease_id)} [${cell(l.state)}]${l.revoke_cause ? ` ${cell(l.revoke_cause)}` : ''}`);
  if (showEvents) {
    for (const e of list(n.events) as Record<string, unknown>[]) {
      const reason = e.reason && typeof e.reason === 'object' ? (e.reason as Record<string, unknown>) : {};
      const why = reason.code ? ` ${cell(reason.code)}` : list(reason.policies).length ? ` (${list(reason.policies).map(cell).join(', ')})` : '';
      d(`event:   ${fmtTime(e.ts)} ${cell(e.kind)} ${cell(e.resource ?? e.action)} ${cell(e.result)}${why}`);
    }
  }
  return lines;
}

/** The tree as indented lines (├─ / └─), depth first in creation order. */
export function renderTree(root: TaskNodeJson, showEvents: boolean): string[] {
  const out: string[] = [];
  const walk = (n: TaskNodeJson, prefix: string, childPrefix: string): void => {
    out.push(...nodeLines(n, prefix, childPrefix, showEvents));
    const kids = n.children ?? [];
    kids.forEach((k, i) => {
      const last = i === kids.length - 1;
      walk(k, `${childPrefix}${last ? '└─ ' : '├─ '}`, `${childPrefix}${last ? '   ' : '│  '}`);
    });
  };
  walk(root, '', '');
  return out;
}

export function registerTaskCommands(program: Command, deps: Deps): void {
  const task = program.command('task').description('task trees: what agents and their sub-agents were given, did and were refused');
  task
    .command('list')
    .description('list tasks, newest first')
    .option('--root <txn>', 'only the tree of this root task')
    .option('--agent <spiffe-id>', 'only tasks this agent acts in')
    .option('--roots', 'only root tasks')
    .addOption(new Option('--state <state>', 'only tasks in this state').choices(TASK_STATES))
    .option('--since <time>', 'only tasks created at or after (ISO-8601 or epoch ms)')
    .option('--limit <n>', 'at most this many (1–1000)', limitOf, 100)
    .action(async (opts: { root?: string; agent?: string; roots?: boolean; state?: string; since?: string; limit: number }, cmd: Command) => {
      if (opts.root !== undefined && !TXN.test(opts.root)) throw usage('--root: expected a task id such as task_3q2Jd… (see `tessera task list`)');
      const r = await deps.admin(cmd).listTasks({ root: opts.root, agent: opts.agent, roots: opts.roots ? true : undefined, state: opts.state, since: opts.since, limit: opts.limit });
      if (deps.isJson(cmd)) return deps.printJson(r);
      const rows = (r.tasks ?? []).map((t) => ({ ...t, actor: `${str(t.actor)}${t.label ? ` (${str(t.label)})` : ''}`, scope: list(t.scope).join(' ') }));
      deps.out(rows.length ? table(rows, ['txn', 'parent', 'depth', 'state', 'actor', 'scope', 'purpose', 'expires_at']) : 'no tasks');
      if (r.next) deps.out(`more: tessera task list --limit ${opts.limit} (the API pages with before=${cell(r.next)})`);
    });
  task
    .command('tree <txn>')
    .description('show a task and everything delegated below it: actors, scope, purpose, token HMACs, leases, tool calls and decisions')
    .option('--no-events', 'leave out each node\'s audit events')
    .action(async (txn: string, opts: { events: boolean }, cmd: Command) => {
      if (!TXN.test(txn)) throw usage('expected a task id such as task_3q2Jd… (the txn of a task token; see `tessera task list`)');
      const r = await deps.admin(cmd).taskTree(txn, { events: opts.events });
      if (deps.isJson(cmd)) return deps.printJson(r);
      for (const line of renderTree(r.task, opts.events)) deps.out(line);
      const cut = Object.entries(r.truncated ?? {}).filter(([, v]) => v).map(([k]) => k);
      if (cut.length) deps.out(`(truncated: ${cut.map(cell).join(', ')}; see --json or GET /v1/admin/tasks/${cell(txn)})`);
    });
}
