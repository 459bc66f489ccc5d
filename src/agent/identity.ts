/**
 * The sidecar's identity, through the agent SDK (src/sdk): `loginWithTokenFile` (the projected
 * service-account token, re-read at each login) and `openTask` — no copy of the token exchange.
 *
 * One Bearer token serves both local endpoints (ADR 0261): audiences `<issuer>/proxy`,
 * `<issuer>/mcp` and `<issuer>` (RFC 8707; the issuer from Tessera's RFC 8414 metadata, so an
 * in-cluster address that differs from `server.public_url` still gets the right audiences). The
 * API audience lets the keeper ask `GET /v1/whoami` whether a task is still alive before it opens
 * the next one, and an app reading --token-out use the SDK's API calls. It is not DPoP-bound
 * because the proxy's forward and CONNECT modes take only `Proxy-Authorization: Bearer|Basic`
 * (docs/proxy.md "Authentication"); the token never leaves the sidecar except towards Tessera
 * (and --token-out, on tmpfs). With `tokens.dpop.require: always` the sidecar cannot log in.
 *
 * The SDK's own background refresh is switched off (a clock whose timers never fire): the
 * keeper (./keeper.ts) decides when to renew, and retries beyond expiry, which the SDK does not.
 */
import { TesseraClient, type SdkClock } from '../sdk/client.js';
import { TesseraAuthError } from '../sdk/errors.js';
import { decodeJwt } from '../sdk/jwt.js';
import type { FetchLike } from '../sdk/http.js';
import type { Task } from '../sdk/task.js';
import type { TaskDefaults } from './options.js';
import type { HeldCredential, OpenedTask } from './keeper.js';

export interface IdentityDeps {
  readonly addr: string;
  readonly tokenFile: string;
  readonly role: string | undefined;
  readonly task: TaskDefaults | undefined;
  readonly fetch: FetchLike;
  /** Wall-clock ms (the keeper's clock). */
  now(): number;
}

export interface SidecarIdentity {
  login(): Promise<HeldCredential>;
  openTask: (() => Promise<OpenedTask>) | undefined;
  /** The audiences of the tokens (known after the first login). */
  audiences(): readonly string[] | undefined;
  close(): void;
}

/** Refusals that mean the task (or its agent, or its user) was revoked: never re-opened. */
const REVOKED = new Set(['TESSERA_TOKEN_REVOKED', 'TESSERA_AGENT_REVOKED', 'TESSERA_USER_REVOKED', 'TESSERA_SDK_TASK_ENDED']);

/** The SDK schedules nothing: the keeper drives renewal. */
const noTimers = (now: () => number): SdkClock => ({ now, setTimeout: () => undefined, clearTimeout: () => undefined });

/** RFC 8414 §3: the authorization server metadata's `issuer`; falls back to `addr` when it has none. */
async function discoverIssuer(addr: string, fetchFn: FetchLike): Promise<string> {
  const res = await fetchFn(`${addr}/.well-known/oauth-authorization-server`, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw Object.assign(new Error(`Tessera's metadata (${addr}/.well-known/oauth-authorization-server) answered ${res.status}`), { code: res.status >= 500 ? 'TESSERA_AGENT_UPSTREAM_UNREACHABLE' : 'TESSERA_SDK_RESPONSE_INVALID' });
  }
  const body = (await res.json().catch(() => ({}))) as { issuer?: unknown };
  return typeof body.issuer === 'string' && /^https?:\/\//.test(body.issuer) ? body.issuer.replace(/\/+$/, '') : addr;
}

/**
 * JWT times are whole seconds (RFC 7519 NumericDate) and `iat` is rounded down: the token may
 * expire up to a second before `receipt + (exp - iat)`. Counted short by that much.
 */
const GRANULARITY_MS = 1_000;

/** Lifetime of a token on the local clock: `exp - iat` from its claims, counted from now (skew-free). */
function held(token: string, now: number, txn?: string): HeldCredential {
  const { exp, iat } = decodeJwt(token).claims as { exp?: unknown; iat?: unknown };
  const life = typeof exp === 'number' && typeof iat === 'number' && exp > iat ? (exp - iat) * 1000 - GRANULARITY_MS : 0;
  return { token, issuedAt: now, expiresAt: now + life, ...(txn ? { txn } : {}) };
}

/** The Bearer token a Task would send (the SDK never exposes it otherwise). */
async function taskToken(task: Task, url: string): Promise<string> {
  const h = await task.authorization('GET', url);
  return h.authorization!.replace(/^Bearer /, '');
}

export function createSidecarIdentity(deps: IdentityDeps): SidecarIdentity {
  let client: TesseraClient | undefined;
  let audiences: string[] | undefined;

  const ensureClient = async (): Promise<TesseraClient> => {
    if (client) return client;
    const issuer = await discoverIssuer(deps.addr, deps.fetch);
    audiences = [issuer, `${issuer}/proxy`, `${issuer}/mcp`];
    client = new TesseraClient({
      addr: deps.addr, audience: audiences, fetch: deps.fetch, dpop: false, clock: noTimers(deps.now), timeoutMs: 15_000,
      ...(deps.role ? { scope: `role:${deps.role}` } : {}),
    });
    return client;
  };

  const login = async (): Promise<HeldCredential> => {
    const c = await ensureClient();
    await c.loginWithTokenFile(deps.tokenFile);
    return held(await c.token(), deps.now());
  };

  const openTask = deps.task
    ? async (): Promise<OpenedTask> => {
        const c = await ensureClient();
        const t = deps.task!;
        const task = await c.openTask({ scope: t.scope, purpose: t.purpose, ...(t.ttlSeconds !== undefined ? { ttl: t.ttlSeconds } : {}) });
        const token = await taskToken(task, deps.addr);
        const issuedAt = deps.now();
        return {
          token, issuedAt, expiresAt: task.expiresAt.getTime() - GRANULARITY_MS, txn: task.txn,
          async check() {
            try {
              await task.whoami();
              return 'alive';
            } catch (err) {
              if (!(err instanceof TesseraAuthError)) throw err;
              const cause = typeof err.details?.cause === 'string' ? err.details.cause : '';
              if (REVOKED.has(err.code) || REVOKED.has(cause)) return 'revoked';
              return 'expired'; // expired, or refused for another reason: not a revocation we can see
            }
          },
        };
      }
    : undefined;

  return {
    login,
    openTask,
    audiences: () => audiences,
    close: () => client?.close(),
  };
}
