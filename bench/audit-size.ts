/**
 * Audit storage sizing (docs/audit.md "Sizing"): bytes per event in the SQLite store (rows, the
 * two indexes, checkpoints; after a WAL checkpoint), in an archive segment (plain and gzip),
 * and in a file-sink witness (record + head lines), for a realistic mix of event kinds and
 * group-commit sizes. Run: `npx tsx bench/audit-size.ts [events]`. Prints a table and GB/day at
 * 50, 200 and 1000 events/s.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import { createKeySealer } from '../src/secrets/sealer.js';
import { ManualClock } from '../src/shared/clock.js';
import { silentLogger } from '../src/shared/logger.js';
import { createAuditLog } from '../src/audit/log.js';
import { archiveAudit } from '../src/audit/archive.js';
import { toPublicKey } from '../src/audit/chain.js';
import type { AuditEvent } from '../src/audit/events.js';

const hex = (n: number): string => randomBytes(n).toString('hex');
const agent = (i: number): string => `spiffe://prod.example.com/ns/team-${i % 7}/sa/agent-${i % 40}`;

/** What one request typically leaves: a login, a decision, a secret read, a lease, a tool call. */
function event(i: number): AuditEvent {
  const base = { actor: { id: agent(i), chain: [agent(i + 1)], user: `user-${i % 300}@example.com` }, txn: `task_${hex(8)}`, purpose: 'triage incoming tickets', where: { source: `10.0.${i % 250}.${i % 200}`, replica: 'tessera-0', requestId: randomUUID() } };
  switch (i % 5) {
    case 0:
      return { ...base, kind: 'auth.login', action: 'auth.login', result: 'success', details: { attestor: 'kubernetes', token_jti_hmac: hex(32), expires_at: 1_767_225_600_000 + i } } as AuditEvent;
    case 1:
      return { ...base, kind: 'policy.decision', action: 'secret.read', resource: `secret:payments/prod/db-${i % 30}`, result: 'allow', reason: { policies: ['payments-readers', 'prod-guard'] }, details: { principal: agent(i), cached: i % 3 === 0 } } as AuditEvent;
    case 2:
      return { ...base, kind: 'secret.read', action: 'secret.read', resource: `secret:payments/prod/db-${i % 30}`, result: 'success', reason: { policies: ['payments-readers'] }, details: { version: 3, mode: 'read' } } as AuditEvent;
    case 3:
      return { ...base, kind: 'lease.created', action: 'cred.issue', resource: 'cred:postgres/orders-ro', result: 'success', reason: { policies: ['orders-ro'] }, details: { lease_hmac: hex(32), engine: 'postgres', role: 'orders-ro', expires_at: 1_767_225_600_000 + i } } as AuditEvent;
    default:
      return { ...base, kind: 'gateway.tool_call', action: 'tool.call', resource: 'tool:github/create_issue', result: 'allow', reason: { policies: ['github-writers'] }, details: { server: 'github', tool: 'create_issue', args_sha256: hex(32), decision: 'allow', upstream_status: 'ok', latency_ms: 42 + (i % 100), scrub_hits: 0, session_hmac: hex(32) } } as AuditEvent;
  }
}

async function measure(n: number, batch: number): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-audit-size-'));
  try {
    const file = join(dir, 'audit.db');
    const witness = join(dir, 'witness.jsonl');
    const store = openSqliteStore({ file });
    await store.migrate();
    const empty = statSync(file).size;
    const clock = new ManualClock();
    const log = await createAuditLog({ store, clock, sealer: createKeySealer(randomBytes(32), 'mk_size'), replicaId: 'tessera-0', logger: silentLogger, checkpointEveryEvents: 1000, checkpointEveryMs: 0, sinks: [{ kind: 'store' }, { kind: 'file', path: witness }] });
    for (let i = 0; i < n; i += batch) await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, k) => log.append(event(i + k))));
    await log.close();
    await store.close();
    const db = new Database(file);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const bytes = (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number);
    const table = (db.prepare('SELECT SUM(length(body) + length(prev_hash) + length(hash) + length(kind) + length(coalesce(actor, \'\')) + length(coalesce(txn, \'\'))) AS b FROM audit_events').get() as { b: number }).b;
    db.close();
    return { events: n, batch, storeBytesPerEvent: (bytes - empty) / n, rowPayloadPerEvent: table / n, witnessBytesPerEvent: statSync(witness).size / n };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function archiveSize(n: number): Promise<{ archive: number; gzip: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-audit-arch-'));
  try {
    const store = openSqliteStore({ file: join(dir, 'audit.db') });
    await store.migrate();
    const clock = new ManualClock();
    const log = await createAuditLog({ store, clock, sealer: createKeySealer(randomBytes(32), 'mk_size'), replicaId: 'tessera-0', logger: silentLogger, checkpointEveryEvents: 1000, checkpointEveryMs: 0 });
    for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => log.append(event(i + k))));
    await log.checkpoint();
    const archiveDir = join(dir, 'archive');
    const r = await archiveAudit({ store, publicKey: toPublicKey(log.publicKey), keyId: log.keyId, sign: (t, p) => log.signStatement(t, p), clock, policy: { archiveDir, keepEvents: 0, keepForMs: 0, segmentEvents: n }, logger: silentLogger });
    await log.close();
    await store.close();
    const files = readdirSync(archiveDir).filter((f) => f.endsWith('.jsonl'));
    const raw = files.reduce((s, f) => s + statSync(join(archiveDir, f)).size, 0);
    const gz = files.reduce((s, f) => s + gzipSync(readFileSync(join(archiveDir, f))).length, 0);
    const archived = r.segments.reduce((s, seg) => s + seg.records, 0);
    return { archive: raw / archived, gzip: gz / archived };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const n = Number(process.argv[2] ?? 20_000);
const rows = [await measure(n, 1), await measure(n, 50)];
const arch = await archiveSize(n);
const gbDay = (bytes: number, rate: number): string => ((bytes * rate * 86_400) / 1e9).toFixed(2);
console.log('| group commit | store B/event | row payload B/event | file-sink witness B/event (record + head) |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(`| ${r.batch} event(s) | ${r.storeBytesPerEvent!.toFixed(0)} | ${r.rowPayloadPerEvent!.toFixed(0)} | ${r.witnessBytesPerEvent!.toFixed(0)} |`);
console.log(`\narchive segment: ${arch.archive.toFixed(0)} B/event plain, ${arch.gzip.toFixed(0)} B/event gzip`);
const store = rows[1]!.storeBytesPerEvent!;
console.log('\n| events/s | store GB/day | archive GB/day (plain) | archive GB/day (gzip) |');
console.log('|---|---|---|---|');
for (const rate of [50, 200, 1000]) console.log(`| ${rate} | ${gbDay(store, rate)} | ${gbDay(arch.archive, rate)} | ${gbDay(arch.gzip, rate)} |`);
