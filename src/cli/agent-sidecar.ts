/**
 * `tessera agent [run]` — the Kubernetes sidecar (docs/k8s-agent.md) — and `tessera agent probe`,
 * beside `tessera agent list`. The sidecar itself lives in src/agent; this only parses the command
 * line and the environment, and turns SIGTERM/SIGINT into a clean stop (exit 0).
 */
import type { Command } from 'commander';
import { CliError, EXIT, waitForShutdown, type CliIo } from './io.js';
import { isTesseraError } from '../shared/errors.js';

interface RunFlags {
  tokenFile?: string;
  proxyUrl?: string;
  mcpUrl?: string;
  listenProxy?: string;
  listenMcp?: string;
  role?: string;
  taskScope?: string;
  taskPurpose?: string;
  taskTtl?: string;
  tokenOut?: string;
  caFile?: string;
  drain?: string;
}

/** Refusals of options are usage errors (exit 2); the code stays the sidecar's. */
const asCliError = (e: unknown, exitCode: number): unknown => (isTesseraError(e) ? new CliError(e.code, e.message, exitCode) : e);

export function registerAgentSidecarCommands(agent: Command, deps: { io: CliIo; addrOf: (cmd: Command) => string | undefined }): void {
  const { io } = deps;
  agent
    .command('run', { isDefault: true })
    .description('the Kubernetes sidecar: logs in with the projected token, keeps the token fresh in memory, serves a local forward proxy and MCP endpoint on 127.0.0.1 that add it (docs/k8s-agent.md)')
    .option('--token-file <path>', 'projected service-account token, re-read at each renewal (env TESSERA_TOKEN_FILE)')
    .option('--proxy-url <url>', 'the Tessera proxy, e.g. http://tessera.tessera.svc:8201 (env TESSERA_PROXY_URL)')
    .option('--mcp-url <url>', 'the gateway endpoint when it is not <addr>/mcp')
    .option('--listen-proxy <host:port>', 'local forward proxy, loopback only (e.g. 127.0.0.1:15001)')
    .option('--listen-mcp <host:port>', 'local MCP endpoint (/mcp) and /healthz, loopback only (e.g. 127.0.0.1:15002)')
    .option('--role <name>', 'log in with scope=role:<name> (docs/k8s-pods.md)')
    .option('--task-scope <scopes>', 'open a root task with these space-separated scopes and use its token (renewed before expiry)')
    .option('--task-purpose <text>', 'purpose of that task (default "kubernetes agent sidecar")')
    .option('--task-ttl <duration>', 'lifetime asked for that task, e.g. 15m (default tokens.task_ttl)')
    .option('--token-out <path>', 'also write the current token to this file — only on tmpfs/ramfs (mode 0600, atomic)')
    .option('--ca-file <path>', 'PEM CA bundle to trust for an https Tessera address')
    .option('--drain <duration>', 'how long SIGTERM waits for requests in flight (default 10s, at most 2m)')
    .action(async (flags: RunFlags, cmd: Command) => {
      const { parseSidecarOptions, startSidecar } = await import('../agent/index.js');
      let options;
      try {
        options = parseSidecarOptions({
          ...flags,
          addr: deps.addrOf(cmd),
          tokenFile: flags.tokenFile ?? io.env.TESSERA_TOKEN_FILE,
          proxyUrl: flags.proxyUrl ?? io.env.TESSERA_PROXY_URL,
        });
      } catch (e) {
        throw asCliError(e, EXIT.USAGE);
      }
      const shutdown = waitForShutdown(io);
      let sidecar;
      try {
        sidecar = await startSidecar(options, { stderr: io.stderr });
      } catch (e) {
        shutdown.cancel();
        throw asCliError(e, EXIT.USAGE);
      }
      const sig = await shutdown.promise;
      io.stderr.write(`tessera agent: ${sig}: stopping\n`);
      await sidecar.close();
    });

  agent
    .command('probe')
    .description('exit 0 when the sidecar on 127.0.0.1:<port> answers /healthz with 200, else 1 (an exec startup probe for images without a shell)')
    .option('--port <n>', 'the sidecar\'s MCP port', '15002')
    .action(async (opts: { port: string }) => {
      if (!/^[1-9][0-9]{0,4}$/.test(opts.port) || Number(opts.port) > 65535) throw new CliError('TESSERA_CLI_USAGE', `--port ${JSON.stringify(opts.port.slice(0, 20))} is not a port number`, EXIT.USAGE);
      const { probeSidecar } = await import('../agent/index.js');
      const r = await probeSidecar(Number(opts.port));
      if (!r.ok) throw new CliError('TESSERA_AGENT_PROBE_FAILED', `the sidecar is not ready: ${r.detail}`, EXIT.REFUSED);
      io.stdout.write('ready\n');
    });
}
