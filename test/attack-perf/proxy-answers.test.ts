/**
 * Attacks on the proxy's answer path after ADR 0298 (undici dispatch handler, scrub session, the
 * last chunk scrubbed whole when the upstream's Content-Length is reached): a malicious upstream
 * speaking raw HTTP/1.1 (lying Content-Length, chunked + Content-Length, 1xx, HEAD with a body,
 * Content-Encoding, the key in headers, one-byte chunks, a stall then close). It closes every
 * connection after its answer (Connection: close), so no exchange lands on a connection it closed. Whatever it does,
 * the injected credential never reaches the agent — in the raw bytes, de-chunked, or decompressed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { gzipSync, gunzipSync, inflateSync, brotliDecompressSync, deflateSync, brotliCompressSync } from 'node:zlib';
import { startHarness, auditTexts, type Harness } from '../e2e/harness.js';
import { policyDir, until } from '../proxy/helpers.js';

const TD = 'spiffe://tessera.local';
const AGENT = `${TD}/agents/allowed-a`;
const KEY = `sk-atk-${randomBytes(18).toString('hex')}`;
const POLICIES = `
@id("proxy-routes")
permit (principal, action == Tessera::Action::"http.request", resource is Tessera::Route);
@id("proxy-inject")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"proxy");
`;

let h: Harness;
let raw: Server;
let proxyPort = 0;
let token: string;
const sockets = new Set<Socket>();
const flood = new Map<string, { written: number }>();
const slow = new Map<string, { lines: number; cut: boolean; ended: boolean }>();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the scripted upstream does for a path (it gets the injected key it received). */
type Script = (s: Socket, key: string, q: URLSearchParams) => Promise<void> | void;
const scripts: Record<string, Script> = {
  // The body "A…key…B" with a correct Content-Length, written in two pieces cut at `at`.
  async split(s, key, q) {
    const body = Buffer.from(`{"x":"${key}"}`);
    const at = Number(q.get('at'));
    if (q.get('chunked') === '1') {
      const chunk = (b: Buffer): Buffer => (b.length === 0 ? b : Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]));
      s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      s.write(chunk(body.subarray(0, at)));
      await sleep(5);
      s.end(Buffer.concat([chunk(body.subarray(at)), Buffer.from('0\r\n\r\n')]));
      return;
    }
    s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    s.write(body.subarray(0, at));
    await sleep(5);
    s.end(body.subarray(at));
  },
  // Content-Length shorter than the body: the key comes after the declared end.
  clShort(s, key) {
    const body = `ok ${key} tail`;
    s.end(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n${body}`);
  },
  // Content-Length shorter: the declared end falls inside the key.
  async clInside(s, key) {
    const body = `ok ${key} tail`;
    s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${3 + 10}\r\n\r\n`);
    s.write(body.slice(0, 6));
    await sleep(5);
    s.end(body.slice(6));
  },
  // Content-Length longer than the body, then the connection closes.
  async clLong(s, key) {
    const body = `ok ${key}`;
    s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${body.length + 100}\r\n\r\n`);
    s.write(body.slice(0, 10));
    await sleep(5);
    s.end(body.slice(10));
  },
  // Both Transfer-Encoding: chunked and Content-Length.
  both(s, key) {
    const body = `ok ${key}`;
    s.end(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
  },
  // A 100 and a 103 before the 200, each carrying the key in a header.
  info(s, key) {
    s.end(`HTTP/1.1 100 Continue\r\nX-K: ${key}\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </${key}>\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${key.length + 3}\r\n\r\nok ${key}`);
  },
  // HEAD answered with a body that carries the key.
  head(s, key) {
    s.end(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${key.length}\r\n\r\n${key}`);
  },
  // The key echoed in response headers, and in the name of one.
  headers(s, key) {
    s.end(`HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nWWW-Authenticate: Bearer error="invalid_token", error_description="${key}"\r\nSet-Cookie: a=${key}\r\nX-${key}: 1\r\nContent-Length: 2\r\n\r\nno`);
  },
  // A compressed body although the proxy asked for identity.
  gzip(s, key, q) {
    const enc = q.get('enc') ?? 'gzip';
    const text = `{"error":"bad key ${key}"}`;
    const body = enc === 'deflate' ? deflateSync(text) : enc === 'br' ? brotliCompressSync(text) : gzipSync(text);
    const chunked = q.get('chunked') === '1';
    s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Encoding: ${enc}\r\n${chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length}`}\r\n\r\n`);
    if (chunked) s.end(Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]));
    else s.end(body);
  },
  // One byte per chunk (chunked), with pauses so they arrive separately.
  async tiny(s, key) {
    s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (const c of `[${key}]`) {
      s.write(`1\r\n${c}\r\n`);
      await sleep(1);
    }
    s.end('0\r\n\r\n');
  },
  // A line every 20 ms for 3 s (chunked), the key in every line; `slow` records whether it was cut.
  async slow(s, key, q) {
    const st = { lines: 0, cut: false, ended: false };
    slow.set(q.get('id') ?? '', st);
    s.on('close', () => (st.cut = !st.ended));
    s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 150 && !s.destroyed; i++) {
      const line = `line ${i} ${key}\n`;
      s.write(`${line.length.toString(16)}\r\n${line}\r\n`);
      st.lines++;
      await sleep(20);
    }
    st.ended = true;
    if (!s.destroyed) s.end('0\r\n\r\n');
  },
  // 64 MiB as fast as the connection takes it (with a Content-Length or chunked); `flood` records the bytes written.
  async flood(s, _key, q) {
    const st = { written: 0 };
    flood.set(q.get('id') ?? '', st);
    const total = 64 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 'a');
    const chunked = q.get('chunked') === '1';
    s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\n${chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${total}`}\r\n\r\n`);
    while (st.written < total && !s.destroyed) {
      const ok = s.write(chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece);
      st.written += piece.length;
      if (!ok) await new Promise((r) => { s.once('drain', r); s.once('close', r); });
    }
  },
  // The key in a trailer field of a chunked answer.
  trailer(s, key) {
    s.end(`HTTP/1.1 200 OK\r\nConnection: close\r\nTrailer: X-K\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-K: ${key}\r\n\r\n`);
  },
  // Half of the key, a stall, then the connection closes.
  async stall(s, key) {
    s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const part = `x ${key.slice(0, key.length - 3)}`;
    s.write(`${part.length.toString(16)}\r\n${part}\r\n`);
    await sleep(300);
    s.destroy();
  },
};

before(async () => {
  raw = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end < 0 || (s as Socket & { started?: boolean }).started) return;
      (s as Socket & { started?: boolean }).started = true;
      const [line, ...fields] = got.slice(0, end).split('\r\n');
      const url = new URL(line!.split(' ')[1]!, 'http://x');
      const key = fields.find((f) => f.toLowerCase().startsWith('x-api-key:'))?.slice(10).trim() ?? '';
      const name = url.pathname.split('/').pop()!;
      void Promise.resolve(scripts[name]!(s, key, url.searchParams)).catch(() => undefined);
    });
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  const port = (raw.address() as { port: number }).port;
  h = await startHarness({
    policyDir: policyDir({ 'proxy.cedar': POLICIES }),
    config: {
      proxy: {
        listen: '127.0.0.1:0', timeout: '2s',
        routes: [{ name: 'raw', upstream: `http://127.0.0.1:${port}`, hosts: ['raw.test'], credential: { secret: 'proxy/raw-key', header: 'x-api-key', format: '{value}' }, allow_private: ['127.0.0.1/32'] }],
      },
    },
  });
  h.sensitive.add(KEY);
  proxyPort = Number(new URL(h.tessera.proxyUrl!).port);
  const put = await h.admin('PUT', '/v1/admin/secrets/proxy/raw-key', { value: KEY, mode: 'inject' });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  token = await h.login(await h.joinToken(AGENT), `${h.tessera.url}/proxy`);
});

after(async () => {
  await h?.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => raw?.close(() => r()));
});

/** One request on a raw socket (Connection: close); every byte the agent got, until close. */
function rawCall(method: string, path: string, bearer = token): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = connect(proxyPort, '127.0.0.1');
    const parts: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(), 4000);
    s.on('data', (c: Buffer) => parts.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts));
    });
    s.write(`${method} /raw${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${bearer}\r\nConnection: close\r\n\r\n`);
  });
}

/** The body of a raw answer, de-chunked when it is chunked (a truncated one as far as it goes). */
function bodyOf(bytes: Buffer): Buffer {
  const sep = bytes.indexOf('\r\n\r\n');
  if (sep < 0) return Buffer.alloc(0);
  const head = bytes.subarray(0, sep).toString('latin1');
  let rest = bytes.subarray(sep + 4);
  if (!/transfer-encoding: chunked/i.test(head)) return rest;
  const parts: Buffer[] = [];
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) break;
    const n = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
    if (!(n > 0)) break;
    parts.push(rest.subarray(eol + 2, eol + 2 + n));
    rest = rest.subarray(eol + 2 + n + 2);
  }
  return Buffer.concat(parts);
}

/** Every reading of what the agent got in which the key could appear: raw, de-chunked, decompressed. */
function readings(bytes: Buffer): string[] {
  const body = bodyOf(bytes);
  const out = [bytes.toString('latin1'), body.toString('latin1')];
  for (const dec of [gunzipSync, inflateSync, brotliDecompressSync]) {
    try {
      out.push((dec === brotliDecompressSync ? brotliDecompressSync(body) : dec(body, { finishFlush: 2 })).toString('latin1'));
    } catch {
      /* not this */
    }
  }
  return out;
}
const leaked = (bytes: Buffer): boolean => readings(bytes).some((t) => t.includes(KEY) || t.includes(Buffer.from(KEY).toString('base64')));

for (const chunked of ['0', '1']) test(`a ${chunked === '1' ? 'chunked' : 'Content-Length'} answer split at every offset: the key never reaches the agent, the answer is whole otherwise`, async () => {
  const len = `{"x":"${KEY}"}`.length;
  for (let at = 0; at <= len; at++) {
    const got = await rawCall('GET', `/split?at=${at}&chunked=${chunked}`);
    assert.ok(!leaked(got), `split at ${at}: ${got.toString('latin1')}`);
    assert.match(got.toString('latin1'), /^HTTP\/1\.1 200 /, `split at ${at}`);
    assert.equal(bodyOf(got).toString('latin1'), '{"x":"[REDACTED:plain]"}', `split at ${at}`);
  }
});

for (const name of ['clShort', 'clInside', 'clLong', 'both', 'info', 'headers', 'tiny', 'stall', 'trailer']) {
  test(`upstream ${name}: the key never reaches the agent`, async () => {
    const got = await rawCall('GET', `/${name}`);
    assert.ok(!leaked(got), got.toString('latin1'));
  });
}

test('HEAD answered with a body: no key, no body passed on', async () => {
  const got = await rawCall('HEAD', '/head');
  assert.ok(!leaked(got), got.toString('latin1'));
  assert.match(got.toString('latin1'), /^HTTP\/1\.1 200 /);
});

test('one-byte chunks: the key redacted, the rest whole', async () => {
  const got = await rawCall('GET', '/tiny');
  assert.equal(bodyOf(got).toString('latin1'), '[[REDACTED:plain]]');
});

for (const enc of ['gzip', 'x-gzip', 'deflate', 'br']) {
  for (const chunked of ['0', '1']) {
    test(`an upstream answering Content-Encoding: ${enc} (${chunked === '1' ? 'chunked' : 'Content-Length'}) although identity was asked: the key never reaches the agent`, async () => {
      const got = await rawCall('GET', `/gzip?enc=${enc}&chunked=${chunked}`);
      assert.ok(!leaked(got), `${enc}: ${got.subarray(0, 300).toString('latin1')}`);
      assert.match(got.toString('latin1'), /^HTTP\/1\.1 502 /);
      assert.match(got.toString('latin1'), /TESSERA_PROXY_UPSTREAM_UNAVAILABLE/);
    });
  }
}

test('an agent that leaves mid-answer: the upstream exchange is cut and the request audited aborted', async () => {
  const s = connect(proxyPort, '127.0.0.1');
  let got = '';
  s.on('data', (c: Buffer) => {
    got += c.toString('latin1');
    if (got.includes('line 3 ')) s.destroy();
  });
  s.on('error', () => undefined);
  s.write(`GET /raw/slow?id=leave HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`);
  await until(() => slow.get('leave')?.cut === true, 'the upstream exchange to be cut');
  assert.ok(slow.get('leave')!.lines < 100, `the upstream wrote ${slow.get('leave')!.lines} lines`);
  assert.ok(!got.includes(KEY));
  await until(async () => (await auditTexts(h)).some((e) => e.kind === 'proxy.request' && e.text.includes('"aborted":true')), 'the aborted request audited');
});

test('a revoked agent\'s answer in flight is cut (the kill switch), and its upstream exchange with it', async () => {
  const id = `${TD}/agents/allowed-revoked`;
  const t = await h.login(await h.joinToken(id), `${h.tessera.url}/proxy`);
  const s = connect(proxyPort, '127.0.0.1');
  let got = '';
  let closed = false;
  s.on('data', (c: Buffer) => (got += c.toString('latin1')));
  s.on('close', () => (closed = true));
  s.on('error', () => undefined);
  s.write(`GET /raw/slow?id=revoked HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${t}\r\n\r\n`);
  await until(() => got.includes('line 2 '), 'the answer to start');
  const rev = await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: id, reason: 'attack-perf in-flight' });
  assert.equal(rev.status, 201, JSON.stringify(rev.body));
  await until(() => closed, 'the revoked agent\'s connection to close');
  await until(() => slow.get('revoked')?.cut === true, 'the upstream exchange to be cut');
  assert.ok(slow.get('revoked')!.lines < 100, `the upstream wrote ${slow.get('revoked')!.lines} lines`);
  assert.ok(!got.includes(KEY));
});

for (const chunked of ['0', '1']) {
  test(`a slow agent holds the upstream back (${chunked === '1' ? 'chunked' : 'Content-Length'}): what is read ahead stays bounded`, async () => {
    const id = `bp${chunked}`;
    const s = connect(proxyPort, '127.0.0.1');
    s.on('error', () => undefined);
    let first = false;
    s.once('data', () => {
      first = true;
      s.pause(); // the agent stops reading
    });
    s.write(`GET /raw/flood?id=${id}&chunked=${chunked} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    await until(() => first, 'the answer to start');
    await sleep(1500);
    const written = flood.get(id)!.written;
    s.destroy();
    assert.ok(written < 24 * 1024 * 1024, `the upstream wrote ${written} bytes while the agent read none`);
  });
}
