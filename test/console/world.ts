/**
 * What the console's browser tests look at: a real Tessera with the task-orchestrator example's
 * policies (examples/task-orchestrator, docs/tasks.md) plus two grants for this test, kv secrets,
 * a database lease from an in-memory engine, and a delegation tree built through the real token
 * endpoint (RFC 8693 exchanges, as the example's SDK calls do). Every secret value, password and
 * token goes into `h.sensitive`, which the leak scans look for.
 */
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../e2e/harness.js';
import { MemoryEngine } from '../helpers/memory-engine.js';

export const ORCHESTRATOR = 'spiffe://tessera.local/ns/ops/sa/orchestrator';
export const DB_AGENT = 'spiffe://tessera.local/ns/ops/sa/db-reader';
export const LATE_AGENT = 'spiffe://tessera.local/ns/ops/sa/late-comer';
export const READ_SECRET = 'incidents/summary';
export const INJECT_SECRET = 'incidents/api-key';
const EXAMPLE_POLICIES = 'examples/task-orchestrator/policies';

/** The example's grants plus: the orchestrator (and so its label sub-agents) may read the summary and get a memdb user. */
const TEST_POLICY = `@id("console-e2e-summary-read")
permit (principal == Tessera::Agent::"${ORCHESTRATOR}", action == Tessera::Action::"secret.read", resource == Tessera::Secret::"${READ_SECRET}");

@id("console-e2e-memdb")
permit (principal == Tessera::Agent::"${ORCHESTRATOR}", action == Tessera::Action::"cred.issue", resource == Tessera::Role::"memdb/readonly");
`;

function policyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-console-policies-'));
  for (const f of readdirSync(EXAMPLE_POLICIES)) if (f.endsWith('.cedar')) copyFileSync(join(EXAMPLE_POLICIES, f), join(dir, f));
  writeFileSync(join(dir, 'console-e2e.cedar'), TEST_POLICY);
  return dir;
}

/** A fresh random secret value (the leak scan must find no copy of it anywhere). */
export function secretValue(label: string): string {
  return `${label}-${randomBytes(18).toString('base64url')}`;
}

export interface World {
  readonly h: Harness;
  readonly engine: MemoryEngine;
  readonly orchestratorToken: string;
  readonly leaseId: string;
}

/** Starts Tessera with the example's policies, secrets and one lease (no task tree yet: `buildTaskTree`). */
export async function startWorld(config: Record<string, unknown> = {}): Promise<World> {
  const engine = new MemoryEngine('memdb', { readonly: { defaultTtlMs: 120_000, maxTtlMs: 300_000, renewable: true } });
  const h = await startHarness({ engines: [engine], policyDir: policyDir(), config });
  for (const [path, mode] of [[READ_SECRET, 'read'], [INJECT_SECRET, 'inject']] as const) {
    const value = secretValue(path.replace('/', '-'));
    h.sensitive.add(value);
    const r = await h.admin('PUT', `/v1/admin/secrets/${path}`, { value, mode });
    if (r.status !== 200) throw new Error(`kv put ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  const orchestratorToken = await h.login(await h.joinToken(ORCHESTRATOR));
  const lease = await h.agent(orchestratorToken, 'POST', '/v1/creds/memdb/readonly', {});
  if (lease.status !== 201) throw new Error(`lease: ${lease.status} ${JSON.stringify(lease.body)}`);
  for (const v of Object.values(lease.body.data as Record<string, unknown>)) if (typeof v === 'string' && v.length >= 8) h.sensitive.add(v);
  for (const c of engine.credentials.values()) h.sensitive.add(c.password);
  return { h, engine, orchestratorToken, leaseId: lease.body.lease_id as string };
}

/** One RFC 8693 exchange at the real token endpoint; returns the parsed answer (and records the token). */
export async function exchange(h: Harness, params: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.url}/v1/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      ...params,
    }),
  });
  const body = (await res.json()) as any;
  if (typeof body?.access_token === 'string') h.sensitive.add(body.access_token);
  return { status: res.status, body };
}

export interface TaskTree {
  readonly rootTxn: string;
  readonly rootToken: string;
  readonly readerTxn: string;
  /** The label sub-agent's task token: its call after the revocation must be refused. */
  readonly readerToken: string;
  readonly dbTxn: string;
  readonly dbToken: string;
}

/**
 * The example's tree (examples/task-orchestrator/run.mjs): the orchestrator opens a root task for
 * a user's request and delegates to `incident-reader` (a label sub-agent) and to db-reader (an
 * agent with its own identity, its agent token as actor_token); a `widener` asking for more than
 * its parent holds is refused (TESSERA_TASK_SCOPE_WIDENED).
 */
export async function buildTaskTree(w: World): Promise<TaskTree> {
  const { h } = w;
  const must = (r: { status: number; body: any }, what: string) => {
    if (r.status !== 200) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as { access_token: string; txn: string };
  };
  const root = must(
    await exchange(h, { subject_token: w.orchestratorToken, scope: `secret:incidents/** cred:memdb/readonly tool:incidents/*`, purpose: 'summarise the Q3 incidents', tctx: JSON.stringify({ ticket: 'INC-42' }) }),
    'root task',
  );
  const reader = must(await exchange(h, { subject_token: root.access_token, label: 'incident-reader', scope: `secret:${READ_SECRET}`, purpose: 'read the Q3 summary' }), 'incident-reader');
  const dbAgentToken = await h.login(await h.joinToken(DB_AGENT));
  const db = must(
    await exchange(h, {
      subject_token: root.access_token,
      actor_token: dbAgentToken,
      actor_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      scope: 'cred:memdb/readonly',
      purpose: 'resolution times of the Q3 incidents',
    }),
    'db-reader',
  );
  const widened = await exchange(h, { subject_token: root.access_token, label: 'widener', scope: 'secret:billing/**' });
  if (widened.body?.code !== 'TESSERA_TASK_SCOPE_WIDENED' && widened.body?.error?.code !== 'TESSERA_TASK_SCOPE_WIDENED') {
    throw new Error(`widener: expected TESSERA_TASK_SCOPE_WIDENED, got ${widened.status} ${JSON.stringify(widened.body)}`);
  }
  // The reader uses its token once (a decision on its node).
  const read = await h.agent(reader.access_token, 'GET', `/v1/secrets/${READ_SECRET}`);
  if (read.status !== 200) throw new Error(`reader's read: ${read.status} ${JSON.stringify(read.body)}`);
  return { rootTxn: root.txn, rootToken: root.access_token, readerTxn: reader.txn, readerToken: reader.access_token, dbTxn: db.txn, dbToken: db.access_token };
}
