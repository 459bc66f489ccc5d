/**
 * `npm run bench -- k8s-pod-revoke`: time from the Kubernetes API's DELETED event to the pod's
 * agent token being refused (introspection answers `active: false`), p50/p99 over N pods, against
 * the same `pod` revocation made through the admin API (POST /v1/admin/revocations) measured the
 * same way. Issue 12 Performance: "pod-deletion revocation effective ≤ 1 s after the watch event".
 *
 * The API server is the local HTTPS stand-in of the tests (test/k8s/pods/fake-api.ts): no API
 * server can run here. Tessera is the real composition (src/main.ts) on SQLite. Each pod is
 * measured alone (sequentially), polling introspection over HTTP without pause, so both numbers
 * include one introspection round trip.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/index.js';
import { startTessera } from '../src/main.js';
import { silentLogger } from '../src/shared/logger.js';
import { makeKey, sign } from '../test/identity/keys.js';
import { startFakeApi } from '../test/k8s/pods/fake-api.js';
import { percentile, type BenchResult } from './lib.js';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const N = 40;

export async function run(): Promise<BenchResult[]> {
  const api = await startFakeApi();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-pods-'));
  const key = await makeKey('RS256', 'cluster-key-1');
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  const config = parseConfig({
    data_dir: dir, server: { listen: '127.0.0.1:0' }, policy: { dir: 'examples/policies', watch: false }, audit: { sinks: [{ kind: 'store' }] }, log: { level: 'silent' },
    attestors: [{ kind: 'jwt', name: 'k8s', issuer: ISSUER, audience: 'tessera', jwks_file: jwksFile, template: 'kubernetes', algorithms: ['RS256'] }],
    kubernetes: { watch_pods: true, api: { url: api.url, token_file: api.tokenFile, ca_file: api.caFile } },
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger });
  try {
    await api.watching();
    const url = tessera.localUrl;
    const admin = tessera.adminToken!;
    const login = async (i: number): Promise<{ uid: string; token: string }> => {
      const uid = `5e1f0a2b-3c4d-4e5f-8a9b-${String(i).padStart(12, '0')}`;
      api.addPod({ uid, name: `agent-${i}`, namespace: 'bench' });
      const now = Math.floor(Date.now() / 1000);
      const sa = await sign(key, { iss: ISSUER, aud: ['tessera'], sub: 'system:serviceaccount:bench:agent', iat: now, exp: now + 600, 'kubernetes.io': { namespace: 'bench', serviceaccount: { name: 'agent' }, pod: { name: `agent-${i}`, uid } } });
      const res = await fetch(`${url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: sa, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }) });
      return { uid, token: ((await res.json()) as { access_token: string }).access_token };
    };
    const active = async (token: string): Promise<boolean> => {
      const r = await fetch(`${url}/v1/oauth/introspect`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
      return ((await r.json()) as { active: boolean }).active;
    };
    /** ms from `start` until the token is refused (bounded: 5 s). */
    const untilRefused = async (token: string, start: number): Promise<number> => {
      while (await active(token)) if (performance.now() - start > 5000) throw new Error('token still active 5 s after the revocation');
      return performance.now() - start;
    };
    const viaWatch: number[] = [];
    const viaAdmin: number[] = [];
    for (let i = 0; i < N; i++) {
      const w = await login(i);
      const a = await login(N + i);
      // Warm both paths alike: one introspection each before the clock starts.
      await active(w.token);
      await active(a.token);
      const t0 = api.deletePod(w.uid);
      viaWatch.push(await untilRefused(w.token, t0));
      const t1 = performance.now();
      const r = await fetch(`${url}/v1/admin/revocations`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'pod', target: a.uid }) });
      if (r.status !== 201) throw new Error(`admin revocation: ${r.status}`);
      viaAdmin.push(await untilRefused(a.token, t1));
    }
    viaWatch.sort((x, y) => x - y);
    viaAdmin.sort((x, y) => x - y);
    const p = (xs: number[], q: number) => percentile(xs, q);
    return [
      {
        name: `pod deleted → token refused, p50 (${N} pods; watch event → introspection inactive)`, value: p(viaWatch, 50), unit: 'ms',
        baseline: { name: 'same pod revocation via the admin API, p50', value: p(viaAdmin, 50), unit: 'ms' }, ratio: p(viaWatch, 50) / p(viaAdmin, 50), ratioNote: 'watch / admin API',
        goal: '≤ 1 s after the watch event', met: p(viaWatch, 50) <= 1000,
      },
      {
        name: `pod deleted → token refused, p99 (${N} pods)`, value: p(viaWatch, 99), unit: 'ms',
        baseline: { name: 'same pod revocation via the admin API, p99', value: p(viaAdmin, 99), unit: 'ms' }, ratio: p(viaWatch, 99) / p(viaAdmin, 99), ratioNote: 'watch / admin API',
        goal: '≤ 1 s after the watch event', met: p(viaWatch, 99) <= 1000,
      },
    ];
  } finally {
    await tessera.close();
    await api.close();
  }
}
