/**
 * What `bin/tessera.js` runs. The command line loads at once; the server and everything
 * `src/main.ts` wires (store drivers, Fastify, Cedar, the gateway) load only for the commands
 * that need them (`dev`, `server`, `init`, `operator`, `audit verify --offline`,
 * `audit archive --offline`), so an operator command starts in a fraction of the time.
 */
import { runCli, type Runtime } from './cli/index.js';
import { exitQuietlyOnBrokenPipe } from './cli/io.js';

let loaded: Promise<Runtime> | undefined;
const runtime = (): Promise<Runtime> => (loaded ??= import('./main.js').then((m) => m.runtime));

/**
 * A Runtime that imports the composition root on first use. Every member of `Runtime` is
 * forwarded, the optional offline ones included (test/cli/lazy-runtime.test.ts compares it with
 * src/main.ts's runtime): a member missing here reads as "not available in this build".
 */
export const lazyRuntime: Required<Runtime> = {
  dev: async (opts) => (await runtime()).dev(opts),
  server: async (opts) => (await runtime()).server(opts),
  init: async (opts) => (await runtime()).init(opts),
  rotateMasterKey: async (opts) => (await runtime()).rotateMasterKey(opts),
  verifyAuditOffline: async (opts) => {
    const r = await runtime();
    if (!r.verifyAuditOffline) throw new Error('offline verification is not available in this build');
    return r.verifyAuditOffline(opts);
  },
  checkConfig: async (opts) => {
    const r = await runtime();
    if (!r.checkConfig) throw new Error('configuration checks are not available in this build');
    return r.checkConfig(opts);
  },
  archiveAuditOffline: async (opts) => {
    const r = await runtime();
    if (!r.archiveAuditOffline) throw new Error('offline archiving is not available in this build');
    return r.archiveAuditOffline(opts);
  },
};

/** The `tessera` command: resolves with the exit code (docs/cli.md "Exit codes"). */
export function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  exitQuietlyOnBrokenPipe(process, (code) => process.exit(code));
  return runCli(argv, lazyRuntime);
}
