/**
 * `tessera operator-token create|list|revoke` against the whole of Tessera over real HTTP: the
 * value once on stdout with the warning on stderr, the table and `--json`, revocation, and the
 * server's refusals (bad role, ttl, the last admin token, an auditor writing) as CLI errors
 * carrying the code.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../e2e/harness.js';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';

const reject = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(() => h.close());

async function cli(argv: string[], token = h.adminToken): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s) },
    env: { TESSERA_ADDR: h.url, TESSERA_TOKEN: token },
  };
  return { code: await runCli(argv, runtime, io), stdout, stderr };
}

test('create prints the value once (stdout) with a warning to store it (stderr); list shows it; revoke ends it', async () => {
  const c = await cli(['operator-token', 'create', '--name', 'ci-reader', '--role', 'auditor', '--ttl', '30d']);
  assert.equal(c.code, 0, c.stderr);
  const token = c.stdout.trim();
  assert.match(token, /^tsr_admin_[A-Za-z0-9_-]{43}$/);
  h.sensitive.add(token);
  assert.match(c.stderr, /operator token adm_\S+ "ci-reader", role auditor, expires \d{4}-/);
  assert.match(c.stderr, /shown once .* store it now/);
  assert.ok(!c.stderr.includes(token));

  const list = await cli(['operator-token', 'list'], token);
  assert.equal(list.code, 0, list.stderr);
  const lines = list.stdout.trim().split('\n');
  assert.match(lines[0]!, /^ID\s+NAME\s+ROLE\s+STATE\s+EXPIRES_AT\s+CREATED_BY$/);
  assert.ok(lines.some((l) => /^adm_\S+ \*\s+ci-reader\s+auditor\s+active\s/.test(l)), list.stdout);
  assert.ok(lines.some((l) => /\sdev\s+admin\s+active\s.*system:dev$/.test(l)), list.stdout);
  assert.ok(!list.stdout.includes(token));

  const json = await cli(['operator-token', 'list', '--json']);
  const parsed = JSON.parse(json.stdout) as { tokens: { id: string; name: string; current: boolean }[] };
  const id = parsed.tokens.find((t) => t.name === 'ci-reader')!.id;
  assert.equal(parsed.tokens.find((t) => t.name === 'dev')!.current, true);

  // The auditor may not revoke (nor create).
  const refused = await cli(['operator-token', 'revoke', id], token);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /TESSERA_ADMIN_ROLE_FORBIDDEN/);
  const escalate = await cli(['operator-token', 'create', '--name', 'escalate'], token);
  assert.notEqual(escalate.code, 0);
  assert.match(escalate.stderr, /TESSERA_ADMIN_ROLE_FORBIDDEN/);

  const rev = await cli(['operator-token', 'revoke', id]);
  assert.equal(rev.code, 0, rev.stderr);
  assert.equal(rev.stdout.trim(), `revoked ${id}`);
  const after = await cli(['operator-token', 'list'], token);
  assert.notEqual(after.code, 0);
  assert.match(after.stderr, /TESSERA_ADMIN_TOKEN_INVALID/);
  assert.match((await cli(['operator-token', 'list'])).stdout, new RegExp(`${id}\\s+ci-reader\\s+auditor\\s+revoked`));
});

test('create --json answers the whole object; bad input is refused with its code', async () => {
  const c = await cli(['operator-token', 'create', '--name', 'json-one', '--json']);
  assert.equal(c.code, 0, c.stderr);
  const body = JSON.parse(c.stdout) as { id: string; name: string; role: string; expires_at: string; token: string };
  h.sensitive.add(body.token);
  assert.deepEqual([body.name, body.role], ['json-one', 'admin']);
  assert.ok(Date.parse(body.expires_at) > Date.now() + 89 * 86_400_000, 'default ttl 90d');

  const role = await cli(['operator-token', 'create', '--name', 'x', '--role', 'root']);
  assert.notEqual(role.code, 0);
  assert.match(role.stderr, /--role: expected admin or auditor/);
  for (const ttl of ['0', '400d', 'forever']) {
    const r = await cli(['operator-token', 'create', '--name', 'x', '--ttl', ttl]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /TESSERA_ADMIN_TOKEN_TTL_INVALID/, ttl);
  }
  const name = await cli(['operator-token', 'create', '--name', 'bad name']);
  assert.match(name.stderr, /TESSERA_REQUEST_INVALID/);
  const taken = await cli(['operator-token', 'create', '--name', 'json-one']);
  assert.match(taken.stderr, /TESSERA_ADMIN_TOKEN_NAME_TAKEN/);
  const unknown = await cli(['operator-token', 'revoke', 'adm_unknown']);
  assert.match(unknown.stderr, /TESSERA_ADMIN_TOKEN_NOT_FOUND/);
  // json-one and dev are the admins: revoke json-one with dev, then dev is the last.
  assert.equal((await cli(['operator-token', 'revoke', body.id])).code, 0);
  const devId = (JSON.parse((await cli(['operator-token', 'list', '--json'])).stdout) as { tokens: { id: string; current: boolean }[] }).tokens.find((t) => t.current)!.id;
  const last = await cli(['operator-token', 'revoke', devId]);
  assert.notEqual(last.code, 0);
  assert.match(last.stderr, /TESSERA_ADMIN_LAST_TOKEN/);
});
