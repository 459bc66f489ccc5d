/**
 * `tessera kv rotate <path>` and `tessera kv rotation status` (docs/rotation.md, docs/cli.md).
 * Server values go through `cell` (paths and error codes are printed, never values).
 */
import type { Command } from 'commander';
import type { AdminClient } from './http.js';
import { usage } from './io.js';
import { cell, fmtTime, table } from './format.js';

interface Deps {
  readonly admin: (cmd: Command) => AdminClient;
  readonly isJson: (cmd: Command) => boolean;
  readonly out: (s: string) => void;
  readonly info: (s: string) => void;
  readonly printJson: (v: unknown) => void;
}

const when = (v: unknown): string => (typeof v === 'number' ? fmtTime(v) : '-');

export function registerKvRotationCommands(kv: Command, deps: Deps): void {
  kv.command('rotate <path>')
    .description('rotate a secret now through its rotator (docs/rotation.md)')
    .option('--expected-version <n>', 'refuse (TESSERA_ROTATION_CONFLICT) unless the secret is still at this version')
    .action(async (path: string, opts: { expectedVersion?: string }, cmd: Command) => {
      let expected: number | undefined;
      if (opts.expectedVersion !== undefined) {
        if (!/^[1-9][0-9]{0,14}$/.test(opts.expectedVersion)) throw usage('--expected-version: expected a positive integer');
        expected = Number(opts.expectedVersion);
      }
      const r = await deps.admin(cmd).rotateSecret(path, expected);
      if (deps.isJson(cmd)) return deps.printJson(r);
      deps.out(`rotated ${cell(r.path)} with ${cell(r.rotator)}: version ${cell(r.from_version)} → ${cell(r.version)}${typeof r.retire_at === 'number' ? `; the previous credential is retired at ${fmtTime(r.retire_at)}` : ''}`);
    });
  kv.command('rotation')
    .description('rotation of secrets that have a rotator')
    .command('status')
    .description('every secret with a rotator: due, last rotation, next event, failures, last error code')
    .action(async (_opts: unknown, cmd: Command) => {
      const r = await deps.admin(cmd).rotationStatus();
      if (deps.isJson(cmd)) return deps.printJson(r);
      const rows = (r.secrets ?? []).map((e) => ({
        path: e.path, rotator: e.rotator_error ? `${e.rotator} (${e.rotator_error})` : e.rotator, version: e.current_version,
        last_rotated: when(e.last_rotated_at), due: e.due_at === null ? '-' : `${when(e.due_at)}${e.overdue ? ' (overdue)' : ''}`, next: when(e.next_at),
        failures: e.failures, last_error: e.last_error_code ?? '', state: e.in_progress ? 'rotating' : '',
      }));
      if (rows.length === 0) return deps.info('no secret has a rotator (set one with tessera kv put PATH - --rotator KIND)');
      deps.out(table(rows, ['path', 'rotator', 'version', 'last_rotated', 'due', 'next', 'failures', 'last_error', 'state']));
      deps.out(`${cell(r.overdue)} overdue, ${cell(r.failing)} failing, ${cell(r.in_progress)} in progress`);
    });
}
