/**
 * `tessera operator-token create|list|revoke` (docs/operators.md, docs/cli.md): the operator
 * tokens and their life cycle, through /v1/admin/operator-tokens. Server values go through
 * `cell`/`table` (names are operator-chosen, but still escaped).
 */
import type { Command } from 'commander';
import type { AdminClient } from './http.js';
import { usage } from './io.js';
import { cell, table } from './format.js';

interface Deps {
  readonly admin: (cmd: Command) => AdminClient;
  readonly isJson: (cmd: Command) => boolean;
  readonly out: (s: string) => void;
  readonly info: (s: string) => void;
  readonly printJson: (v: unknown) => void;
  /** Epoch ms, to tell expired tokens in the list. */
  readonly now: () => number;
}

const ROLES = ['admin', 'auditor'];

export function registerOperatorTokenCommand(program: Command, deps: Deps): Command {
  const ot = program.command('operator-token').description('operator tokens: create (admin or auditor role, with an expiry), list, revoke (docs/operators.md)');

  ot.command('create')
    .description('create an operator token; its value is printed once')
    .requiredOption('--name <name>', 'a name for the token, unique among tokens not revoked: 1–64 of A-Z a-z 0-9 . _ @ -')
    .option('--role <role>', 'admin (every operator route) or auditor (reads, what-ifs and verification; never a secret value)', 'admin')
    .option('--ttl <duration>', 'lifetime, e.g. 30d or 12h (at most 365d)', '90d')
    .action(async (opts: { name: string; role: string; ttl: string }, cmd: Command) => {
      if (!ROLES.includes(opts.role)) throw usage(`--role: expected admin or auditor, got "${opts.role}"`);
      const r = await deps.admin(cmd).createOperatorToken({ name: opts.name, role: opts.role, ttl: opts.ttl });
      if (deps.isJson(cmd)) return deps.printJson(r);
      // The token alone on stdout (so `T=$(tessera operator-token create …)` works); the rest on stderr.
      deps.out(r.token);
      deps.info(`operator token ${cell(r.id)} "${cell(r.name)}", role ${cell(r.role)}, expires ${cell(r.expires_at ?? 'never')}`);
      deps.info('this value is shown once and cannot be retrieved again: store it now (a password manager, a secret store)');
    });

  ot.command('list')
    .description('list operator tokens (metadata only: values are never stored); * marks the one you are using')
    .action(async (_opts: unknown, cmd: Command) => {
      const r = await deps.admin(cmd).listOperatorTokens();
      if (deps.isJson(cmd)) return deps.printJson(r);
      const rows = r.tokens.map((t) => ({
        id: t['current'] === true ? `${String(t['id'])} *` : t['id'],
        name: t['name'], role: t['role'],
        state: t['revoked_at'] ? 'revoked' : typeof t['expires_at'] === 'string' && Date.parse(t['expires_at']) <= deps.now() ? 'expired' : 'active',
        expires_at: t['expires_at'] ?? 'never', created_by: t['created_by'],
      }));
      deps.out(rows.length ? table(rows, ['id', 'name', 'role', 'state', 'expires_at', 'created_by']) : 'no operator tokens');
    });

  ot.command('revoke')
    .description('revoke an operator token (it stops working at once, on other replicas within 5 s; its console sessions end); the last active admin token cannot be revoked')
    .argument('<id>', 'the token id (adm_…), from `tessera operator-token list`')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const r = await deps.admin(cmd).revokeOperatorToken(id);
      if (deps.isJson(cmd)) return deps.printJson(r);
      deps.out(`revoked ${cell(r.id)}`);
    });
  return ot;
}
