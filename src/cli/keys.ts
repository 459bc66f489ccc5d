/**
 * `tessera keys rotate [--revoke-previous]`: rotate the token signing key now (operator).
 * `--revoke-previous` is the emergency form: every token signed by an older key is refused at
 * once and agents log in again (docs/tokens.md "Key rotation").
 */
import type { Command } from 'commander';
import { Transport } from '../sdk/http.js';
import { requireToken, type CliIo } from './io.js';
import { cell } from './format.js';
import { terminalJson } from '../shared/terminal.js';
import { count } from '../shared/plural.js';

export function registerKeysCommand(program: Command, deps: { io: CliIo; addrOf: (cmd: Command) => string }): void {
  const { io } = deps;
  program
    .command('keys')
    .description('token signing keys')
    .command('rotate')
    .description('rotate the signing key now; --revoke-previous refuses every token signed by older keys')
    .option('--revoke-previous', 'emergency: remove every older key at once (a key may be compromised)')
    .action(async (opts: { revokePrevious?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<{ token?: string; json?: boolean }>();
      const token = requireToken({ flag: g.token, env: io.env.TESSERA_TOKEN }, 'admin');
      const t = new Transport({ addr: deps.addrOf(cmd), fetch: io.fetch, userAgent: 'tessera-cli' });
      const r = await t.request<{ kid: string; revoked: string[] }>('POST', '/v1/admin/keys/rotate', { token, json: { revoke_previous: opts.revokePrevious === true } });
      if (g.json) {
        io.stdout.write(`${terminalJson(r, 2)}\n`);
        return;
      }
      io.stdout.write(`new signing key ${cell(r.kid)}${r.revoked.length ? `; revoked ${count(r.revoked.length, 'older key')}: tokens they signed are refused from now on` : '; older keys stay published until the tokens they signed expire'}\n`);
    });
}
