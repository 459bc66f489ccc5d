/**
 * Runs examples/task-orchestrator/run.mjs for real (a child process, as a user would, with the
 * test runner's PostgreSQL) and checks what it shows: the task tree's shape, the three
 * sub-agents (gateway call with an injected key, a database user, a widening refused with its
 * stable code), the kill of the tree, every sub-agent refused afterwards, the lease revoked and
 * the database user gone — and no token or password in the output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { testClusterAdminUrl } from '../helpers/postgres.js';

function run(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['examples/task-orchestrator/run.mjs'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The lines of the section that starts with `== <title>`, up to the next blank line. */
function section(out: string, title: string): string[] {
  const lines = out.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`== ${title}`));
  assert.ok(start >= 0, `section "${title}" in:\n${out}`);
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end);
}

test('the task-orchestrator example: three sub-agents, a refused widening, the kill of the tree, leases dropped', async () => {
  const adminUrl = await testClusterAdminUrl();
  const { code, stdout, stderr } = await run({ TESSERA_EXAMPLE_PG_URL: adminUrl });
  assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`);

  const root = /^root task (task_[A-Za-z0-9_-]{22}) {2}depth 0\/3 {2}scope: tool:incidents\/\* secret:incidents\/\*\* cred:postgres\/incidents-reader$/m.exec(stdout);
  assert.ok(root, stdout);
  const txn = root[1]!;

  // Sub-agent 1: through the gateway, with its own key; the tracker got its key injected.
  assert.match(stdout, /^\[incident-reader\] task task_\S+ {2}depth 1 {2}DPoP key \S+… {2}scope: tool:incidents\/list_incidents secret:incidents\/api-key$/m);
  assert.match(stdout, /^\[incident-reader\] tools it may call: incidents__list_incidents$/m, 'delete_incident is not listed to the sub-agent');
  for (const id of ['INC-311', 'INC-318', 'INC-327']) assert.match(stdout, new RegExp(`^\\[incident-reader\\] {3}${id} \\[`, 'm'));
  assert.doesNotMatch(stdout, /INC-402/, 'only Q3');
  // Sub-agent 2: its own identity and key, its own database user.
  assert.match(stdout, /^\[db-reader\] task task_\S+ {2}depth 1 {2}acting: spiffe:\/\/tessera\.local\/ns\/ops\/sa\/db-reader {2}bound to its own key$/m);
  const lease = /^\[db-reader\] lease (lease_\S+): database user (tsr_\w+) until /m.exec(stdout);
  assert.ok(lease, stdout);
  assert.match(stdout, /^\[db-reader\] {3}3 incidents in Q3, slowest resolved in 610 minutes$/m);
  // Sub-agent 3: refused with the stable code.
  assert.match(stdout, /^\[widener\] refused: TESSERA_TASK_SCOPE_WIDENED \(invalid_scope\)$/m);

  // The tree before the kill: the root and its two children (the widener never became a node).
  const tree = section(stdout, 'the task tree ');
  const nodes = tree.filter((l) => /task_[A-Za-z0-9_-]{22} {2}spiffe:/.test(l));
  assert.equal(nodes.length, 3, tree.join('\n'));
  assert.match(nodes[0]!, new RegExp(`^${txn} {2}spiffe://tessera\\.local/ns/ops/sa/orchestrator {2}\\[active\\] {2}depth 0/3 `));
  // Siblings opened within the same second may be listed in either order (task ids break the tie).
  assert.match(nodes[1]!, /^├─ /);
  assert.match(nodes[2]!, /^└─ /);
  const children = nodes.slice(1).map((l) => l.slice(3));
  assert.ok(children.some((l) => /^task_\S+ {2}spiffe:\/\/tessera\.local\/ns\/ops\/sa\/orchestrator \(sub-agent incident-reader\) {2}\[active\] {2}depth 1\/3 {2}DPoP-bound /.test(l)), tree.join('\n'));
  assert.ok(children.some((l) => /^task_\S+ {2}spiffe:\/\/tessera\.local\/ns\/ops\/sa\/db-reader {2}\[active\] {2}depth 1\/3 {2}DPoP-bound /.test(l)), tree.join('\n'));
  assert.ok(tree.some((l) => /task\.refused task deny TESSERA_TASK_SCOPE_WIDENED/.test(l)), 'the refusal is in the root\'s events');
  assert.ok(tree.some((l) => l.includes(`lease:   postgres/incidents-reader ${lease[1]} [active]`)), tree.join('\n'));

  // The kill and what follows.
  assert.match(stdout, new RegExp(`^== killed task tree ${txn} \\(tessera revoke task ${txn}\\): leases revoked 1$`, 'm'));
  assert.match(stdout, /^\[incident-reader\] next call refused: 401 TESSERA_TOKEN_REVOKED$/m);
  assert.match(stdout, /^\[db-reader\] next call refused: TESSERA_TOKEN_REVOKED$/m);
  assert.match(stdout, new RegExp(`^\\[db-reader\\] lease ${lease[1]}: revoked$`, 'm'));
  assert.match(stdout, /^\[db-reader\] database login refused: the user is gone$/m);
  assert.match(stdout, /^\[orchestrator\] delegating again refused: TESSERA_OAUTH_INVALID_GRANT \(TESSERA_TOKEN_REVOKED\)$/m);
  const after = section(stdout, 'the task tree after the kill');
  const states = after.filter((l) => /task_[A-Za-z0-9_-]{22} {2}spiffe:/.test(l)).map((l) => /\[(\w+)\]/.exec(l)![1]);
  assert.deepEqual(states, ['revoked', 'revoked', 'revoked']);
  assert.ok(after.some((l) => l.includes(`lease:   postgres/incidents-reader ${lease[1]} [revoked] task_revoked`)), after.join('\n'));

  // Nothing secret printed: no JWT, no password, no key material.
  // The exposure report (docs/exposure.md): the tree's credentials, none live after the kill.
  const exposure = section(stdout, 'exposure by task');
  const row = exposure.find((l) => l.startsWith(`${txn}  `));
  assert.ok(row, exposure.join('\n'));
  assert.match(row!, /^task_\S+ {2}credentials (\d+) {2}live 0 {2}p50 [\d.]+s {2}p95 [\d.]+s {2}max [\d.]+s {2}credential-seconds [\d.]+$/);
  assert.ok(Number(/credentials (\d+)/.exec(row!)![1]) >= 4, `the root, two children and the lease: ${row}`);
  assert.ok(!exposure.some((l) => l.startsWith('live: ') && l.includes(txn)), 'nothing of the killed tree is live');
  assert.doesNotMatch(stdout + stderr, /eyJ[A-Za-z0-9_-]{10,}/);
  assert.doesNotMatch(stdout + stderr, /password/i);
});

test('without PostgreSQL the example still runs and says how to get one', async () => {
  const { code, stdout, stderr } = await run({ TESSERA_EXAMPLE_PG_URL: '' });
  assert.equal(code, 0, `${stdout}\n${stderr}`);
  assert.match(stdout, /^\[db-reader\] skipped: no PostgreSQL\. Set TESSERA_EXAMPLE_PG_URL/m);
  assert.match(stdout, /^\[widener\] refused: TESSERA_TASK_SCOPE_WIDENED/m);
  assert.match(stdout, /^\[incident-reader\] next call refused: 401 TESSERA_TOKEN_REVOKED$/m);
});
