import { Command, CommanderError, Help, Option } from 'commander';
import { open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { decodeJwt, looksLikeJwt } from '../sdk/jwt.js';
import { JOIN_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, type TokenResponse } from '../sdk/client.js';
import { normalizeAddr } from '../sdk/http.js';
import { AdminClient, agentTransport } from './http.js';
import { CliError, EXIT, defaultSleep, readAll, readAllBytes, requireLocalPath, requireToken, secretText, toCliError, usage, waitForShutdown, type CliIo } from './io.js';
import { cell, esc, fmtTime, humanDuration, listOf, table } from './format.js';
import { escapeTerminal, terminalJson } from '../shared/terminal.js';
import type { Runtime, RunningServer } from './runtime.js';
import { registerMcpCommand } from './mcp.js';
import { registerAgentSidecarCommands } from './agent-sidecar.js';
import { DEFAULT_LOGIN_FILE, oidcLogin } from './login-oidc.js';
import { registerEngineCommand } from './engine.js';
import { registerKeysCommand } from './keys.js';
import { registerProxyCaCommand } from './proxy-ca.js';
import { registerAuditJobCommands } from './audit.js';
import { registerTaskCommands } from './task.js';
import { registerExposureCommand } from './exposure.js';
import { registerProxyCommand } from './proxy.js';
import { registerK8sCommand } from './k8s.js';
import { registerK8sManifestsCommand } from './k8s-manifests.js';
import { registerKvRotationCommands } from './rotation.js';
import { rotatorFromFlags } from '../rotation/options.js';
import { registerDriftCommands } from './drift.js';
import { registerK8sScanCommand } from './k8s-scan.js';
import { registerInjectorCommand } from './injector.js';
import { registerOperatorTokenCommand } from './operator-token.js';
import { VERSION } from '../shared/package.js';
// The enumerations the server validates, from their one definition (small modules, no services):
// an option with a fixed set of values is checked here, exit 2 before any request.
import { SECRET_MODES } from '../secrets/modes.js';
import { REVOCATION_KINDS } from '../revocations/kinds.js';
import { LEASE_STATES } from '../leases/states.js';
import { POLICY_ACTIONS } from '../policy/types.js';
import { ATTESTOR_KINDS } from '../shared/principal.js';
import { count, verb } from '../shared/plural.js';
import { forCli, nextStepOf } from '../shared/next-steps.js';

export type { Runtime, RunningServer } from './runtime.js';
export type { CliIo, CliWritable, ShutdownSignal } from './io.js';
export { EXIT } from './io.js';
export { AdminClient } from './http.js';

export const DEFAULT_ADDR = 'http://127.0.0.1:8200';

const VERSION_OPTION = new Option('-V, --version', 'print the version and exit');

/**
 * `tessera --version` (or `-V`) as the only argument. Not a commander option of the program:
 * commander gives program options precedence anywhere on the line, which would take
 * `kv get PATH --version N` (a secret version) for it.
 */
export function isVersionRequest(argv: readonly string[]): boolean {
  return argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V');
}

interface Globals {
  addr?: string;
  token?: string;
  json?: boolean;
}

/**
 * Runs the `tessera` command line. `argv` is the user part (`process.argv.slice(2)`).
 * Resolves with the exit code: 0 ok, 1 the server (or runtime) refused, 2 usage error,
 * 3 connection failed. Never throws.
 */
export async function runCli(argv: string[], runtime: Runtime, io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: process.stdin }): Promise<number> {
  if (isVersionRequest(argv)) {
    io.stdout.write(`${VERSION}\n`);
    return EXIT.OK;
  }
  let json = argv.includes('--json');
  const program = buildProgram(runtime, io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successes; anything else commander refuses is a usage error
      // (commander already printed its message to stderr).
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? EXIT.OK : EXIT.USAGE;
    }
    const e = toCliError(err);
    json ||= program.opts<Globals>().json === true;
    if (json) {
      io.stderr.write(terminalJson({ error: { code: e.code, message: e.message, status: e.extra.status, request_id: e.extra.requestId } }) + '\n');
    } else {
      // A server's message may echo what an agent sent: escape it all, line breaks included.
      // A local message (config errors) keeps its own line breaks; nothing else acts on a terminal.
      const message = escapeTerminal(e.message, { keepNewlines: e.extra.status === undefined });
      io.stderr.write(`error: ${message} [${esc(e.code)}]${e.extra.requestId ? ` (request id ${esc(e.extra.requestId)})` : ''}\n`);
    }
    return e.exitCode;
  }
}

/**
 * Builds the whole `tessera` command tree without running it: `runCli` parses with it, and the
 * docs test (test/docs/commands.test.ts) checks every documented command line against it.
 */
export function buildProgram(runtime: Runtime, io: CliIo): Command {
  // Every line for a person goes through these. Values inside them are escaped where they are
  // formatted (`cell`, `esc`: newlines too); the sinks escape every other control and bidi
  // character once more, so no string can act on the terminal (src/shared/terminal.ts).
  const out = (s: string): void => void io.stdout.write(escapeTerminal(s.endsWith('\n') ? s : s + '\n', { keepNewlines: true }));
  const info = (s: string): void => void io.stderr.write(escapeTerminal(s.endsWith('\n') ? s : s + '\n', { keepNewlines: true }));
  const printJson = (v: unknown): void => out(terminalJson(v, 2));
  const now = io.now ?? (() => Date.now());

  const program = new Command('tessera')
    .description('Tessera — credential broker for AI agents')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({
      // Every subcommand's help lists the program's options too (--addr, --token, --json): they
      // work after any command (`tessera mcp --addr URL`), so its help must show them.
      showGlobalOptions: true,
      // `--version` is listed with the program's options, but handled by `runCli` (first argument only).
      visibleOptions(cmd: Command) {
        const base = Help.prototype.visibleOptions.call(this, cmd);
        return cmd.parent ? base : [VERSION_OPTION, ...base];
      },
    })
    .option('--addr <url>', `server address (env TESSERA_ADDR, default ${DEFAULT_ADDR})`)
    .option('--token <token>', 'admin or agent token (prefer env TESSERA_TOKEN: arguments are visible in the process list)')
    .option('--json', 'machine-readable JSON output');

  const globals = (cmd: Command): Globals => cmd.optsWithGlobals<Globals>();
  const addrOf = (cmd: Command): string => {
    const addr = globals(cmd).addr ?? io.env.TESSERA_ADDR ?? DEFAULT_ADDR;
    try {
      return normalizeAddr(addr);
    } catch (e) {
      throw usage((e as Error).message);
    }
  };
  const tokenOf = (cmd: Command, need: 'admin' | 'agent'): string => requireToken({ flag: globals(cmd).token, env: io.env.TESSERA_TOKEN }, need);
  const admin = (cmd: Command): AdminClient => new AdminClient({ addr: addrOf(cmd), fetch: io.fetch }, tokenOf(cmd, 'admin'));
  const isJson = (cmd: Command): boolean => globals(cmd).json === true;
  const stdinValue = async (v: string): Promise<string> => (v === '-' ? (await readAll(io.stdin)).trim() : v);

  /**
   * Creates `--out` (new, empty, mode 0600) BEFORE anything is spent — a one-time join token, the
   * first admin token of a data directory — so an existing file or an unwritable directory fails
   * first; `write` fills it, `discard` removes the empty file when the command fails.
   */
  const reserveOutFile = async (path: string): Promise<{ write(value: string): Promise<void>; discard(): Promise<void> }> => {
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx', 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new CliError('TESSERA_CLI_FILE_WRITE_FAILED', code === 'EEXIST' ? `${path} already exists; remove it or choose another --out path (nothing was sent)` : `cannot write ${path} (${code ?? 'error'}; nothing was sent)`, EXIT.REFUSED);
    }
    return {
      async write(value) {
        try {
          await fh.writeFile(value + '\n');
        } finally {
          await fh.close();
        }
      },
      async discard() {
        await fh.close().catch(() => undefined);
        await rm(path, { force: true });
      },
    };
  };

  /** Runs `fn` with `--out` reserved first (when given); the file is removed if `fn` fails. */
  const withOutFile = async <T>(path: string | undefined, fn: (file: { write(value: string): Promise<void> } | undefined) => Promise<T>): Promise<T> => {
    const file = path ? await reserveOutFile(path) : undefined;
    let written = false;
    try {
      return await fn(file && { write: async (v) => { await file.write(v); written = true; } });
    } catch (e) {
      if (file && !written) await file.discard();
      throw e;
    }
  };

  const runUntilSignal = async (server: RunningServer): Promise<void> => {
    const sig = await waitForShutdown(io).promise;
    info(`received ${sig}, shutting down…`);
    await server.close();
    info('stopped');
  };

  // --- dev / server / init ---------------------------------------------------------
  program
    .command('dev')
    .description('run everything in one process for development: embedded SQLite, generated keys; policies from ./policies (policy.dir), or the demo policies until it exists')
    .option('--listen <host:port>', "listen address (default: the configuration's server.listen, else 127.0.0.1:8200)")
    .option('--data-dir <dir>', "keep data in this directory (default: the configuration's data_dir, else ./.tessera)")
    .option('--root-token <value>', 'use this admin token instead of a generated one (env TESSERA_DEV_ROOT_TOKEN)')
    .option('--config <file>', 'start from this tessera.yaml')
    .action(async (opts: { listen?: string; dataDir?: string; rootToken?: string; config?: string }, cmd: Command) => {
      const server = await runtime.dev({ listen: opts.listen, dataDir: opts.dataDir, rootToken: opts.rootToken ?? io.env.TESSERA_DEV_ROOT_TOKEN, configPath: opts.config });
      if (isJson(cmd)) {
        const p = server.policy;
        out(terminalJson({ url: server.url, admin_token: server.adminToken, join_token: server.joinToken, ...(server.joinTokenFile ? { join_token_file: server.joinTokenFile } : {}), ...(server.proxyUrl ? { proxy_url: server.proxyUrl } : {}), ...(p ? { policies: { dir: p.dir, demo: p.demo, configured_dir: p.configuredDir } } : {}) }));
      } else {
        out(devBanner(server));
      }
      await runUntilSignal(server);
    });

  program
    .command('server')
    .description('run the Tessera server from a configuration file')
    .requiredOption('--config <file>', 'tessera.yaml')
    .action(async (opts: { config: string }, cmd: Command) => {
      const server = await runtime.server({ configPath: opts.config });
      if (isJson(cmd)) out(terminalJson({ url: server.url }));
      else out(`Tessera is listening on ${server.url} (Ctrl-C to stop)`);
      await runUntilSignal(server);
    });

  program
    .command('config')
    .description('tessera.yaml tools')
    .command('validate')
    .description('check a configuration without side effects: the schema, every file and directory it names, the master key, the policies; starts nothing, writes nothing, contacts nothing')
    .requiredOption('--config <file>', 'tessera.yaml')
    .option('--data-dir <dir>', 'data directory (overrides the configuration, as for server and init)')
    .action(async (opts: { config: string; dataDir?: string }, cmd: Command) => {
      requireLocalPath(opts.config, 'file', '--config');
      if (!runtime.checkConfig) throw new CliError('TESSERA_CLI_UNSUPPORTED', 'configuration checks are not available in this build', EXIT.REFUSED);
      const r = await runtime.checkConfig({ configPath: opts.config, ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}) });
      if (isJson(cmd)) printJson(r);
      else {
        out(r.ok ? `ok: ${opts.config} is valid (nothing was started, created or written)` : `${opts.config}: ${count(r.problems.length, 'problem')} (nothing was started, created or written)`);
        for (const p of r.problems) out(`  ${esc(p.key)}: ${esc(p.message)}`);
        for (const w of r.warnings ?? []) out(`  warning: ${esc(w.key)}: ${esc(w.message)}`);
        for (const n of r.notes) out(`  note: ${esc(n.key)}: ${esc(n.message)}`);
      }
      if (!r.ok) throw new CliError('TESSERA_CONFIG_INVALID', `${opts.config}: ${count(r.problems.length, 'problem')}; \`tessera server\` would not start or a feature would fail`, EXIT.REFUSED);
    });

  program
    .command('init')
    .description('initialise a data directory: schema, master key, first admin token')
    .option('--config <file>', 'tessera.yaml')
    .option('--data-dir <dir>', 'data directory (overrides the configuration)')
    .option('--out <file>', 'write the admin token to this new file (mode 0600) instead of printing it')
    .action(async (opts: { config?: string; dataDir?: string; out?: string }, cmd: Command) => {
      // --out is created first: the first admin token is shown once, it must have somewhere to go.
      const r = await withOutFile(opts.out, async (file) => {
        const done = await runtime.init({ configPath: opts.config, dataDir: opts.dataDir });
        await file?.write(done.adminToken);
        return done;
      });
      if (isJson(cmd)) {
        printJson({ data_dir: r.dataDir, master_key_file: r.masterKeyFile, ...(opts.out ? { admin_token_file: opts.out } : { admin_token: r.adminToken }) });
        return;
      }
      info(`initialised ${r.dataDir}${r.masterKeyFile ? ` (master key: ${r.masterKeyFile} — back it up; without it the secrets cannot be decrypted)` : ''}`);
      if (opts.out) {
        info(`admin token written to ${opts.out}; use it with: TESSERA_TOKEN=$(cat ${opts.out}) && export TESSERA_TOKEN`);
      } else {
        info('admin token (shown once; store it in your password manager):');
        out(r.adminToken);
      }
    });

  // --- join tokens / login ----------------------------------------------------------
  const jt = program.command('join-token').description('one-time join tokens for agents that have no platform identity (dev, VMs)');
  jt.command('create')
    .description('create a join token bound to a SPIFFE ID')
    .requiredOption('--spiffe-id <id>', 'the SPIFFE ID the agent will get, e.g. spiffe://example.org/agent/demo')
    .option('--ttl <duration>', 'lifetime, e.g. 10m (max 1h)', '10m')
    .option('--label <k=v>', 'attribute for policies (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(async (opts: { spiffeId: string; ttl: string; label: string[] }, cmd: Command) => {
      const labels: Record<string, string> = {};
      for (const l of opts.label) {
        const i = l.indexOf('=');
        if (i <= 0) throw usage(`--label expects key=value, got "${l}"`);
        labels[l.slice(0, i)] = l.slice(i + 1);
      }
      const r = await admin(cmd).createJoinToken({ spiffe_id: opts.spiffeId, ttl: opts.ttl, ...(opts.label.length ? { labels } : {}) });
      if (isJson(cmd)) return printJson(r);
      // The token alone on stdout (so `J=$(tessera join-token create ...)` works); the rest on stderr.
      out(r.token);
      info(`join token ${cell(r.id)} for ${cell(r.spiffe_id)}, one-time, expires ${fmtTime(r.expires_at)}`);
      info(`the agent logs in with: tessera login --join-token - --out agent.token   (paste the token on stdin)`);
    });

  jt.command('list')
    .description('list join tokens (metadata only: token values are never stored)')
    .action(async (_opts: unknown, cmd: Command) => {
      const r = await admin(cmd).listJoinTokens();
      if (isJson(cmd)) return printJson(r);
      const rows = listOf(r);
      out(rows.length ? table(rows, pickColumns(rows, ['id', 'spiffe_id', 'state', 'expires_at', 'used_at'])) : 'no join tokens');
    });

  program
    .command('login')
    .description('exchange an attestation (join token or workload JWT file) for an agent token (RFC 8693)')
    .option('--join-token <token>', 'one-time join token; `-` reads it from stdin (an argument is visible in the process list)')
    .option('--join-token-file <path>', 'read the one-time join token from this file')
    .option('--token-file <path>', 'workload JWT file, e.g. a Kubernetes projected service-account token')
    .option('--audience <uri>', "audience of the agent token to issue (RFC 8693): the server's URL (the default) or <addr>/mcp for the gateway, <addr>/proxy for the injection proxy — not the attestation's aud, which the attestor's audience in tessera.yaml checks; with --oidc, the resource of the person's token (default <addr>/mcp)")
    .option('--out <file>', 'write the agent token to this new file (mode 0600)')
    .option('--print', 'print the agent token to stdout even when stdout is a terminal')
    .option('--oidc', 'log in as a person through Tessera\'s authorization server (browser, PKCE, loopback redirect); stores a refresh token in --out (default ~/.config/tessera/login.json, mode 0600) for `tessera mcp --login-file`')
    .option('--client-id <id>', 'with --oidc: the registered public client (default tessera-cli)')
    .option('--scope <scopes>', 'with --oidc: space-separated scope strings (default: the server\'s users.authorization_server.default_scope)')
    .option('--open', 'with --oidc: open the system browser (default: only print the URL)')
    .action(async (opts: { joinToken?: string; joinTokenFile?: string; tokenFile?: string; audience?: string; out?: string; print?: boolean; oidc?: boolean; clientId?: string; scope?: string; open?: boolean }, cmd: Command) => {
      if (opts.oidc) {
        if (opts.joinToken !== undefined || opts.joinTokenFile !== undefined || opts.tokenFile !== undefined || opts.print) throw usage('--oidc logs a person in through the browser: it takes no --join-token, --join-token-file, --token-file or --print');
        const addr = addrOf(cmd);
        const shutdown = waitForShutdown(io);
        const stop = new AbortController();
        void shutdown.promise.then(() => stop.abort());
        try {
          const r = await oidcLogin({ addr, out: opts.out ?? DEFAULT_LOGIN_FILE(io.env), clientId: opts.clientId ?? 'tessera-cli', resource: opts.audience ?? `${addr}/mcp`, ...(opts.scope ? { scope: opts.scope } : {}), open: opts.open === true, timeoutMs: 5 * 60_000, io, signal: stop.signal });
          if (isJson(cmd)) return printJson({ user: r.user ?? null, login_file: r.file, scope: r.scope });
          info(`logged in as ${cell(r.user ?? '?')}; refresh token stored in ${r.file} (mode 0600). Use it with: tessera mcp --login-file ${r.file}`);
          return;
        } finally {
          shutdown.cancel();
        }
      }
      if (opts.joinToken === '') throw usage('--join-token is empty: did the command that produced it fail? (`J=$(tessera join-token create …)` leaves J empty then)');
      const sources = [opts.joinToken, opts.joinTokenFile, opts.tokenFile].filter((x) => x !== undefined).length;
      if (sources !== 1) throw usage('give exactly one of --join-token, --join-token-file or --token-file (or --oidc to log in as a person)');
      // Decide where the token goes BEFORE logging in: a join token is single-use, and an
      // agent token must not land in a terminal's scrollback by accident.
      const toStdout = !opts.out && (opts.print === true || io.stdout.isTTY !== true);
      if (!opts.out && !toStdout) {
        throw usage('refusing to print an agent token to a terminal; use --out FILE, capture the output (e.g. `TESSERA_TOKEN=$(tessera login ...) && export TESSERA_TOKEN`), or pass --print');
      }
      const readTokenFile = async (path: string, flag: string): Promise<string> => {
        requireLocalPath(path, 'file', flag);
        try {
          return (await readFile(path, 'utf8')).trim();
        } catch (e) {
          throw usage(`cannot read ${flag} ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
        }
      };
      let subjectToken: string;
      let type: string;
      if (opts.joinToken !== undefined) {
        subjectToken = await stdinValue(opts.joinToken);
        type = JOIN_TOKEN_TYPE;
        if (!subjectToken) throw usage('the join token read from stdin is empty: did the command that produced it fail?');
      } else if (opts.joinTokenFile !== undefined) {
        subjectToken = await readTokenFile(opts.joinTokenFile, '--join-token-file');
        type = JOIN_TOKEN_TYPE;
        if (!subjectToken) throw usage(`--join-token-file ${opts.joinTokenFile} is empty`);
      } else {
        subjectToken = await readTokenFile(opts.tokenFile!, '--token-file');
        type = JWT_TOKEN_TYPE;
        if (!subjectToken) throw usage(`--token-file ${opts.tokenFile} is empty`);
      }
      // --out is created before the exchange: an existing file must not cost a one-time join token.
      await withOutFile(opts.out, async (file) => {
        const t = agentTransport({ addr: addrOf(cmd), fetch: io.fetch });
        const r = await t.request<TokenResponse>('POST', '/v1/oauth/token', {
          form: { grant_type: TOKEN_EXCHANGE_GRANT, subject_token: subjectToken, subject_token_type: type, audience: opts.audience },
        });
        let sub: unknown;
        try {
          sub = decodeJwt(r.access_token).claims.sub;
        } catch {
          sub = undefined;
        }
        if (file) {
          await file.write(r.access_token);
          if (isJson(cmd)) return printJson({ token_file: opts.out, spiffe_id: sub, expires_in: r.expires_in, token_type: r.token_type });
          info(`logged in as ${cell(sub)}; agent token written to ${opts.out} (expires in ${humanDuration(r.expires_in * 1000)})`);
          return;
        }
        if (isJson(cmd)) return printJson({ access_token: r.access_token, issued_token_type: r.issued_token_type, token_type: r.token_type, expires_in: r.expires_in, spiffe_id: sub });
        out(r.access_token);
      });
    });

  // --- kv -------------------------------------------------------------------------
  const kv = program.command('kv').description('static secrets (encrypted, versioned)');
  kv.command('put <path> [value]')
    .description('store a secret; VALUE `-` reads standard input (prefer - or --from-file: arguments end up in shell history)')
    .option('--from-file <file>', 'read the value from a file (UTF-8 text)')
    .option('--keep-newline', 'with - or --from-file: keep a trailing line break (by default exactly one is dropped)')
    .addOption(new Option('--mode <mode>', 'read: agents may read it; inject (the default): only the gateway/proxy use it').choices(SECRET_MODES))
    .option('--description <text>', 'what this secret is for')
    .option('--owner <id>', 'owning team or agent')
    .option('--rotation-period <duration>', 'how often the value should be rotated, e.g. 30d (metadata: shows as rotation_due_at)')
    .option('--rotator <kind>', 'who rotates it: postgres-static, engine-root, http or manual (docs/rotation.md)')
    .option('--rotator-opt <key=value>', 'a rotator option, repeatable: engine=, role=, endpoint=, grace_period=, end_sessions=', (v: string, prev: string[] = []) => [...prev, v])
    .action(async (path: string, value: string | undefined, opts: { fromFile?: string; keepNewline?: boolean; mode?: string; description?: string; owner?: string; rotationPeriod?: string; rotator?: string; rotatorOpt?: string[] }, cmd: Command) => {
      if (opts.rotatorOpt && opts.rotator === undefined) throw usage('--rotator-opt needs --rotator KIND');
      if ((value === undefined) === (opts.fromFile === undefined)) throw usage('give the value as an argument, `-` for standard input, or --from-file FILE (exactly one)');
      // `-` and --from-file read the same way: UTF-8 text, one trailing line break dropped
      // unless --keep-newline (docs/cli.md); an argument is taken as it is.
      let v: string;
      if (opts.fromFile !== undefined) {
        requireLocalPath(opts.fromFile, 'file', '--from-file');
        let bytes: Buffer;
        try {
          bytes = await readFile(opts.fromFile);
        } catch (e) {
          throw usage(`--from-file ${opts.fromFile} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
        }
        v = secretText(bytes, `--from-file ${opts.fromFile}`, opts.keepNewline === true);
      } else if (value === '-') {
        v = secretText(await readAllBytes(io.stdin), 'standard input', opts.keepNewline === true);
      } else {
        if (opts.keepNewline) throw usage('--keep-newline applies to a value read with - or --from-file; an argument is stored as it is');
        v = value!;
      }
      const rotator = opts.rotator !== undefined ? rotatorFromFlags(opts.rotator, opts.rotatorOpt ?? []) : undefined;
      const r = await admin(cmd).putSecret(path, { value: v, mode: opts.mode, description: opts.description, owner: opts.owner, rotation_period: opts.rotationPeriod, ...(rotator ? { rotator } : {}) });
      if (isJson(cmd)) return printJson(withoutValue(r));
      out(`stored ${path}${r?.version !== undefined ? ` (version ${cell(r.version)}${r.mode ? `, mode ${cell(r.mode)}` : ''})` : ''}`);
    });
  kv.command('get <path>')
    .description('print a secret value (the value only; --json for metadata)')
    .option('--version <n>', 'a specific version', (v) => positiveInt(v, '--version'))
    .action(async (path: string, opts: { version?: number }, cmd: Command) => {
      const r = await admin(cmd).getSecret(path, opts.version);
      if (isJson(cmd)) return printJson(r);
      const value = r?.value;
      if (typeof value !== 'string') throw new CliError('TESSERA_SDK_RESPONSE_INVALID', 'the server answered without a value', EXIT.REFUSED);
      // Exact bytes when piped (files, keys); a trailing newline only for a terminal.
      io.stdout.write(io.stdout.isTTY ? value + '\n' : value);
    });
  kv.command('list [prefix]')
    .description('list secret paths under a prefix (metadata only, never values)')
    .action(async (prefix: string | undefined, _opts: unknown, cmd: Command) => {
      // `app/` and `app` mean the same folder; the server wants no trailing slash.
      const r = await admin(cmd).listSecrets((prefix ?? '').replace(/\/+$/, ''));
      if (isJson(cmd)) return printJson(r);
      const rows = listOf(r).map((x) => ({ ...withoutValue(x), version: x.current_version ?? x.version, updated_at: x.updated_at !== undefined ? fmtTime(x.updated_at) : undefined }));
      if (rows.length === 0) return info(`no secrets under "${prefix ?? ''}"`);
      out(table(rows, pickColumns(rows, ['path', 'version', 'mode', 'owner', 'description', 'updated_at'])));
      if ((r as { truncated?: boolean })?.truncated) info('(list truncated; narrow the prefix)');
    });
  registerKvRotationCommands(kv, { admin, isJson, out, info, printJson });
  kv.command('rm <path>')
    .description('delete a secret (all versions)')
    .action(async (path: string, _opts: unknown, cmd: Command) => {
      const r = await admin(cmd).deleteSecret(path);
      if (isJson(cmd)) return printJson(r ?? { deleted: path });
      out(`deleted ${path}`);
    });

  // --- agents ---------------------------------------------------------------------
  const agentCmd = program
    .command('agent')
    .description('the Kubernetes sidecar (`tessera agent` = `tessera agent run`, docs/k8s-agent.md) and registered agents');
  agentCmd
    .command('list')
    .description('list agents known to Tessera')
    .action(async (_opts: unknown, cmd: Command) => {
      const r = await admin(cmd).listAgents();
      if (isJson(cmd)) return printJson(r);
      const rows = listOf(r);
      out(rows.length ? table(rows, pickColumns(rows, ['spiffe_id', 'attestor', 'logins', 'first_seen', 'last_seen'])) : 'no agents');
    });

  // --- policy ---------------------------------------------------------------------
  const policy = program.command('policy').description('Cedar policies');
  policy
    .command('validate <dir>')
    .description('parse and validate every .cedar file in DIR against the Tessera schema (offline); with --config, also warn about trust domains the server does not serve')
    .option('--config <file>', "tessera.yaml: warn about each policy that pins a trust domain it does not serve (trust_domain and the spiffe attestors')")
    .action(async (dir: string, opts: { config?: string }, cmd: Command) => {
      requireLocalPath(dir, 'directory', 'the policy directory', 'give the directory that holds the .cedar files (a YAML table of cases runs with `tessera policy test FILE`)');
      if (opts.config !== undefined) requireLocalPath(opts.config, 'file', '--config');
      const mod = await policyModule();
      if (typeof mod.validatePolicyDir !== 'function') throw new CliError('TESSERA_CLI_UNSUPPORTED', 'this build has no offline policy validation', EXIT.REFUSED);
      const served = opts.config !== undefined ? await servedTrustDomains(opts.config) : undefined;
      const r = mod.validatePolicyDir(dir);
      const pinned = [...new Set((r.pinned ?? []).flatMap((p) => p.trustDomains ?? []))].sort();
      const warnings = served && mod.unservedTrustDomains && mod.describeUnserved ? mod.unservedTrustDomains(r.pinned ?? [], served).map((u) => mod.describeUnserved!(u, served)) : [];
      if (isJson(cmd)) printJson({ ok: r.ok, errors: r.errors, files: r.files, policies: r.policies, trust_domains: pinned, ...(served ? { served_trust_domains: served, warnings } : {}) });
      else if (r.ok) {
        out(`ok: ${count(r.policies, 'policy', 'policies')} in ${count(r.files.length, 'file')}`);
        for (const w of warnings) info(`warning: ${w}`);
        if (!served && pinned.length) info(`note: the policies pin ${count(pinned.length, 'trust domain')}: ${pinned.join(', ')}; --config FILE warns about any the server does not serve`);
      } else for (const e of r.errors) info(mod.formatPolicyError ? mod.formatPolicyError(e) : `${cell(e.file)}:${e.line}:${e.column}: ${cell(e.message)}`);
      if (!r.ok) throw new CliError('TESSERA_POLICY_INVALID', `${count(r.errors.length, 'problem')} in ${dir}`, EXIT.REFUSED);
    });
  policy
    .command('check')
    .description('what-if: would PRINCIPAL be allowed ACTION on RESOURCE? (asks the server, with explanation)')
    .requiredOption('--principal <spiffe-id>', 'the agent, e.g. spiffe://example.org/agent/demo')
    .addOption(new Option('--action <action>', 'the action to decide').choices(POLICY_ACTIONS).makeOptionMandatory())
    .requiredOption('--resource <ref>', 'Type::id, e.g. Secret::db/prod/password, Role::postgres/readonly, Tool::github/create_issue, Route::github')
    .option('--context <json>', 'request context as a JSON object, e.g. \'{"args":{"repo":"acme/web"}}\'')
    .option('--attr <k=v>', 'principal attribute (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--attestor <name>', 'the attestor that would have proven the identity (its tessera.yaml name)')
    .addOption(new Option('--attestor-kind <kind>', 'its kind (namespace/service_account/pod attributes need kubernetes)').choices(ATTESTOR_KINDS))
    .option('--scope <scope>', 'token scope the principal would hold (repeatable), e.g. secret:demo/**', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--task <txn>', 'task id the principal would act in')
    .option('--purpose <text>', 'task purpose')
    .option('--user <id>', 'user the task acts for')
    .option('--dpop', 'the token would be DPoP-bound (policy sees context.dpop = true)')
    .option('--exit-code', 'exit with 1 when the decision is deny')
    .action(async (opts: { principal: string; action: string; resource: string; context?: string; attr: string[]; attestor?: string; attestorKind?: string; scope: string[]; task?: string; purpose?: string; user?: string; dpop?: boolean; exitCode?: boolean }, cmd: Command) => {
      let context: Record<string, unknown> | undefined;
      if (opts.context !== undefined) {
        try {
          context = JSON.parse(opts.context) as Record<string, unknown>;
        } catch {
          throw usage('--context must be a JSON object, e.g. \'{"purpose":"triage"}\'');
        }
        if (!context || typeof context !== 'object' || Array.isArray(context)) throw usage('--context must be a JSON object');
      }
      const attributes: Record<string, string> = {};
      for (const a of opts.attr) {
        const i = a.indexOf('=');
        if (i <= 0) throw usage(`--attr expects key=value, got "${a}"`);
        attributes[a.slice(0, i)] = a.slice(i + 1);
      }
      const r = await admin(cmd).policyCheck({
        principal: {
          spiffe_id: opts.principal,
          ...(opts.attr.length ? { attributes } : {}),
          ...(opts.attestor ? { attestor: opts.attestor } : {}),
          ...(opts.attestorKind ? { attestor_kind: opts.attestorKind } : {}),
          ...(opts.scope.length ? { scope: opts.scope } : {}),
          ...(opts.task ? { task: opts.task } : {}),
          ...(opts.purpose ? { purpose: opts.purpose } : {}),
          ...(opts.user ? { user: opts.user } : {}),
          ...(opts.dpop ? { dpop: true } : {}),
        },
        action: opts.action,
        resource: opts.resource,
        ...(context ? { context } : {}),
      });
      const decision = String(r.decision ?? (r.allowed === true ? 'allow' : r.allowed === false ? 'deny' : 'unknown'));
      if (isJson(cmd)) printJson(r);
      else {
        out(`decision: ${cell(decision.toUpperCase())}`);
        const policies = r.policies ?? r.reasons ?? (r.reason as Record<string, unknown> | undefined)?.policies;
        if (Array.isArray(policies) && policies.length) {
          out('decided by:');
          for (const p of policies as unknown[]) {
            const o = p && typeof p === 'object' ? (p as Record<string, unknown>) : { id: p };
            out(`  ${cell(o.id)}${o.effect ? ` (${cell(o.effect)})` : ''}${o.file ? `  ${cell(o.file)}${o.line ? `:${cell(o.line)}` : ''}` : ''}`);
          }
        } else if (decision === 'deny') out('no policy matched: default deny');
        if (r.explanation !== undefined) out(`explanation: ${typeof r.explanation === 'string' ? cell(r.explanation) : terminalJson(r.explanation, 2)}`);
        if (Array.isArray(r.errors) && r.errors.length) out(`errors: ${r.errors.map(cell).join('; ')}`);
      }
      if (opts.exitCode && decision !== 'allow') throw new CliError('TESSERA_POLICY_DENIED', `${opts.principal} may not ${opts.action} ${opts.resource}`, EXIT.REFUSED);
    });
  policy
    .command('test <file>')
    .description('run a YAML table of expected decisions (offline) against a policy directory')
    .option('--policies <dir>', "policy directory (default: the file's `policies:` key, else the file's directory)")
    .action(async (file: string, opts: { policies?: string }, cmd: Command) => {
      requireLocalPath(file, 'file', 'the policy test file', 'give a YAML table of cases (docs/policies.md); a policy directory is checked with `tessera policy validate DIR`');
      if (opts.policies !== undefined) requireLocalPath(opts.policies, 'directory', '--policies');
      const mod = await policyModule();
      if (typeof mod.runPolicyTests !== 'function') throw new CliError('TESSERA_CLI_UNSUPPORTED', 'this build has no offline policy test runner', EXIT.REFUSED);
      const r = await mod.runPolicyTests({ testFile: file, ...(opts.policies ? { policyDir: opts.policies } : {}) });
      if (isJson(cmd)) printJson(r);
      else {
        for (const c of r.cases) out(`${c.pass ? 'PASS' : 'FAIL'}  ${cell(c.name)}${c.pass ? '' : `  — ${c.reason !== undefined ? cell(c.reason) : `expected ${cell(c.expected)}, got ${cell(c.actual ?? 'error')}`}`}`);
        out(`${r.passed} passed, ${r.failed} failed (policies: ${cell(r.policyDir)})`);
      }
      if (!r.ok) throw new CliError('TESSERA_POLICY_TEST_FAILED', `${r.failed} of ${count(r.cases.length, 'policy test case')} failed`, EXIT.REFUSED);
    });

  policy
    .command('status')
    .description('the active policy set on the server: its directory, policy ids, last reload and error')
    .action(async (_opts: unknown, cmd: Command) => {
      const r = await admin(cmd).policyStatus();
      if (isJson(cmd)) return printJson(r);
      out(`directory: ${cell(r.dir)}${r.demo ? `  (the demo policies; dev mode serves ${cell(r.configured_dir)} once it exists)` : ''}`);
      out(`ready: ${r.ready === true ? 'yes' : 'NO (no valid policy set: every request is refused)'}`);
      const ids = Array.isArray(r.policy_ids) ? r.policy_ids : [];
      out(`policies: ${cell(r.policies)} in ${count(Array.isArray(r.files) ? r.files.length : 0, 'file')}${r.last_good_at ? `, loaded ${fmtTime(r.last_good_at)}` : ''}`);
      for (const id of ids) out(`  ${cell(id)}`);
      const e = r.last_error as { file?: unknown; line?: unknown; column?: unknown; message?: unknown } | null | undefined;
      if (e) out(`last reload failed (the set above stays active): ${cell(e.file)}:${cell(e.line)}:${cell(e.column)}: ${cell(e.message)}`);
    });

  // --- revocations ------------------------------------------------------------------
  const revoke = program.command('revoke').description('the kill switch: revoke an agent, task tree, user, token, lease or Kubernetes pod');
  for (const kind of REVOCATION_KINDS) {
    const target = { agent: '<spiffe-id>', task: '<txn-id>', user: '<user-id>', token: '<jwt|jti|->', lease: '<lease-id>', pod: '<pod-uid>' }[kind];
    revoke
      .command(`${kind} ${target}`)
      .description(
        {
          agent: 'revoke an agent: its tokens, its tasks and their leases',
          task: 'revoke a task tree: every token and lease descending from it',
          user: "revoke everything acting for a user",
          token: 'revoke one token: give the JWT (its jti is extracted locally; `-` reads it from stdin) or the raw jti',
          lease: 'revoke a lease (drops the credential at its backend)',
          pod: "revoke a Kubernetes pod by its metadata.uid: its agents' tokens, leases and task trees (what the pod watch does on deletion)",
        }[kind],
      )
      .option('--reason <text>', 'why (kept with the revocation; shown by `tessera revoke list`)')
      .option('--ttl <duration>', 'how long the revocation lasts, e.g. 1h (default: until lifted)')
      .action(async (rawTarget: string, opts: { reason?: string; ttl?: string }, cmd: Command) => {
        let t = kind === 'token' ? await stdinValue(rawTarget) : rawTarget;
        if (kind === 'token' && looksLikeJwt(t)) {
          let jti: unknown;
          try {
            jti = decodeJwt(t).claims.jti;
          } catch (e) {
            throw usage((e as Error).message);
          }
          if (typeof jti !== 'string' || !jti) throw usage('the token has no `jti` claim; revoke its agent or task instead');
          t = jti;
        }
        if (!t) throw usage('the revocation target is empty');
        const r = await admin(cmd).createRevocation({ kind, target: t, reason: opts.reason, ttl: opts.ttl });
        // Recorded either way; an agent that never logged in is often a typo in the SPIFFE ID.
        if (r?.known === false) info(`warning: ${typeof r.warning === 'string' ? cell(forCli(r.warning, nextStepOf({ next_step: r.warning_next_step }))) : `no agent ${t} has ever logged in`}`);
        if (isJson(cmd)) return printJson(r);
        out(`revoked ${kind} ${cell(t)}${r?.id ? ` (revocation ${cell(r.id)}${r.expires_at ? `, until ${fmtTime(r.expires_at)}` : ''}; lift with: tessera revoke lift ${cell(r.id)})` : ''}`);
        if (typeof r?.leases_revoked === 'number') {
          // Every count the server reports (docs/kill-switch.md): disabled = unusable, cleanup pending.
          out(`leases: ${r.leases_revoked} revoked, ${cell(r.leases_disabled ?? 0)} disabled, ${cell(r.leases_retrying ?? 0)} retrying, ${cell(r.leases_irrevocable ?? 0)} irrevocable`);
          if (Number(r.leases_disabled) > 0) info(`${count(Number(r.leases_disabled), 'credential')} ${verb(Number(r.leases_disabled), 'is', 'are')} disabled (no login, sessions ended) but cleanup failed; it is retried. See: tessera lease list --state disabled`);
          if (Number(r.leases_irrevocable) > 0) info('some credentials could not be revoked at their backend; see: tessera lease list --irrevocable');
        }
      });
  }
  revoke
    .command('lift <id>')
    .description('lift (delete) a revocation')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const r = await admin(cmd).liftRevocation(id);
      if (isJson(cmd)) return printJson(r ?? { lifted: id });
      out(`lifted revocation ${id}`);
    });
  revoke
    .command('list')
    .description('list revocations')
    .option('--active', 'only revocations in force')
    .addOption(new Option('--kind <kind>', 'only this kind').choices(REVOCATION_KINDS))
    .action(async (opts: { active?: boolean; kind?: string }, cmd: Command) => {
      const r = await admin(cmd).listRevocations({ active: opts.active ? true : undefined, kind: opts.kind });
      if (isJson(cmd)) return printJson(r);
      const rows = listOf(r);
      out(rows.length ? table(rows, pickColumns(rows, ['id', 'kind', 'target', 'active', 'reason', 'created_at', 'expires_at'])) : 'no revocations');
    });

  // --- tasks ----------------------------------------------------------------------
  registerTaskCommands(program, { admin, isJson, out, printJson });
  registerOperatorTokenCommand(program, { admin, isJson, out, info, printJson, now });

  // --- exposure windows -----------------------------------------------------------------
  registerExposureCommand(program, { admin, isJson, out, printJson });
  // --- drift (docs/drift.md): `tessera drift`, `tessera gateway tools …` -------------------
  registerDriftCommands(program, { admin, isJson, out, printJson });

  // --- leases ---------------------------------------------------------------------
  const lease = program.command('lease').description('dynamic credential leases');
  lease
    .command('revoke <lease-id>')
    .description('revoke one lease now (drops the credential at its backend)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const r = await admin(cmd).revokeLease(id);
      if (isJson(cmd)) return printJson(r);
      out(`revoked lease ${id}${r?.state ? ` (state ${cell(r.state)})` : ''}`);
    });
  lease
    .command('list')
    .description('list leases')
    .addOption(new Option('--state <state>', 'only leases in this state (docs/leases.md)').choices(LEASE_STATES))
    .option('--irrevocable', 'only leases whose backend revocation failed (need a person)')
    .option('--owner <id>', 'only leases owned by this agent/task')
    .action(async (opts: { state?: string; irrevocable?: boolean; owner?: string }, cmd: Command) => {
      const r = await admin(cmd).listLeases({ state: opts.state, irrevocable: opts.irrevocable ? true : undefined, owner: opts.owner });
      if (isJson(cmd)) return printJson(r);
      const rows = listOf(r);
      out(rows.length ? table(rows, pickColumns(rows, ['lease_id', 'engine', 'role', 'owner', 'state', 'expires_at', 'last_error'])) : 'no leases');
    });

  // --- audit ----------------------------------------------------------------------
  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('tail')
    .description('show the latest events; -f keeps polling for new ones until Ctrl-C')
    .option('-f, --follow', 'keep polling')
    .option('-n, --lines <n>', 'how many recent events to show first', (v) => positiveInt(v, '--lines'), 20)
    .option('--actor <id>', 'only events by this actor')
    .option('--txn <id>', 'only events of this task and every task delegated below it')
    .option('--kind <kind>', 'only events of this kind, e.g. auth.login')
    .option('--interval <ms>', 'poll interval with -f', (v) => positiveInt(v, '--interval'), 2000)
    .action(async (opts: { follow?: boolean; lines: number; actor?: string; txn?: string; kind?: string; interval: number }, cmd: Command) => {
      const client = admin(cmd);
      const json = isJson(cmd);
      const print = (e: Record<string, unknown>): void => (json ? out(terminalJson(e)) : out(formatEvent(e)));
      const filters = { actor: opts.actor, txn: opts.txn, kind: opts.kind };
      // Page to the end, keeping the last N events (bounded number of pages).
      let after = 0;
      let recent: Record<string, unknown>[] = [];
      for (let page = 0; page < 1000; page++) {
        const r = await client.audit({ ...filters, after_seq: after, limit: 500 });
        recent = [...recent, ...(r.events ?? [])].slice(-opts.lines);
        const next = Number(r.next_seq ?? after);
        if (!r.events?.length || next <= after) break;
        after = next;
      }
      recent.forEach(print);
      if (!opts.follow) return;
      const shutdown = waitForShutdown(io);
      const stop = new AbortController();
      void shutdown.promise.then(() => stop.abort());
      const sleep = io.sleep ?? defaultSleep;
      try {
        while (!stop.signal.aborted) {
          await sleep(opts.interval, stop.signal);
          if (stop.signal.aborted) break;
          const r = await client.audit({ ...filters, after_seq: after, limit: 500 });
          (r.events ?? []).forEach(print);
          after = Math.max(after, Number(r.next_seq ?? after));
        }
      } finally {
        shutdown.cancel();
      }
    });
  registerAuditJobCommands(audit, { io, runtime, admin, isJson, out, printJson });

  // --- token inspect ----------------------------------------------------------------
  program
    .command('token')
    .description('local token tools')
    .command('inspect [token]')
    .description('decode a token locally (header, claims, expiry); `-` reads stdin, no argument uses TESSERA_TOKEN. Never shows the signature; verifies nothing')
    .action(async (arg: string | undefined, _opts: unknown, cmd: Command) => {
      const raw = arg === undefined ? io.env.TESSERA_TOKEN : await stdinValue(arg);
      if (!raw) throw usage('give a token, `-` to read it from stdin, or set TESSERA_TOKEN');
      let d: ReturnType<typeof decodeJwt>;
      try {
        d = decodeJwt(raw);
      } catch (e) {
        throw usage((e as Error).message);
      }
      const exp = typeof d.claims.exp === 'number' ? d.claims.exp * 1000 : undefined;
      const expired = exp !== undefined ? exp <= now() : undefined;
      if (isJson(cmd)) return printJson({ header: d.header, claims: d.claims, expires_at: exp !== undefined ? new Date(exp).toISOString() : null, expired: expired ?? null, verified: false });
      out(`header: ${cell(d.header)}`);
      out('claims:');
      for (const [k, v] of Object.entries(d.claims)) out(`  ${esc(k)}: ${['exp', 'iat', 'nbf'].includes(k) && typeof v === 'number' ? `${v} (${fmtTime(v)})` : cell(v)}`);
      if (exp !== undefined) out(expired ? `expired ${humanDuration(now() - exp)} ago` : `expires in ${humanDuration(exp - now())}`);
      else out('no exp claim: this token does not expire by itself');
      out('signature: not shown, not verified (inspection is local; the server verifies)');
    });

  // --- operator ---------------------------------------------------------------------
  const operator = program.command('operator').description('operator maintenance (offline, on the data directory)');
  operator
    .command('generate-master-key')
    .description('write a new random master key (32 bytes, base64) to a new file with mode 0600; never printed')
    .requiredOption('--out <file>', 'the new key file (refuses to overwrite)')
    .action(async (opts: { out: string }, cmd: Command) => {
      const { generateMasterKeyFile, masterKeyId } = await masterKeyModule();
      let id: string;
      try {
        const key = generateMasterKeyFile(opts.out);
        id = masterKeyId(key);
        key.fill(0);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new CliError('TESSERA_CLI_FILE_WRITE_FAILED', code === 'EEXIST' ? `${opts.out} already exists; a key file is never overwritten: remove it or choose another --out path` : `cannot write ${opts.out} (${code ?? 'error'})`, EXIT.REFUSED);
      }
      if (isJson(cmd)) return printJson({ key_file: opts.out, key_id: id });
      out(`master key ${id} written to ${opts.out} (mode 0600). Back it up apart from the database; point master_key.file at it, or use it with: tessera operator rotate-master-key --new-key-file ${opts.out}`);
    });
  operator
    .command('rotate-master-key')
    .description('re-wrap every data key with a new master key; then point the configuration at the new key')
    .requiredOption('--new-key-file <file>', 'file with the new 32-byte master key')
    .option('--config <file>', 'tessera.yaml')
    .option('--data-dir <dir>', 'data directory')
    .action(async (opts: { newKeyFile: string; config?: string; dataDir?: string }, cmd: Command) => {
      requireLocalPath(opts.newKeyFile, 'file', '--new-key-file');
      const r = await runtime.rotateMasterKey({
        configPath: opts.config,
        dataDir: opts.dataDir,
        newKeyFile: opts.newKeyFile,
        onProgress: isJson(cmd) ? undefined : (done, total) => info(total > 0 ? `re-wrapped ${done}/${total}` : `re-wrapped ${done}`),
      });
      if (isJson(cmd)) return printJson(r);
      out(`master key rotated: ${count(r.rewrapped, 'data key')} re-wrapped. Update master_key in the configuration to ${opts.newKeyFile}, then restart.`);
    });

  // --- creds (agent) ------------------------------------------------------------------
  program
    .command('creds <engine> <role>')
    .description('as an agent (TESSERA_TOKEN = agent token): issue a dynamic credential; prints it')
    .option('--ttl <duration>', 'requested lifetime, e.g. 15m (capped by the role)')
    .action(async (engine: string, role: string, opts: { ttl?: string }, cmd: Command) => {
      const token = tokenOf(cmd, 'agent');
      const t = agentTransport({ addr: addrOf(cmd), fetch: io.fetch });
      const r = await t.request<Record<string, unknown>>('POST', `/v1/creds/${encodeURIComponent(engine)}/${encodeURIComponent(role)}`, { token, json: opts.ttl ? { ttl: opts.ttl } : {} });
      if (isJson(cmd)) return printJson(r);
      out(`lease_id: ${cell(r.lease_id)}`);
      out(`expires_at: ${fmtTime(r.expires_at)}`);
      out(`renewable: ${cell(r.renewable)}`);
      for (const [k, v] of Object.entries((r.data ?? {}) as Record<string, unknown>)) out(`${esc(k)}: ${cell(v)}`);
    });

  registerMcpCommand(program, { io, addrOf });
  registerAgentSidecarCommands(agentCmd, { io, addrOf: (cmd) => globals(cmd).addr ?? io.env.TESSERA_ADDR });
  registerEngineCommand(program, { io, addrOf });
  registerKeysCommand(program, { io, addrOf });
  // The injection proxy (docs/proxy.md); its subcommands come from the proxy's parts.
  const proxy = registerProxyCommand(program, { admin, isJson, out, printJson });
  registerProxyCaCommand(proxy, { io, addrOf });
  registerInjectorCommand(program, { io, out, info, isJson }); // the Kubernetes webhook (docs/k8s-injector.md)
  const k8s = registerK8sCommand(program);
  registerK8sManifestsCommand(k8s, { io, isJson });
  void k8s; // subcommands: manifests (src/cli/k8s-manifests.ts), scan (src/cli/k8s-scan.ts)
  registerK8sScanCommand(k8s, { io, isJson, out, info, printJson });

  return program;
}

function devBanner(s: RunningServer): string {
  const p = s.policy;
  const lines = [
    `Tessera dev server is running at ${s.url}`,
    'Dev mode: in-memory-grade setup (embedded SQLite, generated keys). Never use it in production.',
    ...(p
      ? [p.demo
        ? `Policies: ${cell(p.dir)} (the demo policies) — until ${cell(p.configuredDir)} exists; create it and dev mode serves it instead`
        : `Policies: ${cell(p.dir)} (${count(p.ids.length, 'policy', 'policies')}; \`tessera policy status\` lists them)`]
      : []),
    ...(s.proxyUrl ? [`Injection proxy: ${cell(s.proxyUrl)} (routes: proxy.routes in tessera.yaml; docs/proxy.md)`] : []),
    `Console: ${s.url}/ui/ (sign in with the admin token below; docs/console.md)`,
    '',
    'Copy-paste to try it (the admin token below is shown only now):',
    '',
    `  export TESSERA_ADDR=${s.url}`,
  ];
  if (s.adminToken) lines.push(`  export TESSERA_TOKEN=${s.adminToken}`);
  if (s.adminToken && s.adminTokenFixed === false) {
    // Every start without --root-token makes a new admin token and revokes the previous start's (docs/operators.md).
    lines.push('  # a new admin token at every start (the previous start\'s stops working); --root-token <value> keeps one');
  }
  lines.push('  tessera kv put healthcare/prod/agents/patient-reader/greeting - --mode read <<< "hello from tessera"', '  tessera kv list healthcare/', '  tessera audit tail');
  if (s.joinToken) {
    lines.push(
      '',
      '  # log in as the demo agent with its one-time join token, then read the secret as that agent:',
      // From the 0600 file when there is one: a token on a command line shows in `ps` and the shell history.
      s.joinTokenFile ? `  AGENT_TOKEN=$(tessera login --join-token-file ${shellWord(s.joinTokenFile)})` : `  AGENT_TOKEN=$(tessera login --join-token - <<< ${s.joinToken})`,
      `  curl -s -H "Authorization: Bearer $AGENT_TOKEN" ${s.url}/v1/secrets/healthcare/prod/agents/patient-reader/greeting`,
      '  tessera token inspect - <<< "$AGENT_TOKEN"',
    );
  }
  lines.push('', 'Press Ctrl-C to stop.');
  return lines.join('\n');
}

/** `word` as one shell word: as is when it has no special character, else single-quoted. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function formatEvent(e: Record<string, unknown>): string {
  const ev = (e.event && typeof e.event === 'object' ? e.event : e) as Record<string, unknown>;
  const a = ev.actor && typeof ev.actor === 'object' ? (ev.actor as Record<string, unknown>) : undefined;
  // A refused request keeps the identity its credential named, marked unverified (docs/audit.md).
  const actor = a ? (a.verified === false ? `${cell(a.id)}(unverified)` : a.id) : ev.actor;
  const reason = ev.reason && typeof ev.reason === 'object' ? ((ev.reason as Record<string, unknown>).code ?? (ev.reason as Record<string, unknown>).policies) : undefined;
  return [cell(e.seq), fmtTime(e.ts ?? ev.ts), cell(ev.kind), cell(actor), cell(ev.action), cell(ev.resource), cell(ev.result), reason !== undefined ? cell(reason) : '', ev.txn ? `txn=${cell(ev.txn)}` : '', e.problem ? `UNTRUSTED(${cell(e.problem)}: run tessera audit verify)` : '']
    .filter((x) => x !== '')
    .join('  ');
}

function positiveInt(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw usage(`${name} must be a positive integer, got "${v}"`);
  return n;
}

function withoutValue(r: Record<string, unknown>): Record<string, unknown> {
  if (!r || typeof r !== 'object') return r;
  const { value: _value, ...rest } = r;
  return rest;
}

function pickColumns(rows: readonly Record<string, unknown>[], preferred: readonly string[]): string[] {
  const present = preferred.filter((c) => rows.some((r) => r[c] !== undefined));
  return present.length ? present : Object.keys(rows[0] ?? {}).slice(0, 6);
}

type PinnedPolicy = { id: string; file: string; line: number; trustDomains?: readonly string[] };

interface PolicyModule {
  validatePolicyDir?: (dir: string) => { ok: boolean; errors: readonly { file: string; line: number; column: number; message: string }[]; files: readonly string[]; policies: number; pinned?: readonly PinnedPolicy[] };
  unservedTrustDomains?: (policies: Iterable<PinnedPolicy>, served: readonly string[]) => { policy: string; file: string; line: number; trustDomain: string }[];
  describeUnserved?: (u: { policy: string; file: string; line: number; trustDomain: string }, served: readonly string[]) => string;
  formatPolicyError?: (e: { file: string; line: number; column: number; message: string }) => string;
  runPolicyTests?: (opts: { testFile: string; policyDir?: string }) => Promise<{
    ok: boolean;
    passed: number;
    failed: number;
    policyDir: string;
    cases: readonly { name: string; pass: boolean; expected: string; actual?: string; reason?: string }[];
  }>;
}

/**
 * The offline policy commands use the policy feature's pure functions. Imported lazily so
 * the Cedar WASM module loads only for `tessera policy validate|test`.
 */
/** Key generation for `operator generate-master-key`, loaded only for that command. */
async function masterKeyModule(): Promise<{ generateMasterKeyFile(path: string): Buffer; masterKeyId(key: Uint8Array): string }> {
  const spec = '../secrets/master-key.js';
  return (await import(spec)) as { generateMasterKeyFile(path: string): Buffer; masterKeyId(key: Uint8Array): string };
}

/** The trust domains the configuration in `path` serves (trust_domain, then the spiffe attestors'); a bad file is a usage error. */
async function servedTrustDomains(path: string): Promise<readonly string[]> {
  const configSpec = '../config/load.js';
  const tdSpec = '../identity/trust-domains.js';
  const { loadConfigFile } = (await import(configSpec)) as { loadConfigFile(p: string): { trust_domain: string; attestors: readonly { kind: string; trust_domain?: string }[] } };
  const { trustDomainsOf } = (await import(tdSpec)) as { trustDomainsOf(c: { trust_domain: string; attestors: readonly { kind: string; trust_domain?: string }[] }): { list(): readonly string[] } };
  try {
    return trustDomainsOf(loadConfigFile(path)).list();
  } catch (e) {
    throw usage(`--config: ${(e as Error).message}`);
  }
}

async function policyModule(): Promise<PolicyModule> {
  const spec = '../policy/index.js';
  return (await import(spec)) as PolicyModule;
}
