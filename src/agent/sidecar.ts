/**
 * `tessera agent` — the Kubernetes sidecar (issue 12 item 3, docs/k8s-agent.md): logs in with the
 * pod's projected service-account token, keeps the agent (or task) token fresh in memory, and
 * serves on loopback a forward proxy to the Tessera proxy and an MCP endpoint relayed to the
 * gateway, both adding that token, so the app needs no token handling at all.
 *
 * Order at start: options checked (./options.ts), `--token-out` checked to be on tmpfs, listeners
 * bound (they answer 503 TESSERA_AGENT_NOT_READY until the first login), then the keeper logs in
 * and keeps renewing (./keeper.ts). `close()` (SIGTERM): listeners closed, requests in flight given
 * `drainMs`, the token forgotten and the --token-out file removed.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { rootCertificates } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import type { FetchLike } from '../sdk/http.js';
import { systemSdkClock, type SdkClock } from '../sdk/client.js';
import { escapeTerminal } from '../shared/terminal.js';
import { TesseraError } from '../shared/errors.js';
import { CredentialKeeper } from './keeper.js';
import { createSidecarIdentity } from './identity.js';
import { startForwardProxy, type LocalServer } from './forward-proxy.js';
import { startMcpEndpoint } from './mcp-endpoint.js';
import { checkMemoryBacked, writeTokenFile } from './token-out.js';
import type { SidecarOptions } from './options.js';

export interface SidecarDeps {
  readonly stderr: { write(chunk: string): unknown };
  readonly clock?: SdkClock;
  readonly random?: () => number;
  /** Replaces the HTTP client towards Tessera's API (tests). */
  readonly fetch?: FetchLike;
  /** Where the mount table is read (tests). */
  readonly mountsFile?: string;
}

export interface RunningSidecar {
  readonly keeper: CredentialKeeper;
  /** `http://127.0.0.1:<port>` of the local proxy, when listening. */
  readonly proxyAddress: string | undefined;
  /** `http://127.0.0.1:<port>` of the MCP endpoint (`/mcp`, `/healthz`), when listening. */
  readonly mcpAddress: string | undefined;
  /** Stops everything (see the module doc); resolves when done. Idempotent. */
  close(): Promise<void>;
}

const addressOf = (s: LocalServer | undefined): string | undefined => {
  if (!s) return undefined;
  const a = s.server.address() as AddressInfo;
  return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
};

/** The fetch towards Tessera's API; with `--ca-file`, its CAs are trusted besides the system's. */
function apiFetch(caPem: string | undefined): FetchLike {
  if (!caPem) return (input, init) => fetch(input, init);
  const dispatcher = new UndiciAgent({ connect: { ca: [...rootCertificates, caPem] } });
  return (input, init) => undiciFetch(input, { ...(init as object), dispatcher }) as unknown as Promise<Response>;
}

/** Starts the sidecar. Throws TESSERA_AGENT_* for a --token-out that is not memory-backed or a listener that cannot bind. */
export async function startSidecar(options: SidecarOptions, deps: SidecarDeps): Promise<RunningSidecar> {
  const log = (line: string): void => void deps.stderr.write(`tessera agent: ${escapeTerminal(line)}\n`);
  const clock = deps.clock ?? systemSdkClock;
  // The directory is resolved ONCE, here, and the token written there ever after: were the path
  // re-resolved at each write, a symlink in it swapped later would send the token to a disk.
  const tokenOut = options.tokenOut ? join(checkMemoryBacked(options.tokenOut, deps.mountsFile), basename(options.tokenOut)) : undefined;
  let caPem: string | undefined;
  if (options.caFile) {
    try {
      caPem = readFileSync(options.caFile, 'utf8');
    } catch (e) {
      throw new TesseraError('TESSERA_AGENT_OPTIONS_INVALID', `--ca-file ${options.caFile} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  const identity = createSidecarIdentity({ addr: options.addr, tokenFile: options.tokenFile, role: options.role, task: options.task, fetch: deps.fetch ?? apiFetch(caPem), now: () => clock.now() });
  const keeper = new CredentialKeeper({
    login: identity.login,
    ...(identity.openTask ? { openTask: identity.openTask } : {}),
    clock,
    random: deps.random ?? Math.random,
    log,
    onRenewed: tokenOut
      ? async (cred) => {
          try {
            await writeTokenFile(tokenOut, cred.token);
          } catch (e) {
            log(`${(e as Error).message} [TESSERA_AGENT_TOKEN_OUT_FAILED]; retried at the next renewal`);
          }
        }
      : undefined,
  });

  const servers: LocalServer[] = [];
  let proxy: LocalServer | undefined;
  let mcp: LocalServer | undefined;
  const bindFailed = (flag: string, e: unknown): TesseraError =>
    new TesseraError('TESSERA_AGENT_OPTIONS_INVALID', `${flag}: cannot listen (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  try {
    if (options.listenProxy) {
      proxy = await startForwardProxy({ keeper, proxyUrl: options.proxyUrl!, now: () => clock.now(), log }, options.listenProxy).catch((e: unknown) => {
        throw bindFailed('--listen-proxy', e);
      });
      servers.push(proxy);
    }
    if (options.listenMcp) {
      mcp = await startMcpEndpoint({ keeper, mcpUrl: options.mcpUrl, ca: caPem }, options.listenMcp).catch((e: unknown) => {
        throw bindFailed('--listen-mcp', e);
      });
      servers.push(mcp);
    }
  } catch (e) {
    for (const s of servers) await s.close(0);
    throw e;
  }
  log(`starting: Tessera ${options.addr}${proxy ? `; proxy on ${addressOf(proxy)} → ${options.proxyUrl!.origin}` : ''}${mcp ? `; MCP on ${addressOf(mcp)}/mcp → ${options.mcpUrl.href}` : ''}${options.task ? `; task scope "${options.task.scope.join(' ')}"` : ''}${options.role ? `; role ${options.role}` : ''}`);
  keeper.start();

  let closing: Promise<void> | undefined;
  return {
    keeper,
    proxyAddress: addressOf(proxy),
    mcpAddress: addressOf(mcp),
    close() {
      closing ??= (async () => {
        await Promise.all(servers.map((s) => s.close(options.drainMs)));
        keeper.stop();
        identity.close();
        if (tokenOut) await rm(tokenOut, { force: true }).catch(() => undefined);
        log('stopped');
      })();
      return closing;
    },
  };
}

/**
 * `tessera agent probe`: GET http://127.0.0.1:<port>/healthz; true on 200 within `timeoutMs`.
 * For an exec startup probe in images without a shell (distroless).
 */
export async function probeSidecar(port: number, timeoutMs = 2_000): Promise<{ ok: boolean; detail: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = (await res.text()).slice(0, 500);
    return { ok: res.status === 200, detail: res.status === 200 ? 'ready' : `answered ${res.status}: ${text}` };
  } catch (e) {
    const c = (e as { cause?: { code?: string; errors?: { code?: string }[] } }).cause;
    const cause = c?.code ?? c?.errors?.[0]?.code;
    return { ok: false, detail: `no answer on 127.0.0.1:${port} (${cause ?? (e as Error).name})` };
  }
}
