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
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';
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
  // The spent one is refused (and, being a replay, ends the login).
  const replay = await fetch(`${h.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: saved.refresh_token, client_id: 'tessera-cli' }) });
  assert.equal(((await replay.json()) as any).code, 'TESSERA_OAUTH_REFRESH_REUSED');
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
