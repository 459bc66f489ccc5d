/**
 * How much the gateway delays progress notifications (issue 9, goal: ≤ 2 ms added at p50).
 * One process holds the upstream (the relay test upstream over Streamable HTTP, SSE answers),
 * the full Tessera server and the official SDK client, so one clock times each notification
 * from the upstream's `send` (its `performance.now()` is the progress message) to the client's
 * `onprogress`: directly, and through the gateway (progress token mapping, scrubbing, per-session
 * bounds, the SSE answer), alternating rounds in the same run. The gateway's notification rate
 * limit is lifted so that the bench measures the path, not the limiter.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { tuneServerHeap } from '../src/shared/heap-tuning.js';
import { startGatewayHarness } from '../test/gateway/harness.js';
import { startRelayHttpUpstream } from '../test/gateway/fixtures/relay-http.js';
import { percentile, type BenchResult } from './lib.js';

const ROUNDS = 6;
const PER_ROUND = 150;
const WARMUP_ROUNDS = 1;

async function delays(client: Client, tool: string): Promise<number[]> {
  const out: number[] = [];
  await client.callTool({ name: tool, arguments: { count: PER_ROUND, gap_ms: 2 } }, CallToolResultSchema, {
    onprogress: (p) => void out.push((performance.now() - Number(p.message)) * 1000),
    timeout: 120_000,
  });
  if (out.length !== PER_ROUND) throw new Error(`${tool}: ${out.length} of ${PER_ROUND} progress notifications arrived`);
  return out;
}

export async function run(): Promise<BenchResult[]> {
  tuneServerHeap();
  const upstream = await startRelayHttpUpstream('bench-secret-value-not-used-0001');
  const h = await startGatewayHarness({
    policies: '@id("bench") permit (principal, action == Tessera::Action::"tool.call", resource) when { principal.attestor_kind == "join_token" && principal.path == "/ns/bench/sa/agent" };',
    gateway: {
      servers: [{ name: 'remote', transport: 'streamable_http', url: upstream.url }],
      rate_limit: { per_second: 1_000_000, burst: 1_000_000 },
      notification_rate: { per_second: 1_000_000, burst: 1_000_000 },
    },
  });
  const clients: Client[] = [];
  try {
    const token = await h.login('spiffe://example.org/ns/bench/sa/agent');
    const direct = new Client({ name: 'bench', version: '1' });
    await direct.connect(new StreamableHTTPClientTransport(new URL(upstream.url)));
    const via = new Client({ name: 'bench', version: '1' });
    await via.connect(new StreamableHTTPClientTransport(new URL(h.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(direct, via);
    const d: number[] = [];
    const g: number[] = [];
    for (let round = 0; round < ROUNDS + WARMUP_ROUNDS; round++) {
      const a = await delays(direct, 'stamp');
      const b = await delays(via, 'remote__stamp');
      if (round >= WARMUP_ROUNDS) {
        d.push(...a);
        g.push(...b);
      }
    }
    d.sort((x, y) => x - y);
    g.sort((x, y) => x - y);
    const p50d = percentile(d, 50);
    const p50g = percentile(g, 50);
    const p99d = percentile(d, 99);
    const p99g = percentile(g, 99);
    const added50 = (p50g - p50d) / 1000;
    return [
      {
        name: 'progress notification delay p50 through the gateway, Streamable HTTP upstream (upstream send → client onprogress)',
        value: p50g / 1000, unit: 'ms',
        baseline: { name: 'direct', value: p50d / 1000, unit: 'ms' },
        ratio: p50g / p50d, ratioNote: `added ${added50.toFixed(3)} ms`,
        goal: 'added p50 ≤ 2 ms', met: added50 <= 2,
      },
      {
        name: 'progress notification delay p99 through the gateway, Streamable HTTP upstream',
        value: p99g / 1000, unit: 'ms',
        baseline: { name: 'direct', value: p99d / 1000, unit: 'ms' },
        ratio: p99g / p99d, ratioNote: `added ${((p99g - p99d) / 1000).toFixed(3)} ms`,
      },
    ];
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    await h.close();
    await upstream.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
