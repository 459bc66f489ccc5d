/**
 * `npm run bench -- k8s-sidecar` (issue 12: "the sidecar adds ≤ 1 ms p50 to a proxied request").
 *
 * The same request — `GET http://plain.test/bench` through Tessera's forward proxy to a loopback
 * upstream, the route's key injected, Cedar-checked and audited — sent two ways in the same run,
 * sequentially, in four interleaved blocks (bench/lib.ts pairedLatencies):
 *   baseline: straight to the Tessera proxy with `Proxy-Authorization: Bearer <agent token>`
 *             (a keep-alive connection, as an app holding the token would);
 *   measured: to the sidecar's local proxy (the real `tessera agent` process, bin/tessera.js),
 *             no credential; the sidecar adds its token and relays on its keep-alive pool.
 * Both tokens are for the same pod identity (the same projected token, the kubernetes attestor).
 * Tessera runs in this process (test/k8s/agent/harness.ts), the sidecar in its own, as in a pod.
 */
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { TesseraClient } from '../src/sdk/client.js';
import { tuneServerHeap } from '../src/shared/heap-tuning.js';
import { startStack, until } from '../test/k8s/agent/harness.js';
import { freePort, pairedLatencies, percentile, type BenchResult } from './lib.js';

const N = Number(process.env.TESSERA_BENCH_SIDECAR_N ?? 4000);
const WARMUP = 300;
const BIN = join(import.meta.dirname, '..', 'bin', 'tessera.js');

function get(agent: Agent, port: number, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: 'http://plain.test/bench', headers: { host: 'plain.test', ...headers }, agent }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function run(): Promise<BenchResult[]> {
  tuneServerHeap();
  const stack = await startStack();
  const proxyPort = await freePort();
  const mcpPort = await freePort();
  const child = spawn(process.execPath, [BIN, 'agent', '--addr', stack.addr, '--token-file', stack.kube.tokenFile, '--proxy-url', stack.proxyUrl, '--listen-proxy', `127.0.0.1:${proxyPort}`, '--listen-mcp', `127.0.0.1:${mcpPort}`], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const direct = new Agent({ keepAlive: true, maxSockets: 1 });
  const via = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const client = new TesseraClient({ addr: stack.addr, audience: `${stack.addr}/proxy`, dpop: false });
    await client.loginWithTokenFile(stack.kube.tokenFile);
    const token = await client.token();
    await until(async () => (await fetch(`http://127.0.0.1:${mcpPort}/healthz`).then((r) => r.status, () => 0)) === 200, `the sidecar to be ready (${stderr})`, 60_000);
    const lat = await pairedLatencies(
      () => get(direct, stack.proxyPort, { 'proxy-authorization': `Bearer ${token}` }),
      () => get(via, proxyPort, {}),
      N, WARMUP,
    );
    client.close();
    const p = (xs: number[], q: number): number => percentile(xs, q);
    const what = `GET http://plain.test/bench via the forward proxy (Cedar, key injected, audited), sequential, ${N} requests`;
    const added50 = p(lat.via, 50) - p(lat.direct, 50);
    return [
      { name: `sidecar → Tessera proxy → upstream, p50 (${what})`, value: p(lat.via, 50), unit: 'µs', baseline: { name: 'straight to the Tessera proxy with the token, p50', value: p(lat.direct, 50), unit: 'µs' }, ratio: p(lat.via, 50) / p(lat.direct, 50), ratioNote: `sidecar / direct; adds ${Math.round(added50)} µs`, goal: 'adds ≤ 1 ms p50', met: added50 <= 1000 },
      { name: `sidecar → Tessera proxy → upstream, p99 (${what})`, value: p(lat.via, 99), unit: 'µs', baseline: { name: 'straight to the Tessera proxy with the token, p99', value: p(lat.direct, 99), unit: 'µs' }, ratio: p(lat.via, 99) / p(lat.direct, 99), ratioNote: `sidecar / direct; adds ${Math.round(p(lat.via, 99) - p(lat.direct, 99))} µs` },
    ];
  } finally {
    direct.destroy();
    via.destroy();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await stack.close();
  }
}
