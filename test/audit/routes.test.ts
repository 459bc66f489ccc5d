import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { createApp, type AdminAuthenticator } from '../../src/server/app.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { registerAuditRoutes } from '../../src/audit/routes.js';
import { createAuditOperations } from '../../src/audit/operations.js';
import { appendSequential, makeLog, tempDir } from './setup.js';
import type { RetentionPolicy } from '../../src/audit/archive.js';

const ADMIN = 'test-admin-token';

async function start(o: { retention?: RetentionPolicy } = {}) {
  const witness = `${tempDir()}/witness.jsonl`;
  const { log, store, clock } = await makeLog({ checkpointEveryEvents: 5, sinks: [{ kind: 'store' }, { kind: 'file', path: witness }] });
  await appendSequential(log, 1, 12);
  const admin: AdminAuthenticator = {
    async authenticate(token) {
      if (token !== ADMIN) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'unknown admin token');
      return { kind: 'admin', tokenId: 'adm1', name: 'test', role: 'admin', via: 'token' };
    },
  };
  const app = createApp({
    logger: silentLogger,
    replicaId: 'r1',
    bodyLimit: 65536,
    admin,
    agents: { authenticate: async () => { throw new TesseraError('TESSERA_TOKEN_MISSING', 'no agents here'); } },
  });
  const ops = createAuditOperations({ store, clock, logger: silentLogger, replicaId: 'r1', audit: log, pageSize: 4, ...(o.retention ? { retention: { ...o.retention, everyMs: 0 } } : {}) });
  registerAuditRoutes(app, { audit: log, jobs: ops.jobs, checkWitness: (h) => ops.checkWitness(h) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address() as { port: number };
  const base = `http://127.0.0.1:${addr.port}`;
  const call = async (method: string, path: string, body?: unknown, token: string | null = ADMIN) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
     
    return { status: res.status, json: (await res.json()) as any };
  };
  /** Polls the job until it is no longer running (bounded; no timing assumption). */
  const finished = async (id: string) => {
    for (let i = 0; i < 10_000; i++) {
      const r = await call('GET', `/v1/admin/audit/jobs/${id}`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      if (r.json.job.state !== 'running') return r.json.job;
      await new Promise((res) => setImmediate(res));
    }
    throw new Error('the job did not finish');
  };
  return { app, log, store, call, finished, ops, witness };
}

test('GET /v1/admin/audit lists, filters and pages; bad input and missing auth get stable codes', async (t) => {
  const { app, call, log } = await start();
  t.after(() => app.close());
  let r = await call('GET', '/v1/admin/audit?limit=5');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.events.map((e: { seq: number }) => e.seq), [1, 2, 3, 4, 5]);
  assert.equal(r.json.next_seq, 5);
  r = await call('GET', `/v1/admin/audit?after_seq=${r.json.next_seq}&limit=100`);
  assert.equal(r.json.events.length, 7);
  assert.equal(r.json.next_seq, 12);
  r = await call('GET', `/v1/admin/audit?actor=${encodeURIComponent('spiffe://tessera.local/agent/a2')}&txn=txn-1`);
  assert.deepEqual(r.json.events.map((e: { seq: number }) => e.seq), [5]);
  r = await call('GET', '/v1/admin/audit?kind=policy.decision&limit=1');
  assert.equal(r.json.events[0].event.kind, 'policy.decision');

  for (const q of ['limit=0', 'limit=abc', 'after_seq=-1', 'kind=BAD KIND', 'bogus=1']) {
    r = await call('GET', `/v1/admin/audit?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID', q);
  }
  r = await call('GET', '/v1/admin/audit', undefined, null);
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  r = await call('GET', '/v1/admin/audit', undefined, 'wrong');
  assert.equal(r.json.error.code, 'TESSERA_ADMIN_TOKEN_INVALID');
  r = await call('POST', '/v1/admin/audit/verify', undefined, null);
  assert.equal(r.json.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');

  r = await call('POST', '/v1/admin/audit/hmac', { value: 'jti-1' });
  assert.equal(r.status, 200);
  assert.equal(r.json.hmac, log.hmac('jti-1'));
  r = await call('POST', '/v1/admin/audit/hmac', { value: '' });
  assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
});

test('POST /v1/admin/audit/verify starts a job; GET …/jobs/:id reports it; incremental runs resume; full finds the tampered seq', async (t) => {
  const { app, call, store, finished, log } = await start();
  t.after(() => app.close());
  let r = await call('POST', '/v1/admin/audit/verify');
  assert.equal(r.status, 202);
  assert.equal(r.json.created, true);
  assert.match(r.json.job.id, /^ajob_[A-Za-z0-9_-]{16}$/);
  assert.equal(r.json.job.kind, 'verify');
  assert.equal(r.json.job.state, 'running');
  let job = await finished(r.json.job.id);
  assert.equal(job.state, 'done');
  assert.deepEqual({ ok: job.result.ok, checked: job.result.checked, checkpoints: job.result.checkpoints, problems: job.result.problems, mode: job.result.mode }, { ok: true, checked: 12, checkpoints: 2, problems: [], mode: 'full' });
  assert.ok(job.finished_at && job.started_at);

  // The next run resumes after the signed verification position.
  await appendSequential(log, 13, 15);
  r = await call('POST', '/v1/admin/audit/verify', { wait: true });
  assert.equal(r.status, 200);
  assert.deepEqual({ state: r.json.job.state, ok: r.json.job.result.ok, mode: r.json.job.result.mode, from: r.json.job.result.from_seq, checked: r.json.job.result.checked }, { state: 'done', ok: true, mode: 'incremental', from: 12, checked: 3 });

  // Damage before the verified position is found by a full run (an incremental one does not re-read it).
  await store.run('DELETE FROM audit_events WHERE seq = 3');
  r = await call('POST', '/v1/admin/audit/verify', { full: true, wait: true });
  job = r.json.job;
  assert.equal(job.result.ok, false);
  assert.deepEqual(job.result.problems.map((p: { seq: number; kind: string }) => [p.seq, p.kind]), [[3, 'deleted']]);
  assert.match(job.result.problems[0].message, /event 3 is missing/);
  // A failed run does not move the verified position: the next incremental run starts where the last good one ended.
  r = await call('POST', '/v1/admin/audit/verify', { wait: true });
  assert.equal(r.json.job.result.from_seq, 15);

  // A rewritten event after the verified position is found by the incremental run.
  await appendSequential(log, 16, 17);
  await store.run("UPDATE audit_events SET body = replace(body, 'secret:db/16', 'secret:db/xx') WHERE seq = 16");
  r = await call('POST', '/v1/admin/audit/verify', { wait: true });
  assert.deepEqual(r.json.job.result.problems.map((p: { seq: number; kind: string }) => [p.seq, p.kind]), [[16, 'modified']]);
  // A forged verification position is reported, and the run falls back to full.
  await store.run("UPDATE meta SET value = replace(value, '\"seq\":15', '\"seq\":17') WHERE key = 'audit.verified'");
  r = await call('POST', '/v1/admin/audit/verify', { wait: true });
  assert.equal(r.json.job.result.mode, 'full');
  assert.ok(r.json.job.result.problems.some((p: { kind: string }) => p.kind === 'bad_verified_signature'));
});

test('audit job and witness endpoints: bad input, unknown jobs, archive without retention get stable codes', async (t) => {
  const { app, call } = await start();
  t.after(() => app.close());
  for (const body of [{ full: 'yes' }, { bogus: 1 }, { wait: 1 }]) {
    const r = await call('POST', '/v1/admin/audit/verify', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
  }
  let r = await call('GET', '/v1/admin/audit/jobs/not-a-job');
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
  r = await call('GET', '/v1/admin/audit/jobs/ajob_AAAAAAAAAAAAAAAA');
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 'TESSERA_AUDIT_JOB_NOT_FOUND');
  r = await call('GET', '/v1/admin/audit/jobs/ajob_AAAAAAAAAAAAAAAA', undefined, null);
  assert.equal(r.json.error.code, 'TESSERA_ADMIN_TOKEN_MISSING');
  r = await call('POST', '/v1/admin/audit/archive');
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'TESSERA_AUDIT_ARCHIVE_NOT_CONFIGURED');
  r = await call('POST', '/v1/admin/audit/verify', { archives: true });
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'TESSERA_AUDIT_ARCHIVE_NOT_CONFIGURED');

  const head = { seq: 1, ts: 1, hash: 'a'.repeat(64), key_id: 'ack_x', signature: 'abc' };
  for (const body of [{}, { heads: [] }, { heads: [{ ...head, seq: 0 }] }, { heads: [{ ...head, hash: 'xyz' }] }, { heads: [{ ...head, signature: 'a+b/' }] }, { heads: [{ ...head, extra: 1 }] }, { heads: Array.from({ length: 129 }, () => head) }]) {
    r = await call('POST', '/v1/admin/audit/witness', body);
    assert.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
    assert.equal(r.json.error.code, 'TESSERA_REQUEST_INVALID');
  }
  r = await call('POST', '/v1/admin/audit/witness', { heads: [head] });
  assert.equal(r.status, 200);
  assert.deepEqual({ other: r.json.other_logs, heads: r.json.heads, problems: r.json.problems }, { other: 1, heads: 0, problems: [] });
});

test('POST /v1/admin/audit/archive runs a job with the configured retention; verify with archives proves the whole history', async (t) => {
  const archiveDir = `${tempDir()}/archive`;
  const { app, call, store } = await start({ retention: { archiveDir, keepEvents: 2, keepForMs: 0, segmentEvents: 1000 } });
  t.after(() => app.close());
  let r = await call('POST', '/v1/admin/audit/archive', { wait: true });
  assert.equal(r.status, 200);
  assert.equal(r.json.job.kind, 'archive');
  assert.equal(r.json.job.state, 'done');
  assert.deepEqual(r.json.job.result.segments.map((s: { from_seq: number; to_seq: number }) => [s.from_seq, s.to_seq]), [[1, 10]]);
  assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_events'))!.n, 2);
  r = await call('POST', '/v1/admin/audit/verify', { wait: true });
  assert.deepEqual({ ok: r.json.job.result.ok, checked: r.json.job.result.checked, pruned: r.json.job.result.pruned }, { ok: true, checked: 2, pruned: { segments: 1, to_seq: 10, archives: 'not_checked' } });
  r = await call('POST', '/v1/admin/audit/verify', { archives: true, wait: true });
  assert.deepEqual({ ok: r.json.job.result.ok, checked: r.json.job.result.checked, mode: r.json.job.result.mode, pruned: r.json.job.result.pruned }, { ok: true, checked: 12, mode: 'full', pruned: { segments: 1, to_seq: 10, archives: 'verified' } });
  assert.deepEqual(r.json.job.params, { full: true, archives: true });
});

test('the signed verification position is a rollback signal: a store rolled back below it fails verification', async (t) => {
  const { app, call, store, witness } = await start();
  t.after(() => app.close());
  assert.equal((await call('POST', '/v1/admin/audit/verify', { wait: true })).json.job.result.ok, true); // verified up to 12
  // Roll back to seq 10 consistently (events, checkpoints, the genuine head of seq 10 as the witness saw it).
  const line = readFileSync(witness, 'utf8').split('\n').find((l) => l.includes('"tessera.audit.head"') && l.includes('"seq":10,'))!;
  const h = JSON.parse(line) as { seq: number; ts: number; hash: string; key_id: string; signature: string };
  await store.run('DELETE FROM audit_events WHERE seq > 10');
  await store.run('DELETE FROM audit_checkpoints WHERE seq > 10');
  await store.run("UPDATE meta SET value = ? WHERE key = 'audit.head'", [JSON.stringify({ seq: h.seq, ts: h.ts, hash: h.hash, keyId: h.key_id, signature: h.signature })]);
  for (const body of [{ full: true, wait: true }, { wait: true }]) {
    const r = await call('POST', '/v1/admin/audit/verify', body);
    assert.ok(r.json.job.result.problems.some((p: { seq: number; kind: string }) => p.seq === 12 && p.kind === 'rolled_back'), JSON.stringify(r.json.job.result.problems));
  }
});

test('a malformed stored row is shown flagged (never a 5xx); malformed request bodies are 400 TESSERA_REQUEST_MALFORMED on every audit route (pen-test F6)', async (t) => {
  const { app, call, store, finished } = await start();
  t.after(() => app.close());
  // Rows edited in the store: a body that is not JSON, JSON that is not an object.
  await store.run(`UPDATE audit_events SET body = ? WHERE seq = 3`, ['{"kind":"secret.read","actor":']);
  await store.run(`UPDATE audit_events SET body = ? WHERE seq = 4`, ['[1,2']);
  await store.run(`UPDATE audit_events SET body = ? WHERE seq = 5`, ['"just a string"']);
  const r = await call('GET', '/v1/admin/audit?limit=100');
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const bySeq = new Map<number, { event: unknown; problem?: string }>(r.json.events.map((e: { seq: number; event: unknown; problem?: string }) => [e.seq, e]));
  for (const seq of [3, 4, 5]) assert.deepEqual([bySeq.get(seq)?.event, bySeq.get(seq)?.problem], [null, 'body_malformed'], `seq ${seq}`);
  assert.equal(bySeq.get(6)?.problem, undefined);
  // The verifier reports them as modified, it does not crash.
  const v = await call('POST', '/v1/admin/audit/verify', { full: true });
  const job = await finished(v.json.job.id);
  assert.equal(job.state, 'done', JSON.stringify(job));
  assert.equal(job.result.ok, false);
  assert.deepEqual([...new Set(job.result.problems.filter((p: { seq: number }) => p.seq >= 3 && p.seq <= 5).map((p: { kind: string }) => p.kind))], ['modified']);
  // Request bodies that are not JSON, on every audit route that takes one.
  for (const path of ['/v1/admin/audit/verify', '/v1/admin/audit/witness', '/v1/admin/audit/archive', '/v1/admin/audit/hmac']) {
    for (const body of ['{"full":', '{"heads":[{"seq":1,}]}', 'nul', '\u0000', '{"a":1}}']) {
      const res = await fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body,
      });
      const json = (await res.json()) as { error?: { code?: string } };
      assert.deepEqual([res.status, json.error?.code], [400, 'TESSERA_REQUEST_MALFORMED'], `${path} ${JSON.stringify(body)}`);
    }
  }
});
