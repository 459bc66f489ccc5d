/**
 * Starts the whole of Tessera (src/main.ts composition) on loopback with a temp data dir, and
 * records every secret and token a test uses so the leak scan can look for them afterwards.
 */
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { jsonCall } from '../helpers/http.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import { startTessera, type RunningTessera } from '../../src/main.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { DynamicEngine } from '../../src/leases/index.js';
import type { Clock } from '../../src/shared/clock.js';
import type { ToolProvider } from '../../src/gateway/index.js';
import { recordAuditEvents, registerSensitive } from '../helpers/leak-registry.js';

export interface Harness {
  readonly tessera: RunningTessera;
  readonly url: string;
  readonly adminToken: string;
  readonly dataDir: string;
  readonly auditFile: string;
  /** Secrets and tokens this test used: the leak scan looks for each. */
  readonly sensitive: Set<string>;
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  agent(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  joinToken(spiffeId: string, ttl?: string): Promise<string>;
  login(joinToken: string, audience?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startHarness(opts: { config?: Record<string, unknown>; engines?: DynamicEngine[]; policyDir?: string; fileSinkOnly?: boolean; /** Reuse a data dir (a restart of an earlier harness). */ dataDir?: string; clock?: Clock; providers?: ToolProvider[]; /** `tessera dev --root-token` (a fixed admin token that survives restarts). */ rootToken?: string } = {}): Promise<Harness> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'tessera-e2e-'));
  const auditFile = join(dataDir, 'audit.jsonl');
  const config = parseConfig({
    data_dir: dataDir,
    server: { listen: '127.0.0.1:0' },
    policy: { dir: opts.policyDir ?? 'examples/policies', watch: false },
    audit: { sinks: opts.fileSinkOnly ? [{ kind: 'file', path: auditFile }] : [{ kind: 'store' }, { kind: 'file', path: auditFile }], checkpoint_every_events: 50 },
    log: { level: 'silent' },
    ...(opts.config ?? {}),
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger, engines: opts.engines, ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.providers ? { gatewayProviders: opts.providers } : {}), ...(opts.rootToken ? { rootToken: opts.rootToken } : {}) });
  const url = tessera.localUrl;
  const adminToken = tessera.adminToken!;
  const sensitive = new Set<string>([adminToken]);
  if (tessera.joinToken) sensitive.add(tessera.joinToken);

  const call = (token: string | undefined, method: string, path: string, body?: unknown) => jsonCall(url, token, method, path, body);

  const h: Harness = {
    tessera, url, adminToken, dataDir, auditFile, sensitive,
    admin: (m, p, b) => call(adminToken, m, p, b),
    agent: (t, m, p, b) => call(t, m, p, b),
    async joinToken(spiffeId, ttl = '10m') {
      const r = await call(adminToken, 'POST', '/v1/admin/join-tokens', { spiffe_id: spiffeId, ttl });
      if (r.status !== 201) throw new Error(`join token: ${r.status} ${JSON.stringify(r.body)}`);
      sensitive.add(r.body.token);
      return r.body.token as string;
    },
    async login(joinToken, audience) {
      const form = new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: joinToken,
        subject_token_type: 'urn:tessera:token-type:join-token',
        ...(audience ? { audience } : {}),
      });
      const res = await fetch(`${url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
      const body = (await res.json()) as any;
      if (res.status !== 200) throw Object.assign(new Error(`login: ${res.status} ${JSON.stringify(body)}`), { status: res.status, body });
      sensitive.add(body.access_token);
      return body.access_token as string;
    },
    async close() {
      // Feed the suite-wide leak scan before the data goes away.
      try {
        recordAuditEvents((await auditTexts(h)).map((e) => JSON.stringify(e)));
      } catch {
        /* store already closed */
      }
      registerSensitive(...sensitive);
      await tessera.close();
    },
  };
  return h;
}

/** Every audit event this harness wrote, from the store and the JSONL sink, as raw text. */
export async function auditTexts(h: Harness): Promise<{ text: string; kind: string }[]> {
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string; kind: string; actor: string | null; txn: string | null }>('SELECT body, kind, actor, txn FROM audit_events ORDER BY seq');
  const out = rows.map((r) => ({ text: `${r.body} ${r.actor ?? ''} ${r.txn ?? ''}`, kind: r.kind }));
  if (existsSync(h.auditFile)) {
    for (const line of readFileSync(h.auditFile, 'utf8').split('\n').filter(Boolean)) {
      // Event lines, and the signed head lines the sink also writes (they carry `type`, no event).
      const o = JSON.parse(line) as { event?: { kind: string }; type?: string };
      out.push({ text: line, kind: o.event?.kind ?? o.type ?? 'unknown' });
    }
  }
  return out;
}
