/**
 * `tessera mcp`: a stdio MCP server that relays every JSON-RPC message, unchanged, to the
 * Tessera gateway's Streamable HTTP endpoint (`<addr>/mcp`), authenticated with a short-lived
 * agent token that the agent SDK obtains (projected token file or join token) and keeps fresh,
 * bound to a key the relay holds in memory (DPoP, RFC 9449): a fresh proof goes with every request.
 * A stdio-only MCP client (Claude Desktop, Cursor, VS Code) thus gets a brokered identity
 * instead of API keys in its environment.
 *
 * stdout carries the protocol only (MCP stdio transport, newline-delimited JSON-RPC); every
 * log line goes to stderr, and no line ever contains a token.
 */
import type { Readable, Writable } from 'node:stream';
import { TesseraClient, type SdkClock } from '../../sdk/client.js';
import { LoginSession } from '../../sdk/login-session.js';
import { decodeJwt } from '../../sdk/jwt.js';
import { normalizeAddr, type FetchLike } from '../../sdk/http.js';
import { escapeTerminal } from '../../shared/terminal.js';
import { relaySession } from './session.js';
import { describe, RELAY_EXIT } from './errors.js';

export { RELAY_EXIT, RelayError } from './errors.js';

export interface StdioRelayOptions {
  /** Tessera address (`http://127.0.0.1:8200`); the gateway is `<addr>/mcp`. */
  readonly addr: string;
  /** Workload JWT file (a Kubernetes projected service-account token); re-read on every refresh. */
  readonly tokenFile?: string;
  /** One-time join token (dev, VMs). The session cannot be renewed once its token expires. */
  readonly joinToken?: string;
  /** A person's login file (`tessera login --oidc`): refresh tokens, rotated by the relay itself. */
  readonly loginFile?: string;
  /** RFC 8707 audience of the agent token; default: the gateway URL (`<addr>/mcp`). */
  readonly audience?: string;
  /** Gateway endpoint, when it is not `<addr>/mcp` (a proxy in between). */
  readonly mcpUrl?: string;
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: { write(chunk: string): unknown };
  /** Print the fatal error to stderr (default true); the CLI prints it itself. */
  readonly printErrors?: boolean;
  /** Injectable for tests and proxies; used both for the token endpoint and the gateway. */
  readonly fetch?: FetchLike;
  readonly clock?: SdkClock;
  /** Stops the relay (like stdin closing). */
  readonly signal?: AbortSignal;
}

export interface StdioRelayResult {
  readonly exitCode: number;
  /** Why the relay stopped, when it failed. Never contains a token. */
  readonly error?: { readonly code: string; readonly message: string };
}

/**
 * Runs the relay until stdin ends (the MCP client went away), `signal` aborts, or the agent
 * identity is lost for good (a join-token session whose token expired: exit 1 with
 * TESSERA_SDK_REFRESH_IMPOSSIBLE, naming --token-file). A gateway session that ends (HTTP 404:
 * idle expiry, restart, deploy) is renewed transparently (./session.ts). Never throws.
 */
export async function runStdioRelay(options: StdioRelayOptions): Promise<StdioRelayResult> {
  // One line per message; the gateway's answers may echo agent-controlled text (src/shared/terminal.ts).
  const log = (line: string): void => void options.stderr.write(`tessera mcp: ${escapeTerminal(line)}\n`);
  const fail = (code: string, message: string, exitCode: number): StdioRelayResult => {
    if (options.printErrors !== false) log(`error: ${message} [${code}]`);
    return { exitCode, error: { code, message } };
  };

  if ((options.tokenFile ? 1 : 0) + (options.joinToken ? 1 : 0) + (options.loginFile ? 1 : 0) !== 1) {
    return fail('TESSERA_CLI_USAGE', 'give exactly one of --token-file <path> (a projected workload token, refreshed automatically), --login-file <path> (a person\'s login from `tessera login --oidc`) or --join-token <token> / --join-token-file <path> (one-time, for a quick start)', RELAY_EXIT.USAGE);
  }
  let addr: string;
  let mcpUrl: URL;
  try {
    addr = normalizeAddr(options.addr);
    mcpUrl = new URL(options.mcpUrl ?? `${addr}/mcp`);
  } catch (err) {
    return fail('TESSERA_CLI_USAGE', (err as Error).message, RELAY_EXIT.USAGE);
  }

  const baseFetch: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
  if (options.loginFile) {
    // A person's identity: the login file's refresh token, rotated on every refresh (docs/users.md).
    const session = new LoginSession({ file: options.loginFile, fetch: baseFetch, ...(options.clock ? { now: () => options.clock!.now() } : {}) });
    try {
      await session.token();
    } catch (err) {
      const d = describe(err);
      return fail(d.code, `login from ${options.loginFile} failed: ${d.message}`, d.exitCode);
    }
    log(`logged in to ${addr} as a person (${options.loginFile}); relaying stdio to ${mcpUrl.href}`);
    return relaySession({ client: session, mcpUrl, baseFetch, stdin: options.stdin, stdout: options.stdout, log, fail, tokenSource: options.loginFile, ...(options.signal ? { signal: options.signal } : {}) });
  }
  const client = new TesseraClient({
    addr,
    // RFC 8707: the token is for the gateway, not for Tessera's API.
    audience: options.audience ?? mcpUrl.href,
    fetch: baseFetch,
    clock: options.clock,
    onRefreshError: (err) => {
      const d = describe(err);
      log(`background token refresh failed: ${d.message} [${d.code}]; retrying while the current token is valid`);
    },
  });

  try {
    if (options.tokenFile) await client.loginWithTokenFile(options.tokenFile);
    else await client.loginWithJoinToken(options.joinToken!);
  } catch (err) {
    client.close();
    const d = describe(err);
    return fail(d.code, `login to ${addr} failed: ${d.message}`, d.exitCode);
  }
  log(`logged in to ${addr}; relaying stdio to ${mcpUrl.href}`);
  if (options.joinToken) log(joinTokenWarning(await client.token().catch(() => undefined), options.clock?.now() ?? Date.now()));

  return relaySession({ client, mcpUrl, baseFetch, stdin: options.stdin, stdout: options.stdout, log, fail, ...(options.tokenFile ? { tokenFile: options.tokenFile } : {}), ...(options.signal ? { signal: options.signal } : {}) });
}

/** Where a person finds how to get a refreshable identity (docs/gateway.md). */
export const REFRESHABLE_IDENTITY_DOC = 'docs/gateway.md, "A refreshable identity on a laptop"';

/** The start-up warning of a join-token session: when it ends, and what to use instead. */
function joinTokenWarning(token: string | undefined, now: number): string {
  let exp: unknown;
  try {
    exp = token ? decodeJwt(token).claims.exp : undefined;
  } catch {
    exp = undefined;
  }
  const when = typeof exp === 'number' ? `at ${new Date(exp * 1000).toISOString()} (in about ${Math.max(0, Math.round((exp * 1000 - now) / 60_000))} min)` : 'within minutes';
  return `warning: --join-token gives ONE agent token, which cannot be renewed (a join token is single-use): it expires ${when}, and every call fails after that. For a session that lasts, use --login-file <path> after 'tessera login --oidc' (a person), or --token-file <path> with a token file that is kept fresh (${REFRESHABLE_IDENTITY_DOC}).`;
}

