/**
 * `tessera login --oidc` trusts the answer on its loopback redirect only as far as RFC 9207 and
 * RFC 6749 §4.1.2 allow: Tessera's authorization server (with a real OpenID Provider behind it)
 * advertises `authorization_response_iss_parameter_supported`, so an answer without `iss` — or
 * with another server's — is refused (a mix-up); a repeated parameter, an answer with neither
 * code nor error, a malformed code, and an error code that is not one of Tessera's are refused
 * with TESSERA_CLI_LOGIN_FAILED; a real error redirect keeps its Tessera code. Every other
 * TESSERA_CLI_LOGIN_FAILED path too: metadata unreadable or naming another issuer, no answer in
 * time, interrupted. Never a token or a raw control character on the terminal.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';
import { oidcLogin } from '../../src/cli/login-oidc.js';
import { Browser, freePort } from './op.js';
import { startAsHarness, type AsHarness } from './harness.js';

const noRuntime = {} as Runtime;
let h: AsHarness;

before(async () => {
  h = await startAsHarness();
});
after(async () => {
  await h?.close();
});

interface Running {
  /** The authorization URL the CLI printed (undefined when it stopped before printing one). */
  readonly url: URL | undefined;
  readonly file: string;
  done(): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Starts `tessera login --oidc` and waits (bounded polling) for the printed URL, or for the command to end. */
async function start(extra: string[] = [], addr = h.url): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-login-answers-'));
  const file = join(dir, 'login.json');
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env: { HOME: dirname(file) } };
  let ended = false;
  const running = runCli(['login', '--oidc', '--addr', addr, '--out', file, ...extra], noRuntime, io).finally(() => (ended = true));
  let url: string | undefined;
  for (let i = 0; i < 400 && !url && !ended; i++) {
    url = /(http:\/\/127\.0\.0\.1:\d+\/v1\/oauth\/authorize\?\S+)/.exec(stderr)?.[1];
    if (!url) await new Promise((r) => setTimeout(r, 25));
  }
  return { url: url ? new URL(url) : undefined, file, done: async () => ({ code: await running, stdout, stderr }) };
}

/** Delivers `params` (plus the login's own state unless given) to the CLI's loopback redirect, as a browser would. */
async function answer(r: Running, params: [string, string][]): Promise<number> {
  const redirect = new URL(r.url!.searchParams.get('redirect_uri')!);
  const withState = params.some(([k]) => k === 'state') ? params : [['state', r.url!.searchParams.get('state')!] as [string, string], ...params];
  for (const [k, v] of withState) redirect.searchParams.append(k, v);
  const res = await fetch(redirect);
  await res.arrayBuffer();
  return res.status;
}

async function assertFails(r: Running, code: string, message: RegExp): Promise<void> {
  const out = await r.done();
  assert.equal(out.code, 1, out.stderr);
  assert.match(out.stderr, new RegExp(`\\[${code}\\]`), out.stderr);
  assert.match(out.stderr, message);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(out.stderr, /[\x00-\x08\x0b-\x1f\x7f]/, 'no raw control character on the terminal');
  assert.equal(existsSync(r.file), false, 'no login file');
}

test('an answer without iss is refused: the server advertises authorization_response_iss_parameter_supported (RFC 9207 §2.4)', async () => {
  const meta = (await (await fetch(`${h.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  assert.equal(meta.authorization_response_iss_parameter_supported, true);
  const r = await start();
  assert.ok(r.url);
  await answer(r, [['code', 'some-code']]);
  await assertFails(r, 'TESSERA_CLI_LOGIN_FAILED', /carries no "iss", although .* always sends it \(RFC 9207 §2\.4\)/);
});

test('bad answers on the loopback redirect: another issuer, repeated parameters, neither code nor error, a malformed code — each TESSERA_CLI_LOGIN_FAILED', async () => {
  const cases: [string, [string, string][], RegExp][] = [
    ['another issuer', [['iss', 'https://evil.example'], ['code', 'c']], /names another issuer \(https:\/\/evil\.example\)/],
    ['issuer with a trailing slash', [['iss', `${h.url}/`], ['code', 'c']], /names another issuer/],
    ['repeated code', [['iss', h.url], ['code', 'a'], ['code', 'b']], /repeats "code"/],
    ['repeated iss', [['iss', h.url], ['iss', h.url], ['code', 'a']], /repeats "iss"/],
    ['repeated error', [['iss', h.url], ['error', 'access_denied'], ['error', 'server_error']], /repeats "error"/],
    ['repeated tessera_code', [['iss', h.url], ['error', 'access_denied'], ['tessera_code', 'TESSERA_OAUTH_INVALID_SCOPE'], ['tessera_code', 'TESSERA_INTERNAL']], /repeats "tessera_code"/],
    ['neither code nor error', [['iss', h.url]], /neither a code nor an error/],
    ['empty code', [['iss', h.url], ['code', '']], /malformed code/],
    ['code with a control character', [['iss', h.url], ['code', 'ab\ncd']], /malformed code/],
    ['over-long code', [['iss', h.url], ['code', 'x'.repeat(2049)]], /malformed code/],
  ];
  for (const [name, params, message] of cases) {
    const r = await start();
    assert.ok(r.url, name);
    await answer(r, params);
    await assertFails(r, 'TESSERA_CLI_LOGIN_FAILED', message).catch((e: Error) => {
      throw new Error(`${name}: ${e.message}`);
    });
  }
});

test('an error answer: a tessera_code that is not one of Tessera\'s codes is TESSERA_CLI_LOGIN_FAILED; control characters in it never reach the terminal', async () => {
  for (const tc of ['TESSERA_MADE_UP', 'rm -rf /', 'TESSERA_\u001b[31mRED', '__proto__', 'constructor']) {
    const r = await start();
    await answer(r, [['iss', h.url], ['error', 'access_denied'], ['error_description', 'denied \u001b[2J\u0007 by you'], ['tessera_code', tc]]);
    await assertFails(r, 'TESSERA_CLI_LOGIN_FAILED', /the login failed: access_denied .*\(with an unknown error code\)/);
  }
  const r = await start();
  await answer(r, [['iss', h.url], ['error', 'bad\u001berror'], ['tessera_code', 'TESSERA_OAUTH_INVALID_SCOPE']]);
  await assertFails(r, 'TESSERA_OAUTH_INVALID_SCOPE', /the login failed: an error/);
});

test('a real error redirect of the authorization server (an unknown scope) keeps its Tessera code, with iss checked', async () => {
  const r = await start(['--scope', 'nonsense-scope']);
  assert.ok(r.url);
  const page = await new Browser().follow(r.url, () => false);
  assert.equal(page.status, 400, page.body ?? '');
  assert.match(page.body ?? '', /Login failed/);
  await assertFails(r, 'TESSERA_OAUTH_INVALID_SCOPE', /the login failed: invalid_scope/);
});

test('a made-up code with the right state and iss is refused by the token endpoint (the code is Tessera\'s to check)', async () => {
  const r = await start();
  await answer(r, [['iss', h.url], ['code', 'made-up-code']]);
  const out = await r.done();
  assert.equal(out.code, 1, out.stderr);
  assert.match(out.stderr, /\[TESSERA_OAUTH_[A-Z_]+\]/);
  assert.equal(existsSync(r.file), false);
});

test('another state is not this login\'s answer: refused on the page, and the login keeps waiting for its own', async () => {
  const r = await start();
  assert.equal(await answer(r, [['state', 'someone-elses'], ['iss', h.url], ['code', 'x']]), 400);
  await answer(r, [['iss', 'https://evil.example'], ['code', 'c']]);
  await assertFails(r, 'TESSERA_CLI_LOGIN_FAILED', /names another issuer/);
});

test('metadata that cannot be read, or names another issuer (another address for the server), is TESSERA_CLI_LOGIN_FAILED before any URL is printed', async () => {
  const closed = `http://127.0.0.1:${await freePort()}`;
  const r1 = await start([], closed);
  assert.equal(r1.url, undefined);
  await assertFails(r1, 'TESSERA_CLI_LOGIN_FAILED', /cannot read the authorization server's metadata at http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-authorization-server/);
  const alias = h.url.replace('127.0.0.1', 'localhost');
  const r2 = await start([], alias);
  assert.equal(r2.url, undefined);
  await assertFails(r2, 'TESSERA_CLI_LOGIN_FAILED', /names another issuer in its metadata .*RFC 8414 §3\.3/);
});

test('no answer in time, or an interrupted login: TESSERA_CLI_LOGIN_FAILED', async () => {
  const io: CliIo = { stdout: { write: () => true }, stderr: { write: () => true }, env: {} };
  const out = join(mkdtempSync(join(tmpdir(), 'tessera-login-answers-')), 'login.json');
  await assert.rejects(oidcLogin({ addr: h.url, out, clientId: 'tessera-cli', resource: `${h.url}/mcp`, open: false, timeoutMs: 1, io }), (e: { code?: string; message?: string }) => {
    assert.equal(e.code, 'TESSERA_CLI_LOGIN_FAILED');
    assert.match(e.message ?? '', /no login within/);
    return true;
  });
  const stop = new AbortController();
  const running = oidcLogin({ addr: h.url, out, clientId: 'tessera-cli', resource: `${h.url}/mcp`, open: false, timeoutMs: 60_000, io, signal: stop.signal });
  stop.abort();
  await assert.rejects(running, (e: { code?: string; message?: string }) => {
    assert.equal(e.code, 'TESSERA_CLI_LOGIN_FAILED');
    assert.match(e.message ?? '', /interrupted/);
    return true;
  });
  assert.equal(existsSync(out), false);
});
