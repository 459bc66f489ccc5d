import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createPolicyEngine, type PolicyEngineOptions } from '../../src/policy/engine.js';
import { validatePolicyDir } from '../../src/policy/loader.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import { isTesseraError } from '../../src/shared/errors.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { agent, k8sAgent, tempDir, until } from './helpers.js';

const READER = k8sAgent('spiffe://tessera.local/ns/healthcare/sa/patient-reader');
const OTHER = k8sAgent('spiffe://tessera.local/ns/billing/sa/patient-reader');

function copyExamples(dir: string): void {
  for (const f of readdirSync('examples/policies')) if (f.endsWith('.cedar')) writeFileSync(join(dir, f), readFileSync(join('examples/policies', f)));
}

function engine(dir: string, extra: Partial<PolicyEngineOptions> = {}) {
  const audit = new MemoryAuditWriter();
  const metrics = new MetricsRegistry();
  const e = createPolicyEngine({ dir, clock: new ManualClock(), logger: silentLogger, audit, metrics, watch: false, ...extra });
  return { e, audit, metrics };
}

test('healthcare agent may secret.read in Folder "healthcare/prod" but not elsewhere; default deny', async (t) => {
  const dir = tempDir(t);
  copyExamples(dir);
  const { e, audit } = engine(dir);
  assert.equal((await e.load()).ok, true);
  const read = (principal = READER, path = 'healthcare/prod/db') => e.authorize({ principal, action: 'secret.read', resource: { type: 'Secret', path } });
  const ok = read();
  assert.equal(ok.allowed, true);
  assert.deepEqual(ok.policies, ['healthcare-reader']);
  assert.equal(read(READER, 'healthcare/prod/deep/er/x').allowed, true);
  assert.equal(read(READER, 'healthcare/staging/db').allowed, false);
  assert.equal(read(READER, 'healthcare/production').allowed, false); // a prefix of the string is not the folder
  assert.equal(read(OTHER).allowed, false);
  // The same path from any other attestor, kind or trust domain: nothing (ADR 0021).
  assert.equal(read(k8sAgent(READER.spiffeId, {}, 'k8s-staging')).allowed, false);
  assert.equal(read(agent(READER.spiffeId, { attestor: 'gitlab', attestorKind: 'jwt', attributes: { namespace: 'healthcare', service_account: 'patient-reader' } })).allowed, false);
  assert.equal(read(agent('spiffe://tessera.local/ci/evil/ns/healthcare/sa/patient-reader', { attestor: 'gitlab', attestorKind: 'jwt' })).allowed, false);
  assert.equal(read(k8sAgent('spiffe://other.test/ns/healthcare/sa/patient-reader')).allowed, false);
  // default deny: no policy at all for this action/resource
  const d = e.authorize({ principal: READER, action: 'cred.issue', resource: { type: 'Role', engine: 'mysql', role: 'admin' } });
  assert.equal(d.allowed, false);
  assert.deepEqual(d.policies, []);
  assert.equal(audit.events.filter((x) => x.kind === 'policy.reloaded').length, 1);
});

test('forbid overrides permit', async (t) => {
  const dir = tempDir(t);
  copyExamples(dir);
  const { e } = engine(dir);
  await e.load();
  const d = e.authorize({ principal: READER, action: 'secret.read', resource: { type: 'Secret', path: 'healthcare/prod/incident/key' } });
  assert.equal(d.allowed, false);
  assert.deepEqual(d.policies, ['incident-freeze-healthcare']);
  const bg = k8sAgent('spiffe://tessera.local/ns/healthcare/sa/break-glass');
  writeFileSync(join(dir, 'bg.cedar'), 'permit(principal, action, resource) when { principal.service_account == "break-glass" };');
  await e.load();
  assert.equal(e.authorize({ principal: bg, action: 'secret.read', resource: { type: 'Secret', path: 'healthcare/prod/incident/key' } }).allowed, true);
});

test('context.args.ward decides a tool call; labels are tags', async (t) => {
  const dir = tempDir(t);
  writeFileSync(
    join(dir, 'ward.cedar'),
    `@id("ward")
permit(principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"records/query")
when { principal.hasTag("team") && principal.getTag("team") == "records" && context.args.ward == "cardiology" };`,
  );
  const { e } = engine(dir);
  const r = await e.load();
  assert.deepEqual(r.errors, []);
  const p = agent('spiffe://example.org/ns/records/sa/a', { attributes: { 'label.team': 'records' } });
  const call = (args: Record<string, unknown> | undefined, principal = p) => e.authorize({ principal, action: 'tool.call', resource: { type: 'Tool', server: 'records', tool: 'query' }, ...(args ? { context: { args } } : {}) });
  assert.equal(call({ ward: 'cardiology' }).allowed, true);
  assert.equal(call({ ward: 'oncology' }).allowed, false);
  // missing argument: the permit errors, so it does not apply (deny), and the error is reported
  const missing = call(undefined);
  assert.equal(missing.allowed, false);
  assert.match(missing.errors.join(), /ward/);
  assert.equal(call({ ward: 'cardiology' }, agent('spiffe://example.org/ns/records/sa/a', { attributes: { 'label.team': 'billing' } })).allowed, false);
});

test('a forbid whose condition errors denies (fail closed)', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'p.cedar'), `@id("all") permit(principal, action, resource);\n@id("big") forbid(principal, action == Tessera::Action::"tool.call", resource) when { context.args.limit > 100 };`);
  const { e } = engine(dir);
  assert.equal((await e.load()).ok, true);
  const call = (args: Record<string, unknown>) => e.authorize({ principal: READER, action: 'tool.call', resource: { type: 'Tool', server: 's', tool: 't' }, context: { args } });
  assert.equal(call({ limit: 5 }).allowed, true);
  assert.equal(call({ limit: 500 }).allowed, false);
  const d = call({});
  assert.equal(d.allowed, false);
  assert.deepEqual(d.policies, ['big']);
});

test('namespace-wide policy and delegation context', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'p.cedar'), `@id("ns") permit(principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"shared") when { principal.namespace == "ci" && context.depth <= 1 && (context.depth == 0 || (context has origin && context.origin == "spiffe://example.org/ns/ci/sa/orch")) && context.scopes.contains("secret:shared/**") };`);
  const { e } = engine(dir);
  assert.deepEqual((await e.load()).errors, []);
  const res = { type: 'Secret' as const, path: 'shared/token' };
  assert.equal(e.authorize({ principal: k8sAgent('spiffe://example.org/ns/ci/sa/x', { scope: ['secret:shared/**'] }), action: 'secret.read', resource: res }).allowed, true);
  assert.equal(e.authorize({ principal: k8sAgent('spiffe://example.org/ns/ci/sa/x', { scope: ['secret:shared/**'], chain: ['spiffe://example.org/ns/ci/sa/orch'] }), action: 'secret.read', resource: res }).allowed, true);
  assert.equal(e.authorize({ principal: k8sAgent('spiffe://example.org/ns/ci/sa/x', { scope: ['secret:shared/**'], chain: ['spiffe://example.org/ns/ci/sa/other'] }), action: 'secret.read', resource: res }).allowed, false);
  assert.equal(e.authorize({ principal: k8sAgent('spiffe://example.org/ns/ci/sa/x', { scope: ['secret:shared/**'], chain: ['spiffe://example.org/ns/ci/sa/orch', 'spiffe://example.org/ns/ci/sa/b'] }), action: 'secret.read', resource: res }).allowed, false);
  assert.equal(e.authorize({ principal: k8sAgent('spiffe://example.org/ns/dev/sa/x', { scope: ['secret:shared/**'] }), action: 'secret.read', resource: res }).allowed, false);
  // A namespace read from the path, or claimed by a non-Kubernetes attestor, is not a namespace.
  for (const p of [
    agent('spiffe://example.org/ns/ci/sa/x', { scope: ['secret:shared/**'] }),
    agent('spiffe://example.org/ns/ci/sa/x', { scope: ['secret:shared/**'], attestor: 'join_token', attestorKind: 'join_token', attributes: { namespace: 'ci', 'label.namespace': 'ci' } }),
    agent('spiffe://example.org/ci/group/ns/ci/sa/x/main', { scope: ['secret:shared/**'], attestor: 'gitlab', attestorKind: 'jwt', attributes: { namespace: 'ci' } }),
    agent('spiffe://spire.example/ns/ci/sa/x', { scope: ['secret:shared/**'], attestor: 'spire', attestorKind: 'spiffe' }),
  ]) {
    assert.equal(e.authorize({ principal: p, action: 'secret.read', resource: res }).allowed, false, `${p.spiffeId} (${p.attestorKind ?? 'no kind'})`);
  }
});

test('a syntax error names the file, line and column', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'team'));
  writeFileSync(join(dir, 'team', 'bad.cedar'), '// comment\npermit(principal, action, resource);\n\npermit(principal, action, resource)\n  when { 1 + };\n');
  const r = validatePolicyDir(dir);
  assert.equal(r.ok, false);
  assert.equal(r.errors[0]!.file, 'team/bad.cedar');
  assert.equal(r.errors[0]!.line, 5);
  assert.equal(r.errors[0]!.column, 14);
  assert.match(r.errors[0]!.message, /unexpected token/);
});

test('a schema error names the file, line and what is wrong', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ok.cedar'), 'permit(principal, action, resource);\n');
  writeFileSync(join(dir, 'typo.cedar'), '\n\n@id("typo")\npermit(principal, action == Tessera::Action::"secret.read", resource)\nwhen { principal.namespaec == "x" };\n');
  writeFileSync(join(dir, 'argz.cedar'), 'permit(principal, action, resource) when { context.argz == 1 };\n');
  writeFileSync(join(dir, 'action.cedar'), 'permit(principal, action == Tessera::Action::"secret.write", resource);\n');
  const r = validatePolicyDir(dir);
  assert.equal(r.ok, false);
  const typo = r.errors.find((x) => x.file === 'typo.cedar')!;
  assert.equal(typo.line, 5);
  assert.match(typo.message, /namespaec/);
  const argz = r.errors.find((x) => x.file === 'argz.cedar')!;
  assert.equal(argz.line, 1);
  assert.match(argz.message, /argz/);
  assert.ok(r.errors.find((x) => x.file === 'action.cedar' && /secret\.write/.test(x.message)));
});

test('duplicate @id across files is an error', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.cedar'), '@id("x") permit(principal, action, resource);');
  writeFileSync(join(dir, 'b.cedar'), '\n@id("x") forbid(principal, action, resource);');
  const r = validatePolicyDir(dir);
  assert.equal(r.ok, false);
  assert.equal(r.errors[0]!.file, 'b.cedar');
  assert.equal(r.errors[0]!.line, 2);
  assert.match(r.errors[0]!.message, /duplicate policy id "x".*a\.cedar:1/);
});

test('ids default to <file>#<index>; authorize before load fails with TESSERA_POLICY_NOT_LOADED', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.cedar'), 'forbid(principal, action, resource) when { false };\npermit(principal, action, resource);');
  const { e } = engine(dir);
  assert.throws(() => e.authorize({ principal: READER, action: 'secret.read', resource: { type: 'Secret', path: 'x' } }), (err) => isTesseraError(err) && err.code === 'TESSERA_POLICY_NOT_LOADED');
  assert.equal(e.status().ready, false);
  await e.load();
  assert.deepEqual(e.authorize({ principal: READER, action: 'secret.read', resource: { type: 'Secret', path: 'x' } }).policies, ['a.cedar#1']);
});

test('a first load of a bad directory is not ready and says why', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.cedar'), 'permit(principal, action, resource)');
  const { e, metrics } = engine(dir);
  const r = await e.load();
  assert.equal(r.ok, false);
  const s = e.status();
  assert.equal(s.ready, false);
  assert.equal(s.lastError?.file, 'a.cedar');
  const rc = await e.readinessCheck().check();
  assert.equal(rc.ok, false);
  assert.match(JSON.stringify(rc.detail), /a\.cedar:1/);
  assert.match(await metrics.render(), /tessera_policy_last_reload_success 0/);
});

test('hot reload through real files; a bad change keeps the last good set and is reported', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.cedar'), '@id("read-a") permit(principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"a");\n');
  const { e, audit, metrics } = engine(dir, { watch: true, debounceMs: 20, pollIntervalMs: 200 });
  await e.start();
  t.after(() => e.stop());
  const canRead = (path: string) => e.authorize({ principal: READER, action: 'secret.read', resource: { type: 'Secret', path } }).allowed;
  assert.equal(canRead('a/x'), true);
  assert.equal(canRead('b/x'), false);
  const good1 = e.status().lastGoodAt;
  assert.ok(good1 !== undefined);

  writeFileSync(join(dir, 'b.cedar'), '@id("read-b") permit(principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"b");\n');
  await until(() => e.status().policies === 2, 'reload with b.cedar');
  assert.equal(canRead('b/x'), true);

  // Bad change: syntax error in b.cedar. The last good set (a + b) stays active.
  writeFileSync(join(dir, 'b.cedar'), '@id("read-b") permit(principal, action, resource\n');
  await until(() => e.status().lastError !== undefined, 'failed reload to be reported');
  const s = e.status();
  assert.equal(s.ready, true);
  assert.equal(s.policies, 2);
  assert.equal(s.lastError!.file, 'b.cedar');
  assert.equal(canRead('b/x'), true);
  const rc = await e.readinessCheck().check();
  assert.equal(rc.ok, true);
  assert.match(JSON.stringify(rc.detail), /b\.cedar:/);
  const text = await metrics.render();
  assert.match(text, /tessera_policy_reload_errors_total [1-9]/);
  assert.match(text, /tessera_policy_last_reload_success 0/);
  assert.ok(audit.events.some((x) => x.kind === 'policy.reloaded' && x.result === 'failure'));

  // Fix it: error cleared, new content active.
  writeFileSync(join(dir, 'b.cedar'), '@id("read-c") permit(principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"c");\n');
  await until(() => e.status().lastError === undefined, 'good reload after fix');
  assert.equal(canRead('b/x'), false);
  assert.equal(canRead('c/x'), true);
  assert.match(await metrics.render(), /tessera_policy_last_reload_success 1/);
});

test('decision cache: hits, invalidated on reload and by invalidate(); size 0 disables', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.cedar'), 'permit(principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"a");\n');
  const { e, metrics } = engine(dir, { cacheSize: 2 });
  await e.load();
  const req = { principal: READER, action: 'secret.read' as const, resource: { type: 'Secret' as const, path: 'a/x' } };
  assert.equal(e.authorize(req).cached, false);
  const hit = e.authorize(req);
  assert.equal(hit.cached, true);
  assert.equal(hit.allowed, true);
  assert.equal(e.cacheHits, 1);
  // A different context is a different key
  assert.equal(e.authorize({ ...req, principal: agent(READER.spiffeId, { user: 'bob' }) }).cached, false);
  e.invalidate();
  assert.equal(e.authorize(req).cached, false);
  // Reload changes the decision: the cache must not serve the old one.
  writeFileSync(join(dir, 'a.cedar'), 'forbid(principal, action, resource);\n');
  await e.load();
  const after = e.authorize(req);
  assert.equal(after.allowed, false);
  assert.equal(after.cached, false);
  // LRU bound: capacity 2
  for (const p of ['a/1', 'a/2', 'a/3']) e.authorize({ ...req, resource: { type: 'Secret', path: p } });
  assert.equal(e.authorize({ ...req, resource: { type: 'Secret', path: 'a/1' } }).cached, false);
  assert.match(await metrics.render(), /tessera_policy_decisions_total\{result="deny"\} [1-9]/);

  const { e: nocache } = engine(dir, { cacheSize: 0 });
  await nocache.load();
  nocache.authorize(req);
  assert.equal(nocache.authorize(req).cached, false);
});

test('explain names the determining policies with their file and line', async (t) => {
  const dir = tempDir(t);
  copyExamples(dir);
  const { e } = engine(dir);
  await e.load();
  const x = e.explain({ principal: READER, action: 'secret.read', resource: { type: 'Secret', path: 'healthcare/prod/db' } });
  assert.equal(x.decision, 'allow');
  assert.deepEqual(x.policies, [{ id: 'healthcare-reader', effect: 'permit', file: 'healthcare.cedar', line: 11 }]);
});

test('literals(action): every string the permit policies that can apply to the action mention, like patterns without wildcards', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'tools.cedar'), `
@id("one-tool") permit (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"records/query_patients") when { principal.hasTag("team") };
@id("by-name") permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"files") when { resource.name like "read_*" || resource.name == "stat" };
@id("not-tools") permit (principal, action == Tessera::Action::"secret.read", resource in Tessera::Folder::"only-secrets");
@id("no-tools") forbid (principal, action == Tessera::Action::"tool.call", resource == Tessera::Tool::"files/forbidden_name");
`);
  const { e } = engine(dir);
  assert.equal((await e.load()).ok, true);
  const lits = e.literals('tool.call');
  for (const x of ['records/query_patients', 'files', 'read_', 'stat', 'team']) assert.ok(lits.includes(x), `${x} in ${JSON.stringify(lits)}`);
  assert.ok(!lits.includes('only-secrets'), 'policies of other actions are left out');
  assert.ok(!lits.includes('files/forbidden_name'), 'forbid policies permit nothing');
  assert.ok(e.literals('secret.read').includes('only-secrets'));
});

test('a new policy set takes effect only once its policy.reloaded event is recorded (ADR 0041); failed reloads that quote a token are audited redacted', async (t) => {
  const dir = tempDir(t);
  copyExamples(dir);
  const { e, audit } = engine(dir);
  assert.equal((await e.load()).ok, true);
  // The example policies pin trust domain and attestor, and a service account exists only when a
  // Kubernetes attestor proved it (ADR 0021): the break-glass agent as the cluster attests it.
  const bg = k8sAgent('spiffe://tessera.local/ns/healthcare/sa/break-glass');
  const incident = () => e.authorize({ principal: bg, action: 'secret.read', resource: { type: 'Secret', path: 'healthcare/prod/incident/key' } }).allowed;
  assert.equal(incident(), false);
  writeFileSync(join(dir, 'bg.cedar'), 'permit(principal, action, resource) when { principal.service_account == "break-glass" };');

  audit.failing = true;
  for (let i = 0; i < 3; i++) {
    const r = await e.load();
    assert.equal(r.ok, false);
    assert.match(r.errors[0]!.message, /not applied/);
    assert.equal(incident(), false, 'the unaudited set is not in effect; the last good one still decides');
  }
  assert.equal(e.status().ready, true);

  audit.failing = false;
  assert.equal((await e.load()).ok, true);
  assert.equal(incident(), true);
  assert.equal(audit.events.filter((x) => x.kind === 'policy.reloaded' && x.result === 'success').length, 2);

  // A broken file whose text the error quotes: the failure is still recorded, without the token.
  const token = `tsr_admin_${'A'.repeat(28)}`;
  writeFileSync(join(dir, 'broken.cedar'), `permit(principal, action, resource) when { ${token} };`);
  const bad = await e.load();
  assert.equal(bad.ok, false);
  assert.ok(bad.errors[0]!.message.includes(token), 'the parser quotes the token (operators see it in status)');
  const failed = audit.events.filter((x) => x.kind === 'policy.reloaded' && x.result === 'failure');
  assert.equal(failed.length, 1);
  assert.ok(!JSON.stringify(failed[0]).includes(token));
  assert.match(String(failed[0]!.reason?.message), /\[redacted\]/);
  assert.equal(incident(), true);
});

test('a policy id (or file name) that looks like a credential, or is over 256 characters, fails the load: ids are audited in clear with every decision', async (t) => {
  const token = `tsr_admin_${'A'.repeat(28)}`;
  for (const [file, text] of [
    ['a.cedar', `@id("${token}")\npermit(principal, action, resource);`],
    [`${token}.cedar`, 'permit(principal, action, resource);'],
    ['b.cedar', `@id("${'x'.repeat(300)}")\npermit(principal, action, resource);`],
  ] as const) {
    const dir = tempDir(t);
    writeFileSync(join(dir, file), text);
    const { e, audit } = engine(dir);
    const r = await e.load();
    assert.equal(r.ok, false, file);
    assert.match(r.errors[0]!.message, /policy ids are recorded in clear/);
    assert.ok(!r.errors[0]!.message.includes(token), 'the id is not echoed');
    const failed = audit.events.filter((x) => x.kind === 'policy.reloaded' && x.result === 'failure');
    assert.equal(failed.length, 1, 'the failed load is still audited');
    assert.ok(!JSON.stringify(failed[0]).includes(token), 'a credential-shaped file name is redacted in the event');
  }
});
