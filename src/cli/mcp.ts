/**
 * `tessera mcp`: the stdio entry point for MCP clients that only speak stdio (Claude Desktop,
 * Cursor, VS Code). The relay lives in src/gateway/stdio-relay; this only parses the command line.
 */
import { readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import type { Command } from 'commander';
import { CliError, requireLocalPath, usage, waitForShutdown, type CliIo } from './io.js';

export function registerMcpCommand(program: Command, deps: { io: CliIo; addrOf: (cmd: Command) => string }): void {
  const { io } = deps;
  program
    .command('mcp')
    .description('stdio MCP server relaying to the Tessera gateway (<addr>/mcp) with a short-lived, auto-refreshed agent token')
    .option('--token-file <path>', 'workload JWT file, e.g. a Kubernetes projected token; re-read on refresh (env TESSERA_TOKEN_FILE)')
    .option('--join-token <token>', 'one-time join token for a quick start (env TESSERA_JOIN_TOKEN; arguments are visible in the process list)')
    .option('--join-token-file <path>', 'read the one-time join token from this file (stdin is the MCP channel)')
    .option('--audience <uri>', 'RFC 8707 audience of the agent token (default: <addr>/mcp)')
    .option('--url <url>', 'gateway endpoint when it is not <addr>/mcp')
    .option('--login-file <path>', 'a person\'s login from `tessera login --oidc` (refreshed by itself; env TESSERA_LOGIN_FILE)')
    .action(async (opts: { tokenFile?: string; joinToken?: string; joinTokenFile?: string; audience?: string; url?: string; loginFile?: string }, cmd: Command) => {
      const addr = deps.addrOf(cmd);
      if (opts.joinToken !== undefined && opts.joinTokenFile !== undefined) throw usage('give one of --join-token and --join-token-file');
      const fromFile = opts.joinTokenFile !== undefined ? readJoinTokenFile(opts.joinTokenFile) : undefined;
      const givenJoin = opts.joinToken ?? fromFile;
      const explicit = opts.tokenFile !== undefined || givenJoin !== undefined || opts.loginFile !== undefined;
      const tokenFile = opts.tokenFile ?? (explicit ? undefined : io.env.TESSERA_TOKEN_FILE);
      const joinToken = givenJoin ?? (explicit ? undefined : io.env.TESSERA_JOIN_TOKEN);
      const loginFile = opts.loginFile ?? (explicit ? undefined : io.env.TESSERA_LOGIN_FILE);
      // stdout is the protocol channel: the relay needs the real streams, not just `write`.
      const stdin = io.stdin instanceof Readable ? io.stdin : process.stdin;
      const stdout = io.stdout instanceof Writable ? io.stdout : process.stdout;
      const stop = new AbortController();
      const shutdown = waitForShutdown(io);
      void shutdown.promise.then(() => stop.abort());
      try {
        // Loaded here: the MCP SDK is the largest part of the CLI, and only this command needs it.
        const { runStdioRelay } = await import('../gateway/stdio-relay/index.js');
        const r = await runStdioRelay({ addr, tokenFile, joinToken, loginFile, audience: opts.audience, mcpUrl: opts.url, stdin, stdout, stderr: io.stderr, fetch: io.fetch, printErrors: false, signal: stop.signal });
        if (r.error) throw new CliError(r.error.code, r.error.message, r.exitCode);
      } finally {
        shutdown.cancel();
      }
    });
}

/** The join token in `path` (trimmed); a usage error (exit 2) when it is missing, unreadable or empty. */
function readJoinTokenFile(path: string): string {
  requireLocalPath(path, 'file', '--join-token-file');
  let v: string;
  try {
    v = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw usage(`cannot read --join-token-file ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!v) throw usage(`--join-token-file ${path} is empty`);
  return v;
}
