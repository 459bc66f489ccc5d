/**
 * MCP gateway `resources/read` and `prompts/get` latency and throughput, through the full Tessera
 * server (token check, URI federation, Cedar `resource.read` / `prompt.get`, argument checks,
 * scrubbing with the upstream's injected key, durable audit) against asking the same upstream
 * directly, in the same run, with the same JSON-RPC client (undici, one keep-alive pool per
 * target, Streamable HTTP with JSON responses). Loopback only.
 *
 * The upstream is test/gateway/fixtures/resources-upstream.ts over Streamable HTTP, so the
 * gateway adds one MCP client → server hop, as in bench/gateway.ts's "Streamable HTTP upstream"
 * rows; the goal is the same: added p50 ≤ 1.5 ms. The tools/call rows (bench/gateway.ts) are not
 * repeated here.
 */
import { tmpdir } from 'node:os';
import { Pool } from 'undici';
import { tuneServerHeap } from '../src/shared/heap-tuning.js';
import { startGatewayHarness } from '../test/gateway/harness.js';
import { startResourcesUpstream } from '../test/gateway/fixtures/resources-upstream.js';
import { pairedLatencies, percentile, throughput, type BenchResult } from './lib.js';

const N = 1000;
const WARMUP = 200;
const CONCURRENCY = 32;
const MS = 3000;
const MAX_OPS = 100_000;

type Ask = () => Promise<void>;
/** The parts of a result the checks read. */
interface Answer {
  content?: { text?: string }[];
  contents?: { text?: string }[];
  messages?: { content?: { text?: string } }[];
}

async function session(url: string, token?: string): Promise<{ ask(method: string, params: unknown, check: (result: Answer) => boolean): Ask; close(): Promise<void> }> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: CONCURRENCY, pipelining: 1 });
  const base: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const post = async (body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; json: { result?: Answer } | undefined }> => {
    const r = await pool.request({ method: 'POST', path: u.pathname, headers: { ...base, ...headers }, body: JSON.stringify(body) });
    const text = await r.body.text();
    return { status: r.statusCode, headers: r.headers, json: text ? (JSON.parse(text) as { result?: Answer }) : undefined };
  };
  const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
  if (init.status !== 200) throw new Error(`initialize failed: ${init.status} ${JSON.stringify(init.json)}`);
  const sid = init.headers['mcp-session-id'];
  const headers: Record<string, string> = { 'mcp-protocol-version': '2025-11-25', ...(typeof sid === 'string' ? { 'mcp-session-id': sid } : {}) };
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
  let id = 1;
  return {
    ask: (method, params, check) => async () => {
      const r = await post({ jsonrpc: '2.0', id: id++, method, params }, headers);
      if (!r.json?.result || !check(r.json.result)) throw new Error(`${method}: unexpected answer ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
    },
    close: () => pool.close(),
  };
}

async function compare(what: string, direct: Ask, gw: Ask, label: string, judged = true): Promise<BenchResult[]> {
  const { direct: d, via: g } = await pairedLatencies(direct, gw, N, WARMUP);
  const p50d = percentile(d, 50);
  const p50g = percentile(g, 50);
  const p99d = percentile(d, 99);
  const p99g = percentile(g, 99);
  const added50 = (p50g - p50d) / 1000;
  const tDirect = await throughput(direct, { ms: MS, maxOps: MAX_OPS, concurrency: CONCURRENCY });
  const tGateway = await throughput(gw, { ms: MS, maxOps: MAX_OPS, concurrency: CONCURRENCY });
  return [
    {
      name: `${what} p50 through the gateway, ${label}`, value: p50g / 1000, unit: 'ms',
      baseline: { name: 'direct', value: p50d / 1000, unit: 'ms' }, ratio: p50g / p50d, ratioNote: `added ${added50.toFixed(3)} ms`,
      ...(judged ? { goal: 'added p50 ≤ 1.5 ms', met: added50 <= 1.5 } : {}),
    },
    {
      name: `${what} p99 through the gateway, ${label}`, value: p99g / 1000, unit: 'ms',
      baseline: { name: 'direct', value: p99d / 1000, unit: 'ms' }, ratio: p99g / p99d, ratioNote: `added ${((p99g - p99d) / 1000).toFixed(3)} ms`,
    },
    {
      name: `${what} throughput through the gateway, ${label} (${CONCURRENCY} in flight)`, value: tGateway, unit: 'req/s',
      baseline: { name: 'direct', value: tDirect, unit: 'req/s' }, ratio: tGateway / tDirect, ratioNote: 'gateway / direct',
    },
  ];
}

export async function run(): Promise<BenchResult[]> {
  tuneServerHeap();
  const upstream = await startResourcesUpstream();
  const KEY = 'bench-injected-key-Zt19Lm44';
  const h = await startGatewayHarness({
    policies: `
@id("bench-read") permit (principal, action == Tessera::Action::"resource.read", resource in Tessera::Server::"res") when { principal.attestor_kind == "join_token" && principal.path == "/ns/bench/sa/agent" };
@id("bench-prompt") permit (principal, action == Tessera::Action::"prompt.get", resource in Tessera::Server::"res") when { principal.attestor_kind == "join_token" && principal.path == "/ns/bench/sa/agent" };
@id("bench-tool") permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"res") when { principal.attestor_kind == "join_token" && principal.path == "/ns/bench/sa/agent" };
@id("bench-inject") permit (principal, action == Tessera::Action::"secret.inject", resource == Tessera::Secret::"bench/key") when { principal.attestor_kind == "join_token" && principal.path == "/ns/bench/sa/agent" };
`,
    secrets: { 'bench/key': KEY },
    gateway: {
      servers: [{ name: 'res', transport: 'streamable_http', url: upstream.url, headers: { 'X-Api-Key': { secret: 'bench/key' } } }],
      rate_limit: { per_second: 1_000_000, burst: 1_000_000 }, max_inflight_per_agent: 1024, max_inflight_per_session: 1024,
    },
    baseDir: process.env.TESSERA_BENCH_DIR ?? tmpdir(),
  });
  const sessions: { close(): Promise<void> }[] = [];
  try {
    const token = await h.login('spiffe://example.org/ns/bench/sa/agent');
    const direct = await session(upstream.url);
    const gw = await session(h.mcpUrl, token);
    sessions.push(direct, gw);
    const label = 'Streamable HTTP upstream (one more hop), audit durable on disk';
    const readme = (r: Answer): boolean => r.contents?.[0]?.text === 'hello from the readme';
    const greet = (r: Answer): boolean => r.messages?.[0]?.content?.text === 'Say hello to Ada';
    const pong = (r: Answer): boolean => r.content?.[0]?.text === 'pong';
    return [
      // The same upstream's tools/call in the same run: what the tools path adds on this machine now.
      ...(await compare('tools/call (same upstream, context)', direct.ask('tools/call', { name: 'ping', arguments: {} }, pong), gw.ask('tools/call', { name: 'res__ping', arguments: {} }, pong), label, false)),
      ...(await compare('resources/read', direct.ask('resources/read', { uri: 'docs://public/readme' }, readme), gw.ask('resources/read', { uri: 'tessera://res/docs://public/readme' }, readme), label)),
      ...(await compare('prompts/get', direct.ask('prompts/get', { name: 'greet', arguments: { name: 'Ada' } }, greet), gw.ask('prompts/get', { name: 'res__greet', arguments: { name: 'Ada' } }, greet), label)),
    ];
  } finally {
    for (const s of sessions) await s.close().catch(() => undefined);
    await h.close();
    await upstream.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
