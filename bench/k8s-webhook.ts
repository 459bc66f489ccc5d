/**
 * The injector webhook (issue 12: "answers an AdmissionReview in ≤ 5 ms p99, bench row against
 * decoding the same JSON"). Loopback only, bounded in count.
 *
 * The body is a realistic AdmissionReview: a Deployment-made pod (generateName, two containers
 * with env and mounts, the ServiceAccount plugin's volume) annotated for the sidecar, the proxy,
 * a role and task defaults — the most work the injector does per request (test/k8s/injector/
 * fixtures.ts shapes).
 *
 * Rows:
 *  (a) the goal row: POST /mutate over HTTPS (keep-alive, one request at a time, undici), p99
 *      and p50, against a bare HTTPS server on the same TLS settings that reads the same body,
 *      JSON.parse + JSON.stringify's it and answers it (transport + decoding, no admission logic),
 *      4 interleaved blocks.
 *  (b) in process: mutatePod on the parsed review (validation, annotation checks with the
 *      server's scope/purpose parsers, patch building, base64) against JSON.parse + JSON.stringify
 *      of the same body — the issue's baseline "decoding the same JSON", p50 and p99.
 */
import { createServer } from 'node:https';
import { Agent, request } from 'undici';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../src/config/schema.js';
import { mutatePod, startInjector } from '../src/k8s/injector/index.js';
import { silentLogger } from '../src/shared/logger.js';
import { VERSION } from '../src/shared/package.js';
import { createTestCa } from '../test/proxy/fixtures/test-ca.js';
import { deploymentPod, review } from '../test/k8s/injector/fixtures.js';
import { latencies, pairedLatencies, percentile, type BenchResult } from './lib.js';

const GOAL_P99_US = 5000;
const N_HTTP = 4000;
const WARMUP_HTTP = 500;
const N_CPU = 20_000;

function body(): string {
  return JSON.stringify(review(deploymentPod({
    'tessera.io/inject': 'true', 'tessera.io/agent': 'true', 'tessera.io/proxy': 'true', 'tessera.io/role': 'patient-reader',
    'tessera.io/task-scope': 'secret:healthcare/prod/** tool:records/query', 'tessera.io/task-purpose': 'read patient records for triage', 'tessera.io/task-ttl': '30m',
  })));
}

export async function run(): Promise<BenchResult[]> {
  const text = body();
  const ca = await createTestCa('bench k8s-webhook CA');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-webhook-'));
  const leaf = await ca.issue(['127.0.0.1']);
  writeFileSync(join(dir, 'tls.crt'), leaf.certPem);
  writeFileSync(join(dir, 'tls.key'), leaf.keyPem);
  const settings = { ...configSchema.parse({ kubernetes: { injector: { listen: '127.0.0.1:0', tls_cert_file: join(dir, 'tls.crt'), tls_key_file: join(dir, 'tls.key') } } }).kubernetes.injector, version: VERSION };
  const injector = await startInjector({ settings, logger: silentLogger });
  const echo = createServer({ cert: leaf.certPem, key: leaf.keyPem, minVersion: 'TLSv1.2', keepAliveTimeout: 30_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const out = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const echoUrl = `https://127.0.0.1:${(echo.address() as AddressInfo).port}/mutate`;
  const dispatcher = new Agent({ connect: { ca: ca.certPem }, connections: 1 });
  const post = (url: string) => async (): Promise<void> => {
    const r = await request(url, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json' }, body: text });
    const answer = (await r.body.json()) as { response?: { allowed?: boolean; patch?: string }; request?: unknown };
    if (r.statusCode !== 200 || (url !== echoUrl && !answer.response?.patch)) throw new Error(`unexpected answer ${r.statusCode}`);
  };
  try {
    const http = await pairedLatencies(post(echoUrl), post(`${injector.url}/mutate`), N_HTTP, WARMUP_HTTP);
    const parsed = JSON.parse(text) as unknown;
    const decode = await latencies(() => JSON.stringify(JSON.parse(text)), N_CPU);
    const mutate = await latencies(() => mutatePod(parsed, settings), N_CPU);
    const viaP99 = percentile(http.via, 99);
    const echoP99 = percentile(http.direct, 99);
    const kb = `${(Buffer.byteLength(text) / 1024).toFixed(1)} KiB`;
    return [
      {
        name: `AdmissionReview over HTTPS (keep-alive, sequential, ${kb} Deployment pod with sidecar, proxy, role, task), p99`,
        value: viaP99, unit: 'µs',
        baseline: { name: 'bare HTTPS server decoding and re-encoding the same JSON, p99', value: echoP99, unit: 'µs' },
        ratio: viaP99 / echoP99, ratioNote: 'injector / bare decode server',
        goal: `≤ ${GOAL_P99_US / 1000} ms p99`, met: viaP99 <= GOAL_P99_US,
      },
      {
        name: 'AdmissionReview over HTTPS, p50',
        value: percentile(http.via, 50), unit: 'µs',
        baseline: { name: 'bare HTTPS decode server, p50', value: percentile(http.direct, 50), unit: 'µs' },
        ratio: percentile(http.via, 50) / percentile(http.direct, 50), ratioNote: 'injector / bare decode server',
      },
      {
        name: `mutatePod in process (the same review, parsed), p99 of ${N_CPU}`,
        value: percentile(mutate, 99), unit: 'µs',
        baseline: { name: 'JSON.parse + JSON.stringify of the same body, p99', value: percentile(decode, 99), unit: 'µs' },
        ratio: percentile(mutate, 99) / percentile(decode, 99), ratioNote: 'mutatePod / decode',
      },
      {
        name: 'mutatePod in process, p50',
        value: percentile(mutate, 50), unit: 'µs',
        baseline: { name: 'JSON.parse + JSON.stringify of the same body, p50', value: percentile(decode, 50), unit: 'µs' },
        ratio: percentile(mutate, 50) / percentile(decode, 50), ratioNote: 'mutatePod / decode',
      },
    ];
  } finally {
    await dispatcher.close();
    await injector.close();
    await new Promise<void>((r) => echo.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
    ca.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
