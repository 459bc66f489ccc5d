/**
 * Kill switch latency through the whole server (src/main.ts), loopback only, bounded.
 *
 * Each round: an agent logs in; 4 loops send requests with its token back to back
 * (`DELETE /v1/leases/<malformed id>`: token verification, then 400 before any store access);
 * the operator revokes the agent with `POST /v1/admin/revocations`. Measured: the time from the
 * revoke call RETURNING to the first refused (401 TESSERA_TOKEN_REVOKED) response. A refusal
 * that arrives before the call returns counts as 0 ms (enforcement happens before the revoke
 * call writes the store and revokes leases). Also checked: no request SENT after the call
 * returned was accepted. Baseline, same run: the round-trip time of the same request while the
 * token is still valid. Goal (issue): p50/max ≤ 50 ms.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/index.js';
import { startTessera } from '../src/main.js';
import { silentLogger } from '../src/shared/logger.js';
import { percentile, type BenchResult } from './lib.js';

const ROUNDS = 20;
const LOOPS = 4;
const ROUND_MAX_MS = 3000;
const GOAL_MS = 50;

interface Reply {
  status: number;
  body: string;
  sentAt: number;
  receivedAt: number;
}

function request(agent: http.Agent, url: URL, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const req = http.request({ host: url.hostname, port: url.port, method, path, headers: { ...headers, ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}) }, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), sentAt, receivedAt: performance.now() }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    if (body) req.write(body);
    req.end();
  });
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-kill-'));
  const config = parseConfig({
    data_dir: dir,
    server: { listen: '127.0.0.1:0' },
    policy: { dir: 'examples/policies', watch: false },
    audit: { sinks: [{ kind: 'store' }] },
    log: { level: 'silent' },
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger });
  const url = new URL(tessera.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: LOOPS + 2 });
  const admin = { authorization: `Bearer ${tessera.adminToken}`, 'content-type': 'application/json' };
  const latencies: number[] = [];
  const rtts: number[] = [];
  let acceptedAfterReturn = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const spiffeId = `spiffe://${config.trust_domain}/ns/bench/sa/agent-${round}`;
      const jt = await request(agent, url, 'POST', '/v1/admin/join-tokens', admin, JSON.stringify({ spiffe_id: spiffeId, ttl: '5m' }));
      if (jt.status !== 201) throw new Error(`join token: ${jt.status} ${jt.body}`);
      const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: (JSON.parse(jt.body) as { token: string }).token, subject_token_type: 'urn:tessera:token-type:join-token' }).toString();
      const login = await request(agent, url, 'POST', '/v1/oauth/token', { 'content-type': 'application/x-www-form-urlencoded' }, form);
      if (login.status !== 200) throw new Error(`login: ${login.status} ${login.body}`);
      const bearer = { authorization: `Bearer ${(JSON.parse(login.body) as { access_token: string }).access_token}` };

      let firstRefusedAt = Infinity;
      let stop = false;
      let revokeReturnedAt = Infinity;
      const deadline = performance.now() + ROUND_MAX_MS;
      const loop = async (): Promise<void> => {
        while (!stop && performance.now() < deadline) {
          const r = await request(agent, url, 'DELETE', '/v1/leases/not.a.lease', bearer);
          if (r.status === 401 && r.body.includes('TESSERA_TOKEN_REVOKED')) {
            firstRefusedAt = Math.min(firstRefusedAt, r.receivedAt);
            stop = true;
          } else if (r.status === 400) {
            rtts.push(r.receivedAt - r.sentAt);
            if (r.sentAt > revokeReturnedAt) acceptedAfterReturn++;
          } else {
            throw new Error(`unexpected ${r.status} ${r.body.slice(0, 200)}`);
          }
        }
      };
      const loops = Array.from({ length: LOOPS }, loop);
      await new Promise((r) => setTimeout(r, 30)); // the loops are running
      const rev = await request(agent, url, 'POST', '/v1/admin/revocations', admin, JSON.stringify({ kind: 'agent', target: spiffeId, reason: 'bench' }));
      revokeReturnedAt = rev.receivedAt;
      if (rev.status !== 201) throw new Error(`revoke: ${rev.status} ${rev.body}`);
      await Promise.all(loops);
      if (firstRefusedAt === Infinity) throw new Error(`round ${round}: no request was refused within ${ROUND_MAX_MS} ms`);
      latencies.push(Math.max(0, firstRefusedAt - revokeReturnedAt));
    }
  } finally {
    agent.destroy();
    await tessera.close();
    rmSync(dir, { recursive: true, force: true });
  }
  latencies.sort((a, b) => a - b);
  rtts.sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  const max = latencies[latencies.length - 1]!;
  const rtt = percentile(rtts, 50);
  const baseline = { name: 'p50 round trip of the same request, token valid', value: rtt, unit: 'ms' };
  return [
    { name: `kill switch: revoke returned → first refused request, p50 of ${ROUNDS} rounds (${LOOPS} request loops)`, value: p50, unit: 'ms', baseline, ratio: p50 / rtt, ratioNote: 'latency / round trip', goal: `≤ ${GOAL_MS} ms`, met: p50 <= GOAL_MS },
    { name: `kill switch: max of ${ROUNDS} rounds`, value: max, unit: 'ms', baseline, ratio: max / rtt, ratioNote: 'latency / round trip', goal: `≤ ${GOAL_MS} ms`, met: max <= GOAL_MS },
    { name: 'kill switch: requests sent after the revoke call returned and still accepted', value: acceptedAfterReturn, unit: 'requests', goal: '0', met: acceptedAfterReturn === 0 },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
