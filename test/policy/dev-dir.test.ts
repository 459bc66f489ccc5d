/**
 * Dev mode's policy directory (src/policy/dev-dir.ts): the demo set until the configured
 * directory exists, then that directory — real engines on real directories.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createPolicyEngine } from '../../src/policy/engine.js';
import { createDevPolicyEngine } from '../../src/policy/dev-dir.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { k8sAgent, tempDir, until } from './helpers.js';

const DEMO = resolve('examples/policies');
const READER = k8sAgent('spiffe://tessera.local/ns/healthcare/sa/patient-reader');
const POLICY = `@id("mine-reader")
permit (principal, action == Tessera::Action::"cred.issue", resource == Tessera::Role::"postgres/patient-reader")
when { principal.namespace == "healthcare" };`;

const make = (watch: boolean) => (dir: string) => createPolicyEngine({ dir, clock: new ManualClock(), logger: silentLogger, audit: new MemoryAuditWriter(), watch, pollIntervalMs: 50, debounceMs: 10 });
const demoRead = { principal: READER, action: 'secret.read' as const, resource: { type: 'Secret' as const, path: 'healthcare/prod/db' } };
const mineIssue = { principal: READER, action: 'cred.issue' as const, resource: { type: 'Role' as const, engine: 'postgres', role: 'patient-reader' } };

test('a missing configured directory: the demo set, labelled; once it appears (even filled later), that directory', async (t) => {
  const base = tempDir(t);
  const configured = join(base, 'policies');
  const e = createDevPolicyEngine({ configuredDir: configured, demoDir: DEMO, make: make(true), logger: silentLogger, pollMs: 20 });
  t.after(() => e.stop());
  await e.start();
  let s = e.status();
  assert.equal(s.dir, DEMO);
  assert.equal(s.demo, true);
  assert.equal(s.configuredDir, configured);
  assert.ok(s.ids.includes('healthcare-reader'), s.ids.join());
  assert.equal(e.authorize(demoRead).allowed, true);
  assert.equal(e.authorize(mineIssue).allowed, false);
  const ready = await e.readinessCheck().check();
  assert.deepEqual({ ok: ready.ok, demo: (ready.detail as Record<string, unknown>).demo, dir: (ready.detail as Record<string, unknown>).dir }, { ok: true, demo: true, dir: DEMO });

  // As docs/examples/healthcare.md does it: create the directory, then write the file into it.
  mkdirSync(configured);
  await until(() => e.status().demo !== true, 'the switch to the configured directory');
  writeFileSync(join(configured, 'mine.cedar'), POLICY);
  await until(() => e.status().ids.includes('mine-reader'), 'the new file to be loaded (watched)');
  s = e.status();
  assert.equal(s.dir, configured);
  assert.equal(s.demo, undefined);
  assert.deepEqual(s.ids, ['mine-reader']);
  assert.equal(e.authorize(mineIssue).allowed, true);
  assert.equal(e.authorize(demoRead).allowed, false, 'the demo set is gone');
  assert.equal(((await e.readinessCheck().check()).detail as Record<string, unknown>).demo, undefined);
});

test('an existing configured directory is served from the start, never the demo set', async (t) => {
  const configured = tempDir(t);
  writeFileSync(join(configured, 'mine.cedar'), POLICY);
  const e = createDevPolicyEngine({ configuredDir: configured, demoDir: DEMO, make: make(false), logger: silentLogger, pollMs: 20 });
  t.after(() => e.stop());
  await e.start();
  assert.deepEqual({ dir: e.status().dir, demo: e.status().demo, ids: e.status().ids }, { dir: configured, demo: undefined, ids: ['mine-reader'] });
});

test('a configured directory with a broken policy: switched to, nothing served (fail closed), the error shown', async (t) => {
  const base = tempDir(t);
  const configured = join(base, 'policies');
  const e = createDevPolicyEngine({ configuredDir: configured, demoDir: DEMO, make: make(false), logger: silentLogger, pollMs: 20 });
  t.after(() => e.stop());
  await e.start();
  // Appears with its file at once (rename), so the one load sees the broken policy.
  mkdirSync(join(base, 'staging'));
  writeFileSync(join(base, 'staging', 'bad.cedar'), 'permit (principal, action, resource) when { nonsense');
  renameSync(join(base, 'staging'), configured);
  await until(() => e.status().demo !== true, 'the switch');
  const s = e.status();
  assert.equal(s.ready, false);
  assert.match(s.lastError?.file ?? '', /bad\.cedar/);
  assert.throws(() => e.authorize(demoRead), (err: unknown) => (err as { code?: string }).code === 'TESSERA_POLICY_NOT_LOADED');
});
