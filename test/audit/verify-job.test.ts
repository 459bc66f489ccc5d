/**
 * Item 24 of issue 7: verifying the audit log must not stop the server. A verify job over 50,000
 * events runs while the real HTTP server keeps answering /healthz; the verifier reads one page
 * at a time. Determinism without timing: the store is wrapped so that every page query waits
 * for a permit the test hands out — the test then proves that /healthz answers (and the job
 * reports progress) *between* pages, i.e. while the job is in progress.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApp, type AdminAuthenticator } from '../../src/server/app.js';
import { registerSystemRoutes } from '../../src/server/system-routes.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { MetricsRegistry } from '../../src/shared/metrics.js';
import { registerAuditRoutes } from '../../src/audit/routes.js';
import { createAuditOperations } from '../../src/audit/operations.js';
import type { Store, SqlValue, Row } from '../../src/store/port.js';
import { ev, makeLog, openStore } from './setup.js';

const ADMIN = 'test-admin-token';
const PAGE_QUERY = /FROM audit_events WHERE seq > \? ORDER BY seq LIMIT \?/;

/** The real store; page queries of the verifier wait for a permit and their row counts are recorded. */
function gatedStore(store: Store) {
  let permits = Infinity;
  const waiters: (() => void)[] = [];
  const pageRows: number[] = [];
  const otherRows: number[] = [];
  let pageDone: (() => void) | null = null;
  const wrapped = Object.create(store) as Store;
  wrapped.all = async <T extends Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> => {
    if (PAGE_QUERY.test(sql)) {
      if (permits <= 0) await new Promise<void>((r) => waiters.push(r));
      permits--;
      const rows = await store.all<T>(sql, params);
      pageRows.push(rows.length);
      pageDone?.();
      return rows;
    }
    const rows = await store.all<T>(sql, params);
    if (/audit_(events|checkpoints)/.test(sql)) otherRows.push(rows.length);
    return rows;
  };
  return {
    store: wrapped,
    pageRows,
    otherRows,
    hold() {
      permits = 0;
    },
    /** Lets one page query run and resolves once it has returned its rows. */
    step(): Promise<void> {
      const done = new Promise<void>((r) => (pageDone = r));
      permits++;
      waiters.shift()?.();
      return done;
    },
    release() {
      permits = Infinity;
      for (const w of waiters.splice(0)) w();
    },
  };
}

async function startServer(store: Store, log: Awaited<ReturnType<typeof makeLog>>['log'], clock: Awaited<ReturnType<typeof makeLog>>['clock'], pageSize: number) {
  const admin: AdminAuthenticator = {
    async authenticate(token) {
      if (token !== ADMIN) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'unknown admin token');
      return { kind: 'admin', tokenId: 'adm1', name: 'test', role: 'admin', via: 'token' };
    },
  };
  const app = createApp({ logger: silentLogger, replicaId: 'r1', bodyLimit: 65536, admin, agents: { authenticate: async () => { throw new TesseraError('TESSERA_TOKEN_MISSING', 'no agents here'); } } });
  registerSystemRoutes(app, { metrics: new MetricsRegistry(), checks: [], version: 'test' });
  const ops = createAuditOperations({ store, clock, logger: silentLogger, replicaId: 'r1', audit: log, pageSize });
  registerAuditRoutes(app, { audit: log, jobs: ops.jobs, checkWitness: (h) => ops.checkWitness(h) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as any };
  };
  return { app, call, ops };
}

test('a verify job over 50,000 events runs off the request path: /healthz answers between pages, one page in memory', async (t) => {
  const N = 50_000;
  const PAGE = 1000;
  const real = await openStore();
  const gate = gatedStore(real);
  const { log, clock } = await makeLog({ store: gate.store, checkpointEveryEvents: 1000 });
  for (let i = 0; i < N; i += 2000) await Promise.all(Array.from({ length: 2000 }, (_, j) => log.append(ev(i + j))));
  const { app, call } = await startServer(gate.store, log, clock, PAGE);
  t.after(() => app.close());

  gate.hold();
  const started = await call('POST', '/v1/admin/audit/verify', { full: true });
  assert.equal(started.status, 202, 'POST answers while the job has not read a single page');
  const id = started.json.job.id as string;

  let healthzDuringJob = 0;
  for (let page = 0; page < N / PAGE; page++) {
    // The job is between pages here: the server must answer.
    const h = await call('GET', '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.json.status, 'ok');
    const j = await call('GET', `/v1/admin/audit/jobs/${id}`);
    assert.equal(j.json.job.state, 'running');
    assert.equal(j.json.job.progress.checked, page * PAGE, 'progress is reported page by page');
    healthzDuringJob++;
    await gate.step();
  }
  gate.release();
  let job;
  for (let i = 0; i < 10_000; i++) {
    job = (await call('GET', `/v1/admin/audit/jobs/${id}`)).json.job;
    if (job.state !== 'running') break;
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(job.state, 'done');
  assert.deepEqual({ ok: job.result.ok, checked: job.result.checked, checkpoints: job.result.checkpoints }, { ok: true, checked: N, checkpoints: N / 2000 } /* one per group commit of 2000 */);
  assert.equal(healthzDuringJob, N / PAGE);

  // Bounded memory: every query the verifier made returned at most one page of rows.
  assert.ok(gate.pageRows.length >= N / PAGE && gate.pageRows.length <= N / PAGE + 2, `page queries: ${gate.pageRows.length}`);
  assert.ok(Math.max(...gate.pageRows) <= PAGE, `largest page: ${Math.max(...gate.pageRows)}`);
  assert.ok(Math.max(0, ...gate.otherRows) <= PAGE, `largest checkpoint query: ${Math.max(0, ...gate.otherRows)}`);
});

test('the page size bounds every query, also with a checkpoint on every event', async () => {
  const real = await openStore();
  const gate = gatedStore(real);
  const { log } = await makeLog({ store: gate.store, checkpointEveryEvents: 1 });
  for (let i = 1; i <= 500; i++) await log.append(ev(i));
  const progress: number[] = [];
  const r = await log.verify({ pageSize: 37, onProgress: (n) => progress.push(n) });
  assert.equal(r.ok, true, JSON.stringify(r.problems));
  assert.equal(r.checkpoints, 500);
  assert.ok(Math.max(...gate.pageRows) <= 37);
  assert.ok(Math.max(...gate.otherRows) <= 37, `largest checkpoint query: ${Math.max(...gate.otherRows)}`);
  assert.equal(progress.at(-1), 500);
  assert.equal(progress.length, Math.ceil(500 / 37));
});

test('one job per replica: a second verify joins the running one; an archive meanwhile is refused with TESSERA_AUDIT_JOB_BUSY', async (t) => {
  const real = await openStore();
  const gate = gatedStore(real);
  const { log, clock } = await makeLog({ store: gate.store, checkpointEveryEvents: 10 });
  for (let i = 1; i <= 30; i++) await log.append(ev(i));
  const { app, call, ops } = await startServer(gate.store, log, clock, 10);
  t.after(() => app.close());
  gate.hold();
  const a = await call('POST', '/v1/admin/audit/verify');
  const b = await call('POST', '/v1/admin/audit/verify', { full: true });
  assert.equal(b.status, 202);
  assert.equal(b.json.created, false);
  assert.equal(b.json.job.id, a.json.job.id);
  await assert.rejects(ops.jobs.start('archive'), (e) => e instanceof TesseraError && e.code === 'TESSERA_AUDIT_JOB_BUSY');
  // Started at the same instant (both before either wrote its row): still one job.
  const [c, d] = await Promise.all([call('POST', '/v1/admin/audit/verify'), call('POST', '/v1/admin/audit/verify')]);
  assert.equal(c.json.job.id, a.json.job.id);
  assert.equal(d.json.job.id, a.json.job.id);
  // Closing the operations stops the job between pages.
  gate.release();
  await ops.close();
  const j = await call('GET', `/v1/admin/audit/jobs/${a.json.job.id}`);
  assert.notEqual(j.json.job.state, 'running');
});

test('concurrent starts on an idle replica create one job', async () => {
  const { log, clock, store } = await makeLog({ checkpointEveryEvents: 10 });
  for (let i = 1; i <= 20; i++) await log.append(ev(i));
  const ops = createAuditOperations({ store, clock, logger: silentLogger, replicaId: 'r1', audit: log, pageSize: 5 });
  const [x, y] = await Promise.all([ops.jobs.start('verify', { full: false }), ops.jobs.start('verify', { full: true })]);
  assert.equal(x.job.id, y.job.id);
  assert.deepEqual([x.created, y.created], [true, false]);
  const done = await ops.jobs.wait(x.job.id);
  assert.equal(done.state, 'done');
  assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_jobs'))!.n, 1);
});

test('a finished job read by another replica must carry a valid signature: an edited result is reported, not shown', async () => {
  const { log, clock, store } = await makeLog({ checkpointEveryEvents: 10 });
  for (let i = 1; i <= 20; i++) await log.append(ev(i));
  await store.run('DELETE FROM audit_events WHERE seq = 7');
  const publicKey = (await import('../../src/audit/chain.js')).toPublicKey(log.publicKey);
  const { createAuditJobs } = await import('../../src/audit/jobs.js');
  const a = createAuditJobs({ store, clock, replicaId: 'a', logger: silentLogger, audit: log, publicKey });
  const b = createAuditJobs({ store, clock, replicaId: 'b', logger: silentLogger, audit: log, publicKey });
  const { job } = await a.start('verify', { full: true });
  const done = await a.wait(job.id);
  assert.equal((done.result as { ok: boolean }).ok, false);
  assert.equal(((await b.get(job.id)).result as { ok: boolean }).ok, false, 'another replica reads the signed result');
  // Someone with write access to the database turns the failed result into a success.
  const row = (await store.get<{ result: string }>('SELECT result FROM audit_jobs WHERE id = ?', [job.id]))!;
  const stored = JSON.parse(row.result) as { result: { ok: boolean; problems: unknown[] }; signature: string };
  stored.result.ok = true;
  stored.result.problems = [];
  await store.run('UPDATE audit_jobs SET result = ? WHERE id = ?', [JSON.stringify(stored), job.id]);
  const seen = await b.get(job.id);
  assert.equal(seen.state, 'failed');
  assert.equal(seen.error?.code, 'TESSERA_AUDIT_JOB_RESULT_INVALID');
  assert.equal(seen.result, undefined);
  // The replica that ran it answers from memory.
  assert.equal(((await a.get(job.id)).result as { ok: boolean }).ok, false);
});
