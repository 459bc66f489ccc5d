/**
 * `npm run bench -- drift`: what tool-definition pinning (src/drift/tool-gate.ts) adds to a
 * gateway tools/list, per tool (goal: ≤ 50 µs per tool; issue 13 "Performance").
 *
 * The gateway core (src/gateway/core.ts) answers tools/list for one upstream of N tools (an
 * in-process upstream returning a fixed listing, so the MCP transport is not what is measured),
 * with a permissive policy, through the real `accepted` filter, names, listing and scrubber
 * steps — once without a tool gate (the baseline) and once with the real pinning gate on a real
 * SQLite store (every tool already pinned), in the same run:
 *  - steady state: the upstream's listing is the same array each time (a connection's cached
 *    listing, the common case) — the gate answers from its WeakMap;
 *  - a new listing every time: a fresh array of fresh tool objects per call (as after every
 *    `notifications/tools/list_changed` or a reconnect) with the same definitions: each tool's
 *    digest is found by its JSON text (one native JSON.stringify and a map lookup per tool);
 *  - a new or changed definition: its digests (whole and per field) computed once — canonical
 *    JSON + SHA-256 — before the store write and audit event of the change (not measured here).
 * Per-tool cost = (p50 with gate − p50 without) / N.
 */
import { createGatewayCore } from '../src/gateway/core.js';
import type { GatewayTool } from '../src/gateway/types.js';
import type { Upstream } from '../src/gateway/upstream.js';
import { createRequestAuthorizer } from '../src/pipeline/authorize.js';
import { createToolPinning, driftConfigSchema, toolDigest } from '../src/drift/index.js';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import { MemoryAuditWriter } from '../src/audit/port.js';
import { systemClock } from '../src/shared/clock.js';
import { silentLogger } from '../src/shared/logger.js';
import type { AgentPrincipal } from '../src/shared/principal.js';
import { pairedLatencies, percentile, type BenchResult } from './lib.js';

const TOOLS = 100;
const N = 400;
const WARMUP = 100;
const GOAL_US = 50;

function makeTools(): GatewayTool[] {
  return Array.from({ length: TOOLS }, (_, i) => ({
    name: `tool_${i}`,
    description: `Tool number ${i}: does a realistic amount of describing, with a sentence or two of guidance for the model about when to use it.`,
    inputSchema: { type: 'object', properties: { query: { type: 'string', description: 'what to look for' }, limit: { type: 'integer', minimum: 1, maximum: 100 }, since: { type: 'string', format: 'date-time' } }, required: ['query'] },
    annotations: { readOnlyHint: true, openWorldHint: false },
  }));
}

function fakeUpstream(listing: () => GatewayTool[]): Upstream {
  return {
    server: 'bench', transport: 'streamable_http', capabilities: undefined, size: 1,
    listTools: async () => ({ tools: listing(), secrets: [] }),
    callTool: async () => ({ result: { content: [] }, secrets: [] }),
    request: async () => { throw new Error('not used'); },
    stopWhere: async () => undefined,
    setLogLevel: async () => false,
    close: async () => undefined,
  };
}

const principal: AgentPrincipal = { spiffeId: 'spiffe://example.org/bench', trustDomain: 'example.org', path: '/bench', attributes: {}, jti: 'bench', expiresAt: Date.UTC(2099, 0, 1) };
const caller = { principal, sessionId: 's', where: {} };
const authorizer = createRequestAuthorizer({ authorize: () => ({ allowed: true, policies: ['bench'], errors: [], cached: false, mayPermit: true }) });

export async function run(): Promise<BenchResult[]> {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  const audit = new MemoryAuditWriter();
  const gate = createToolPinning({ store, clock: systemClock, audit, logger: silentLogger, config: driftConfigSchema.parse({}).tools });
  const fixed = makeTools();
  const coreOf = (listing: () => GatewayTool[], withGate: boolean) => createGatewayCore({
    upstreams: [fakeUpstream(listing)], providers: [], authorizer, audit, logger: silentLogger, auditArgumentValues: false,
    injector: {} as never, ...(withGate ? { toolGate: gate } : {}),
  });
  const signal = new AbortController().signal;
  const results: BenchResult[] = [];
  for (const [label, listing] of [['steady (cached listing)', () => fixed], ['new listing every call (fresh objects, same definitions: after list_changed or a reconnect)', makeTools]] as const) {
    const without = coreOf(listing, false);
    const withGate = coreOf(listing, true);
    // Pins every tool first (first sight: store writes and audit), outside the measurement.
    if ((await withGate.listTools(caller, signal)).length !== TOOLS) throw new Error('gate held tools back');
    const { direct, via } = await pairedLatencies(() => without.listTools(caller, signal), () => withGate.listTools(caller, signal), N, WARMUP);
    const base = percentile(direct, 50);
    const gated = percentile(via, 50);
    const perTool = Math.max(0, gated - base) / TOOLS;
    results.push({
      name: `tools/list of ${TOOLS} tools, pinning on: added per tool, ${label}`,
      value: perTool, unit: 'µs',
      baseline: { name: `same tools/list without pinning (p50 ${base.toFixed(0)} µs; with: ${gated.toFixed(0)} µs)`, value: base / TOOLS, unit: 'µs/tool' },
      ratio: gated / base, ratioNote: 'p50 with / without',
      goal: `≤ ${GOAL_US} µs per tool`, met: perTool <= GOAL_US,
    });
  }
  // Once per distinct definition (first sight or a change): the whole digest and one per field,
  // before the store write and the audit event that follow a change.
  const tool = fixed[0]!;
  let k = 0;
  const fresh = (): GatewayTool => ({ ...tool, description: `${tool.description} ${k++}` });
  const { direct, via } = await pairedLatencies(async () => JSON.stringify(fresh()), async () => toolDigest(fresh()), N * 10, WARMUP);
  const d = percentile(via, 50);
  results.push({
    name: 'a new or changed definition: canonical JSON + SHA-256 of the whole and of each pinned field (once per change, then cached)',
    value: d, unit: 'µs',
    baseline: { name: 'JSON.stringify of the same tool', value: percentile(direct, 50), unit: 'µs' },
    ratio: d / percentile(direct, 50), ratioNote: 'p50 digest / stringify',
    goal: `≤ ${GOAL_US} µs per tool`, met: d <= GOAL_US,
  });
  await store.close();
  return results;
}
