/**
 * `tessera audit verify|archive` end to end: in-process against the real audit routes on a
 * real store (online: jobs polled, the witness streamed in batches), and the real binary on a
 * data directory (offline), including the issue 7 attack.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createApp, type AdminAuthenticator } from '../../src/server/app.js';
import { TesseraError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { registerAuditRoutes } from '../../src/audit/routes.js';
import { createAuditOperations } from '../../src/audit/operations.js';
import { createAuditLog } from '../../src/audit/log.js';
import { ManualClock } from '../../src/shared/clock.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { loadMasterKeyFile, masterSealer } from '../../src/secrets/master-key.js';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';
import { appendSequential, makeLog, openStore, tempDir } from './setup.js';

const ADMIN = 'test-admin-token';
const reject = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };

async function server() {
  const dir = tempDir();
  const witness = join(dir, 'witness.jsonl');
  const archiveDir = join(dir, 'archive');
  const file = join(dir, 'a.db');
  const { log, store, clock } = await makeLog({ store: await openStore(file), checkpointEveryEvents: 10, sinks: [{ kind: 'store' }, { kind: 'file', path: witness }] });
  await appendSequential(log, 1, 300); // more heads than one witness request carries
  const admin: AdminAuthenticator = {
    async authenticate(token) {
      if (token !== ADMIN) throw new TesseraError('TESSERA_ADMIN_TOKEN_INVALID', 'unknown admin token');
      return { kind: 'admin', tokenId: 'adm1', name: 'test', role: 'admin', via: 'token' };
    },
  };
  const app = createApp({ logger: silentLogger, replicaId: 'r1', bodyLimit: 65536, admin, agents: { authenticate: async () => { throw new TesseraError('TESSERA_TOKEN_MISSING', 'none'); } } });
  const ops = createAuditOperations({ store, clock, logger: silentLogger, replicaId: 'r1', audit: log, pageSize: 50, retention: { archiveDir, keepEvents: 100, keepForMs: 0, segmentEvents: 1000, everyMs: 0 } });
  registerAuditRoutes(app, { audit: log, jobs: ops.jobs, checkWitness: (h) => ops.checkWitness(h) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const cli = async (argv: string[]) => {
    let stdout = '';
    let stderr = '';
    const io: CliIo = { stdout: { write: (s: string) => (stdout += s), isTTY: false }, stderr: { write: (s: string) => (stderr += s) }, env: { TESSERA_ADDR: url, TESSERA_TOKEN: ADMIN } };
    return { code: await runCli(argv, runtime, io), stdout, stderr };
  };
  return { app, cli, witness, dir, file, log };
}

test('online: verify polls a job, --witness streams the sink output, rollback is caught, archive runs; bad flags get stable codes', async (t) => {
  const { app, cli, witness, dir, file } = await server();
  t.after(() => app.close());
  let r = await cli(['audit', 'verify', '--interval', '10']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /audit log verified: 300 events, 30 signed checkpoints/);
  assert.match(r.stdout, /note: rollback of the whole store .* --witness/);
  r = await cli(['audit', 'verify', '--witness', witness, '--interval', '10']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /audit log verified: 0 events.*\(incremental, after seq 300\)/);
  assert.match(r.stdout, /note: witness: 300 signed heads of this log checked, up to seq 300/);
  assert.doesNotMatch(r.stdout, /rollback of the whole store/);

  // Truncate past the last checkpoint and put the genuine (witnessed) head of seq 295 in place.
  const db = new Database(file);
  const head295 = readFileSync(witness, 'utf8').split('\n').find((l) => l.includes('"tessera.audit.head"') && l.includes('"seq":295,'))!;
  const h = JSON.parse(head295) as { seq: number; ts: number; hash: string; key_id: string; signature: string };
  db.prepare('DELETE FROM audit_events WHERE seq > 295').run();
  db.prepare('DELETE FROM audit_checkpoints WHERE seq > 295').run();
  db.prepare("DELETE FROM meta WHERE key = 'audit.verified'").run(); // the signed verification position would betray it
  db.prepare("UPDATE meta SET value = ? WHERE key = 'audit.head'").run(JSON.stringify({ seq: h.seq, ts: h.ts, hash: h.hash, keyId: h.key_id, signature: h.signature }));
  r = await cli(['audit', 'verify', '--full', '--interval', '10']);
  assert.equal(r.code, 0, 'the store alone cannot tell');
  r = await cli(['--json', 'audit', 'verify', '--full', '--witness', witness, '--interval', '10']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /TESSERA_AUDIT_VERIFY_FAILED/);
  const json = JSON.parse(r.stdout) as { ok: boolean; problems: { seq: number; kind: string }[]; witness: { heads: number } };
  assert.equal(json.ok, false);
  assert.deepEqual(json.problems.map((p) => [p.seq, p.kind]), [[296, 'rolled_back'], [297, 'rolled_back'], [298, 'rolled_back'], [299, 'rolled_back'], [300, 'rolled_back']]);
  r = await cli(['audit', 'verify', '--witness', witness, '--interval', '10']);
  assert.match(r.stdout, /FAILED\n {2}seq 296 rolled_back: the witness saw a signed head at seq 296/);
  db.close();

  // Witness and flag errors.
  r = await cli(['audit', 'verify', '--witness', join(dir, 'nope.jsonl')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /TESSERA_AUDIT_WITNESS_UNREADABLE/);
  writeFileSync(join(dir, 'empty.jsonl'), '{"seq":1}\n');
  r = await cli(['audit', 'verify', '--witness', join(dir, 'empty.jsonl'), '--interval', '10']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /TESSERA_AUDIT_WITNESS_EMPTY/);
  for (const argv of [['audit', 'verify', '--archive-dir', dir], ['audit', 'verify', '--offline', '--archives'], ['audit', 'verify', '--interval', '0'], ['audit', 'archive', '--archive-dir', dir]]) {
    r = await cli(argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.stderr, /TESSERA_CLI_USAGE/);
  }
});

test('online: audit archive prints the segments, and verify --archives proves them', async (t) => {
  const { app, cli } = await server();
  t.after(() => app.close());
  let r = await cli(['audit', 'archive', '--interval', '10']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /archived events 1\.\.200 to tessera-audit-ack_[0-9a-f]{16}-0000000000000001-0000000000000200\.jsonl \(\d+ bytes\)\npruned 200 events from the store; it now starts after seq 200/);
  r = await cli(['audit', 'archive', '--interval', '10']);
  assert.match(r.stdout, /nothing to archive/);
  r = await cli(['--json', 'audit', 'verify', '--archives', '--interval', '10']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const v = JSON.parse(r.stdout) as { checked: number; pruned: unknown };
  assert.deepEqual({ checked: v.checked, pruned: v.pruned }, { checked: 300, pruned: { segments: 1, to_seq: 200, archives: 'verified' } });
});

const BIN = join(process.cwd(), 'bin', 'tessera.js');
function bin(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('offline, the real binary: the issue 7 attack fails with bad_head_signature; --witness; archive --offline then verify --archive-dir', async () => {
  const dir = tempDir();
  const keyFile = join(dir, 'master.key');
  writeFileSync(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  const witness = join(dir, 'witness.jsonl');
  const archiveDir = join(dir, 'archive');
  const config = join(dir, 'tessera.yaml');
  writeFileSync(config, `data_dir: ${join(dir, 'data')}\nmaster_key:\n  file: ${keyFile}\naudit:\n  retention:\n    archive_dir: ${archiveDir}\n    keep_events: 10\n    keep_for: 0\n`);
  const dbFile = join(dir, 'data', 'tessera.db');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const store = openSqliteStore({ file: dbFile });
  await store.migrate();
  const log = await createAuditLog({ store, clock: new ManualClock(), sealer: masterSealer(loadMasterKeyFile(keyFile)), replicaId: 'r1', logger: silentLogger, checkpointEveryMs: 0, checkpointEveryEvents: 10, sinks: [{ kind: 'store' }, { kind: 'file', path: witness }] });
  await appendSequential(log, 1, 45);
  await log.close();
  await store.close();

  let r = bin(['audit', 'verify', '--offline', '--config', config, '--witness', witness]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /audit log verified: 45 events/);

  r = bin(['audit', 'archive', '--offline', '--config', config]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /archived events 1\.\.30/);
  r = bin(['--json', 'audit', 'verify', '--offline', '--config', config, '--archive-dir', archiveDir, '--witness', witness]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.deepEqual((JSON.parse(r.stdout) as { checked: number }).checked, 45);

  // The attack of issue 7: tail and later checkpoints deleted, an earlier checkpoint as the head.
  const db = new Database(dbFile);
  db.prepare('DELETE FROM audit_events WHERE seq > 40').run();
  db.prepare('DELETE FROM audit_checkpoints WHERE seq > 40').run();
  const cp = db.prepare('SELECT seq, ts, hash, key_id, signature FROM audit_checkpoints WHERE seq = 40').get() as { seq: number; ts: number; hash: string; key_id: string; signature: string };
  db.prepare("UPDATE meta SET value = ? WHERE key = 'audit.head'").run(JSON.stringify({ seq: cp.seq, ts: cp.ts, hash: cp.hash, keyId: cp.key_id, signature: cp.signature }));
  db.close();
  r = bin(['audit', 'verify', '--offline', '--config', config]);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /audit log verification FAILED\n {2}seq 40 bad_head_signature: /);
  assert.match(r.stderr, /TESSERA_AUDIT_VERIFY_FAILED/);
});
