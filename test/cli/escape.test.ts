/**
 * Terminal safety of every CLI output path (issue 7, item 8). `escapeTerminal`/`terminalJson`
 * (src/shared/terminal.ts) are checked character class by character class; then every command
 * that prints something it got from a server runs against a real HTTP server that answers
 * with a hostile string in every field: human output carries none of the characters raw (and
 * no forged line), `--json` output carries none raw either and decodes to the exact values.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { escapeTerminal, terminalJson } from '../../src/shared/terminal.js';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';

/** Erase line, CR, a forged line, bidi override, line separator, 8-bit CSI, a tag character. */
const N = 'n\x1b[31m\r\nFORGED\u202e\u2028\x9b\u{e0041}';
const N_SHOWN = 'n\\x1b[31m\\r\\nFORGED\\u202e\\u2028\\x9b\\u{e0041}';
/** Raw characters that must never reach a terminal; `\n` is checked through FORGED at a line start. */
const RAW_UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const unsafeExceptNewline = (s: string): boolean => RAW_UNSAFE.test(s.replaceAll('\n', ''));

test('escapeTerminal: every class is escaped visibly, ordinary text is unchanged', () => {
  const cases: [string, string][] = [
    ['\x1b[2K', '\\x1b[2K'],
    ['a\rb\nc\td', 'a\\rb\\nc\\td'],
    ['\x00\x07\x08\x0b\x0c\x1f', '\\x00\\x07\\x08\\x0b\\x0c\\x1f'],
    ['\x7f', '\\x7f'],
    ['\x80\x85\x9b\x9f', '\\x80\\x85\\x9b\\x9f'],
    ['\u202a\u202b\u202c\u202d\u202e', '\\u202a\\u202b\\u202c\\u202d\\u202e'],
    ['\u2066\u2067\u2068\u2069', '\\u2066\\u2067\\u2068\\u2069'],
    ['\u200e\u200f\u061c', '\\u200e\\u200f\\u061c'],
    ['\u2028\u2029', '\\u2028\\u2029'],
    ['\u200b\u200c\u200d\u2060\ufeff\u00ad', '\\u200b\\u200c\\u200d\\u2060\\ufeff\\xad'],
    ['\u{e0001}\u{e0041}\u{e007f}', '\\u{e0001}\\u{e0041}\\u{e007f}'],
    ['lone \ud800 and \udc00', 'lone \\ud800 and \\udc00'],
  ];
  for (const [raw, shown] of cases) assert.equal(escapeTerminal(raw), shown, JSON.stringify(raw));
  for (const plain of ['spiffe://example.org/ns/a/sa/b', 'Grüße, 東京, emoji 😀 👍🏽', 'C:\\path\\x1b stays as typed', 'a "quoted" {json} [x]']) assert.equal(escapeTerminal(plain), plain);
  assert.equal(escapeTerminal('line 1\nline\x1b 2\n', { keepNewlines: true }), 'line 1\nline\\x1b 2\n');
});

test('terminalJson: valid JSON with the same value, nothing unsafe raw', () => {
  const value = { [N]: [N, 1, null, true, { nested: `${N}\x00\x7f\ud800` }], plain: 'Grüße 😀' };
  for (const space of [undefined, 2]) {
    const text = terminalJson(value, space);
    assert.ok(!unsafeExceptNewline(text), text);
    assert.deepEqual(JSON.parse(text), value);
  }
  assert.ok(terminalJson({ a: 1 }, 2).includes('\n'), 'indentation kept');
  assert.equal(terminalJson(undefined), 'null');
});

// --- every output path, against a real HTTP server that answers hostile strings ------------

const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: N })).toString('base64url');
const JWT = `${header}.${Buffer.from(JSON.stringify({ sub: N, [N]: N, exp: 4_000_000_000, jti: N })).toString('base64url')}.c2ln`;
const ROUTES: Record<string, [number, unknown]> = {
  'GET /v1/admin/audit': [200, { events: [{ seq: 1, ts: N, event: { kind: N, actor: { id: N }, action: N, resource: N, result: N, reason: { code: N }, txn: N } }], next_seq: 1 }],
  'GET /v1/admin/leases': [200, { leases: [{ lease_id: N, engine: N, role: N, owner: N, state: N, expires_at: N, last_error: N }] }],
  'GET /v1/admin/secrets': [200, { secrets: [{ path: N, current_version: 1, mode: N, owner: N, description: N, updated_at: N }] }],
  'GET /v1/admin/agents': [200, { agents: [{ spiffe_id: N, attestor: N, logins: 1, first_seen: N, last_seen: N }] }],
  'GET /v1/admin/join-tokens': [200, { join_tokens: [{ id: N, spiffe_id: N, state: N, expires_at: N }] }],
  'GET /v1/admin/revocations': [200, { revocations: [{ id: N, kind: N, target: N, active: true, reason: N }] }],
  'POST /v1/admin/revocations': [201, { id: N, expires_at: N, leases_revoked: 1, leases_retrying: N, leases_irrevocable: 0 }],
  'POST /v1/admin/policy/check': [200, { decision: N, policies: [{ id: N, effect: N, file: N, line: N }], explanation: N, errors: [N] }],
  'GET /v1/admin/policy/status': [200, { ready: true, dir: N, demo: true, configured_dir: N, policies: 1, policy_ids: [N], files: [N], last_good_at: N, last_error: { file: N, line: 1, column: 2, message: N } }],
  // Verify and archive are background jobs (docs/audit.md): the CLI starts one and polls it.
  'POST /v1/admin/audit/verify': [202, { job: { id: 'ajob_0123456789abcdef', kind: N, state: 'running', progress: { checked: 0 } }, created: true }],
  'GET /v1/admin/audit/jobs/ajob_0123456789abcdef': [200, { job: { id: N, kind: N, state: 'done', replica: N, result: { ok: false, problems: [N, { at: N }, { seq: N, kind: N, message: N }], notes: [N] } } }],
  'POST /v1/admin/audit/archive': [202, { job: { id: N, kind: N, state: 'done', result: { segments: [{ from_seq: N, to_seq: N, file: N, bytes: N }], pruned_events: N, boundary: N } }, created: true }],
  'POST /v1/admin/join-tokens': [201, { token: 'tsr_join_x', id: N, spiffe_id: N, expires_at: N }],
  'PUT /v1/admin/secrets/a/b': [200, { version: N, mode: N }],
  'DELETE /v1/admin/leases/l1': [200, { state: N }],
  'POST /v1/creds/pg/ro': [201, { lease_id: N, expires_at: N, renewable: N, data: { [N]: N } }],
  'GET /v1/admin/engines/postgres/c': [200, { [N]: N, list: [N, N] }],
  'GET /v1/admin/engines/postgres': [200, { configs: [{ name: N, username: N, host: N, port: N, database: N, username_prefix: N }] }],
  'POST /v1/admin/keys/rotate': [200, { kid: N, revoked: [] }],
  'POST /v1/oauth/token': [200, { access_token: JWT, issued_token_type: 'urn:ietf:params:oauth:token-type:jwt', token_type: 'Bearer', expires_in: 300 }],
  'GET /v1/admin/tasks': [200, { tasks: [{ txn: N, parent: N, depth: 1, state: N, actor: N, label: N, scope: [N], purpose: N, expires_at: N }], next: N }],
  'GET /v1/admin/tasks/task_AAAAAAAAAAAAAAAAAAAAAA': [200, {
    task: {
      txn: N, actor: N, label: N, state: N, depth: N, max_depth: N, bound: true, expires_at: N, purpose: N, scope: [N], tctx: { [N]: N },
      tokens: [{ jti_hmac: N }], leases: [{ engine: N, role: N, lease_id: N, state: N, revoke_cause: N }],
      events: [{ ts: N, kind: N, resource: N, result: N, reason: { code: N } }, { ts: N, kind: N, action: N, result: N, reason: { policies: [N] } }],
      children: [{ txn: N, actor: N, state: N, purpose: N, scope: [N], children: [] }],
    },
    nodes: 2,
    truncated: { [N]: true },
  }],
  'GET /v1/admin/secrets/err/path': [403, { error: { code: 'TESSERA_POLICY_DENIED', message: `refused ${N}`, request_id: N } }],
};

let server: Server;
let url: string;
before(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const key = `${req.method} ${u.pathname}`;
    req.resume();
    req.on('end', () => {
      // The audit log has one event: a page after it is empty.
      if (key === 'GET /v1/admin/audit' && u.searchParams.get('after_seq') !== '0') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"events":[],"next_seq":1}');
      const [status, body] = ROUTES[key] ?? [404, { error: { code: 'TESSERA_NOT_FOUND', message: `no route ${key}` } }];
      res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': 'rid-1' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const reject = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: { write: (s: string) => (stdout += s), isTTY: false }, stderr: { write: (s: string) => (stderr += s) }, env: { TESSERA_ADDR: url, TESSERA_TOKEN: 'tsr_admin_test' }, stdin: undefined };
  const code = await runCli(argv, runtime, io);
  return { code, stdout, stderr };
}

const COMMANDS: string[][] = [
  ['audit', 'tail'],
  ['lease', 'list'],
  ['kv', 'list'],
  ['agent', 'list'],
  ['join-token', 'list'],
  ['revoke', 'list'],
  ['revoke', 'agent', 'spiffe://example.org/a'],
  ['revoke', 'token', JWT],
  ['policy', 'check', '--principal', 'spiffe://example.org/a', '--action', 'secret.read', '--resource', 'Secret::a'],
  ['audit', 'verify', '--interval', '10'],
  ['audit', 'archive'],
  ['policy', 'status'],
  ['join-token', 'create', '--spiffe-id', 'spiffe://example.org/a'],
  ['kv', 'put', 'a/b', 'v'],
  ['lease', 'revoke', 'l1'],
  ['creds', 'pg', 'ro', '--token', JWT],
  ['engine', 'postgres', 'show', 'c'],
  ['engine', 'postgres', 'list'],
  ['keys', 'rotate'],
  ['token', 'inspect', JWT],
  ['login', '--join-token', 'tsr_join_x', '--print'],
  ['kv', 'get', 'err/path'],
];

/** The task tree commands (src/cli/task.ts): every purpose, label, fact and event field is agent-chosen. */
const TASK_COMMANDS: string[][] = [
  ['task', 'list'],
  ['task', 'tree', 'task_AAAAAAAAAAAAAAAAAAAAAA'],
];

test('task list and task tree: human output escapes every server value, --json decodes to it', async () => {
  for (const argv of TASK_COMMANDS) {
    const r = await cli(argv);
    const all = r.stdout + r.stderr;
    assert.equal(r.code, 0, all);
    assert.ok(!unsafeExceptNewline(all), `${argv.join(' ')} printed a raw control character: ${JSON.stringify(all)}`);
    assert.doesNotMatch(all, /^FORGED/m, `${argv.join(' ')} let a value start a line`);
    assert.ok(all.includes(N_SHOWN), `${argv.join(' ')} did not show the value: ${all}`);
    const j = await cli([...argv, '--json']);
    assert.ok(!unsafeExceptNewline(j.stdout.replaceAll('\n', '')), j.stdout);
    assert.ok(JSON.stringify(JSON.parse(j.stdout)).includes(JSON.stringify(N).slice(1, -1)));
  }
});

test('every command that prints server data: human output escapes it, no forged line', async () => {
  for (const argv of COMMANDS) {
    const r = await cli(argv);
    const all = r.stdout + r.stderr;
    assert.ok(!unsafeExceptNewline(all), `${argv.join(' ')} printed a raw control character: ${JSON.stringify(all)}`);
    assert.doesNotMatch(all, /^FORGED/m, `${argv.join(' ')} let a value start a line`);
    // `login --print` prints only the token; everything else shows the value, escaped.
    if (argv[0] !== 'login') assert.ok(all.includes(N_SHOWN) || all.includes('\\x1b[31m'), `${argv.join(' ')} did not show the value: ${all}`);
  }
});

test('--json output of the same commands is valid JSON without raw unsafe characters, exact values', async () => {
  for (const argv of COMMANDS) {
    const r = await cli(['--json', ...argv]);
    for (const stream of [r.stdout, r.stderr]) {
      assert.ok(!unsafeExceptNewline(stream), `${argv.join(' ')}: ${JSON.stringify(stream)}`);
    }
    const docs = argv[0] === 'audit' && argv[1] === 'tail' ? r.stdout.split('\n').filter(Boolean) : [r.stdout].filter(Boolean);
    for (const d of docs) assert.doesNotThrow(() => JSON.parse(d), `${argv.join(' ')}: ${d}`);
    if (r.code !== 0 && r.stderr) assert.doesNotThrow(() => JSON.parse(r.stderr), `${argv.join(' ')}: ${r.stderr}`);
  }
  const tail = await cli(['--json', 'audit', 'tail']);
  assert.equal(JSON.parse(tail.stdout).event.resource, N);
  const err = await cli(['--json', 'kv', 'get', 'err/path']);
  assert.equal(err.code, 1);
  assert.deepEqual(JSON.parse(err.stderr).error, { code: 'TESSERA_POLICY_DENIED', message: `refused ${N}`, status: 403, request_id: N });
});

test('a server error message is escaped whole on the human error line', async () => {
  const r = await cli(['kv', 'get', 'err/path']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `error: refused ${N_SHOWN} [TESSERA_POLICY_DENIED] (request id ${N_SHOWN})\n`);
});
