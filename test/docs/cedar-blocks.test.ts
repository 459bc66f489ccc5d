/**
 * Every ```cedar block in README.md and docs/** is a policy set that Tessera loads as written:
 * it parses, validates against Tessera's Cedar schema (entity types, actions, attributes,
 * context) (src/policy/loader.ts, the same check as
 * `tessera policy validate` and the server's reload). A reader copies these into a policy
 * directory; one that does not load makes the server keep the previous set (or refuse to start).
 * A block that is only a condition (`when { … }` / `unless { … }`, showing what to pin) is
 * checked as the condition of a policy that permits everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { docFiles, readDoc } from './markdown.js';
import { loadPolicySources, formatPolicyError } from '../../src/policy/loader.js';

const blocks = docFiles().flatMap((f) => readDoc(f).blocks.filter((b) => b.lang === 'cedar'));

test('the docs have Cedar examples to check', () => {
  assert.ok(blocks.length >= 10, `only ${blocks.length} cedar blocks found`);
});

test('every documented Cedar policy loads: parses and validates against the schema', () => {
  const problems: string[] = [];
  for (const b of blocks) {
    const fragment = /^\s*(?:when|unless)\s*\{/.test(b.text);
    const text = fragment ? `@id("fragment") permit (principal, action, resource)\n${b.text.trim()};\n` : b.text;
    const r = loadPolicySources([{ file: `${b.file}:${b.line}`, text }]);
    if (!r.ok) for (const e of r.errors) problems.push(`${b.file}:${b.line + Math.max(0, e.line - (fragment ? 2 : 1))}: ${formatPolicyError(e)}`);
    else assert.ok(r.set.policies.size > 0, `${b.file}:${b.line}: a cedar block without a policy`);
  }
  assert.deepEqual(problems, []);
});
