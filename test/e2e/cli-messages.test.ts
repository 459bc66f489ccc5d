/**
 * What the CLI says when a request is refused, against the whole real server: a message that
 * names an HTTP route as the next step shows the `tessera` command instead (server messages carry
 * `details.next_step: { route, cli }`; the API keeps the route); a token of the wrong kind is
 * named as such on both sides (an admin token on an agent command or endpoint, an agent token on
 * an operator one); "no such lease" is worded for the operator and for the agent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness, type Harness } from './harness.js';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';

const reject = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };
const AGENT = 'spiffe://tessera.local/ns/healthcare/sa/patient-reader';

let h: Harness;
let agentToken: string;
let joinToken: string;
before(async () => {
  h = await startHarness();
  agentToken = await h.login(await h.joinToken(AGENT));
  joinToken = await h.joinToken(AGENT);
});
after(async () => {
  await h.close();
});

async function cli(argv: string[], token?: string): Promise<{ code: number; stdout: string; stderr: string; requests: number }> {
  let stdout = '';
  let stderr = '';
  let requests = 0;
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: { TESSERA_ADDR: h.url, TESSERA_TOKEN: token ?? h.adminToken },
    fetch: (url, init) => {
      requests++;
      return fetch(url, init);
    },
  };
  const code = await runCli(argv, runtime, io);
  return { code, stdout, stderr, requests };
}

test('a route named as the next step is shown as the tessera command in the CLI; the API keeps the route', async () => {
  const cases: [string[], RegExp, string][] = [
    [['revoke', 'lift', 'rev_nonexistent'], /no active revocation rev_nonexistent; list them with `tessera revoke list`/, 'DELETE /v1/admin/revocations/rev_nonexistent'],
    [['kv', 'get', 'nothing/here'], /no secret at nothing\/here; list what exists with `tessera kv list PREFIX`/, 'GET /v1/admin/secrets/nothing/here'],
    [['lease', 'revoke', 'lease_0000000000000000000000'], /no lease lease_0000000000000000000000; list leases with `tessera lease list`/, 'DELETE /v1/admin/leases/lease_0000000000000000000000'],
    [['revoke', 'lease', 'lease_0000000000000000000000'], /no lease lease_0000000000000000000000; list leases with `tessera lease list`/, ''],
    [['engine', 'postgres', 'role', 'nope', 'reader'], /no postgres engine configuration "nope"; configure it with `tessera engine postgres configure nope --url -`/, ''],
  ];
  for (const [argv, re, route] of cases) {
    const r = await cli(argv);
    assert.equal(r.code, 1, `${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, argv.join(' '));
    assert.doesNotMatch(r.stderr, /(GET|POST|PUT|DELETE) \/v1\//, `${argv.join(' ')} names a route: ${r.stderr}`);
    if (route) {
      const [method, path] = route.split(' ') as [string, string];
      const api = await h.admin(method, path);
      assert.match(api.body.error.message, /(GET|DELETE) \/v1\/admin\//, 'the API names the route');
      assert.equal(typeof api.body.error.details.next_step.cli, 'string');
    }
  }
  const warn = await cli(['revoke', 'agent', 'spiffe://tessera.local/ns/x/sa/never-logged-in', '--ttl', '1m']);
  assert.equal(warn.code, 0, warn.stderr);
  assert.match(warn.stderr, /warning: agent spiffe:\/\/tessera\.local\/ns\/x\/sa\/never-logged-in has never logged in here \(it is not in `tessera agent list`\)/);
});

test('a token of the wrong kind is refused by the CLI before any request, saying which kind it is', async () => {
  const cases: [string[], string, RegExp][] = [
    [['creds', 'postgres', 'nope'], 'ADMIN', /this command needs an agent token \(from `tessera login`\), but TESSERA_TOKEN holds an admin token \(tsr_admin_…\): log in as the agent first/],
    [['creds', 'postgres', 'nope'], 'JOIN', /holds a join token \(tsr_join_…\): exchange it first \(`tessera login --join-token - --out agent\.token`\)/],
    [['kv', 'list'], 'AGENT', /this command needs an admin token \(tsr_admin_…, printed by `tessera dev` or `tessera init`\), but TESSERA_TOKEN holds an agent token \(a JWT\)/],
    [['engine', 'postgres', 'list'], 'JOIN', /needs an admin token .* but TESSERA_TOKEN holds a join token/],
    [['keys', 'rotate'], 'AGENT', /needs an admin token .* holds an agent token/],
    [['kv', 'list'], '', /TESSERA_TOKEN is set but empty: did the command that produced it fail\?/],
    [['creds', 'postgres', 'x'], '   ', /TESSERA_TOKEN is set but empty/],
  ];
  for (const [argv, which, re] of cases) {
    const token = { ADMIN: h.adminToken, JOIN: joinToken, AGENT: agentToken }[which] ?? which;
    const r = await cli(argv, token);
    assert.equal(r.code, 2, `${argv.join(' ')} with ${which || 'empty'}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.match(r.stderr, /\[TESSERA_CLI_USAGE\]/);
    assert.equal(r.requests, 0, 'nothing was sent');
    assert.ok(!r.stderr.includes(token.trim() || '\u0000'), 'the token is never printed');
  }
  const emptyJoin = await cli(['login', '--join-token', '', '--print']);
  assert.equal(emptyJoin.code, 2);
  assert.match(emptyJoin.stderr, /--join-token is empty: did the command that produced it fail\?/);
});

test('the server names the token kind too: an admin token on an agent endpoint, an agent or join token on an operator endpoint', async () => {
  const agentRoute = await h.agent(h.adminToken, 'POST', '/v1/creds/postgres/nope', {});
  assert.equal(agentRoute.status, 401);
  assert.equal(agentRoute.body.error.code, 'TESSERA_TOKEN_MALFORMED');
  assert.match(agentRoute.body.error.message, /^this is an admin token \(tsr_admin_…\); this endpoint needs an agent token: log in first with POST \/v1\/oauth\/token$/);
  const joinOnAgent = await h.agent(joinToken, 'GET', '/v1/secrets/a/b');
  assert.match(joinOnAgent.body.error.message, /^this is a join token \(tsr_join_…\); exchange it for an agent token first with POST \/v1\/oauth\/token$/);
  for (const [token, words] of [[agentToken, 'an agent token \\(a JWT\\)'], [joinToken, 'a join token \\(tsr_join_…\\)']] as const) {
    const r = await h.agent(token, 'GET', '/v1/admin/secrets?prefix=a');
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
    assert.match(r.body.error.message, new RegExp(`^this is ${words}; operator endpoints need an admin token`));
  }
});

test('"no such lease" is worded for who asks: the operator is told where to look, the agent that it holds no such lease', async () => {
  const op = await h.admin('DELETE', '/v1/admin/leases/lease_0000000000000000000000');
  assert.equal(op.status, 404);
  assert.match(op.body.error.message, /^no lease lease_0000000000000000000000; list leases with GET \/v1\/admin\/leases$/);
  const agent = await h.agent(agentToken, 'DELETE', '/v1/leases/lease_0000000000000000000000');
  assert.equal(agent.status, 404);
  assert.match(agent.body.error.message, /^this agent holds no lease lease_0000000000000000000000 \(an agent renews or revokes only its own leases; request a new credential\)$/);
  assert.equal(agent.body.error.details, undefined, 'no operator route for an agent');
});

/** Source files whose error messages name HTTP routes must give the CLI the command too. */
function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('no server error message names an HTTP route literally: routes come from src/shared/next-steps.ts with their command', () => {
  const found: string[] = [];
  for (const file of walk('src')) {
    if (file.startsWith(join('src', 'cli')) || file.startsWith(join('src', 'sdk')) || file.endsWith('openapi.ts') || file.endsWith('next-steps.ts')) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:fail|TesseraError)\(\s*'TESSERA_[A-Z_]+',\s*(`[^`]*`|'[^']*')/g)) {
      if (/\b(GET|POST|PUT|DELETE|PATCH) \/v1\//.test(m[1]!)) found.push(`${file}: ${m[1]!.slice(0, 120)}`);
    }
  }
  assert.deepEqual(found, []);
});

test('a TTL over the limit is said in human units and names the configuration key that sets the limit', async () => {
  const r = await cli(['join-token', 'create', '--spiffe-id', AGENT, '--ttl', '2h']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /join token TTL must be between 1s and 1h \(attestors\[0\]\.max_ttl of attestor "join_token" in the configuration; join tokens live at most 1h\), got 2h \[TESSERA_JOIN_TOKEN_TTL_INVALID\]/);
  assert.doesNotMatch(r.stderr, /\d{4,}ms/);
});
