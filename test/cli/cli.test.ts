import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliIo, type Runtime, type RunningServer } from '../../src/cli/index.js';
import { startPeer, closedPortUrl, makeJwt, ADMIN_TOKEN, FAKE_SIGNATURE, type Peer } from '../sdk/peer.js';

let peer: Peer;
let dir: string;
before(async () => {
  peer = await startPeer();
  dir = mkdtempSync(join(tmpdir(), 'tessera-cli-'));
});
after(async () => {
  await peer.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const noRuntime: Runtime = {
  dev: () => Promise.reject(new Error('not in this test')),
  server: () => Promise.reject(new Error('not in this test')),
  init: () => Promise.reject(new Error('not in this test')),
  rotateMasterKey: () => Promise.reject(new Error('not in this test')),
};

async function cli(argv: string[], opts: { env?: Record<string, string | undefined>; tty?: boolean; stdin?: string; runtime?: Runtime; io?: Partial<CliIo> } = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s), isTTY: opts.tty ?? false },
    stderr: { write: (s: string) => (stderr += s) },
    env: { TESSERA_ADDR: peer.url, TESSERA_TOKEN: ADMIN_TOKEN, ...opts.env },
    stdin: opts.stdin !== undefined ? fromString(opts.stdin) : undefined,
    now: () => Date.UTC(2023, 10, 14, 22, 15, 0),
    ...opts.io,
  };
  const code = await runCli(argv, opts.runtime ?? noRuntime, io);
  return { code, stdout, stderr };
}

async function* fromString(s: string): AsyncGenerator<string> {
  yield s;
}

/** Signals delivered right after the command starts waiting for them. */
function immediateSignals(sig: 'SIGINT' | 'SIGTERM'): CliIo['signals'] {
  const ee = new EventEmitter();
  return {
    once: (s, fn) => {
      ee.once(s, fn);
      if (s === sig) setImmediate(() => ee.emit(sig));
      return ee;
    },
    removeListener: (s, fn) => ee.removeListener(s, fn),
  };
}

// --- exit codes and errors --------------------------------------------------------

test('usage errors exit 2: unknown command, missing required option, bad --mode', async () => {
  assert.equal((await cli(['frobnicate'])).code, 2);
  assert.equal((await cli(['join-token', 'create'])).code, 2);
  const r = await cli(['kv', 'put', 'a/b', 'v', '--mode', 'public']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /public/);
});

test('--help exits 0', async () => {
  const r = await cli(['kv', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /put/);
});

test('a missing token is a usage error with the stable code', async () => {
  const r = await cli(['kv', 'list'], { env: { TESSERA_TOKEN: undefined } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /TESSERA_CLI_USAGE/);
  assert.match(r.stderr, /TESSERA_TOKEN/);
});

test('a refused request exits 1 and prints the server code and request id, never the token', async () => {
  const r = await cli(['kv', 'list'], { env: { TESSERA_TOKEN: 'tsr_admin_wrong_token_value_xyz' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /TESSERA_ADMIN_TOKEN_INVALID/);
  assert.match(r.stderr, /request id req-\d+/);
  assert.doesNotMatch(r.stderr + r.stdout, /wrong_token_value/);
});

test('--json errors are a JSON object on stderr with code, message, status and request_id', async () => {
  const r = await cli(['--json', 'kv', 'get', 'nope/missing']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const e = JSON.parse(r.stderr) as { error: Record<string, unknown> };
  assert.equal(e.error.code, 'TESSERA_SECRET_NOT_FOUND');
  assert.equal(e.error.status, 404);
  assert.match(String(e.error.request_id), /^req-/);
  assert.equal(typeof e.error.message, 'string');
});

test('an unreachable server exits 3 with TESSERA_CLI_CONNECT_FAILED', async () => {
  const r = await cli(['kv', 'list'], { env: { TESSERA_ADDR: await closedPortUrl() } });
  assert.equal(r.code, 3);
  assert.match(r.stderr, /TESSERA_CLI_CONNECT_FAILED/);
  assert.doesNotMatch(r.stderr, new RegExp(ADMIN_TOKEN));
});

test('--addr overrides TESSERA_ADDR; a malformed address is a usage error', async () => {
  const bad = await cli(['--addr', 'ftp://nope', 'kv', 'list']);
  assert.equal(bad.code, 2);
  const ok = await cli(['kv', 'list', '--addr', peer.url], { env: { TESSERA_ADDR: 'http://127.0.0.1:1' } });
  assert.equal(ok.code, 0, ok.stderr);
});

// --- kv -------------------------------------------------------------------------

test('kv put/get/list/rm round trip; values are not echoed except by get', async () => {
  const put = await cli(['kv', 'put', 'app/db-password', 's3cr3t-value', '--mode', 'read', '--description', 'db']);
  assert.equal(put.code, 0, put.stderr);
  assert.match(put.stdout, /stored app\/db-password \(version 1\)/);
  assert.doesNotMatch(put.stdout + put.stderr, /s3cr3t-value/);
  assert.deepEqual(peer.requests.at(-1)!.body, { value: 's3cr3t-value', mode: 'read', description: 'db' });

  const putJson = await cli(['--json', 'kv', 'put', 'app/db-password', '-'], { stdin: 'from-stdin\n' });
  assert.equal(putJson.code, 0);
  assert.deepEqual(JSON.parse(putJson.stdout), { path: 'app/db-password', version: 2 });
  assert.equal((peer.requests.at(-1)!.body as { value: string }).value, 'from-stdin');

  const file = join(dir, 'value.txt');
  writeFileSync(file, 'line1\nline2\n');
  // Like `-`: one trailing line break dropped (test/cli/real-routes.test.ts has the whole table).
  assert.equal((await cli(['kv', 'put', 'app/cert', '--from-file', file])).code, 0);
  assert.equal((peer.requests.at(-1)!.body as { value: string }).value, 'line1\nline2');

  const get = await cli(['kv', 'get', 'app/db-password']);
  assert.equal(get.stdout, 'from-stdin', 'exact value when piped');
  const getTty = await cli(['kv', 'get', 'app/db-password'], { tty: true });
  assert.equal(getTty.stdout, 'from-stdin\n');
  const getV = await cli(['--json', 'kv', 'get', 'app/db-password', '--version', '1']);
  assert.equal(peer.requests.at(-1)!.query.version, '1');
  assert.equal((JSON.parse(getV.stdout) as { value: string }).value, 'from-stdin');

  const list = await cli(['kv', 'list', 'app/']);
  assert.match(list.stdout, /PATH\s+VERSION\s+MODE/);
  assert.match(list.stdout, /app\/db-password\s+2\s+inject\s+2023-11-14T22:13:20\.000Z/);
  assert.doesNotMatch(list.stdout, /from-stdin/);
  const listJson = await cli(['--json', 'kv', 'list', 'app/']);
  assert.ok(Array.isArray((JSON.parse(listJson.stdout) as { secrets: unknown[] }).secrets));

  const rm = await cli(['kv', 'rm', 'app/cert']);
  assert.equal(rm.code, 0);
  assert.match(rm.stdout, /deleted app\/cert/);
  assert.equal(peer.requests.at(-1)!.method, 'DELETE');
});

test('kv put needs exactly one value source; bad --version is a usage error', async () => {
  assert.equal((await cli(['kv', 'put', 'a/b'])).code, 2);
  assert.equal((await cli(['kv', 'put', 'a/b', 'v', '--from-file', '/etc/hostname'])).code, 2);
  assert.equal((await cli(['kv', 'put', 'a/b', '--from-file', join(dir, 'missing')])).code, 2);
  assert.equal((await cli(['kv', 'get', 'a/b', '--version', '0'])).code, 2);
  assert.equal((await cli(['kv', 'put', 'a/b', '-'])).code, 2, 'no stdin');
});

test('kv put surfaces the server validation code', async () => {
  // An empty --from-file is still a string; force a server refusal with a non-string via a different route: a missing secret.
  const r = await cli(['kv', 'rm', 'does/not/exist']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /TESSERA_SECRET_NOT_FOUND/);
});

// --- join tokens and login --------------------------------------------------------

test('join-token create prints only the token on stdout, details on stderr, and sends labels', async () => {
  const r = await cli(['join-token', 'create', '--spiffe-id', 'spiffe://example.org/agent/a', '--ttl', '5m', '--label', 'team=ml', '--label', 'env=dev']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^tsr_join_\d+_secretpart\n$/);
  assert.match(r.stderr, /spiffe:\/\/example.org\/agent\/a/);
  assert.deepEqual(peer.requests.at(-1)!.body, { spiffe_id: 'spiffe://example.org/agent/a', ttl: '5m', labels: { team: 'ml', env: 'dev' } });
  const j = await cli(['--json', 'join-token', 'create', '--spiffe-id', 'spiffe://example.org/agent/a']);
  assert.deepEqual(Object.keys(JSON.parse(j.stdout) as object).sort(), ['expires_at', 'id', 'spiffe_id', 'token']);
  assert.equal((await cli(['join-token', 'create', '--spiffe-id', 'spiffe://x/y', '--label', 'nokey'])).code, 2);
  const bad = await cli(['join-token', 'create', '--spiffe-id', 'not-a-spiffe-id']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /TESSERA_SPIFFE_ID_INVALID/);
});

test('login refuses to print the agent token to a terminal, before spending the join token', async () => {
  peer.joinTokens.add('join-tty');
  const before = peer.requests.length;
  const r = await cli(['login', '--join-token', 'join-tty'], { tty: true });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--out/);
  assert.equal(peer.requests.length, before, 'no request was made');
  assert.ok(peer.joinTokens.has('join-tty'), 'the one-time join token is still usable');
});

test('login prints the agent token when piped or with --print', async () => {
  peer.joinTokens.add('join-pipe');
  const r = await cli(['login', '--join-token', 'join-pipe'], { tty: false });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(peer.issued.has(r.stdout.trim()));
  peer.joinTokens.add('join-print');
  const p = await cli(['login', '--join-token', '-', '--print'], { tty: true, stdin: 'join-print\n' });
  assert.equal(p.code, 0, p.stderr);
  assert.ok(peer.issued.has(p.stdout.trim()));
});

test('login --out writes a 0600 file and prints no token; never overwrites', async () => {
  const file = join(dir, 'agent.token');
  writeFileSync(join(dir, 'k8s.jwt'), 'k8s-projected\n');
  const r = await cli(['login', '--token-file', join(dir, 'k8s.jwt'), '--audience', 'tessera', '--out', file], { tty: true });
  assert.equal(r.code, 0, r.stderr);
  const token = readFileSync(file, 'utf8').trim();
  assert.ok(peer.issued.has(token));
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.doesNotMatch(r.stdout + r.stderr, new RegExp(token.split('.')[1]!));
  assert.match(r.stderr, /spiffe:\/\/example.org\/ns\/default\/sa\/agent/);
  assert.equal(peer.requests.at(-1)!.form?.audience, 'tessera');
  const j = await cli(['--json', 'login', '--token-file', join(dir, 'k8s.jwt'), '--out', join(dir, 'agent2.token')]);
  const body = JSON.parse(j.stdout) as Record<string, unknown>;
  assert.equal(body.access_token, undefined);
  assert.equal(body.token_file, join(dir, 'agent2.token'));
  const again = await cli(['login', '--token-file', join(dir, 'k8s.jwt'), '--out', file]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /TESSERA_CLI_FILE_WRITE_FAILED/);
});

test('login --out that cannot be created is refused before the exchange: the one-time join token is not spent', async () => {
  const existing = join(dir, 'already-there.jwt');
  writeFileSync(existing, 'old\n');
  for (const [out, why] of [[existing, /already exists; remove it or choose another --out path \(nothing was sent\)/], [join(dir, 'no-such-dir', 'agent.jwt'), /cannot write .*no-such-dir.* \(ENOENT; nothing was sent\)/]] as const) {
    peer.joinTokens.add('join-out');
    const before = peer.requests.length;
    const r = await cli(['login', '--join-token', '-', '--out', out], { stdin: 'join-out\n' });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, why);
    assert.match(r.stderr, /\[TESSERA_CLI_FILE_WRITE_FAILED\]/);
    assert.equal(peer.requests.length, before, 'no request was made');
    assert.ok(peer.joinTokens.has('join-out'), 'the one-time join token is still usable');
  }
  assert.equal(readFileSync(existing, 'utf8'), 'old\n', 'never overwritten');
  // A refused exchange leaves no empty --out file behind.
  const refusedOut = join(dir, 'refused.jwt');
  const r = await cli(['login', '--join-token', '-', '--out', refusedOut], { stdin: 'never-issued\n' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /TESSERA_JOIN_TOKEN_REUSED/);
  assert.equal(existsSync(refusedOut), false);
});

test('login --join-token-file reads the join token from a file; a missing, empty or doubled source is a usage error before any request', async () => {
  peer.joinTokens.add('join-from-file');
  const file = join(dir, 'join.txt');
  writeFileSync(file, 'join-from-file\n');
  const r = await cli(['login', '--join-token-file', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(peer.issued.has(r.stdout.trim()));
  assert.equal(peer.requests.at(-1)!.form?.subject_token, 'join-from-file');
  const empty = join(dir, 'empty-join.txt');
  writeFileSync(empty, '\n');
  const before = peer.requests.length;
  const cases: [string[], RegExp, string?][] = [
    [['login', '--join-token-file', join(dir, 'missing.txt')], /--join-token-file .*missing\.txt does not exist/],
    [['login', '--join-token-file', dir], /--join-token-file .* is a directory, not a file/],
    [['login', '--join-token-file', empty], /--join-token-file .*empty-join\.txt is empty/],
    [['login', '--join-token-file', file, '--join-token', 'x'], /give exactly one of --join-token, --join-token-file or --token-file/],
    [['login', '--join-token-file', file, '--token-file', file], /give exactly one of --join-token, --join-token-file or --token-file/],
    [['login', '--join-token', '-'], /the join token read from stdin is empty/, ''],
  ];
  for (const [argv, message, stdin] of cases) {
    const e = await cli(argv, stdin !== undefined ? { stdin } : {});
    assert.equal(e.code, 2, `${argv.join(' ')}: ${e.stderr}`);
    assert.match(e.stderr, message);
    assert.match(e.stderr, /TESSERA_CLI_USAGE/);
  }
  assert.equal(peer.requests.length, before, 'no request was made');
});

test('mcp --join-token-file: a missing or empty file, or both join-token options, is a usage error before anything starts', async () => {
  const empty = join(dir, 'mcp-empty-join.txt');
  writeFileSync(empty, '');
  const file = join(dir, 'mcp-join.txt');
  writeFileSync(file, 'tsr_join_x\n');
  for (const [argv, message] of [
    [['mcp', '--join-token-file', join(dir, 'nope.txt')], /--join-token-file .*nope\.txt does not exist/],
    [['mcp', '--join-token-file', empty], /--join-token-file .* is empty/],
    [['mcp', '--join-token-file', file, '--join-token', 'tsr_join_y'], /give one of --join-token and --join-token-file/],
  ] as const) {
    const r = await cli([...argv]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
  }
});

test('login needs exactly one attestation source; refusals carry the OAuth code', async () => {
  assert.equal((await cli(['login'])).code, 2);
  assert.equal((await cli(['login', '--join-token', 'a', '--token-file', 'b'])).code, 2);
  const r = await cli(['login', '--join-token', 'never-issued']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /TESSERA_JOIN_TOKEN_REUSED/);
  assert.doesNotMatch(r.stderr, /never-issued/);
});

// --- policy -----------------------------------------------------------------------

test('policy check sends the what-if request and shows the decision', async () => {
  const r = await cli(['policy', 'check', '--principal', 'spiffe://example.org/agent/a', '--action', 'secret.read', '--resource', 'Secret::demo/x', '--context', '{"args":{"repo":"acme/web"}}', '--attr', 'team=ml', '--scope', 'secret:demo/**', '--purpose', 'triage']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /decision: ALLOW/);
  assert.match(r.stdout, /decided by:\n {2}demo-read \(permit\) {2}demo\.cedar:3/);
  assert.deepEqual(peer.requests.at(-1)!.body, {
    principal: { spiffe_id: 'spiffe://example.org/agent/a', attributes: { team: 'ml' }, scope: ['secret:demo/**'], purpose: 'triage' },
    action: 'secret.read',
    resource: 'Secret::demo/x',
    context: { args: { repo: 'acme/web' } },
  });
  const deny = await cli(['--json', 'policy', 'check', '--principal', 'spiffe://e/a', '--action', 'cred.issue', '--resource', 'Role::postgres/rw']);
  assert.equal(deny.code, 0);
  assert.equal((JSON.parse(deny.stdout) as { decision: string }).decision, 'deny');
  const denyHuman = await cli(['policy', 'check', '--principal', 'spiffe://e/a', '--action', 'cred.issue', '--resource', 'Role::postgres/rw']);
  assert.match(denyHuman.stdout, /decision: DENY\nno policy matched: default deny/);
  const exit = await cli(['policy', 'check', '--principal', 'spiffe://e/a', '--action', 'cred.issue', '--resource', 'Role::postgres/rw', '--exit-code']);
  assert.equal(exit.code, 1);
  assert.match(exit.stderr, /TESSERA_POLICY_DENIED/);
  assert.equal((await cli(['policy', 'check', '--principal', 'p', '--action', 'a', '--resource', 'r', '--context', '{bad'])).code, 2);
  assert.equal((await cli(['policy', 'check', '--principal', 'p', '--action', 'a', '--resource', 'r', '--context', '[1]'])).code, 2);
});

const policyIndex = new URL('../../src/policy/index.ts', import.meta.url);
test('policy validate reports ok, and file:line problems with exit 1 (offline)', { skip: !existsSync(policyIndex) && 'src/policy/index.ts not present yet' }, async () => {
  const good = mkdtempSync(join(dir, 'pol-'));
  writeFileSync(join(good, 'a.cedar'), '@id("demo-read")\npermit (principal, action == Tessera::Action::"secret.read", resource);\n');
  const ok = await cli(['policy', 'validate', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /ok: 1 policy in 1 file\n/);
  const bad = mkdtempSync(join(dir, 'pol-'));
  writeFileSync(join(bad, 'b.cedar'), 'permit (principal, action, resource) when { ;\n');
  const r = await cli(['policy', 'validate', bad]);
  assert.equal(r.stdout, '');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /b\.cedar/);
  assert.match(r.stderr, /TESSERA_POLICY_INVALID/);
  const j = await cli(['--json', 'policy', 'validate', bad]);
  assert.equal((JSON.parse(j.stdout) as { ok: boolean }).ok, false);
});

test('policy validate: the pinned trust domains as a note; with --config, a warning for each one the server does not serve (exit 0)', { skip: !existsSync(policyIndex) && 'src/policy/index.ts not present yet' }, async () => {
  const pol = mkdtempSync(join(dir, 'pol-td-'));
  writeFileSync(join(pol, 'a.cedar'), '@id("typo")\npermit (principal, action == Tessera::Action::"secret.read", resource) when { principal.trust_domain == "exmaple.org" };\n@id("fine")\npermit (principal == Tessera::Agent::"spiffe://example.org/agent/x", action, resource);\n');
  const plain = await cli(['policy', 'validate', pol]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stderr, /note: the policies pin 2 trust domains: example\.org, exmaple\.org; --config FILE warns about any the server does not serve/);
  const config = join(pol, '..', 'td-tessera.yaml');
  writeFileSync(config, 'trust_domain: example.org\n');
  const r = await cli(['policy', 'validate', pol, '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /ok: 2 policies in 1 file/);
  assert.match(r.stderr, /^warning: a\.cedar:1: policy "typo" pins trust domain "exmaple\.org", which this Tessera does not serve \(it serves 1 trust domain: example\.org\): it can never match/m);
  assert.doesNotMatch(r.stderr, /"fine"/);
  const j = JSON.parse((await cli(['--json', 'policy', 'validate', pol, '--config', config])).stdout) as Record<string, unknown>;
  assert.deepEqual(j.trust_domains, ['example.org', 'exmaple.org']);
  assert.deepEqual(j.served_trust_domains, ['example.org']);
  assert.equal((j.warnings as string[]).length, 1);
  // A --config that is missing or not a valid configuration is a usage error.
  assert.equal((await cli(['policy', 'validate', pol, '--config', join(pol, 'nope.yaml')])).code, 2);
  writeFileSync(config, 'trust_domain: [not, a, string]\n');
  const badConfig = await cli(['policy', 'validate', pol, '--config', config]);
  assert.equal(badConfig.code, 2, badConfig.stderr);
  assert.match(badConfig.stderr, /--config: .*td-tessera\.yaml is invalid:\n {2}trust_domain: /);
});

test('policy test runs a YAML table offline; failing cases exit 1 with reasons', { skip: !existsSync(policyIndex) && 'src/policy/index.ts not present yet' }, async () => {
  const pol = mkdtempSync(join(dir, 'pt-'));
  writeFileSync(join(pol, 'p.cedar'), '@id("read-a") permit(principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"a");\n');
  const row = (name: string, resource: string, expect: string): string => `  - name: ${name}\n    principal: { spiffe_id: "spiffe://example.org/x" }\n    action: secret.read\n    resource: ${resource}\n    expect: ${expect}\n`;
  writeFileSync(join(pol, 'ok.yaml'), `cases:\n${row('reads a', 'Secret::a/b', 'allow')}${row('not b', 'Secret::b/c', 'deny')}`);
  const ok = await cli(['policy', 'test', join(pol, 'ok.yaml')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /PASS {2}reads a\nPASS {2}not b\n2 passed, 0 failed/);
  writeFileSync(join(pol, 'bad.yaml'), `cases:\n${row('wrongly expects b', 'Secret::b/c', 'allow')}`);
  const other = mkdtempSync(join(dir, 'pt-'));
  const bad = await cli(['policy', 'test', join(pol, 'bad.yaml'), '--policies', pol]);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /FAIL {2}wrongly expects b {2}— expected allow, got deny/);
  assert.match(bad.stderr, /TESSERA_POLICY_TEST_FAILED/);
  const j = await cli(['--json', 'policy', 'test', join(pol, 'bad.yaml')]);
  assert.equal((JSON.parse(j.stdout) as { failed: number }).failed, 1);
  writeFileSync(join(other, 'broken.yaml'), 'nope: 1\n');
  const malformed = await cli(['policy', 'test', join(other, 'broken.yaml')]);
  assert.equal(malformed.code, 1);
  assert.match(malformed.stderr, /TESSERA_REQUEST_INVALID/);
});

// --- revocations, leases ------------------------------------------------------------

test('revoke token accepts a JWT, sends only its jti, and never prints the JWT', async () => {
  const jwt = makeJwt({ sub: 'spiffe://e/a', jti: 'jti-to-kill', exp: 1_900_000_000 });
  const r = await cli(['revoke', 'token', jwt, '--reason', 'leaked']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(peer.requests.at(-1)!.body, { kind: 'token', target: 'jti-to-kill', reason: 'leaked' });
  assert.doesNotMatch(r.stdout + r.stderr, new RegExp(FAKE_SIGNATURE));
  assert.doesNotMatch(r.stdout + r.stderr, new RegExp(jwt.split('.')[1]!));
  const viaStdin = await cli(['revoke', 'token', '-'], { stdin: jwt });
  assert.equal(viaStdin.code, 0);
  assert.equal((peer.requests.at(-1)!.body as { target: string }).target, 'jti-to-kill');
  const raw = await cli(['revoke', 'token', 'raw-jti-1']);
  assert.equal((peer.requests.at(-1)!.body as { target: string }).target, 'raw-jti-1');
  assert.equal(raw.code, 0);
  const noJti = await cli(['revoke', 'token', makeJwt({ sub: 'x' })]);
  assert.equal(noJti.code, 2);
});

test('revoke agent/task/user/lease, list and lift', async () => {
  for (const kind of ['agent', 'task', 'user', 'lease']) {
    const r = await cli(['--json', 'revoke', kind, `target-${kind}`, '--ttl', '1h']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(peer.requests.at(-1)!.body, { kind, target: `target-${kind}`, ttl: '1h' });
    assert.equal((JSON.parse(r.stdout) as { kind: string }).kind, kind);
  }
  const human = await cli(['revoke', 'agent', 'spiffe://e/a']);
  assert.match(human.stdout, /revoked agent spiffe:\/\/e\/a \(revocation rev_\d+; lift with: tessera revoke lift rev_\d+\)\nleases: 2 revoked, 1 disabled, 0 retrying, 0 irrevocable\n/);
  assert.match(human.stderr, /1 credential is disabled \(no login, sessions ended\) but cleanup failed; it is retried\. See: tessera lease list --state disabled/);
  const list = await cli(['revoke', 'list', '--active', '--kind', 'agent']);
  assert.deepEqual(peer.requests.at(-1)!.query, { active: 'true', kind: 'agent' });
  assert.match(list.stdout, /rev_1\s+agent/);
  const lift = await cli(['revoke', 'lift', 'rev_1']);
  assert.equal(lift.code, 0);
  assert.equal(peer.requests.at(-1)!.path, '/v1/admin/revocations/rev_1');
  const missing = await cli(['revoke', 'lift', 'rev_missing']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /TESSERA_REVOCATION_NOT_FOUND/);
});

test('lease list passes filters and prints a table', async () => {
  const r = await cli(['lease', 'list', '--irrevocable', '--owner', 'spiffe://e/a']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(peer.requests.at(-1)!.query, { irrevocable: 'true', owner: 'spiffe://e/a' });
  assert.match(r.stdout, /lease_1\s+postgres\s+ro\s+active/);
  const j = await cli(['--json', 'lease', 'list']);
  assert.equal((JSON.parse(j.stdout) as { leases: unknown[] }).leases.length, 1);
});

test('agent list, join-token list, lease revoke', async () => {
  const r = await cli(['agent', 'list']);
  assert.match(r.stdout, /spiffe:\/\/example.org\/agent\/a\s+join_token/);
  const jt = await cli(['join-token', 'list']);
  assert.match(jt.stdout, /jt_1\s+spiffe:\/\/example.org\/agent\/a\s+used/);
  assert.doesNotMatch(jt.stdout, /tsr_join/);
  const lr = await cli(['lease', 'revoke', 'lease_9']);
  assert.equal(lr.code, 0, lr.stderr);
  assert.equal(peer.requests.at(-1)!.method, 'DELETE');
  assert.equal(peer.requests.at(-1)!.path, '/v1/admin/leases/lease_9');
  assert.match(lr.stdout, /revoked lease lease_9 \(state revoked\)/);
});

// --- audit ------------------------------------------------------------------------

test('audit tail pages to the end and shows the last N; -f polls after_seq until SIGINT', async () => {
  peer.auditEvents.length = 0;
  for (let i = 1; i <= 30; i++) peer.auditEvents.push({ seq: i, ts: 1_700_000_000_000 + i, kind: i % 2 ? 'auth.login' : 'secret.read', actor: { id: `spiffe://e/a${i}` }, action: 'x', result: 'success' });
  const r = await cli(['audit', 'tail', '-n', '5']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 5);
  assert.match(lines[0]!, /^26\s+2023-11-14T22:13:20\.026Z\s+secret\.read\s+spiffe:\/\/e\/a26/);

  const ee = new EventEmitter();
  let polls = 0;
  const sleep = async (): Promise<void> => {
    polls++;
    if (polls === 1) peer.auditEvents.push({ seq: 31, ts: 1_700_000_000_031, kind: 'auth.login', actor: { id: 'spiffe://e/new' }, result: 'success' });
    if (polls === 2) ee.emit('SIGINT');
  };
  const f = await cli(['--json', 'audit', 'tail', '-f', '-n', '1', '--kind', 'auth.login', '--interval', '10'], {
    io: { sleep, signals: { once: (s, fn) => ee.once(s, fn), removeListener: (s, fn) => ee.removeListener(s, fn) } },
  });
  assert.equal(f.code, 0, f.stderr);
  const events = f.stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; kind: string });
  assert.deepEqual(events.map((e) => e.seq), [29, 31]);
  assert.equal(peer.requests.at(-1)!.query.after_seq, '29', 'the poll continues after the last seen seq');
  assert.equal(peer.requests.at(-1)!.query.kind, 'auth.login');
  assert.equal(ee.listenerCount('SIGINT'), 0, 'signal listeners removed');
});

test('audit verify: ok exits 0, a tampered log exits 1 with TESSERA_AUDIT_VERIFY_FAILED', async () => {
  const ok = await cli(['audit', 'verify']);
  assert.equal(ok.code, 0);
  assert.match(ok.stdout, /audit log verified: \d+ events?, 1 signed checkpoint\n/);
  peer.auditTampered = true;
  try {
    const bad = await cli(['audit', 'verify']);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /FAILED\n {2}seq 7: hash mismatch/);
    assert.match(bad.stderr, /TESSERA_AUDIT_VERIFY_FAILED/);
  } finally {
    peer.auditTampered = false;
  }
  const offline = await cli(['audit', 'verify', '--offline']);
  assert.equal(offline.code, 1);
  assert.match(offline.stderr, /TESSERA_CLI_UNSUPPORTED/);
  const withRt = await cli(['--json', 'audit', 'verify', '--offline', '--data-dir', dir], { runtime: { ...noRuntime, verifyAuditOffline: async () => ({ ok: false, message: 'event 3 removed' }) } });
  assert.equal(withRt.code, 1);
  assert.equal((JSON.parse(withRt.stdout) as { ok: boolean }).ok, false);
});

test('a local path argument that is missing, of the wrong kind or unreadable is a usage error (exit 2) naming it, before anything runs', async () => {
  const file = join(dir, 'plain.txt');
  writeFileSync(file, 'x');
  const calls: string[] = [];
  const runtime: Runtime = { ...noRuntime, rotateMasterKey: async () => (calls.push('rotate'), { rewrapped: 0 }) };
  const cases: [string[], RegExp][] = [
    [['policy', 'test', dir], /the policy test file .* is a directory, not a file; .*tessera policy validate DIR/],
    [['policy', 'test', join(dir, 'nope.yaml')], /the policy test file .*nope\.yaml does not exist/],
    [['policy', 'test', file, '--policies', file], /--policies .*plain\.txt is a file, not a directory/],
    [['policy', 'validate', file], /the policy directory .*plain\.txt is a file, not a directory; give the directory that holds the \.cedar files/],
    [['policy', 'validate', join(dir, 'nope')], /the policy directory .*nope does not exist/],
    [['login', '--token-file', dir], /--token-file .* is a directory, not a file/],
    [['login', '--token-file', join(file, 'sub')], /--token-file .* does not exist \(a part of the path is a file\)/],
    [['operator', 'rotate-master-key', '--new-key-file', dir], /--new-key-file .* is a directory, not a file/],
  ];
  const before = peer.requests.length;
  for (const [argv, re] of cases) {
    const r = await cli(argv, { runtime });
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.match(r.stderr, /\[TESSERA_CLI_USAGE\]/);
  }
  assert.equal(peer.requests.length, before, 'no request was sent');
  assert.deepEqual(calls, []);
});

// --- token inspect -------------------------------------------------------------------

test('token inspect decodes header and claims, shows expiry, never the signature', async () => {
  const jwt = makeJwt({ sub: 'spiffe://e/a', jti: 'j1', iat: 1_700_000_000, exp: 1_700_000_060 });
  const r = await cli(['token', 'inspect', jwt]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /sub: spiffe:\/\/e\/a/);
  assert.match(r.stdout, /"kid":"k1"/);
  assert.match(r.stdout, /expired 40s ago/); // now = 1_700_000_100 s (22:15:00Z)
  assert.doesNotMatch(r.stdout + r.stderr, new RegExp(FAKE_SIGNATURE));
  const j = await cli(['--json', 'token', 'inspect', '-'], { stdin: jwt + '\n' });
  const body = JSON.parse(j.stdout) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), ['claims', 'expired', 'expires_at', 'header', 'verified']);
  assert.equal(body.expired, true);
  assert.equal(body.verified, false);
  assert.doesNotMatch(j.stdout, new RegExp(FAKE_SIGNATURE));
  const env = await cli(['token', 'inspect'], { env: { TESSERA_TOKEN: makeJwt({ sub: 's', exp: 1_700_000_000 + 3600 }) } });
  assert.match(env.stdout, /expires in 58m 20s/);
  const garbage = await cli(['token', 'inspect', 'not-a-token']);
  assert.equal(garbage.code, 2);
  assert.doesNotMatch(garbage.stderr, /not-a-token/);
});

// --- creds (agent) -------------------------------------------------------------------

test('creds issues a credential with the agent token and prints it', async () => {
  peer.joinTokens.add('join-creds');
  const login = await cli(['login', '--join-token', 'join-creds']);
  const agentToken = login.stdout.trim();
  const r = await cli(['creds', 'postgres', 'readonly', '--ttl', '10m'], { env: { TESSERA_TOKEN: agentToken } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /username: v_agent_x/);
  assert.match(r.stdout, /password: pw-dynamic-secret/);
  assert.equal(peer.requests.at(-1)!.auth, agentToken);
  assert.deepEqual(peer.requests.at(-1)!.body, { ttl: '10m' });
  assert.doesNotMatch(r.stdout + r.stderr, new RegExp(agentToken.split('.')[1]!));
  const j = await cli(['--json', 'creds', 'postgres', 'readonly'], { env: { TESSERA_TOKEN: agentToken } });
  assert.deepEqual(Object.keys(JSON.parse(j.stdout) as object).sort(), ['data', 'expires_at', 'lease_id', 'renewable']);
  const nf = await cli(['creds', 'mysql', 'x'], { env: { TESSERA_TOKEN: agentToken } });
  assert.equal(nf.code, 1);
  assert.match(nf.stderr, /TESSERA_ENGINE_NOT_FOUND/);
});

// --- runtime-backed commands ------------------------------------------------------------

function fakeServer(extra: Partial<RunningServer> = {}): RunningServer & { closed: number } {
  const s = {
    url: 'http://127.0.0.1:18200',
    adminToken: 'tsr_admin_dev_root_token_value',
    joinToken: 'tsr_join_dev_value',
    closed: 0,
    async close() {
      s.closed++;
    },
    ...extra,
  };
  return s;
}

test('dev prints URL, admin token, join token and next steps, then closes on SIGINT', async () => {
  const server = fakeServer();
  let seen: unknown;
  const runtime: Runtime = { ...noRuntime, dev: async (o) => ((seen = o), server) };
  const r = await cli(['dev', '--listen', '127.0.0.1:9999', '--root-token', 'my-root-token-123456'], { runtime, io: { signals: immediateSignals('SIGINT') } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen, { listen: '127.0.0.1:9999', dataDir: undefined, rootToken: 'my-root-token-123456', configPath: undefined });
  assert.match(r.stdout, /running at http:\/\/127\.0\.0\.1:18200/);
  assert.match(r.stdout, /export TESSERA_TOKEN=tsr_admin_dev_root_token_value/);
  // Without a token file the join token goes through stdin, never as an argument.
  assert.match(r.stdout, /tessera login --join-token - <<< tsr_join_dev_value/);
  assert.doesNotMatch(r.stdout, /new admin token at every start/, 'the admin token was not said to be fixed or not');
  assert.equal(server.closed, 1);
  assert.match(r.stderr, /SIGINT/);
  const j = await cli(['--json', 'dev'], { runtime: { ...noRuntime, dev: async () => fakeServer() }, io: { signals: immediateSignals('SIGTERM') } });
  assert.deepEqual(JSON.parse(j.stdout), { url: 'http://127.0.0.1:18200', admin_token: 'tsr_admin_dev_root_token_value', join_token: 'tsr_join_dev_value' });
});

test('dev banner: the join token from its 0600 file, and a generated admin token said to be new at every start', async () => {
  const server = fakeServer({ joinTokenFile: "/tmp/it's here/demo-join-token", adminTokenFixed: false });
  const r = await cli(['dev'], { runtime: { ...noRuntime, dev: async () => server }, io: { signals: immediateSignals('SIGINT') } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /AGENT_TOKEN=\$\(tessera login --join-token-file '\/tmp\/it'\\''s here\/demo-join-token'\)/);
  assert.doesNotMatch(r.stdout, /tsr_join_dev_value/, 'the token itself is not printed');
  assert.match(r.stdout, /# a new admin token at every start \(the previous start's stops working\); --root-token <value> keeps one/);
  const fixed = await cli(['dev'], { runtime: { ...noRuntime, dev: async () => fakeServer({ adminTokenFixed: true }) }, io: { signals: immediateSignals('SIGINT') } });
  assert.doesNotMatch(fixed.stdout, /new admin token at every start/);
  const j = await cli(['--json', 'dev'], { runtime: { ...noRuntime, dev: async () => fakeServer({ joinTokenFile: '/d/demo-join-token' }) }, io: { signals: immediateSignals('SIGTERM') } });
  assert.equal((JSON.parse(j.stdout) as Record<string, unknown>).join_token_file, '/d/demo-join-token');
});

test('server runs until SIGTERM and needs --config', async () => {
  assert.equal((await cli(['server'])).code, 2);
  const server = fakeServer({ adminToken: undefined, joinToken: undefined });
  const r = await cli(['server', '--config', 'tessera.yaml'], { runtime: { ...noRuntime, server: async () => server }, io: { signals: immediateSignals('SIGTERM') } });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /listening on http:\/\/127\.0\.0\.1:18200/);
  assert.equal(server.closed, 1);
});

test('init prints the admin token once, or writes it to --out without printing it', async () => {
  const runtime: Runtime = { ...noRuntime, init: async () => ({ adminToken: 'tsr_admin_init_value_abcdef', dataDir: '/data', masterKeyFile: '/data/master.key' }) };
  const r = await cli(['init', '--data-dir', '/data'], { runtime });
  assert.equal(r.stdout, 'tsr_admin_init_value_abcdef\n');
  assert.match(r.stderr, /master\.key/);
  const out = join(dir, 'admin.token');
  const w = await cli(['init', '--out', out], { runtime });
  assert.equal(w.code, 0, w.stderr);
  assert.doesNotMatch(w.stdout + w.stderr, /tsr_admin_init_value_abcdef/);
  assert.equal(readFileSync(out, 'utf8'), 'tsr_admin_init_value_abcdef\n');
  assert.equal(statSync(out).mode & 0o777, 0o600);
  // An --out that exists is refused before the data directory is initialised (its only admin token would be lost).
  let initialised = 0;
  const counting: Runtime = { ...noRuntime, init: async () => (initialised++, { adminToken: 'tsr_admin_second', dataDir: '/data' }) };
  const exists = await cli(['init', '--out', out], { runtime: counting });
  assert.equal(exists.code, 1);
  assert.match(exists.stderr, /already exists.*nothing was sent.*\[TESSERA_CLI_FILE_WRITE_FAILED\]/);
  assert.equal(initialised, 0);
  assert.equal(readFileSync(out, 'utf8'), 'tsr_admin_init_value_abcdef\n');
  // A failed init leaves no empty --out file behind.
  const failedOut = join(dir, 'failed-init.token');
  const failing: Runtime = { ...noRuntime, init: async () => Promise.reject(Object.assign(new Error('already initialised'), { code: 'TESSERA_ALREADY_INITIALIZED' })) };
  assert.equal((await cli(['init', '--out', failedOut], { runtime: failing })).code, 1);
  assert.equal(existsSync(failedOut), false);
  const again = await cli(['init'], { runtime: failing });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /TESSERA_ALREADY_INITIALIZED/);
});

test('operator generate-master-key writes 32 random bytes as base64 to a new 0600 file, never prints the key, never overwrites', async () => {
  const { loadMasterKeyFile, masterKeyId } = await import('../../src/secrets/master-key.js');
  const file = join(dir, 'gen', 'master.key');
  const r = await cli(['operator', 'generate-master-key', '--out', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const text = readFileSync(file, 'utf8');
  assert.match(text, /^[A-Za-z0-9+/]{43}=\n$/);
  const key = loadMasterKeyFile(file);
  assert.equal(key.length, 32);
  assert.match(r.stdout, new RegExp(`master key ${masterKeyId(key)} written to ${file} \\(mode 0600\\)`));
  assert.ok(!(r.stdout + r.stderr).includes(text.trim()), 'the key is never printed');
  const again = await cli(['operator', 'generate-master-key', '--out', file]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists; a key file is never overwritten.*\[TESSERA_CLI_FILE_WRITE_FAILED\]/);
  assert.equal(readFileSync(file, 'utf8'), text, 'unchanged');
  const json = await cli(['--json', 'operator', 'generate-master-key', '--out', join(dir, 'gen', 'second.key')]);
  assert.deepEqual(Object.keys(JSON.parse(json.stdout) as object).sort(), ['key_file', 'key_id']);
});

test('operator rotate-master-key reports progress on stderr', async () => {
  let got: unknown;
  const runtime: Runtime = {
    ...noRuntime,
    rotateMasterKey: async (o) => {
      got = o.newKeyFile;
      o.onProgress?.(1, 2);
      o.onProgress?.(2, 2);
      return { rewrapped: 2 };
    },
  };
  const keyFile = join(dir, 'new.key');
  writeFileSync(keyFile, 'a'.repeat(64));
  const r = await cli(['operator', 'rotate-master-key', '--new-key-file', keyFile], { runtime });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(got, keyFile);
  assert.match(r.stderr, /re-wrapped 2\/2/);
  assert.match(r.stdout, /2 data keys re-wrapped/);
  assert.equal((await cli(['operator', 'rotate-master-key'], { runtime })).code, 2);
});

test('no admin command prints the admin token', async () => {
  const runs = await Promise.all([
    cli(['kv', 'list']),
    cli(['revoke', 'list']),
    cli(['lease', 'list']),
    cli(['audit', 'tail']),
    cli(['--json', 'audit', 'verify']),
    cli(['policy', 'check', '--principal', 'spiffe://e/a', '--action', 'secret.read', '--resource', 'Secret::x']),
  ]);
  for (const r of runs) assert.doesNotMatch(r.stdout + r.stderr, new RegExp(ADMIN_TOKEN));
});
