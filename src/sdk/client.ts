import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import { TesseraApiError, TesseraAuthError } from './errors.js';
import { Transport, encodePath, type FetchLike } from './http.js';
import { DpopKey, DpopSession } from './dpop.js';
import { authorizingFetch, type AuthorizedFetch } from './fetch.js';
import { clientInternals, JOIN_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, type ClientInternals } from './internal.js';
import { Task, type OpenTaskOptions } from './task.js';

export { TOKEN_EXCHANGE_GRANT, JWT_TOKEN_TYPE, JOIN_TOKEN_TYPE, ACCESS_TOKEN_TYPE } from './internal.js';
export type { AuthorizedFetch } from './fetch.js';

export interface TokenResponse {
  access_token: string;
  issued_token_type: string;
  token_type: string;
  expires_in: number;
}

export interface SecretValue {
  path: string;
  value: string;
  version?: number;
  [k: string]: unknown;
}

export interface Credential {
  lease_id: string;
  expires_at: string | number;
  renewable: boolean;
  data: Record<string, unknown>;
}

/** Injectable time and timers, so refresh scheduling is testable without waiting. */
export interface SdkClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemSdkClock: SdkClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // A background refresh must never keep an agent process alive on its own.
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface TesseraClientOptions {
  /** Server address; defaults to `TESSERA_ADDR`, then `http://127.0.0.1:8200`. */
  addr?: string;
  /**
   * RFC 8693 `audience` to request for the agent token; several for one token usable at the API
   * and the MCP gateway (`[addr, \`${addr}/mcp\`]`). Default: the server's API.
   */
  audience?: string | readonly string[];
  /**
   * RFC 8693 `scope` sent with the login exchange, e.g. `role:<name>` to assume a role
   * (docs/k8s-pods.md); default none.
   */
  scope?: string;
  fetch?: FetchLike;
  timeoutMs?: number;
  clock?: SdkClock;
  /** Returns a number in [0, 1); used for refresh jitter. */
  random?: () => number;
  /** Fraction of the token lifetime after which to refresh (default 0.8). */
  refreshAt?: number;
  /** Called when a background refresh fails (the current token stays in use until it expires). */
  onRefreshError?: (err: unknown) => void;
  /**
   * DPoP (RFC 9449, docs/dpop.md). Default `true`: the client generates an ES256 key pair in
   * memory, sends a proof at login, and gets tokens bound to that key (`token_type: DPoP`); every
   * request then carries a fresh proof, and server nonces are handled. A stolen token is useless
   * without the key. Pass a `DpopKey` to use your own, or `false` for plain Bearer tokens.
   */
  dpop?: boolean | DpopKey;
}

type Source = { kind: 'join' } | { kind: 'file'; path: string };

interface Current {
  token: string;
  issuedAt: number;
  expiresAt: number;
  /** DPoP-bound (`token_type: DPoP`): sent as `Authorization: DPoP` with a proof. */
  bound: boolean;
}

/** Tokens count as expired this long before `exp`, so a request never leaves with a dying token. */
const EXPIRY_MARGIN_MS = 5_000;
/** Retry delays after a failed background refresh (bounded). */
const RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

/**
 * The agent-side client. Log in once with a projected service-account token file (or a
 * join token for a quick start), then call `readSecret`, `issueCredential`, ... — the
 * client keeps a valid agent token, refreshing it in the background at ~80 % of its
 * lifetime (±5 % jitter so a fleet does not refresh in lockstep).
 */
export class TesseraClient {
  readonly addr: string;
  private readonly transport: Transport;
  private readonly clock: SdkClock;
  private readonly random: () => number;
  private readonly refreshFraction: number;
  private readonly audience: string | readonly string[] | undefined;
  private readonly loginScope: string | undefined;
  private readonly onRefreshError: ((err: unknown) => void) | undefined;
  private readonly dpop: DpopSession | undefined;
  private source: Source | undefined;
  private current: Current | undefined;
  private timer: unknown;
  private inflight: Promise<string> | undefined;
  private failures = 0;
  private closed = false;

  constructor(options: TesseraClientOptions = {}) {
    this.transport = new Transport({ addr: options.addr ?? process.env.TESSERA_ADDR ?? 'http://127.0.0.1:8200', fetch: options.fetch, timeoutMs: options.timeoutMs, userAgent: 'tessera-sdk' });
    this.addr = this.transport.addr;
    this.clock = options.clock ?? systemSdkClock;
    this.random = options.random ?? Math.random;
    this.refreshFraction = options.refreshAt ?? 0.8;
    this.audience = options.audience;
    this.loginScope = options.scope;
    this.onRefreshError = options.onRefreshError;
    // Proofs carry wall-clock time (the server compares `iat` with its own clock), not `clock`,
    // which schedules refreshes.
    if (options.dpop !== false) this.dpop = new DpopSession(options.dpop instanceof DpopKey ? options.dpop : DpopKey.generate());
  }

  /** RFC 7638 thumbprint of this client's DPoP key (the `cnf.jkt` of its tokens); undefined without DPoP. */
  get dpopThumbprint(): string | undefined {
    return this.dpop?.key.thumbprint;
  }

  /**
   * Logs in with a one-time join token. Join tokens are single-use, so this session cannot
   * be renewed: when the agent token expires, `token()` throws `TesseraAuthError` with code
   * `TESSERA_SDK_REFRESH_IMPOSSIBLE`. Long-running agents should use `loginWithTokenFile`.
   */
  async loginWithJoinToken(joinToken: string): Promise<void> {
    this.assertOpen();
    this.source = { kind: 'join' };
    await this.exchange(joinToken, JOIN_TOKEN_TYPE);
  }

  /**
   * Logs in with a workload JWT read from a file — typically a Kubernetes projected
   * service-account token (`/var/run/secrets/tokens/tessera`). The file is re-read on
   * every refresh because the kubelet rotates it.
   */
  async loginWithTokenFile(path: string): Promise<void> {
    this.assertOpen();
    this.source = { kind: 'file', path };
    await this.refreshFromFile(path);
  }

  /** The current valid agent token, refreshing first if it is about to expire. */
  async token(): Promise<string> {
    this.assertOpen();
    const cur = this.current;
    if (cur && this.clock.now() < cur.expiresAt - EXPIRY_MARGIN_MS) return cur.token;
    return this.refreshNow();
  }

  /**
   * Reads a `read`-mode secret (`GET /v1/secrets/<path>`). Paths use A-Z a-z 0-9 . _ - and
   * "/" between segments; anything else is refused by the server (TESSERA_SECRET_PATH_INVALID).
   */
  async readSecret(path: string): Promise<SecretValue> {
    return this.authed<SecretValue>('GET', `/v1/secrets/${encodePath(path)}`);
  }

  /** Issues a dynamic credential (`POST /v1/creds/<engine>/<role>`); it is a lease. */
  async issueCredential(engine: string, role: string, options: { ttl?: string | number } = {}): Promise<Credential> {
    return this.authed<Credential>('POST', `/v1/creds/${encodeURIComponent(engine)}/${encodeURIComponent(role)}`, { json: options.ttl !== undefined ? { ttl: options.ttl } : {} });
  }

  /**
   * Renews a lease (`POST /v1/leases/<id>/renew`): `expires_at = min(now + increment, max)`;
   * `increment` is seconds or a duration like "15m" (default: the role's TTL). `ttl` in the
   * answer is the seconds granted from now (less than asked when capped at the role's max TTL).
   */
  async renewLease(leaseId: string, options: { increment?: string | number } = {}): Promise<{ lease_id: string; expires_at: string; ttl: number; renewable: boolean }> {
    return this.authed('POST', `/v1/leases/${encodeURIComponent(leaseId)}/renew`, { json: options.increment !== undefined ? { increment: options.increment } : {} });
  }

  async revokeLease(leaseId: string): Promise<void> {
    await this.authed('DELETE', `/v1/leases/${encodeURIComponent(leaseId)}`);
  }

  /**
   * The headers that authorize one request to `url` with the current token: `Authorization:
   * Bearer …`, or for a DPoP-bound token `Authorization: DPoP …` and a fresh `DPoP` proof made
   * for this method and URL (so a header set is good for ONE request). Refreshes the token first
   * when it is about to expire.
   */
  async authorization(method: string, url: string | URL): Promise<Record<string, string>> {
    await this.token();
    const cur = this.current!;
    if (!cur.bound || !this.dpop) return { authorization: `Bearer ${cur.token}` };
    return { authorization: `DPoP ${cur.token}`, dpop: this.dpop.proof(method.toUpperCase(), url, cur.token) };
  }

  /**
   * A fetch that authorizes every request with `authorization()` (a new proof each time),
   * remembers server nonces and retries once when the server asks for a new one (RFC 9449 §9).
   * For MCP clients: `new StreamableHTTPClientTransport(url, { fetch: client.authorizedFetch() })`.
   */
  authorizedFetch(base: FetchLike = (input, init) => fetch(input, init)): AuthorizedFetch {
    return authorizingFetch((method, url) => this.authorization(method, url), () => this.dpop, base);
  }

  /**
   * Opens a root task (RFC 8693 §2.1 exchange of this client's agent token, docs/tasks.md):
   * `scope` (space-separated or a list of `secret:` / `cred:` / `tool:` / `http:` strings),
   * `purpose` (1–512 characters, audited), `facts` (task facts, `tctx`: at most 16 string
   * values), `ttl` (seconds; default `tokens.task_ttl`, never beyond this client's agent token),
   * `maxDepth` (0–8), `audience`. With DPoP (the default) the task is bound to this client's key.
   * Throws `TesseraTaskError` with the server's code when refused (e.g.
   * `TESSERA_TASK_DELEGATION_DENIED`, `TESSERA_OAUTH_INVALID_SCOPE`), `TesseraAuthError` when the
   * agent token is not accepted.
   */
  async openTask(options: OpenTaskOptions): Promise<Task> {
    this.assertOpen();
    return Task.open(this[clientInternals](), options);
  }

  /** @internal what a Task needs from this client (not exported by `tessera-broker/sdk`). */
  [clientInternals](): ClientInternals {
    return {
      transport: this.transport,
      dpop: this.dpop,
      now: () => this.clock.now(),
      current: async () => {
        const token = await this.token();
        return { token, bound: this.current?.token === token && this.current.bound };
      },
    };
  }

  /** Stops background refresh and forgets the token. Idempotent. */
  close(): void {
    this.closed = true;
    this.cancelTimer();
    this.current = undefined;
  }

  // --- internals -----------------------------------------------------------------

  private async authed<T>(method: string, path: string, opts: { json?: unknown } = {}): Promise<T> {
    const token = await this.token();
    try {
      return await this.transport.request<T>(method, path, { ...opts, ...this.credential(token) });
    } catch (err) {
      // The token may have been refused just before our margin (clock skew, key rotation):
      // with a token file we can re-attest once and retry; a revoked agent fails again.
      if (err instanceof TesseraAuthError && err.code === 'TESSERA_TOKEN_EXPIRED' && this.source?.kind === 'file') {
        this.current = undefined;
        const fresh = await this.refreshNow();
        return this.transport.request<T>(method, path, { ...opts, ...this.credential(fresh) });
      }
      throw err;
    }
  }

  /** How `token` is sent: Bearer, or DPoP with a proof per request when it is bound. */
  private credential(token: string): { token: string; tokenType?: 'DPoP'; dpop?: DpopSession } {
    return this.current?.token === token && this.current.bound && this.dpop ? { token, tokenType: 'DPoP', dpop: this.dpop } : { token };
  }

  private refreshNow(): Promise<string> {
    const source = this.source;
    if (!source) {
      return Promise.reject(new TesseraAuthError({ code: 'TESSERA_SDK_NOT_LOGGED_IN', status: 0, message: 'not logged in; call loginWithTokenFile(path) (or loginWithJoinToken for a quick start) first' }));
    }
    if (source.kind === 'join') {
      return Promise.reject(
        new TesseraAuthError({
          code: 'TESSERA_SDK_REFRESH_IMPOSSIBLE',
          status: 0,
          message: 'the agent token expired and cannot be renewed: it came from a join token, which is single-use. Long-running agents should log in with loginWithTokenFile (a Kubernetes projected service-account token or another attested workload JWT)',
        }),
      );
    }
    // Coalesce concurrent refreshes into one exchange.
    this.inflight ??= this.refreshFromFile(source.path).finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async refreshFromFile(path: string): Promise<string> {
    let jwt: string;
    try {
      jwt = (await readTokenFile(path)).trim();
    } catch (err) {
      if (err instanceof TesseraAuthError) throw err;
      throw new TesseraAuthError({ code: 'TESSERA_SDK_TOKEN_FILE_UNREADABLE', status: 0, message: `cannot read the token file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); in Kubernetes, mount a projected service-account token there` }, { cause: err });
    }
    if (!jwt) throw new TesseraAuthError({ code: 'TESSERA_SDK_TOKEN_FILE_UNREADABLE', status: 0, message: `the token file ${path} is empty` });
    return this.exchange(jwt, JWT_TOKEN_TYPE);
  }

  /** RFC 8693 §2.1 token exchange: attestation in, agent token out. */
  private async exchange(subjectToken: string, subjectTokenType: string): Promise<string> {
    // RFC 9449 §5: with a proof, the token comes back bound to this client's key.
    const res = await this.transport.request<TokenResponse>('POST', '/v1/oauth/token', {
      form: { grant_type: TOKEN_EXCHANGE_GRANT, subject_token: subjectToken, subject_token_type: subjectTokenType, audience: this.audience, scope: this.loginScope },
      ...(this.dpop ? { dpop: this.dpop } : {}),
    });
    if (!res || typeof res.access_token !== 'string' || typeof res.expires_in !== 'number' || res.expires_in <= 0) {
      throw new TesseraApiError({ code: 'TESSERA_SDK_RESPONSE_INVALID', status: 200, message: 'the token endpoint answered without access_token/expires_in (RFC 6749 §5.1)' });
    }
    if (this.closed) return res.access_token;
    const now = this.clock.now();
    // Prefer expires_in (RFC 6749 §5.1) — it is relative, so immune to clock skew with the server.
    // A server without DPoP answers `Bearer` (RFC 9449 §5): the token is then used as such.
    const bound = typeof res.token_type === 'string' && res.token_type.toLowerCase() === 'dpop';
    if (bound && !this.dpop) throw new TesseraApiError({ code: 'TESSERA_SDK_RESPONSE_INVALID', status: 200, message: 'the token endpoint answered token_type DPoP to a request without a DPoP proof' });
    this.current = { token: res.access_token, issuedAt: now, expiresAt: now + res.expires_in * 1000, bound };
    this.failures = 0;
    this.schedule();
    return res.access_token;
  }

  private schedule(delayOverride?: number): void {
    this.cancelTimer();
    if (this.closed || this.source?.kind !== 'file' || !this.current) return;
    const lifetime = this.current.expiresAt - this.current.issuedAt;
    const jitter = (this.random() - 0.5) * 0.1; // ±5 %
    const at = this.current.issuedAt + lifetime * Math.min(0.95, Math.max(0.1, this.refreshFraction + jitter));
    const delay = delayOverride ?? Math.max(0, at - this.clock.now());
    this.timer = this.clock.setTimeout(() => void this.backgroundRefresh(), delay);
  }

  private async backgroundRefresh(): Promise<void> {
    this.timer = undefined;
    if (this.closed) return;
    try {
      await this.refreshNow();
    } catch (err) {
      this.onRefreshError?.(err);
      const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)]!;
      this.failures++;
      // Retry only while the current token is still alive; afterwards token() refreshes on demand.
      if (this.current && this.clock.now() + delay < this.current.expiresAt) this.schedule(delay);
    }
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private assertOpen(): void {
    if (this.closed) throw new TesseraAuthError({ code: 'TESSERA_SDK_CLOSED', status: 0, message: 'this TesseraClient was closed; create a new one' });
  }
}


/** Larger than any workload JWT (a Kubernetes projected token is ~1–2 KiB). */
const TOKEN_FILE_MAX_BYTES = 64 * 1024;

/**
 * Reads a workload token file without blocking on a FIFO (O_NONBLOCK, then it must be a regular
 * file) and without reading more than TOKEN_FILE_MAX_BYTES: a misplaced path or a replaced file
 * must fail the login (retried), never hang it or fill memory.
 */
async function readTokenFile(path: string): Promise<string> {
  const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    const refuse = (why: string): TesseraAuthError => new TesseraAuthError({ code: 'TESSERA_SDK_TOKEN_FILE_UNREADABLE', status: 0, message: `the token file ${path} ${why}` });
    if (!st.isFile()) throw refuse('is not a regular file');
    if (st.size > TOKEN_FILE_MAX_BYTES) throw refuse(`is larger than ${TOKEN_FILE_MAX_BYTES} bytes; a workload JWT is a few KiB`);
    const buf = Buffer.alloc(TOKEN_FILE_MAX_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > TOKEN_FILE_MAX_BYTES) throw refuse(`is larger than ${TOKEN_FILE_MAX_BYTES} bytes; a workload JWT is a few KiB`);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}
