/**
 * A person on a laptop: `tessera login --oidc` runs the authorization code flow with PKCE and a
 * loopback redirect (RFC 8252 §7.3) through Tessera's authorization server (federated to a real
 * OpenID Provider), and stores the refresh token in a 0600 login file — never printing a token.
 * `tessera mcp --login-file` then relays stdio to the gateway as that person, refreshing (and
 * rotating the file's refresh token) by itself.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { inspect } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';
import { LoginSession, writeLoginFile } from '../../src/sdk/login-session.js';
import { DpopKey } from '../../src/sdk/dpop.js';
import { Browser } from './op.js';
import { startAsHarness, type AsHarness } from './harness.js';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', 'gateway', 'stdio-relay-entry.ts');
const noRuntime = {} as Runtime;
let h: AsHarness;

before(async () => {
  h = await startAsHarness();
});
after(async () => {
  await h?.close();
});

/** Runs `tessera login --oidc`, plays the person's browser once the URL is printed, returns the result. */
async function login(user: string, file: string, extra: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env: { HOME: dirname(file) } };
  const running = runCli(['login', '--oidc', '--addr', h.url, '--out', file, ...extra], noRuntime, io);
  // Bounded polling for the printed URL (the loopback server is listening by then).
  let url: string | undefined;
  for (let i = 0; i < 400 && !url; i++) {
    url = /(http:\/\/127\.0\.0\.1:\d+\/v1\/oauth\/authorize\?\S+)/.exec(stderr)?.[1];
    if (!url) await new Promise((r) => setTimeout(r, 25));
  }
  assert.ok(url, stderr);
  h.op.nextUser = user;
  const page = await new Browser().follow(url, () => false);
  assert.equal(page.status, 200, page.body ?? '');
  assert.match(page.body ?? '', /Logged in/);
  const code = await running;
  return { code, stdout, stderr };
}

test('tessera login --oidc stores a refresh token in a 0600 file and prints no token; tessera mcp --login-file relays as the person and refreshes by itself', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-login-'));
  const file = join(dir, 'tessera', 'login.json');
  const r = await login('alice', file);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /logged in as alice/);
  const st = statSync(file);
  assert.equal(st.mode & 0o777, 0o600, 'readable by its owner only');
  assert.equal(statSync(dirname(file)).mode & 0o777, 0o700);
  const saved = JSON.parse(readFileSync(file, 'utf8'));
  h.sensitive.add(saved.refresh_token);
  assert.equal(saved.client_id, 'tessera-cli');
  assert.equal(saved.resource, `${h.url}/mcp`);
  // RFC 9449: the login is bound to a P-256 key kept in the same 0600 file.
  assert.match(saved.dpop_key, /^-----BEGIN PRIVATE KEY-----\n/);
  h.sensitive.add(saved.dpop_key.split('\n')[1]);
  assert.ok(!r.stdout.includes(saved.dpop_key.split('\n')[1]) && !r.stderr.includes(saved.dpop_key.split('\n')[1]), 'no key printed');
  assert.ok(!r.stdout.includes(saved.refresh_token) && !r.stderr.includes(saved.refresh_token), 'no token printed');
  assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\./.test(r.stdout + r.stderr), 'no JWT printed');

  const transport = new StdioClientTransport({ command: process.execPath, args: ['--import', 'tsx', ENTRY, '--addr', h.url, '--login-file', file], stderr: 'pipe', env: { PATH: process.env.PATH ?? '' } });
  let relayErr = '';
  (transport.stderr as NodeJS.ReadableStream).on('data', (d: Buffer) => (relayErr += d.toString()));
  const client = new Client({ name: 'laptop', version: '1.0.0' });
  await client.connect(transport);
  try {
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), ['docs__read', 'docs__search', 'ledger__balance']);
    const res = await client.callTool({ name: 'docs__search', arguments: { q: 'x' } });
    assert.deepEqual(res.content, [{ type: 'text', text: 'docs/search ok' }]);
  } finally {
    await client.close();
  }
  const rotated = JSON.parse(readFileSync(file, 'utf8'));
  assert.notEqual(rotated.refresh_token, saved.refresh_token, 'the relay rotated the refresh token and wrote it back');
  h.sensitive.add(rotated.refresh_token);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.match(relayErr, /as a person/);
  assert.ok(!relayErr.includes(rotated.refresh_token));
  assert.equal(rotated.dpop_key, saved.dpop_key, 'the same key across refreshes');
  // Every refresh token of the login and every access token was bound to the key.
  const rows = await h.tessera.store.all<{ jkt: string | null }>("SELECT jkt FROM oauth_refresh_tokens WHERE client_id = 'tessera-cli'");
  assert.ok(rows.length >= 2 && rows.every((x) => typeof x.jkt === 'string' && x.jkt.length === 43), JSON.stringify(rows));
  await h.tessera.audit.flush();
  const issued = (await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'oauth.token_issued'")).map((e) => JSON.parse(e.body)).filter((e) => e.details.client_id === 'tessera-cli');
  assert.ok(issued.length >= 2 && issued.every((e) => e.details.bound === true));
  // The refresh token copied out of the file without its key is useless (and spends nothing).
  const copied = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rotated.refresh_token, client_id: 'tessera-cli' }) });
  assert.equal(((await copied.json()) as any).code, 'TESSERA_OAUTH_REFRESH_KEY_MISMATCH');
  // The spent one without its key proves nothing: refused, and the login is NOT ended by it.
  const seen = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: saved.refresh_token, client_id: 'tessera-cli' }) });
  assert.equal(((await seen.json()) as any).code, 'TESSERA_OAUTH_REFRESH_KEY_MISMATCH');
  const live = async () => (await h.tessera.store.all<{ state: string }>("SELECT state FROM oauth_refresh_tokens WHERE client_id = 'tessera-cli' AND state = 'active'")).length;
  assert.equal(await live(), 1, 'the live refresh token survives a replay without the key');
  // With its key, the spent one is a real replay: the whole login ends (RFC 9700 §4.14.2).
  const key = DpopKey.fromPrivateKey(createPrivateKey(saved.dpop_key));
  const replay = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: key.proof('POST', `${h.url}/v1/oauth/token`, { nowMs: Date.now() }) }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: saved.refresh_token, client_id: 'tessera-cli' }) });
  assert.equal(((await replay.json()) as any).code, 'TESSERA_OAUTH_REFRESH_REUSED');
  assert.equal(await live(), 0, 'a replay with the key ends the login');
});

test('tessera login --oidc takes no attestation; tessera mcp takes one identity source', async () => {
  let stderr = '';
  const io: CliIo = { stdout: { write: () => true }, stderr: { write: (s: string) => (stderr += s) }, env: {} };
  assert.equal(await runCli(['login', '--oidc', '--join-token', 'x', '--addr', h.url], noRuntime, io), 2);
  assert.match(stderr, /--oidc logs a person in/);
  const { runStdioRelay } = await import('../../src/gateway/stdio-relay/index.js');
  const { PassThrough } = await import('node:stream');
  const r = await runStdioRelay({ addr: h.url, loginFile: '/nonexistent/login.json', tokenFile: '/x', stdin: new PassThrough(), stdout: new PassThrough(), stderr: { write: () => true }, printErrors: false });
  assert.equal(r.error?.code, 'TESSERA_CLI_USAGE');
  const missing = await runStdioRelay({ addr: h.url, loginFile: '/nonexistent/login.json', stdin: new PassThrough(), stdout: new PassThrough(), stderr: { write: () => true }, printErrors: false });
  assert.equal(missing.error?.code, 'TESSERA_SDK_LOGIN_FILE_INVALID');
});

test('a login file without a key (an unbound login) gets one at its next refresh, which binds the login from then on', async () => {
  // An unbound login of tessera-cli: the code redeemed without a DPoP proof.
  const verifier = randomBytes(32).toString('base64url');
  const redirect = 'http://127.0.0.1:53691/callback';
  const u = new URL(`${h.url}/v1/oauth/authorize`);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: 'tessera-cli', redirect_uri: redirect, code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256', state: 's', resource: h.url })) u.searchParams.set(k, v);
  h.op.nextUser = 'bob';
  const back = await new Browser().follow(u, (x) => x.href.startsWith(redirect));
  const res = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code: back.url!.searchParams.get('code')!, client_id: 'tessera-cli', redirect_uri: redirect, code_verifier: verifier, resource: h.url }) });
  const tok = (await res.json()) as any;
  assert.equal(tok.token_type, 'Bearer', JSON.stringify(tok));
  h.sensitive.add(tok.access_token);
  h.sensitive.add(tok.refresh_token);
  const file = join(mkdtempSync(join(tmpdir(), 'tessera-login-')), 'login.json');
  await writeLoginFile(file, { version: 1, addr: h.url, client_id: 'tessera-cli', resource: h.url, scope: tok.scope, refresh_token: tok.refresh_token });

  const session = new LoginSession({ file });
  const access = await session.token();
  h.sensitive.add(access);
  const f = JSON.parse(readFileSync(file, 'utf8'));
  h.sensitive.add(f.refresh_token);
  assert.match(f.dpop_key, /BEGIN PRIVATE KEY/, 'the key is stored with the rotated refresh token');
  // A session logged or stringified shows its file, never the access token or the key.
  for (const shown of [inspect(session, { showHidden: true, depth: 10 }), JSON.stringify(session), JSON.stringify({ session })]) {
    assert.ok(!shown.includes(access) && !shown.includes('PRIVATE KEY') && !shown.includes(f.refresh_token), shown);
    assert.ok(shown.includes(file), shown);
  }
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const jkt = JSON.parse(Buffer.from(access.split('.')[1]!, 'base64url').toString()).cnf?.jkt;
  assert.equal(typeof jkt, 'string', 'the access token is bound');
  const copied = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: f.refresh_token, client_id: 'tessera-cli' }) });
  assert.equal(((await copied.json()) as any).code, 'TESSERA_OAUTH_REFRESH_KEY_MISMATCH', 'the login is bound from then on');
  // The session's fetch sends the bound token with a proof (RFC 9449 §7.1).
  const who = await session.authorizedFetch()(`${h.url}/v1/whoami`);
  assert.equal(who.status, 200, 'sent as DPoP with a proof by the file\'s key');
  assert.equal(((await who.json()) as any).task?.bound, true);
  session.close();
});
