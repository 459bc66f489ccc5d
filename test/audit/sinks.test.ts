/**
 * The forwarding audit sinks (http, syslog) against real local listeners on 127.0.0.1, and
 * their output used as the witness of `verify --witness`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { TesseraError } from '../../src/shared/errors.js';
import { createLogger } from '../../src/shared/logger.js';
import { parseConfig } from '../../src/config/index.js';
import { checkpointPublicKey } from '../../src/audit/log.js';
import { verifyAuditLocal } from '../../src/audit/offline.js';
import { syslogMessage } from '../../src/audit/sinks/syslog.js';
import { appendSequential, makeLog, openStore, tempDir, testSealer } from './setup.js';

const isCode = (code: string) => (e: unknown) => e instanceof TesseraError && e.code === code;

/** Waits for a condition by polling (bounded; no assumption about how long the work takes). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 4000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A collector that answers each request with the next status of `statuses` (then 200). */
async function collector(statuses: number[] = [], tls?: { key: string; cert: string }): Promise<{ url: string; got: Received[]; close(): Promise<void> }> {
  const got: Received[] = [];
  const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = statuses.shift() ?? 200;
      if (status === 200) got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(status).end();
    });
  };
  const server: Server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/ingest?source=tessera`, got, close: () => new Promise((r) => server.close(() => r())) };
}

function capturingLogger() {
  const lines: string[] = [];
  return { logger: createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } as never }), text: () => lines.join('') };
}

const fast = { retry_initial: 5, retry_max: 20, timeout: 2000, batch_max_lines: 500, max_queue: 100_000 };

test('http sink: records and signed heads reach the collector as JSON lines with the auth header; its output is a witness', async (t) => {
  const c = await collector();
  t.after(() => c.close());
  const secret = `Bearer collector-${Date.now()}-s3cr3t`;
  const { logger, text } = capturingLogger();
  const sealer = testSealer();
  const store = await openStore(join(tempDir(), 'a.db'));
  const { log } = await makeLog({ store, sealer, logger, checkpointEveryEvents: 5, env: { AUDIT_TOKEN: secret }, sinks: [{ kind: 'store' }, { kind: 'http', url: c.url, auth: { header: 'authorization', env: 'AUDIT_TOKEN' }, ...fast }] });
  await appendSequential(log, 1, 12);
  await until(() => c.got.map((g) => g.body).join('').split('\n').filter((l) => l.includes('"tessera.audit.head"')).length === 12, 'all heads delivered');
  for (const g of c.got) {
    assert.equal(g.headers.authorization, secret);
    assert.equal(g.headers['content-type'], 'application/x-ndjson');
  }
  const lines = c.got.map((g) => g.body).join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines.filter((l) => l.type === undefined).map((l) => l.seq), Array.from({ length: 12 }, (_, i) => i + 1));
  assert.ok(lines.filter((l) => l.type === 'tessera.audit.head').every((h) => typeof h.signature === 'string' && h.key_id === log.keyId));
  // What the collector stored is a witness: the store holds everything it saw.
  const witness = join(tempDir(), 'collector.jsonl');
  writeFileSync(witness, c.got.map((g) => g.body).join(''));
  const r = await verifyAuditLocal({ store, publicKey: await checkpointPublicKey(store, sealer), witnessPath: witness });
  assert.equal(r.ok, true, JSON.stringify(r.problems));
  assert.equal(r.witness!.heads, 12);
  await log.close();
  assert.ok(!text().includes(secret), 'the auth secret was logged');
});

test('http sink: retries 503 and 429 in order, drops a batch the collector refuses (400), never logs the secret', async (t) => {
  const c = await collector([503, 429, 400]);
  t.after(() => c.close());
  const secret = 'token-that-must-not-be-logged';
  const dir = tempDir();
  writeFileSync(join(dir, 'token'), `${secret}\n`);
  const { logger, text } = capturingLogger();
  const { log, metrics } = await makeLog({ logger, sinks: [{ kind: 'store' }, { kind: 'http', url: c.url, auth: { header: 'x-collector-key', file: join(dir, 'token') }, ...fast }] });
  await log.append({ kind: 'server.started', actor: { id: 'system' }, action: 'server.start', result: 'success', details: { version: 'a', replica: 'r1' } });
  // Attempts: 503 (retry), 429 (retry), 400 (the batch is dropped).
  await until(() => metrics.counter('tessera_audit_sink_dropped_total', '').get({ sink: 'http' }) === 2, 'the refused batch dropped');
  assert.equal(c.got.length, 0);
  assert.equal(metrics.counter('tessera_audit_sink_errors_total', '').get({ sink: 'http' }), 3);
  await appendSequential(log, 2, 3);
  await until(() => c.got.length > 0 && c.got.map((g) => g.body).join('').includes('"seq":3,'), 'later batches delivered');
  assert.equal(c.got[0]!.headers['x-collector-key'], secret, 'trailing newline of the file removed');
  await log.close();
  assert.ok(!text().includes(secret), 'the auth secret was logged');
  assert.match(text(), /HTTP 503/);
  assert.doesNotMatch(text(), /source=tessera/, 'the URL query is not logged');
});

test('http sink: the queue is bounded while the collector is down, and the store still commits (the sink never counts for failing closed)', async () => {
  const down = await collector();
  const url = down.url;
  await down.close(); // nothing listens there any more
  const { log, metrics, store } = await makeLog({ sinks: [{ kind: 'store' }, { kind: 'http', url, ...fast, max_queue: 5 }] });
  await appendSequential(log, 1, 10); // 10 records + 10 heads = 20 lines
  assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit_events'))!.n, 10);
  assert.ok(metrics.gauge('tessera_audit_sink_queue', '').get({ sink: 'http' }) <= 5);
  assert.ok(metrics.counter('tessera_audit_sink_dropped_total', '').get({ sink: 'http' }) >= 15);
  await log.close();
  // Only forwarding sinks configured: the events could not be made durable, so appends fail closed.
  const { log: only } = await makeLog({ sinks: [{ kind: 'http', url, ...fast }] });
  await assert.rejects(only.append({ kind: 'server.started', actor: { id: 'system' }, action: 'server.start', result: 'success', details: { version: 'a', replica: 'r1' } }), isCode('TESSERA_AUDIT_UNAVAILABLE'));
  await only.close();
});

test('http sink over TLS: delivered with the configured CA, refused (and retried) without it', async (t) => {
  const dir = tempDir();
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);
  const c = await collector([], { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') });
  t.after(() => c.close());
  const { log } = await makeLog({ sinks: [{ kind: 'store' }, { kind: 'http', url: c.url, ca_file: join(dir, 'cert.pem'), ...fast }] });
  await appendSequential(log, 1, 2);
  await until(() => c.got.map((g) => g.body).join('').includes('"seq":2,'), 'delivered over TLS');
  await log.close();
  const { log: untrusted, metrics } = await makeLog({ sinks: [{ kind: 'store' }, { kind: 'http', url: c.url, ...fast }] });
  const before = c.got.length;
  await appendSequential(untrusted, 1, 1);
  await until(() => metrics.counter('tessera_audit_sink_errors_total', '').get({ sink: 'http' }) >= 2, 'TLS failures retried');
  assert.equal(c.got.length, before, 'nothing delivered to a server the CA set does not trust');
  await untrusted.close();
});

test('http sink secrets: a missing env variable or unreadable file stops the start with TESSERA_AUDIT_SINK_SECRET_UNAVAILABLE', async () => {
  const url = 'http://127.0.0.1:9/x';
  await assert.rejects(makeLog({ env: {}, sinks: [{ kind: 'store' }, { kind: 'http', url, auth: { env: 'NOPE' } }] }), isCode('TESSERA_AUDIT_SINK_SECRET_UNAVAILABLE'));
  await assert.rejects(makeLog({ sinks: [{ kind: 'store' }, { kind: 'http', url, auth: { file: join(tempDir(), 'missing') } }] }), isCode('TESSERA_AUDIT_SINK_SECRET_UNAVAILABLE'));
  const f = join(tempDir(), 'two-lines');
  writeFileSync(f, 'a\nb\n');
  await assert.rejects(makeLog({ sinks: [{ kind: 'store' }, { kind: 'http', url, auth: { file: f } }] }), isCode('TESSERA_AUDIT_SINK_SECRET_UNAVAILABLE'));
  await assert.rejects(makeLog({ env: { E: '' }, sinks: [{ kind: 'store' }, { kind: 'http', url, auth: { env: 'E' } }] }), isCode('TESSERA_AUDIT_SINK_SECRET_UNAVAILABLE'));
});

test('syslog sink: RFC 5424 over UDP and over TCP (octet counting); the received lines are a witness', async (t) => {
  // UDP listener
  const udp = createSocket('udp4');
  const udpMsgs: string[] = [];
  udp.on('message', (m) => udpMsgs.push(m.toString('utf8')));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  t.after(() => udp.close());
  // TCP listener parsing RFC 6587 octet-counted frames
  const tcpMsgs: string[] = [];
  const tcp = createTcpServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const sp = buf.indexOf(32);
        if (sp < 0) break;
        const len = Number(buf.subarray(0, sp).toString('ascii'));
        if (buf.length < sp + 1 + len) break;
        tcpMsgs.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
        buf = buf.subarray(sp + 1 + len);
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  t.after(() => tcp.close());

  const sealer = testSealer();
  const store = await openStore(join(tempDir(), 's.db'));
  const { log } = await makeLog({
    store, sealer,
    sinks: [
      { kind: 'store' },
      { kind: 'syslog', transport: 'udp', host: '127.0.0.1', port: (udp.address() as AddressInfo).port, facility: 'local3', app_name: 'tessera', ...fast },
      { kind: 'syslog', transport: 'tcp', host: '127.0.0.1', port: (tcp.address() as AddressInfo).port, facility: 'auth', app_name: 'tessera-audit', ...fast },
    ],
  });
  await appendSequential(log, 1, 4);
  await until(() => udpMsgs.length === 8 && tcpMsgs.length === 8, 'syslog messages');
  const re = /^<(\d+)>1 (\d{4}-\d\d-\d\dT[\d:.]+Z) (\S+) (\S+) (\d+) (audit|audit-head) - \uFEFF(\{.*\})$/;
  for (const [msgs, pri, app] of [[udpMsgs, 19 * 8 + 6, 'tessera'], [tcpMsgs, 4 * 8 + 6, 'tessera-audit']] as const) {
    const parsed = msgs.map((m) => re.exec(m));
    assert.ok(parsed.every(Boolean), msgs.find((m) => !re.test(m)) ?? '');
    assert.ok(parsed.every((p) => Number(p![1]) === pri && p![4] === app));
    assert.deepEqual(parsed.map((p) => p![6]), ['audit', 'audit-head', 'audit', 'audit-head', 'audit', 'audit-head', 'audit', 'audit-head']);
    assert.equal((JSON.parse(parsed[7]![7]!) as { seq: number }).seq, 4);
  }
  // The syslog lines, as a receiver writes them to a file, are a witness too.
  const witness = join(tempDir(), 'syslog.log');
  writeFileSync(witness, `${tcpMsgs.join('\n')}\n`);
  const r = await verifyAuditLocal({ store, publicKey: await checkpointPublicKey(store, sealer), witnessPath: witness });
  assert.equal(r.ok, true, JSON.stringify(r.problems));
  assert.equal(r.witness!.heads, 4);
  await log.close();
});

test('syslog header fields are sanitised to RFC 5424 PRINTUSASCII', () => {
  const m = syslogMessage('{"seq":1}\n', { facility: 'local0', appName: 'tes sera\n', host: 'h o', procId: '', at: new Date(0) });
  assert.equal(m, '<134>1 1970-01-01T00:00:00.000Z h_o tes_sera_ - audit - \uFEFF{"seq":1}');
});

test('config: audit sinks, retention and verify keys are validated at the edge', () => {
  const cfg = (audit: unknown) => parseConfig({ audit });
  const bad = (audit: unknown, re: RegExp) => assert.throws(() => cfg(audit), (e) => isCode('TESSERA_CONFIG_INVALID')(e) && re.test((e as Error).message), JSON.stringify(audit));
  bad({ sinks: [{ kind: 'http', url: 'https://c.example/x' }] }, /at least one of store, file or stdout/);
  bad({ sinks: [{ kind: 'store' }, { kind: 'http', url: 'https://user:pw@c.example/x' }] }, /without user:password@/);
  bad({ sinks: [{ kind: 'store' }, { kind: 'http', url: 'ftp://c.example/x' }] }, /http:\/\/ or https:\/\//);
  bad({ sinks: [{ kind: 'store' }, { kind: 'http', url: 'https://c.example/x', auth: { env: 'A', file: '/f' } }] }, /exactly one of env or file/);
  bad({ sinks: [{ kind: 'store' }, { kind: 'http', url: 'https://c.example/x', auth: { header: 'bad header', env: 'A' } }] }, /header name/);
  bad({ sinks: [{ kind: 'store' }, { kind: 'syslog', transport: 'tls' }] }, /transport/);
  bad({ sinks: [{ kind: 'store' }, { kind: 'syslog', facility: 'kern' }] }, /facility/);
  bad({ retention: { keep_events: 5 } }, /archive_dir/);
  bad({ retention: { archive_dir: '/a', segment_events: 10 } }, /segment_events/);
  bad({ verify: { page_size: 0 } }, /page_size/);
  const ok = cfg({ sinks: [{ kind: 'store' }, { kind: 'http', url: 'https://c.example/x', auth: { env: 'COLLECTOR_TOKEN' } }, { kind: 'syslog' }], retention: { archive_dir: '/var/lib/tessera/archive' } });
  assert.deepEqual(ok.audit.sinks[1], { kind: 'http', url: 'https://c.example/x', auth: { header: 'authorization', env: 'COLLECTOR_TOKEN' }, timeout: 10_000, max_queue: 100_000, batch_max_lines: 500, retry_initial: 1000, retry_max: 60_000 });
  assert.deepEqual(ok.audit.sinks[2], { kind: 'syslog', transport: 'udp', host: '127.0.0.1', port: 514, facility: 'local0', app_name: 'tessera', timeout: 10_000, max_queue: 100_000, batch_max_lines: 500, retry_initial: 1000, retry_max: 60_000 });
  assert.deepEqual(ok.audit.retention, { archive_dir: '/var/lib/tessera/archive', keep_events: 100_000, keep_for: 30 * 86_400_000, every: 3_600_000, segment_events: 1_000_000 });
  assert.equal(ok.audit.verify.page_size, 1000);
});
