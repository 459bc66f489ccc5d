/**
 * A person's refreshable identity on a laptop (docs/users.md "On a laptop"): the refresh token
 * from `tessera login --oidc` (authorization code + PKCE through Tessera's authorization server,
 * RFC 8252 loopback redirect), kept in a file only its owner can read (0600, in a 0700
 * directory), and a session that exchanges it for short-lived access tokens by itself
 * (`grant_type=refresh_token`, RFC 6749 §6). Refresh tokens rotate on every use: the new one is
 * written to the file (atomically: a temporary file, then rename) BEFORE the access token is
 * used, so a crash never leaves a spent token behind. One process per file: two processes
 * refreshing the same token would look like a replay, and Tessera would revoke the login.
 *
 * DPoP (RFC 9449): the login file also holds a P-256 private key (PKCS#8 PEM, `dpop_key`); every
 * token request carries a proof by it, so the refresh token and each access token are bound to it
 * (`cnf.jkt`): the refresh token alone, copied from a backup or a log, is refused
 * (TESSERA_OAUTH_REFRESH_KEY_MISMATCH). A file without a key (an older one) gets one at its next
 * refresh, which binds the login from then on. The access tokens go out as
 * `Authorization: DPoP` with a fresh proof per request (`authorizedFetch`).
 */
import { inspect } from 'node:util';
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TesseraApiError, TesseraAuthError } from './errors.js';
import { decodeJwt } from './jwt.js';
import type { FetchLike } from './http.js';
import { DpopKey, DpopSession, isNonceChallenge } from './dpop.js';
import type { AuthorizedFetch } from './client.js';

/** What the login file holds. Never printed; the refresh token is the secret. */
export interface LoginFile {
  readonly version: 1;
  /** Tessera's address. */
  readonly addr: string;
  readonly client_id: string;
  /** RFC 8707 resource of the access tokens (`<addr>/mcp` for the relay). */
  readonly resource: string;
  readonly scope: string;
  readonly refresh_token: string;
  /** The person (the access token's `sub`), for display. */
  readonly user?: string;
  /** The DPoP key the login is bound to: a P-256 private key, PKCS#8 PEM (RFC 9449; this file is 0600). */
  readonly dpop_key?: string;
}

/** A new DPoP key for a login file: the PEM to store and the key to sign with. */
export function newLoginKey(): { pem: string; key: DpopKey } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), key: DpopKey.fromPrivateKey(privateKey) };
}

/** The DPoP key of a login file; throws TESSERA_SDK_LOGIN_FILE_INVALID when it is not a P-256 key. */
export function loginKeyOf(path: string, pem: string): DpopKey {
  try {
    return DpopKey.fromPrivateKey(createPrivateKey({ key: pem, format: 'pem' }));
  } catch {
    throw new TesseraAuthError({ code: 'TESSERA_SDK_LOGIN_FILE_INVALID', status: 0, message: `the dpop_key of ${path} is not a P-256 private key (PKCS#8 PEM); run \`tessera login --oidc\` again` });
  }
}

export async function readLoginFile(path: string): Promise<LoginFile> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (e) {
    throw new TesseraAuthError({ code: 'TESSERA_SDK_LOGIN_FILE_INVALID', status: 0, message: `cannot read the login file ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'}); run \`tessera login --oidc\`` });
  }
  let f: Partial<LoginFile>;
  try {
    f = JSON.parse(raw) as Partial<LoginFile>;
  } catch {
    f = {};
  }
  if (f.version !== 1 || typeof f.addr !== 'string' || typeof f.client_id !== 'string' || typeof f.resource !== 'string' || typeof f.refresh_token !== 'string' || typeof f.scope !== 'string' || (f.dpop_key !== undefined && typeof f.dpop_key !== 'string')) {
    throw new TesseraAuthError({ code: 'TESSERA_SDK_LOGIN_FILE_INVALID', status: 0, message: `${path} is not a login file written by \`tessera login --oidc\`` });
  }
  return f as LoginFile;
}

/** Writes the login file atomically, readable only by its owner (its directory 0700 when created). */
export async function writeLoginFile(path: string, f: LoginFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(f)}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

interface TokenAnswer {
  access_token?: unknown;
  refresh_token?: unknown;
  expires_in?: unknown;
  scope?: unknown;
  token_type?: unknown;
  code?: unknown;
  error?: unknown;
  error_description?: unknown;
}

/**
 * POSTs a token request; returns the answer or throws the server's error (never echoing a token).
 * With `dpop`, the request carries a proof by its key (RFC 9449 §5), retried once with the
 * server's nonce when it asks for one (§8).
 */
export async function tokenRequest(fetchFn: FetchLike, addr: string, form: Record<string, string>, dpop?: DpopSession): Promise<TokenAnswer> {
  const url = `${addr}/v1/oauth/token`;
  const post = async (): Promise<{ res: Response; body: TokenAnswer }> => {
    let res: Response;
    try {
      res = await fetchFn(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...(dpop ? { dpop: dpop.proof('POST', url) } : {}) }, body: new URLSearchParams(form).toString() });
    } catch (e) {
      throw new TesseraApiError({ code: 'TESSERA_SDK_CONNECT_FAILED', status: 0, message: `cannot reach ${addr}: ${(e as Error).message}` });
    }
    dpop?.observe(url, res.headers);
    return { res, body: (await res.json().catch(() => ({}))) as TokenAnswer };
  };
  let { res, body } = await post();
  if (dpop && isNonceChallenge(res.status, res.headers, body) && res.headers.get('dpop-nonce')) ({ res, body } = await post());
  if (!res.ok || typeof body.access_token !== 'string') {
    const init = { code: typeof body.code === 'string' ? body.code : 'TESSERA_SDK_LOGIN_FAILED', status: res.status, message: typeof body.error_description === 'string' ? body.error_description : `the token endpoint answered HTTP ${res.status}`, ...(typeof body.error === 'string' ? { oauthError: body.error } : {}) };
    throw res.status === 400 || res.status === 401 ? new TesseraAuthError(init) : new TesseraApiError(init);
  }
  return body;
}

/** Refresh this long before the access token expires. */
const MARGIN_MS = 30_000;

/** Access tokens from a login file, refreshed by themselves (the `tessera mcp --login-file` identity). */
export class LoginSession {
  // Real private fields: the access token and the DPoP key never show in inspect() or JSON.
  #current: { token: string; expiresAt: number; bound: boolean } | undefined;
  #inflight: Promise<string> | undefined;
  #dpop: { pem: string; session: DpopSession } | undefined;

  constructor(private readonly opts: { file: string; fetch?: FetchLike; now?: () => number }) {}

  /** What a log line may show: the login file, never a token or key. */
  toJSON(): Record<string, unknown> {
    return { file: this.opts.file, bound: this.#current?.bound ?? null };
  }

  [inspect.custom](): string {
    return `LoginSession ${JSON.stringify(this.toJSON())}`;
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** A valid access token: the current one, or a new one from the refresh token (which rotates). */
  async token(): Promise<string> {
    const cur = this.#current;
    if (cur && this.now() < cur.expiresAt - MARGIN_MS) return cur.token;
    // One refresh at a time: a second concurrent use of the same refresh token is a replay.
    this.#inflight ??= this.refresh().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  /** The DPoP session of the file's key (one is made and stored for a file without a key). */
  private dpopFor(f: LoginFile): { pem: string; session: DpopSession } {
    if (f.dpop_key !== undefined && this.#dpop?.pem === f.dpop_key) return this.#dpop;
    if (f.dpop_key !== undefined) this.#dpop = { pem: f.dpop_key, session: new DpopSession(loginKeyOf(this.opts.file, f.dpop_key), () => this.now()) };
    else {
      const k = newLoginKey();
      this.#dpop = { pem: k.pem, session: new DpopSession(k.key, () => this.now()) };
    }
    return this.#dpop;
  }

  private async refresh(): Promise<string> {
    const f = await readLoginFile(this.opts.file);
    const dpop = this.dpopFor(f);
    const fetchFn: FetchLike = this.opts.fetch ?? ((input, init) => fetch(input, init));
    const r = await tokenRequest(fetchFn, f.addr, { grant_type: 'refresh_token', refresh_token: f.refresh_token, client_id: f.client_id, resource: f.resource }, dpop.session);
    if (typeof r.refresh_token !== 'string') throw new TesseraAuthError({ code: 'TESSERA_SDK_LOGIN_FAILED', status: 0, message: 'the server returned no new refresh token; log in again with `tessera login --oidc`' });
    // The rotated token (and the key it is bound to) is on disk before the new access token is used.
    await writeLoginFile(this.opts.file, { ...f, refresh_token: r.refresh_token, dpop_key: dpop.pem });
    const token = r.access_token as string;
    let exp: unknown;
    try {
      exp = decodeJwt(token).claims.exp;
    } catch {
      exp = undefined;
    }
    const ttl = typeof r.expires_in === 'number' ? r.expires_in * 1000 : 60_000;
    const bound = typeof r.token_type === 'string' && r.token_type.toLowerCase() === 'dpop';
    this.#current = { token, expiresAt: typeof exp === 'number' ? exp * 1000 : this.now() + ttl, bound };
    return token;
  }

  /**
   * A fetch that authorizes every request with the current access token: `Authorization: DPoP`
   * and a fresh proof (with `ath`) for a bound one (RFC 9449 §7.1), `Bearer` otherwise; it
   * retries once when the server asks for a new nonce (§9).
   */
  authorizedFetch(base: FetchLike = (input, init) => fetch(input, init)): AuthorizedFetch {
    return async (input, init = {}) => {
      const url = input.toString();
      const method = (init.method ?? 'GET').toUpperCase();
      const send = async (): Promise<Response> => {
        const token = await this.token();
        const headers = new Headers(init.headers);
        const session = this.#current?.bound ? this.#dpop?.session : undefined;
        if (session) {
          headers.set('authorization', `DPoP ${token}`);
          headers.set('dpop', session.proof(method, url, token));
        } else headers.set('authorization', `Bearer ${token}`);
        const res = await base(url, { ...init, headers });
        session?.observe(url, res.headers);
        return res;
      };
      const res = await send();
      const replayable = init.body === undefined || init.body === null || typeof init.body === 'string';
      if (this.#current?.bound && replayable && isNonceChallenge(res.status, res.headers) && res.headers.get('dpop-nonce')) {
        await res.body?.cancel().catch(() => undefined);
        return send();
      }
      return res;
    };
  }

  close(): void {
    this.#current = undefined;
  }
}
