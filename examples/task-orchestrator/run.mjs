#!/usr/bin/env node
// The task-orchestrator example (README.md next to this file, docs/tasks.md): an orchestrator
// agent opens a task for a user's request, spawns three sub-agents at runtime with narrower task
// tokens — one calls the incident tracker through Tessera's MCP gateway (the tracker's API key is
// injected into the tracker, never given to the agent), one gets its own PostgreSQL user, one
// tries to widen its scope and is refused — then the task tree is killed mid-way and every
// sub-agent's next call is refused and the database user is dropped.
//
//   npm run build && node examples/task-orchestrator/run.mjs
//   TESSERA_EXAMPLE_PG_URL=postgres://postgres:secret@127.0.0.1:5432/postgres node examples/task-orchestrator/run.mjs
//
// Tessera runs in this process (as `tessera dev` does: a throwaway data directory, an admin
// token in memory), on 127.0.0.1 with a free port. No token, key or password is ever printed.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { loadTessera } from './tessera.mjs';

// `tessera-broker/sdk` (TesseraClient, TesseraApiError, …) and, for the in-process server, this
// checkout's own modules: compiled when dist/ is current, else the sources (tessera.mjs).
const { sdk, startTessera, parseConfig, silentLogger, renderTree } = await loadTessera();
const { TesseraClient, TesseraApiError } = sdk;

const here = dirname(fileURLToPath(import.meta.url));
const ORCHESTRATOR = 'spiffe://tessera.local/ns/ops/sa/orchestrator';
const DB_AGENT = 'spiffe://tessera.local/ns/ops/sa/db-reader';
const PG_URL = process.env.TESSERA_EXAMPLE_PG_URL;
const say = (line = '') => process.stdout.write(`${line}\n`);
const codeOf = (err) => (err instanceof TesseraApiError ? err.code : /TESSERA_[A-Z0-9_]+/.exec(String(err?.message))?.[0] ?? String(err?.message ?? err));

// --- the server (in-process, dev mode) -----------------------------------------------------------

async function startServer() {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-example-'));
  const config = parseConfig({
    data_dir: dataDir,
    server: { listen: '127.0.0.1:0' },
    policy: { dir: join(here, 'policies'), watch: false },
    log: { level: 'silent' },
    gateway: {
      servers: [{ name: 'incidents', transport: 'stdio', command: process.execPath, args: [join(here, 'incidents-server.mjs')], env: { INCIDENTS_API_KEY: { secret: 'incidents/api-key' } } }],
    },
  });
  const tessera = await startTessera({ config, mode: 'dev', logger: silentLogger });
  const admin = async (method, path, body) => {
    const res = await globalThis.fetch(tessera.localUrl + path, { method, headers: { authorization: `Bearer ${tessera.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const must = async (method, path, body) => {
    const r = await admin(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body?.error?.code ?? ''} ${r.body?.error?.message ?? ''}`);
    return r.body;
  };
  return { tessera, dataDir, admin, must, close: async () => { await tessera.close(); rmSync(dataDir, { recursive: true, force: true }); } };
}

/** A login for `spiffeId` with a one-time join token (what `tessera dev` prints), for the API and the gateway. */
async function agentClient(srv, spiffeId, options = {}) {
  const join = await srv.must('POST', '/v1/admin/join-tokens', { spiffe_id: spiffeId, ttl: '5m' });
  const client = new TesseraClient({ addr: srv.tessera.localUrl, audience: [srv.tessera.url, `${srv.tessera.url}/mcp`], ...options });
  await client.loginWithJoinToken(join.token);
  return client;
}

// --- PostgreSQL (optional: sub-agent 2) ----------------------------------------------------------

/** A throwaway database with the incidents table and a read-only group role; the engine and role configured in Tessera. */
async function preparePostgres(srv, adminUrl) {
  const tag = randomBytes(4).toString('hex');
  const database = `tessera_example_${tag}`;
  const group = `tessera_example_${tag}_reader`;
  const su = new pg.Client({ connectionString: adminUrl });
  await su.connect();
  await su.query(`CREATE DATABASE "${database}"`);
  await su.query(`CREATE ROLE "${group}" NOLOGIN`);
  await su.end();
  const dbUrl = new URL(adminUrl);
  dbUrl.pathname = `/${database}`;
  const db = new pg.Client({ connectionString: dbUrl.toString() });
  await db.connect();
  await db.query('CREATE TABLE q3_incidents (id text PRIMARY KEY, severity text NOT NULL, minutes_to_resolve int NOT NULL)');
  await db.query("INSERT INTO q3_incidents VALUES ('INC-311', 'high', 40), ('INC-318', 'medium', 610), ('INC-327', 'high', 95)");
  await db.query(`GRANT CONNECT ON DATABASE "${database}" TO "${group}"; GRANT USAGE ON SCHEMA public TO "${group}"; GRANT SELECT ON q3_incidents TO "${group}"`);
  await db.end();
  await srv.must('PUT', '/v1/admin/engines/postgres/incidents', { connection_url: dbUrl.toString(), username_prefix: `tsr_${tag}_`, pool_size: 2, connect_timeout: '5s' });
  await srv.must('PUT', '/v1/admin/engines/postgres/incidents/roles/incidents-reader', { groups: [group], default_ttl: '10m', max_ttl: '1h' });
  return {
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      await c.query(`DROP ROLE IF EXISTS "${group}"`);
      await c.end();
    },
  };
}

/** Logs in to PostgreSQL with an issued credential; the password is used, never printed. */
async function queryAs(cred, sql) {
  const c = new pg.Client({ host: String(cred.data.host), port: Number(cred.data.port), database: String(cred.data.database), user: String(cred.data.username), password: String(cred.data.password), connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

// --- output -------------------------------------------------------------------------------------

async function printTree(srv, txn, title) {
  const r = await srv.must('GET', `/v1/admin/tasks/${txn}?events=true`);
  say(`== ${title} (as \`tessera task tree ${txn}\` shows it)`);
  for (const line of renderTree(r.task, true)) say(line);
  say();
}

/**
 * The exposure report: how long each task's credentials were (or still are) live
 * (`GET /v1/admin/exposure?by=task`, docs/tasks.md). A server without that route (404) prints nothing.
 */
async function printExposure(srv) {
  const r = await srv.admin('GET', '/v1/admin/exposure?by=task');
  if (r.status !== 200) throw new Error(`GET /v1/admin/exposure: ${r.status} ${r.body?.error?.code ?? ''}`);
  say(`== exposure by task (since ${r.body.since}, generated ${r.body.generated_at})`);
  for (const g of r.body.groups ?? []) {
    say(`${g.key}  credentials ${g.count}  live ${g.live}  p50 ${g.p50_s}s  p95 ${g.p95_s}s  max ${g.max_s}s  credential-seconds ${g.credential_seconds}`);
  }
  for (const l of r.body.live ?? []) say(`live: ${l.kind} ${l.id}  agent ${l.agent}  task ${l.task ?? '-'}  ${l.remaining_s}s left`);
  say();
}

// --- the scenario -------------------------------------------------------------------------------

async function main() {
  const srv = await startServer();
  const cleanups = [() => srv.close()];
  try {
    say(`== Tessera ${srv.tessera.url} (in this process, dev mode)`);
    // The tracker's API key: an operator puts it in the kv store once. Nobody prints it.
    await srv.must('PUT', '/v1/admin/secrets/incidents/api-key', { value: randomBytes(24).toString('base64url'), mode: 'inject' });
    let pgReady;
    if (PG_URL) {
      pgReady = await preparePostgres(srv, PG_URL);
      cleanups.unshift(() => pgReady.drop());
    }

    // The orchestrator. Its own tokens are unbound here so that each sub-agent can be bound to a
    // key of its own (docs/tasks.md: "the pattern for sub-agents that hold keys of their own is
    // an unbound parent"); a bound orchestrator's children would all share its key.
    const orchestrator = await agentClient(srv, ORCHESTRATOR, { dpop: false });
    cleanups.unshift(() => orchestrator.close());
    const request = 'summarise the Q3 incidents';
    const root = await orchestrator.openTask({
      scope: 'tool:incidents/* secret:incidents/** cred:postgres/incidents-reader',
      purpose: request,
      facts: { request: 'q3-summary', quarter: 'Q3' },
      ttl: 240,
    });
    say(`user request: "${request}"`);
    say(`root task ${root.txn}  depth ${root.depth}/${root.maxDepth}  scope: ${root.scope.join(' ')}`);
    say();

    // Sub-agent 1: reads the incidents through the MCP gateway. Its own fresh DPoP key; the
    // tracker's API key is injected into the tracker process, the agent sees only the answer.
    const reader = await root.delegate({ label: 'incident-reader', scope: 'tool:incidents/list_incidents secret:incidents/api-key', purpose: 'list the Q3 incidents' });
    say(`[incident-reader] task ${reader.txn}  depth ${reader.depth}  ${reader.bound ? `DPoP key ${reader.dpopThumbprint.slice(0, 8)}…` : 'unbound'}  scope: ${reader.scope.join(' ')}`);
    const mcp = new Client({ name: 'incident-reader', version: '1.0.0' });
    await mcp.connect(new StreamableHTTPClientTransport(reader.mcpUrl, { fetch: reader.authorizedFetch() }));
    cleanups.unshift(() => mcp.close());
    say(`[incident-reader] tools it may call: ${(await mcp.listTools()).tools.map((t) => t.name).join(', ')}`);
    const listed = await mcp.callTool({ name: 'incidents__list_incidents', arguments: { quarter: 'Q3' } });
    for (const line of listed.content[0].text.split('\n')) say(`[incident-reader]   ${line}`);
    say();

    // Sub-agent 2: a reporting agent with an identity of its own (its agent token is the
    // actor_token), bound to ITS key; it gets its own PostgreSQL user for minutes.
    let dbTask;
    let lease;
    if (pgReady) {
      const dbAgent = await agentClient(srv, DB_AGENT);
      cleanups.unshift(() => dbAgent.close());
      dbTask = await root.delegate({ actorToken: dbAgent, scope: 'cred:postgres/incidents-reader', purpose: 'resolution times of the Q3 incidents' });
      say(`[db-reader] task ${dbTask.txn}  depth ${dbTask.depth}  acting: ${DB_AGENT}  ${dbTask.dpopThumbprint === dbAgent.dpopThumbprint ? 'bound to its own key' : 'unbound'}`);
      lease = await dbTask.issueCredential('postgres', 'incidents-reader', { ttl: '10m' });
      say(`[db-reader] lease ${lease.lease_id}: database user ${lease.data.username} until ${lease.expires_at}`);
      const rows = await queryAs(lease, 'SELECT count(*)::int AS n, max(minutes_to_resolve)::int AS worst FROM q3_incidents');
      say(`[db-reader]   ${rows[0].n} incidents in Q3, slowest resolved in ${rows[0].worst} minutes`);
    } else {
      say('[db-reader] skipped: no PostgreSQL. Set TESSERA_EXAMPLE_PG_URL to a superuser URL of a throwaway server, e.g.');
      say('[db-reader]   docker run --rm -d -p 5432:5432 -e POSTGRES_PASSWORD=example postgres:16');
      say('[db-reader]   TESSERA_EXAMPLE_PG_URL=postgres://postgres:example@127.0.0.1:5432/postgres node examples/task-orchestrator/run.mjs');
    }
    say();

    // Sub-agent 3: asks for more than its parent holds. Refused, never trimmed.
    try {
      await root.delegate({ label: 'widener', scope: 'secret:incidents/** secret:billing/**', purpose: 'also read billing' });
      say('[widener] UNEXPECTED: the wider scope was granted');
    } catch (err) {
      say(`[widener] refused: ${codeOf(err)}${err.oauthError ? ` (${err.oauthError})` : ''}`);
    }
    say();

    await printTree(srv, root.txn, 'the task tree');

    // The kill, mid-way: the whole tree, its tokens, its leases, its gateway sessions.
    const kill = await srv.must('POST', '/v1/admin/revocations', { kind: 'task', target: root.txn, reason: 'kill the Q3 summary mid-way' });
    say(`== killed task tree ${root.txn} (tessera revoke task ${root.txn}): leases revoked ${kill.leases_revoked ?? 0}`);
    try {
      await mcp.callTool({ name: 'incidents__list_incidents', arguments: { quarter: 'Q4' } });
      say('[incident-reader] UNEXPECTED: the call went through');
    } catch {
      // The MCP client reports the HTTP failure; the stable code is in the gateway's answer.
      const probe = await reader.authorizedFetch()(reader.mcpUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'incident-reader', version: '1.0.0' } } }) });
      const body = await probe.json().catch(() => ({}));
      say(`[incident-reader] next call refused: ${probe.status} ${body?.error?.data?.code ?? body?.error?.code ?? ''}`);
    }
    if (dbTask) {
      try {
        await dbTask.issueCredential('postgres', 'incidents-reader');
        say('[db-reader] UNEXPECTED: a new credential was issued');
      } catch (err) {
        say(`[db-reader] next call refused: ${codeOf(err)}`);
      }
      const leases = await srv.must('GET', '/v1/admin/leases?limit=100');
      say(`[db-reader] lease ${lease.lease_id}: ${leases.leases.find((l) => l.lease_id === lease.lease_id)?.state}`);
      try {
        await queryAs(lease, 'SELECT 1');
        say('[db-reader] UNEXPECTED: the database user still logs in');
      } catch (err) {
        say(`[db-reader] database login refused: ${err.code === '28P01' || err.code === '28000' ? 'the user is gone' : err.code ?? err.message}`);
      }
    }
    try {
      await root.delegate({ label: 'late', scope: 'secret:incidents/api-key' });
      say('[orchestrator] UNEXPECTED: delegated after the kill');
    } catch (err) {
      say(`[orchestrator] delegating again refused: ${codeOf(err)}${err.details?.cause ? ` (${err.details.cause})` : ''}`);
    }
    say();

    await printTree(srv, root.txn, 'the task tree after the kill');
    await printExposure(srv);
  } finally {
    for (const fn of cleanups) {
      try {
        await fn();
      } catch {
        /* best effort: the rest still runs */
      }
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`task-orchestrator example failed: ${err?.message ?? err}\n`);
    process.exit(1);
  },
);
