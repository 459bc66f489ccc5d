/**
 * `tessera engine postgres ...`: operator commands for the dynamic PostgreSQL engine
 * (docs/engine-postgres.md). Thin wrappers over `/v1/admin/engines/postgres/*`.
 * The management URL carries a password: prefer `--url -` (stdin) or env TESSERA_PG_URL over
 * an argument, which other users can see in the process list.
 */
import { Option, type Command } from 'commander';
import { OWNED_OBJECT_RULES } from '../engines/postgres/owned-objects.js';
import { Transport } from '../sdk/http.js';
import { readAll, requireToken, usage, type CliIo } from './io.js';
import { cell, esc } from './format.js';
import { escapeTerminal, terminalJson } from '../shared/terminal.js';

interface Deps {
  readonly io: CliIo;
  readonly addrOf: (cmd: Command) => string;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function registerEngineCommand(program: Command, deps: Deps): void {
  const { io } = deps;
  // Values are escaped where formatted; the sink escapes any other control character (src/shared/terminal.ts).
  const out = (s: string): void => void io.stdout.write(escapeTerminal(s.endsWith('\n') ? s : s + '\n', { keepNewlines: true }));
  const globals = (cmd: Command) => cmd.optsWithGlobals<{ token?: string; json?: boolean }>();
  const call = async <T>(cmd: Command, method: string, path: string, json?: unknown): Promise<T> => {
    const token = requireToken({ flag: globals(cmd).token, env: io.env.TESSERA_TOKEN }, 'admin');
    const t = new Transport({ addr: deps.addrOf(cmd), fetch: io.fetch, userAgent: 'tessera-cli' });
    return t.request<T>(method, path, { token, ...(json !== undefined ? { json } : {}) });
  };
  const show = (cmd: Command, v: Record<string, unknown>): void => {
    if (globals(cmd).json) return out(terminalJson(v, 2));
    for (const [k, x] of Object.entries(v)) out(`${esc(k)}: ${Array.isArray(x) ? x.map(cell).join(', ') : cell(x)}`);
  };
  const base = (name: string): string => `/v1/admin/engines/postgres/${encodeURIComponent(name)}`;

  const engine = program.command('engine').description('dynamic secrets engines');
  const pg = engine.command('postgres').description('per-lease PostgreSQL users (docs/engine-postgres.md)');

  pg.command('configure <name>')
    .description('connect a PostgreSQL server through a management role with CREATEROLE (the URL is stored encrypted, never shown again)')
    .option('--url <url>', 'management connection URL, or - to read it from stdin (env TESSERA_PG_URL)')
    .option('--prefix <prefix>', 'username prefix of issued users (default tsr_)')
    .option('--pool-size <n>', 'management connections (default 8)')
    .option('--connect-timeout <duration>', 'e.g. 2s (default 2s)')
    .option('--statement-timeout <duration>', 'e.g. 5s (default 5s)')
    .option('--scram-iterations <n>', 'SCRAM-SHA-256 iteration count (default 1; see docs/adr/0010-scram-iterations.md)')
    .action(async (name: string, opts: { url?: string; prefix?: string; poolSize?: string; connectTimeout?: string; statementTimeout?: string; scramIterations?: string }, cmd: Command) => {
      const url = opts.url === '-' ? (await readAll(io.stdin)).trim() : (opts.url ?? io.env.TESSERA_PG_URL);
      if (!url) throw usage('give the management connection URL with --url - (stdin) or env TESSERA_PG_URL');
      const int = (v: string | undefined, flag: string): number | undefined => {
        if (v === undefined) return undefined;
        if (!/^\d+$/.test(v)) throw usage(`${flag} must be a positive integer`);
        return Number(v);
      };
      const body = {
        connection_url: url,
        ...(opts.prefix !== undefined ? { username_prefix: opts.prefix } : {}),
        ...(opts.poolSize !== undefined ? { pool_size: int(opts.poolSize, '--pool-size') } : {}),
        ...(opts.connectTimeout !== undefined ? { connect_timeout: opts.connectTimeout } : {}),
        ...(opts.statementTimeout !== undefined ? { statement_timeout: opts.statementTimeout } : {}),
        ...(opts.scramIterations !== undefined ? { scram_iterations: int(opts.scramIterations, '--scram-iterations') } : {}),
      };
      show(cmd, await call<Record<string, unknown>>(cmd, 'PUT', base(name), body));
    });

  pg.command('role <name> <role>')
    .description('create or replace a role: issued users join the given group roles (recommended)')
    .option('--group <group>', 'pre-created group role to grant (repeatable)', collect)
    .option('--ttl <duration>', 'default TTL, e.g. 15m')
    .option('--max-ttl <duration>', 'max TTL including renewals, e.g. 1h')
    .option('--no-renewable', 'leases of this role cannot be renewed')
    .option('--creation-statement <sql>', 'custom creation statement, one SQL statement with {{name}} {{password}} {{expiration}} {{groups}} (repeatable)', collect)
    .option('--revocation-statement <sql>', 'extra revocation statement run before the owned-object rule and DROP ROLE (repeatable)', collect)
    .addOption(new Option('--owned-objects <rule>', 'on revocation, what happens to objects the user owns: drop (the default) or reassign').choices(OWNED_OBJECT_RULES))
    .option('--reassign-to <role>', 'with --owned-objects reassign: the existing role that receives them')
    .option('--allow-privileged-groups', 'let groups and --reassign-to be pg_* built-in roles or roles with SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS (dangerous: see docs/engine-postgres.md)')
    .action(async (name: string, role: string, opts: { group?: string[]; ttl?: string; maxTtl?: string; renewable?: boolean; creationStatement?: string[]; revocationStatement?: string[]; ownedObjects?: string; reassignTo?: string; allowPrivilegedGroups?: boolean }, cmd: Command) => {
      const body = {
        groups: opts.group ?? [],
        ...(opts.ttl ? { default_ttl: opts.ttl } : {}),
        ...(opts.maxTtl ? { max_ttl: opts.maxTtl } : {}),
        renewable: opts.renewable !== false,
        ...(opts.creationStatement ? { creation_statements: opts.creationStatement } : {}),
        ...(opts.revocationStatement ? { revocation_statements: opts.revocationStatement } : {}),
        ...(opts.ownedObjects ? { owned_objects: opts.ownedObjects } : {}),
        ...(opts.reassignTo ? { reassign_to: opts.reassignTo } : {}),
        ...(opts.allowPrivilegedGroups ? { allow_privileged_groups: true } : {}),
      };
      show(cmd, await call<Record<string, unknown>>(cmd, 'PUT', `${base(name)}/roles/${encodeURIComponent(role)}`, body));
    });

  pg.command('show <name> [role]')
    .description('show a configuration (never its URL) or one of its roles')
    .action(async (name: string, role: string | undefined, _opts: unknown, cmd: Command) => {
      show(cmd, await call<Record<string, unknown>>(cmd, 'GET', role ? `${base(name)}/roles/${encodeURIComponent(role)}` : base(name)));
    });

  pg.command('list [name]')
    .description('list configurations, or the roles of one')
    .action(async (name: string | undefined, _opts: unknown, cmd: Command) => {
      const r = await call<{ configs?: Record<string, unknown>[]; roles?: Record<string, unknown>[] }>(cmd, 'GET', name ? `${base(name)}/roles` : '/v1/admin/engines/postgres');
      if (globals(cmd).json) return out(terminalJson(r, 2));
      const rows = r.roles ?? r.configs ?? [];
      if (rows.length === 0) return out(name ? 'no roles' : 'no configurations');
      for (const x of rows) out(name ? `${cell(x.name)}  groups=${(x.groups as unknown[]).map(cell).join(',') || '-'}  ttl=${Number(x.default_ttl_ms) / 1000}s  max=${Number(x.max_ttl_ms) / 1000}s` : `${cell(x.name)}  ${cell(x.username)}@${cell(x.host)}:${cell(x.port)}/${cell(x.database)}  prefix=${cell(x.username_prefix)}`);
    });

  pg.command('delete <name> [role]')
    .description('delete a role, or a configuration without roles (refused while leases are open)')
    .action(async (name: string, role: string | undefined, _opts: unknown, cmd: Command) => {
      show(cmd, await call<Record<string, unknown>>(cmd, 'DELETE', role ? `${base(name)}/roles/${encodeURIComponent(role)}` : base(name)));
    });
}
