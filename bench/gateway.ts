/**
 * MCP gateway `tools/call` latency and throughput for a trivial tool (`ping` → "pong"), through
 * the full Tessera server (token check, Cedar, schema check, scrubbing, durable audit) against
 * calling the same tool directly, in the same run, with the same JSON-RPC client (undici, one
 * keep-alive pool per target, Streamable HTTP with JSON responses). Loopback only.
 *
 * Two upstream set-ups:
 *  1. in-process tool: the tool runs inside the gateway (a ToolProvider); "direct" is the same
 *     tool served by the official SDK Server over Streamable HTTP. Same number of HTTP hops, so
 *     the difference is what the gateway itself adds. The goals are judged here.
 *  2. Streamable HTTP upstream: the SDK server above, called directly vs through the gateway;
 *     the difference adds one more MCP client → server hop (gateway → upstream).
 * Audit is durable on the bench machine's disk (WAL, synchronous=FULL) unless TESSERA_BENCH_DIR
 * points elsewhere.
 */
import { Pool } from 'undici';
import { startGatewayHarness } from '../test/gateway/harness.js';
import { startHttpUpstream } from '../test/gateway/fixtures/http-upstream.js';
import type { ToolProvider } from '../src/gateway/index.js';
import { latencies, percentile, throughput, type BenchResult } from './lib.js';

const N = 2000;
const WARMUP = 500;
const CONCURRENCY = 32;
const MS = 3000;
const MAX_OPS = 300_000;

interface RpcReply {
  result?: { content?: { text?: string }[] };
  error?: unknown;
}

interface RpcTarget {
  call(name: string): Promise<void>;
  close(): Promise<void>;
}

async function target(url: string, token?: string): Promise<RpcTarget> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: CONCURRENCY, pipelining: 1 });
  const base: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const post = async (body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; json: RpcReply | undefined }> => {
    const r = await pool.request({ method: 'POST', path: u.pathname, headers: { ...base, ...headers }, body: JSON.stringify(body) });
    const text = await r.body.text();
    return { status: r.statusCode, headers: r.headers, json: text ? (JSON.parse(text) as RpcReply) : undefined };
  };
  const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
  const sid = init.headers['mcp-session-id'];
  if (init.status !== 200 || typeof sid !== 'string') throw new Error(`initialize failed: ${init.status} ${JSON.stringify(init.json)}`);
  const session = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session);
  let id = 1;
  return {
    async call(name) {
      const r = await post({ jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name, arguments: {} } }, session);
      if (r.json?.result?.content?.[0]?.text !== 'pong') throw new Error(`${name}: unexpected answer ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
    },
    close: () => pool.close(),
  };
}

const inProcess: ToolProvider = {
  server: 'local',
  listTools: async () => [{ name: 'ping', description: 'Answers pong', inputSchema: { type: 'object', properties: {} } }],
  callTool: async () => ({ content: [{ type: 'text', text: 'pong' }] }),
  close: async () => undefined,
};

async function compare(label: string, direct: RpcTarget, directTool: string, gw: RpcTarget, gwTool: string, judged: boolean): Promise<BenchResult[]> {
  await latencies(() => direct.call(directTool), WARMUP);
  await latencies(() => gw.call(gwTool), WARMUP);
  // Interleave the two series in blocks so that machine noise hits both alike.
  const d: number[] = [];
  const g: number[] = [];
  for (let block = 0; block < 4; block++) {
    d.push(...(await latencies(() => direct.call(directTool), N / 4)));
    g.push(...(await latencies(() => gw.call(gwTool), N / 4)));
  }
  d.sort((a, b) => a - b);
  g.sort((a, b) => a - b);
  const p50d = percentile(d, 50);
  const p50g = percentile(g, 50);
  const p99d = percentile(d, 99);
  const p99g = percentile(g, 99);
  const added = (p50g - p50d) / 1000;
  const tDirect = await throughput(() => direct.call(directTool), { ms: MS, maxOps: MAX_OPS, concurrency: CONCURRENCY });
  const tGateway = await throughput(() => gw.call(gwTool), { ms: MS, maxOps: MAX_OPS, concurrency: CONCURRENCY });
  return [
    {
      name: `tools/call p50 through the gateway, ${label}`,
      value: p50g / 1000, unit: 'ms',
      baseline: { name: 'direct', value: p50d / 1000, unit: 'ms' },
      ratio: p50g / p50d, ratioNote: `added ${added.toFixed(3)} ms`,
      ...(judged ? { goal: 'added p50 ≤ 1 ms', met: added <= 1 } : {}),
    },
    {
      name: `tools/call p99 through the gateway, ${label}`,
      value: p99g / 1000, unit: 'ms',
      baseline: { name: 'direct', value: p99d / 1000, unit: 'ms' },
      ratio: p99g / p99d, ratioNote: `added ${((p99g - p99d) / 1000).toFixed(3)} ms`,
    },
    {
      name: `tools/call throughput through the gateway, ${label} (${CONCURRENCY} in flight)`,
      value: tGateway, unit: 'calls/s',
      baseline: { name: 'direct', value: tDirect, unit: 'calls/s' },
      ratio: tGateway / tDirect, ratioNote: 'gateway / direct',
      ...(judged ? { goal: '≥ 2,000 calls/s', met: tGateway >= 2000 } : {}),
    },
  ];
}

export async function run(): Promise<BenchResult[]> {
  const upstream = await startHttpUpstream();
  const h = await startGatewayHarness({
    policies: '@id("bench") permit (principal, action == Tessera::Action::"tool.call", resource) when { principal.attestor_kind == "join_token" && principal.path == "/ns/bench/sa/agent" };',
    // One agent drives the whole load: its per-agent limits (docs/configuration.md) are lifted so
    // the bench measures the gateway's path, not the limiter's refusals.
    gateway: {
      servers: [{ name: 'remote', transport: 'streamable_http', url: upstream.url }],
      rate_limit: { per_second: 1_000_000, burst: 1_000_000 }, max_inflight_per_agent: 1024, max_inflight_per_session: 1024,
    },
    providers: [inProcess],
    ...(process.env.TESSERA_BENCH_DIR ? { baseDir: process.env.TESSERA_BENCH_DIR } : {}),
  });
  const targets: RpcTarget[] = [];
  try {
    const token = await h.login('spiffe://example.org/ns/bench/sa/agent');
    const direct = await target(upstream.url);
    const gw = await target(h.mcpUrl, token);
    targets.push(direct, gw);
    return [
      ...(await compare('in-process tool (gateway overhead)', direct, 'ping', gw, 'local__ping', true)),
      ...(await compare('Streamable HTTP upstream (one more hop)', direct, 'ping', gw, 'remote__ping', false)),
    ];
  } finally {
    for (const t of targets) await t.close().catch(() => undefined);
    await h.close();
    await upstream.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
