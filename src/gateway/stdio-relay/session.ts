/**
 * The relay's MCP side (`tessera mcp`, ./relay.ts): stdio from the MCP client, Streamable HTTP
 * to the gateway, with a fresh agent token on every HTTP request.
 *
 * A gateway session ends without the client knowing: idle expiry (`gateway.session_idle_timeout`),
 * a restart, a deploy. MCP transports (2025-06-18 and 2025-11-25, "Session Management"): "When
 * a client receives HTTP 404 in response to a request containing an Mcp-Session-Id, it MUST
 * start a new session by sending a new InitializeRequest without a session ID attached." The
 * relay does that itself, with the client's original initialize parameters, sends
 * `notifications/initialized` when the client had, and retries the refused message ONCE on the
 * new session; if that fails too, the client gets the error. Messages arriving meanwhile wait.
 *
 * Token renewal: with a token file, a refresh that fails (the file's token expired, the file is
 * being rewritten, the server is down) fails that request with the reason and the relay keeps
 * running — the next request re-reads the file. With a join token the agent token cannot be
 * renewed: the pending request gets an error naming `--token-file`, then the relay exits 1.
 */
import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { TesseraClient } from '../../sdk/client.js';
import { TesseraAuthError } from '../../sdk/errors.js';
import type { FetchLike } from '../../sdk/http.js';
import { describe, RelayError, RELAY_EXIT } from './errors.js';
import type { StdioRelayResult } from './relay.js';

/** JSON-RPC 2.0 §5.1 implementation-defined server error, used when the gateway cannot be reached. */
const RELAY_ERROR_CODE = -32000;
/** How long a renewal waits for the gateway's answer to `initialize`. */
const REINITIALIZE_TIMEOUT_MS = 30_000;
const JOIN_TOKEN_EXPIRED =
  'the agent token from --join-token expired and cannot be renewed (a join token is single-use). Restart `tessera mcp` with --token-file <path>: a workload or identity-provider token file that is kept fresh (docs/gateway.md, "A refreshable identity on a laptop")';

type Request = JSONRPCMessage & { id: string | number; method: string; params?: Record<string, unknown> };

function isRequest(m: JSONRPCMessage): m is Request {
  return 'method' in m && 'id' in m && m.id !== undefined;
}

export interface RelaySessionDeps {
  /** Where access tokens come from: the agent SDK's client, or a person's login session. */
  readonly client: Pick<TesseraClient, 'token' | 'close' | 'authorizedFetch'>;
  readonly mcpUrl: URL;
  readonly baseFetch: FetchLike;
  readonly stdin: Readable;
  readonly stdout: Writable;
  /** Set for a token-file login (refresh failures are per request, not fatal). */
  readonly tokenFile?: string;
  /** Set for a login-file session (named in the refusal of a failed refresh). */
  readonly tokenSource?: string;
  readonly signal?: AbortSignal;
  readonly log: (line: string) => void;
  readonly fail: (code: string, message: string, exitCode: number) => StdioRelayResult;
}

export function relaySession(deps: RelaySessionDeps): Promise<StdioRelayResult> {
  const { client, log } = deps;
  return new Promise<StdioRelayResult>((resolve) => {
    let finished = false;
    let fatal: StdioRelayResult | undefined;

    // The credential is set per request, so every POST, GET (SSE) and DELETE carries the token
    // that is valid now (MCP authorization §2.6.1: in the Authorization header of every request)
    // and, for a DPoP-bound token (the SDK's default), a fresh proof for that request (RFC 9449).
    const signed = client.authorizedFetch(deps.baseFetch);
    const authedFetch = async (input: string | URL, init?: RequestInit): Promise<Response> => {
      try {
        await client.token();
      } catch (err) {
        if (err instanceof TesseraAuthError && err.code === 'TESSERA_SDK_REFRESH_IMPOSSIBLE') {
          fatal ??= deps.fail(err.code, JOIN_TOKEN_EXPIRED, RELAY_EXIT.REFUSED);
          throw new RelayError(err.code, JOIN_TOKEN_EXPIRED);
        }
        const d = describe(err);
        if (deps.tokenSource) throw new RelayError(d.code, `the access token could not be refreshed from ${deps.tokenSource}: ${d.message}; if the login ended, run \`tessera login --oidc\` again`);
        throw new RelayError(d.code, `the agent token could not be renewed${deps.tokenFile ? ` from ${deps.tokenFile}` : ''}: ${d.message}; the next request tries again${deps.tokenFile ? ' (the file is re-read)' : ''}`);
      }
      return signed(input, init);
    };

    const stdio = new StdioServerTransport(deps.stdin, deps.stdout);
    /** Transports of ended sessions: requests still in flight on them finish (or retry) there. */
    const retired: StreamableHTTPClientTransport[] = [];
    let generation = 0;
    let http = makeTransport();

    // The client's handshake, replayed for each new session.
    let clientInit: Request | undefined;
    let clientInitialized = false;
    /** The gateway assigned a session id: a later request without one means the session must be renewed. */
    let sessionful = false;
    // Until the gateway has answered `initialize` (and assigned the session id), hold the
    // other client messages back: sending them concurrently would race the session id.
    let initId: string | number | undefined;
    let releaseReady: () => void = () => {};
    let ready: Promise<void> | undefined;
    let renewing: Promise<void> | undefined;
    /** The relay's own `initialize` during a renewal: its answer is for us, not for the client. */
    let internal: { id: string; resolve: (m: JSONRPCMessage) => void } | undefined;

    function makeTransport(): StreamableHTTPClientTransport {
      const t = new StreamableHTTPClientTransport(deps.mcpUrl, { fetch: authedFetch });
      t.onmessage = onGatewayMessage;
      t.onerror = (err) => {
        // Per-message failures are reported through replyError; this catches the standalone
        // SSE stream — only for the current session.
        if (finished || t !== http || err instanceof RelayError) return;
        if (err instanceof StreamableHTTPError && err.code === 404) log('the gateway ended this MCP session (HTTP 404); the next request starts a new one');
        else log(`gateway: ${describe(err).message}`);
      };
      return t;
    }

    function onGatewayMessage(msg: JSONRPCMessage): void {
      if (internal && 'id' in msg && msg.id === internal.id && ('result' in msg || 'error' in msg)) {
        const i = internal;
        internal = undefined;
        i.resolve(msg);
        return;
      }
      if ('id' in msg && msg.id === initId && initId !== undefined && 'result' in msg) {
        const version = (msg.result as { protocolVersion?: unknown }).protocolVersion;
        // Later requests must carry MCP-Protocol-Version (MCP transports, "Protocol Version Header").
        if (typeof version === 'string') http.setProtocolVersion(version);
        sessionful = http.sessionId !== undefined;
        void stdio.send(msg).finally(() => releaseReady());
        return;
      }
      if ('id' in msg && msg.id === initId && 'error' in msg) releaseReady();
      void stdio.send(msg).catch((err: unknown) => log(`stdout: ${describe(err).message}`));
    }

    const replyError = (msg: JSONRPCMessage, err: unknown): void => {
      const d = describe(err);
      if (!fatal) log(`could not relay ${'method' in msg ? msg.method : 'a message'}: ${d.message} [${d.code}]`);
      const sent = isRequest(msg) && !finished ? stdio.send({ jsonrpc: '2.0', id: msg.id, error: { code: RELAY_ERROR_CODE, message: `tessera mcp: ${d.message}`, data: { code: d.code } } }).catch(() => {}) : Promise.resolve();
      if (isRequest(msg) && msg.id === initId) releaseReady();
      // The client hears why before the relay goes away.
      if (fatal) void sent.then(() => shutdown());
    };

    /** Starts a new gateway session with the client's handshake; one at a time. */
    const renew = (seen: number): Promise<void> => {
      if (seen !== generation) return renewing ?? Promise.resolve();
      const init = clientInit!;
      renewing = (async () => {
        log('the gateway no longer knows this MCP session (HTTP 404: idle expiry, restart or deploy); starting a new one');
        retired.push(http);
        http = makeTransport();
        generation++;
        await http.start();
        const id = `tessera-relay-initialize-${generation}`;
        let timer: NodeJS.Timeout | undefined;
        const answer = new Promise<JSONRPCMessage>((res, rej) => {
          internal = { id, resolve: res };
          timer = setTimeout(() => rej(new RelayError('TESSERA_GATEWAY_RELAY_FAILED', 'the gateway did not answer initialize for a new MCP session')), REINITIALIZE_TIMEOUT_MS);
          timer.unref();
        });
        try {
          await http.send({ jsonrpc: '2.0', id, method: 'initialize', params: init.params ?? {} } as JSONRPCMessage);
          const res = await answer;
          if (!('result' in res)) {
            const e = (res as { error?: { message?: unknown } }).error;
            throw new RelayError('TESSERA_GATEWAY_RELAY_REFUSED', `the gateway refused a new MCP session: ${String(e?.message ?? 'no reason given')}`);
          }
          const version = (res.result as { protocolVersion?: unknown }).protocolVersion;
          if (typeof version === 'string') http.setProtocolVersion(version);
        } finally {
          clearTimeout(timer);
          internal = undefined;
        }
        if (clientInitialized) await http.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
        log('a new MCP session is open; retrying');
      })().finally(() => {
        renewing = undefined;
      });
      return renewing;
    };

    const isInitialize = (msg: JSONRPCMessage): boolean => isRequest(msg) && msg.method === 'initialize';

    const forward = (msg: JSONRPCMessage): void => {
      // A renewal that failed earlier (the gateway was down) left no session: renew first.
      if (sessionful && http.sessionId === undefined && !isInitialize(msg) && clientInit) {
        renew(generation).then(
          () => send(msg, false),
          (err: unknown) => replyError(msg, err),
        );
        return;
      }
      send(msg, true);
    };

    const send = (msg: JSONRPCMessage, mayRenew: boolean): void => {
      const target = http;
      const seen = generation;
      const hadSession = target.sessionId !== undefined;
      target.send(msg).then(undefined, async (err: unknown) => {
        const sessionGone = err instanceof StreamableHTTPError && err.code === 404 && hadSession;
        if (!sessionGone || !mayRenew || !clientInit || isInitialize(msg) || finished) return replyError(msg, err);
        try {
          await renew(seen);
          await http.send(msg); // once; a second failure goes to the client
        } catch (again) {
          replyError(msg, again);
        }
      });
    };

    stdio.onmessage = (msg) => {
      if (finished) return;
      if (isInitialize(msg)) {
        clientInit = msg as Request;
        initId = (msg as Request).id;
        ready = new Promise<void>((r) => (releaseReady = r));
        if (http.sessionId !== undefined) {
          // The client starts over: so does the relay, on a new session.
          retired.push(http);
          http = makeTransport();
          generation++;
          void http.start().then(() => send(msg, false));
          return;
        }
        send(msg, false);
        return;
      }
      if ('method' in msg && msg.method === 'notifications/initialized') clientInitialized = true;
      const go = (): void => forward(msg);
      if (renewing) void renewing.then(go, go);
      else if (ready) void ready.then(() => (renewing ? renewing.then(go, go) : go()));
      else go();
    };
    stdio.onerror = (err) => log(`stdin: ${describe(err).message}`);

    const shutdown = async (): Promise<void> => {
      if (finished) return;
      finished = true;
      deps.stdin.off('end', onEnd);
      deps.stdin.off('close', onEnd);
      deps.signal?.removeEventListener('abort', onEnd);
      try {
        // Be polite: end the gateway session (MCP transports, "Session Management"); a gateway
        // that does not support DELETE answers 405, which the SDK accepts.
        if (http.sessionId && !fatal) await http.terminateSession();
      } catch {
        // The gateway may be gone already; nothing to clean up then.
      }
      for (const t of [...retired, http]) await t.close().catch(() => {});
      await stdio.close().catch(() => {});
      client.close();
      resolve(fatal ?? { exitCode: RELAY_EXIT.OK });
    };
    const onEnd = (): void => void shutdown();
    deps.stdin.once('end', onEnd);
    deps.stdin.once('close', onEnd);
    if (deps.signal?.aborted) return void shutdown();
    deps.signal?.addEventListener('abort', onEnd, { once: true });

    void (async () => {
      try {
        await http.start();
        await stdio.start();
      } catch (err) {
        const d = describe(err);
        fatal ??= deps.fail(d.code, d.message, d.exitCode);
        void shutdown();
      }
    })();
  });
}
