/**
 * `tessera mcp`: a stdio MCP server that relays every JSON-RPC message, unchanged, to the
 * Tessera gateway's Streamable HTTP endpoint (`<addr>/mcp`), authenticated with a short-lived
 * agent token that the agent SDK obtains (projected token file or join token) and keeps fresh.
 * A stdio-only MCP client (Claude Desktop, Cursor, VS Code) thus gets a brokered identity
 * instead of API keys in its environment.
 *
 * stdout carries the protocol only (MCP stdio transport, newline-delimited JSON-RPC); every
 * log line goes to stderr, and no line ever contains a token.
 */
import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { TesseraClient, type SdkClock } from '../../sdk/client.js';
import { TesseraApiError, TesseraAuthError, TesseraConnectionError } from '../../sdk/errors.js';
import { normalizeAddr, type FetchLike } from '../../sdk/http.js';
import { escapeTerminal } from '../../shared/terminal.js';

/** Exit codes, the same as the CLI's (docs/cli.md): refused, usage, cannot connect. */
export const RELAY_EXIT = { OK: 0, REFUSED: 1, USAGE: 2, CONNECT: 3 } as const;

export interface StdioRelayOptions {
  /** Tessera address (`http://127.0.0.1:8200`); the gateway is `<addr>/mcp`. */
  readonly addr: string;
  /** Workload JWT file (a Kubernetes projected service-account token); re-read on every refresh. */
  readonly tokenFile?: string;
  /** One-time join token (dev, VMs). The session cannot be renewed once its token expires. */
  readonly joinToken?: string;
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

/** JSON-RPC 2.0 §5.1 implementation-defined server error, used when the gateway cannot be reached. */
const RELAY_ERROR_CODE = -32000;

function isRequest(m: JSONRPCMessage): m is JSONRPCMessage & { id: string | number; method: string } {
  return 'method' in m && 'id' in m && m.id !== undefined;
}

function describe(err: unknown): { code: string; message: string; exitCode: number } {
  if (err instanceof TesseraAuthError || err instanceof TesseraApiError) {
    return { code: err.code, message: err.message, exitCode: RELAY_EXIT.REFUSED };
  }
  if (err instanceof TesseraConnectionError) return { code: err.code, message: err.message, exitCode: RELAY_EXIT.CONNECT };
  if (err instanceof StreamableHTTPError) {
    // The SDK puts the gateway's answer in the message; the gateway never echoes a token.
    return { code: 'TESSERA_GATEWAY_RELAY_REFUSED', message: `the gateway answered ${err.code ?? 'an error'}: ${err.message.slice(0, 500)}`, exitCode: RELAY_EXIT.REFUSED };
  }
  const e = err as { message?: unknown; cause?: { code?: unknown } };
  const cause = typeof e?.cause?.code === 'string' ? ` (${e.cause.code})` : '';
  return { code: 'TESSERA_GATEWAY_RELAY_FAILED', message: `${typeof e?.message === 'string' ? e.message : String(err)}${cause}`, exitCode: RELAY_EXIT.CONNECT };
}

/**
 * Runs the relay until stdin ends (the MCP client went away), `signal` aborts, or the agent
 * identity is lost for good (a join-token session whose token expired). Never throws.
 */
export async function runStdioRelay(options: StdioRelayOptions): Promise<StdioRelayResult> {
  // One line per message; the gateway's answers may echo agent-controlled text (src/shared/terminal.ts).
  const log = (line: string): void => void options.stderr.write(`tessera mcp: ${escapeTerminal(line)}\n`);
  const fail = (code: string, message: string, exitCode: number): StdioRelayResult => {
    if (options.printErrors !== false) log(`error: ${message} [${code}]`);
    return { exitCode, error: { code, message } };
  };

  if ((options.tokenFile ? 1 : 0) + (options.joinToken ? 1 : 0) !== 1) {
    return fail('TESSERA_CLI_USAGE', 'give exactly one of --token-file <path> (a projected workload token, refreshed automatically) or --join-token <token> (one-time, for a quick start)', RELAY_EXIT.USAGE);
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

  return new Promise<StdioRelayResult>((resolve) => {
    let finished = false;
    let fatal: StdioRelayResult | undefined;

    // The bearer is set per request, so every POST, GET (SSE) and DELETE carries the token
    // that is valid now, refreshed by the SDK in the background (MCP authorization §2.6.1:
    // the token goes in the Authorization header of every HTTP request).
    const authedFetch = async (input: string | URL, init?: RequestInit): Promise<Response> => {
      let token: string;
      try {
        token = await client.token();
      } catch (err) {
        if (err instanceof TesseraAuthError) {
          const d = describe(err);
          fatal ??= fail(d.code, d.message, d.exitCode);
          void shutdown();
        }
        throw err;
      }
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${token}`);
      return baseFetch(input.toString(), { ...init, headers });
    };

    const stdio = new StdioServerTransport(options.stdin, options.stdout);
    const http = new StreamableHTTPClientTransport(mcpUrl, { fetch: authedFetch });

    // Until the gateway has answered `initialize` (and assigned the session id), hold the
    // other client messages back: sending them concurrently would race the session id.
    let initId: string | number | undefined;
    let releaseReady: () => void = () => {};
    let ready: Promise<void> | undefined;

    const replyError = (msg: JSONRPCMessage, err: unknown): void => {
      const d = describe(err);
      log(`could not relay ${'method' in msg ? msg.method : 'a message'}: ${d.message} [${d.code}]`);
      if (isRequest(msg) && !finished) {
        void stdio.send({ jsonrpc: '2.0', id: msg.id, error: { code: RELAY_ERROR_CODE, message: `tessera mcp: ${d.message}`, data: { code: d.code } } }).catch(() => {});
      }
      if (isRequest(msg) && msg.id === initId) releaseReady();
    };

    const forward = (msg: JSONRPCMessage): void => {
      http.send(msg).catch((err: unknown) => replyError(msg, err));
    };

    stdio.onmessage = (msg) => {
      if (finished) return;
      if (isRequest(msg) && msg.method === 'initialize') {
        initId = msg.id;
        ready = new Promise<void>((r) => (releaseReady = r));
        forward(msg);
        return;
      }
      if (ready) void ready.then(() => forward(msg));
      else forward(msg);
    };
    stdio.onerror = (err) => log(`stdin: ${describe(err).message}`);

    http.onmessage = (msg) => {
      if ('id' in msg && msg.id === initId && initId !== undefined && 'result' in msg) {
        const version = (msg.result as { protocolVersion?: unknown }).protocolVersion;
        // Later requests must carry MCP-Protocol-Version (MCP transports, "Protocol Version Header").
        if (typeof version === 'string') http.setProtocolVersion(version);
        void stdio.send(msg).finally(() => releaseReady());
        return;
      }
      if ('id' in msg && msg.id === initId && 'error' in msg) releaseReady();
      void stdio.send(msg).catch((err: unknown) => log(`stdout: ${describe(err).message}`));
    };
    http.onerror = (err) => {
      // Also reported per message through replyError; this catches the standalone SSE stream.
      if (!finished) log(`gateway: ${describe(err).message}`);
    };

    const shutdown = async (): Promise<void> => {
      if (finished) return;
      finished = true;
      options.stdin.off('end', onEnd);
      options.stdin.off('close', onEnd);
      options.signal?.removeEventListener('abort', onEnd);
      try {
        // Be polite: end the gateway session (MCP transports, "Session Management"); a gateway
        // that does not support DELETE answers 405, which the SDK accepts.
        if (http.sessionId && !fatal) await http.terminateSession();
      } catch {
        // The gateway may be gone already; nothing to clean up then.
      }
      await http.close().catch(() => {});
      await stdio.close().catch(() => {});
      client.close();
      resolve(fatal ?? { exitCode: RELAY_EXIT.OK });
    };
    const onEnd = (): void => void shutdown();
    options.stdin.once('end', onEnd);
    options.stdin.once('close', onEnd);
    if (options.signal?.aborted) return void shutdown();
    options.signal?.addEventListener('abort', onEnd, { once: true });

    void (async () => {
      try {
        await http.start();
        await stdio.start();
      } catch (err) {
        const d = describe(err);
        fatal ??= fail(d.code, d.message, d.exitCode);
        void shutdown();
      }
    })();
  });
}
