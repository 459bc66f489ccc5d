/**
 * The official MCP conformance suite (@modelcontextprotocol/conformance, its server scenarios)
 * against Tessera's gateway: first against the fixture upstream directly (the fixture is right),
 * then through the gateway via the local front that adds the agent token (issue 9 item 6,
 * docs/gateway.md "Conformance", ADRs 0180 and 0181).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { listServerScenarios, runServerScenarios, notPassed, describe as describeChecks, SUITE_VERSION, type Check } from './suite.js';
import { startConformanceStack, type ConformanceStack } from './stack.js';
import { DIRECT_WARNINGS, GATEWAY_WARNINGS, KNOWN_GATEWAY_FAILURES, NOT_APPLICABLE, SCENARIOS, type ExpectedWarnings, type Scenario } from './expectations.js';

let stack: ConformanceStack;
let suiteScenarios: string[];
before(async () => {
  stack = await startConformanceStack();
  suiteScenarios = await listServerScenarios();
});
after(async () => stack?.close());

/** Problems of one scenario's checks: failures, and warnings that are not the expected ones. */
function problems(scenario: string, checks: readonly Check[], warnings: ExpectedWarnings | undefined): string[] {
  const expected = new Set(warnings?.checks ?? []);
  const bad = notPassed(checks).filter((c) => !(c.status === 'WARNING' && expected.has(c.id)));
  const gone = [...expected].filter((id) => !checks.some((c) => c.id === id && c.status === 'WARNING'));
  return [
    ...(bad.length ? [describeChecks(scenario, bad)] : []),
    ...gone.map((id) => `${scenario} / ${id}: the expected WARNING is gone; remove it from the expected warnings`),
  ];
}

/** The rows of docs/gateway.md "Conformance": scenario → its "Applies" cell. */
function documentedScenarios(): Map<string, string> {
  const doc = readFileSync(new URL('../../docs/gateway.md', import.meta.url), 'utf8');
  const section = doc.split(/^## /m).find((s) => s.startsWith('Conformance'));
  assert.ok(section, 'docs/gateway.md has a "Conformance" section');
  const rows = new Map<string, string>();
  for (const m of section.matchAll(/^\| `([a-z0-9-]+)` \|[^|]*\| ([^|]+) \|$/gm)) rows.set(m[1]!, m[2]!.trim());
  return rows;
}

test(`the suite (${SUITE_VERSION}) has exactly the server scenarios this test and docs/gateway.md know`, () => {
  assert.deepEqual(suiteScenarios, [...SCENARIOS], 'a new suite version changed the server scenarios: update test/conformance/expectations.ts and docs/gateway.md "Conformance"');
  const documented = documentedScenarios();
  assert.deepEqual([...documented.keys()].sort(), [...SCENARIOS].sort(), 'docs/gateway.md "Conformance" lists every server scenario once');
  const docNotApplicable = [...documented].filter(([, applies]) => applies.startsWith('no')).map(([s]) => s).sort();
  assert.deepEqual(docNotApplicable, Object.keys(NOT_APPLICABLE).sort(), 'the scenarios docs/gateway.md says do not apply are NOT_APPLICABLE');
});

test('the fixture upstream passes every server scenario when the suite runs against it directly', async () => {
  const results = await runServerScenarios(stack.upstream.url, SCENARIOS);
  const found = SCENARIOS.flatMap((s) => problems(s, results.get(s)!, DIRECT_WARNINGS[s]));
  assert.deepEqual(found, [], `the fixture fails scenarios run directly:\n${found.join('\n')}`);
});

test('every applicable server scenario passes through the gateway (known failures listed and still failing)', async (t) => {
  const results = await runServerScenarios(stack.front.url, SCENARIOS);
  const found: string[] = [];
  for (const s of SCENARIOS.filter((x) => NOT_APPLICABLE[x] === undefined)) {
    const checks = results.get(s)!;
    const known = KNOWN_GATEWAY_FAILURES[s as Scenario];
    if (known === undefined) found.push(...problems(s, checks, GATEWAY_WARNINGS[s]));
    else if (!checks.some((c) => c.status === 'FAILURE')) found.push(`${s}: passes through the gateway now; remove it from KNOWN_GATEWAY_FAILURES ("${known}")`);
    else t.diagnostic(`known failure: ${describeChecks(s, checks.filter((c) => c.status === 'FAILURE').slice(0, 1))} [${known}]`);
  }
  for (const [s, w] of Object.entries(GATEWAY_WARNINGS)) t.diagnostic(`expected warnings: ${s} ${w.checks.join(', ')} (${w.reason})`);
  assert.deepEqual(found, [], `conformance through the gateway:\n${found.join('\n')}`);
});
