/**
 * `tessera login --oidc`: a person logs in through Tessera's authorization server (which
 * federates to the organisation's OpenID Provider) with the authorization code grant and PKCE
 * (RFC 7636 S256), as a native app with a loopback redirect (RFC 8252 §7.3: an ephemeral port on
 * 127.0.0.1, the pre-registered public client `tessera-cli`). The refresh token is stored in a
 * login file readable only by its owner (src/sdk/login-session.ts); `tessera mcp --login-file`
 * then refreshes by itself. No token is ever printed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from '../sdk/jwt.js';
import { newLoginKey, tokenRequest, writeLoginFile } from '../sdk/login-session.js';
import { DpopSession } from '../sdk/dpop.js';
import type { FetchLike } from '../sdk/http.js';
import { CliError, EXIT, type CliIo } from './io.js';
import { ERROR_CATALOGUE, type ErrorCode } from '../shared/errors.js';

export const DEFAULT_LOGIN_FILE = (env: Record<string, string | undefined>): string => join(env.XDG_CONFIG_HOME ?? join(env.HOME ?? homedir(), '.config'), 'tessera', 'login.json');

export interface OidcLoginOptions {
  readonly addr: string;
  readonly out: string;
  readonly clientId: string;
  /** RFC 8707 resource: `<addr>/mcp` (the relay) or `<addr>` (the API). */
  readonly resource: string;
  readonly scope?: string;
  /** Open the system browser (`open` / `xdg-open` / `start`); otherwise only print the URL. */
  readonly open: boolean;
  readonly timeoutMs: number;
  readonly io: CliIo;
  readonly signal?: AbortSignal;
}

const page = (title: string, text: string): string =>
  `<!doctype html><meta charset="utf-8"><title>${title}</title><body style="font-family:sans-serif;margin:3em"><h1>${title}</h1><p>${text}</p></body>`;

/** Waits for the one callback of this login on the loopback server; checks the state. */
function awaitCallback(server: Server, state: string, timeoutMs: number, signal?: AbortSignal): Promise<URL> {
  return new Promise<URL>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CliError('TESSERA_CLI_LOGIN_FAILED', `no login within ${Math.round(timeoutMs / 1000)} s; run the command again`, EXIT.REFUSED)), timeoutMs);
    timer.unref();
    const interrupted = (): void => {
      clearTimeout(timer);
      reject(new CliError('TESSERA_CLI_LOGIN_FAILED', 'the login was interrupted', EXIT.REFUSED));
    };
    // Interrupted before the wait began (while the metadata was read) counts too.
    if (signal?.aborted) return interrupted();
    signal?.addEventListener('abort', interrupted, { once: true });
    server.on('request', (req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname !== '/callback') return void res.writeHead(404).end();
      // RFC 6749 §10.12: a callback with another state is not ours (CSRF); keep waiting.
      if (url.searchParams.get('state') !== state) {
        res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' }).end(page('Login refused', 'This answer does not belong to the login in progress.'));
        return;
      }
      const ok = url.searchParams.has('code');
      res.writeHead(ok ? 200 : 400, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(ok ? page('Logged in', 'You can close this window and return to the terminal.') : page('Login failed', 'See the terminal for the reason.'));
      clearTimeout(timer);
      resolve(url);
    });
  });
}

const loginFailed = (message: string): CliError => new CliError('TESSERA_CLI_LOGIN_FAILED', message, EXIT.REFUSED);

/**
 * RFC 8414 metadata of the authorization server at `addr`: its `issuer` must be `addr` itself
 * (§3.3), and whether it sends `iss` with every authorization response
 * (`authorization_response_iss_parameter_supported`, RFC 9207 §3). TESSERA_CLI_LOGIN_FAILED when
 * it cannot be read or names another issuer.
 */
async function answersCarryIssuer(fetchFn: FetchLike, addr: string): Promise<boolean> {
  const at = `${addr}/.well-known/oauth-authorization-server`;
  let meta: { issuer?: unknown; authorization_response_iss_parameter_supported?: unknown };
  try {
    const res = await fetchFn(at, { method: 'GET', headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    meta = (await res.json()) as typeof meta;
  } catch (e) {
    throw loginFailed(`cannot read the authorization server's metadata at ${at} (${(e as Error).message.slice(0, 200)}); check --addr, and that users.authorization_server is enabled`);
  }
  if (meta?.issuer !== addr) throw loginFailed(`the authorization server at ${addr} names another issuer in its metadata (${String(meta?.issuer).slice(0, 200)}); use that address as --addr (RFC 8414 §3.3)`);
  return meta.authorization_response_iss_parameter_supported === true;
}

/** RFC 6749 §4.1.2.1 `error`: %x20-21 / %x23-5B / %x5D-7E. */
const OAUTH_ERROR = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,128}$/;
/** An authorization code: visible ASCII (RFC 6749 §A.11), bounded. */
const AUTH_CODE = /^[\x21-\x7e]{1,2048}$/;
/** The callback parameters an answer may carry at most once each. */
const SINGLE = ['state', 'code', 'iss', 'error', 'error_description', 'tessera_code'] as const;

/**
 * The authorization code of the answer (`back`, whose `state` awaitCallback matched), after the
 * checks of RFC 9207 §2.4 and RFC 6749 §4.1.2: `iss` is this server (and present when its metadata
 * says it sends it: an answer without it may come from another server, a mix-up); no parameter
 * repeated; a code or an error. An error answer throws its `tessera_code` when that is one of
 * Tessera's codes, else TESSERA_CLI_LOGIN_FAILED; every other fault is TESSERA_CLI_LOGIN_FAILED.
 */
export function answerCode(back: URL, expect: { issuer: string; issRequired: boolean }): string {
  const q = back.searchParams;
  const repeated = SINGLE.find((k) => q.getAll(k).length > 1);
  if (repeated) throw loginFailed(`the login answer repeats "${repeated}"; it was not made by Tessera's authorization server`);
  const iss = q.get('iss');
  if (iss !== null && iss !== expect.issuer) throw loginFailed(`the login answer names another issuer (${iss.slice(0, 200)})`);
  if (iss === null && expect.issRequired) throw loginFailed(`the login answer carries no "iss", although ${expect.issuer} always sends it (RFC 9207 §2.4): it may come from another server; run the login again`);
  const error = q.get('error');
  if (error !== null) {
    const tc = q.get('tessera_code');
    const known = tc !== null && Object.hasOwn(ERROR_CATALOGUE, tc) ? (tc as ErrorCode) : undefined;
    const description = q.get('error_description');
    const what = OAUTH_ERROR.test(error) ? error : 'an error';
    throw new CliError(known ?? 'TESSERA_CLI_LOGIN_FAILED', `the login failed: ${what}${description ? ` (${description.slice(0, 300)})` : ''}${tc !== null && !known ? ' (with an unknown error code)' : ''}`, EXIT.REFUSED);
  }
  const code = q.get('code');
  if (code === null) throw loginFailed('the login answer carries neither a code nor an error (RFC 6749 §4.1.2)');
  if (!AUTH_CODE.test(code)) throw loginFailed('the login answer carries a malformed code');
  return code;
}

function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? ['open', url] : process.platform === 'win32' ? ['cmd', '/c', 'start', '', url] : ['xdg-open', url];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: 'ignore', detached: true });
  child.on('error', () => undefined);
  child.unref();
}

/** Runs the login; returns the person and where the login file is. */
export async function oidcLogin(o: OidcLoginOptions): Promise<{ user: string | undefined; file: string; scope: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('base64url');
  const server = createServer();
  await new Promise<void>((r, j) => {
    server.once('error', j);
    server.listen(0, '127.0.0.1', () => r());
  });
  try {
    const fetchFn: FetchLike = o.io.fetch ?? ((input, init) => fetch(input, init));
    // RFC 9207 §2.4: whether this server's answers must carry `iss` — learnt before the person is sent anywhere.
    const issRequired = await answersCarryIssuer(fetchFn, o.addr);
    const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
    const u = new URL(`${o.addr}/v1/oauth/authorize`);
    for (const [k, v] of Object.entries({ response_type: 'code', client_id: o.clientId, redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256', state, resource: o.resource, ...(o.scope ? { scope: o.scope } : {}) })) u.searchParams.set(k, v);
    o.io.stderr.write(`Open this URL in a browser to log in:\n\n  ${u.href}\n\nWaiting for the login (${Math.round(o.timeoutMs / 60_000)} min)…\n`);
    if (o.open) openBrowser(u.href);
    const back = await awaitCallback(server, state, o.timeoutMs, o.signal);
    const code = answerCode(back, { issuer: o.addr, issRequired });
    // RFC 9449 §5: the code is redeemed with a DPoP proof, so the refresh token (and every access
    // token) is bound to a key kept in the login file beside it.
    const key = newLoginKey();
    const r = await tokenRequest(fetchFn, o.addr, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: o.clientId, code_verifier: verifier, resource: o.resource }, new DpopSession(key.key));
    if (typeof r.refresh_token !== 'string') throw new CliError('TESSERA_CLI_LOGIN_FAILED', 'the server issued no refresh token', EXIT.REFUSED);
    let user: string | undefined;
    try {
      const sub = decodeJwt(r.access_token as string).claims.sub;
      user = typeof sub === 'string' ? sub : undefined;
    } catch {
      user = undefined;
    }
    const scope = typeof r.scope === 'string' ? r.scope : '';
    await writeLoginFile(o.out, { version: 1, addr: o.addr, client_id: o.clientId, resource: o.resource, scope, refresh_token: r.refresh_token, dpop_key: key.pem, ...(user ? { user } : {}) });
    return { user, file: o.out, scope };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}
