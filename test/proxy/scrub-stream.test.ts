/**
 * Streamed scrubbing (src/proxy/scrub-stream.ts): a secret split at every possible chunk boundary
 * (two and three pieces) is still redacted, in its plain, base64, hex, URL, JSON-escaped and
 * line-wrapped forms; credential shapes split anywhere (OpenAI key, JWT, PEM, AWS secret
 * assignment); multibyte characters across boundaries come out byte-identical; non-UTF-8 bodies
 * are scrubbed as Latin-1 with every other byte unchanged; an SSE event is sent at once; large
 * bodies stream with the held-back text bounded (asserted on the stream's max hold, not on time).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createScrubber, type Scrubber, type ScrubHit } from '../../src/gateway/scrub/index.js';
import { createScrubSession, createScrubStream, MAX_HOLD, PEM_HOLD, SHAPE_RUN_HOLD, type ScrubStream } from '../../src/proxy/scrub-stream.js';

async function run(stream: ScrubStream, chunks: readonly Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  stream.on('data', (b: Buffer) => out.push(b));
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (const c of chunks) stream.write(c);
  stream.end();
  await ended;
  return Buffer.concat(out);
}

/** `body` cut at every position (and every pair of positions when `three`), each run checked. */
async function everySplit(scrubber: Scrubber, body: Buffer, expected: Buffer, three = false): Promise<void> {
  const n = body.length;
  for (let i = 0; i <= n; i++) {
    const got = await run(createScrubStream(scrubber), [body.subarray(0, i), body.subarray(i)]);
    assert.equal(got.toString('latin1'), expected.toString('latin1'), `split at ${i}`);
    if (!three) continue;
    for (let j = i + 1; j < n; j++) {
      const got3 = await run(createScrubStream(scrubber), [body.subarray(0, i), body.subarray(i, j), body.subarray(j)]);
      assert.equal(got3.toString('latin1'), expected.toString('latin1'), `split at ${i}, ${j}`);
    }
  }
}

const SECRET = 'Zq8vR2mN4pL7xT1k';

test('a plain secret split at every one and every two chunk boundaries is redacted', async () => {
  const s = createScrubber([SECRET], { shapes: false });
  const body = Buffer.from(`data: {"text":"before ${SECRET} after"}\n\n`);
  const expected = Buffer.from('data: {"text":"before [REDACTED:plain] after"}\n\n');
  await everySplit(s, body, expected, true);
});

test('base64, hex, URL, JSON-escaped and case-changed forms split anywhere: same as scrubbing the whole', async () => {
  const secret = 'p@ss/w0rd+Zq8"vR2';
  const s = createScrubber([secret], { shapes: false });
  const parts = [
    `b64=${Buffer.from(secret).toString('base64')};`,
    `hex=${Buffer.from(secret).toString('hex').toUpperCase()};`,
    `url=${encodeURIComponent(secret)};`,
    `json=${JSON.stringify({ v: secret })};`,
    `upper=${secret.toUpperCase()};`,
    `b64url-in-stream=${Buffer.from(`xx${secret}yy`).toString('base64url')};`,
  ];
  for (const p of parts) {
    const body = Buffer.from(`event: x\ndata: ${p} end\n\n`);
    const expected = Buffer.from(s.scrubText(body.toString()).text);
    assert.doesNotMatch(expected.toString(), /p@ss|cEBzc|7040737|p%40ss/i, 'the whole-body scrub redacts it');
    await everySplit(s, body, expected);
  }
});

test('a base64 form wrapped with CRLF (MIME) or escaped \\n split anywhere is redacted', async () => {
  const secret = 'wrapped-secret-value-0123456789-abcdefghij';
  const s = createScrubber([secret], { shapes: false });
  const b64 = Buffer.from(secret).toString('base64');
  for (const sep of ['\r\n', '\\n', ' ']) {
    const body = Buffer.from(`data: ${b64.slice(0, 20)}${sep}${b64.slice(20)}\n\n`);
    const expected = Buffer.from(s.scrubText(body.toString()).text);
    assert.ok(!expected.includes(b64.slice(0, 20)) && !expected.includes(b64.slice(20)));
    await everySplit(s, body, expected);
  }
});

test('multibyte characters split inside their UTF-8 bytes come out identical; a non-ASCII secret is redacted', async () => {
  const secret = 'pässwörd-秘密-😀x';
  const s = createScrubber([secret], { shapes: false });
  const body = Buffer.from(`data: {"t":"héllo wörld 😀 中文 ${secret} ∑𝄞"}\n\n`, 'utf8');
  const expected = Buffer.from('data: {"t":"héllo wörld 😀 中文 [REDACTED:plain] ∑𝄞"}\n\n', 'utf8');
  await everySplit(s, body, expected, true);
  // No secret at all: bytes unchanged at every split (nothing replaced by U+FFFD).
  const plain = Buffer.from('ā😀𝄞中', 'utf8');
  await everySplit(s, plain, plain, true);
});

test('a body that is not UTF-8 is scrubbed as Latin-1: other bytes unchanged, ASCII forms redacted', async () => {
  const s = createScrubber([SECRET], { shapes: false });
  const head = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe, 0xc3]);
  const mid = Buffer.from(`..${SECRET}..${Buffer.from(SECRET).toString('base64')}..`, 'latin1');
  const tail = Buffer.from([0xe2, 0x82, 0x00, 0x80, 0xf0]);
  const body = Buffer.concat([Buffer.from('ok ü '), head, mid, tail]);
  const expected = Buffer.concat([Buffer.from('ok ü '), head, Buffer.from('..[REDACTED:plain]..[REDACTED:base64]..'), tail]);
  await everySplit(s, body, expected);
  const st = createScrubStream(s);
  await run(st, [body]);
  assert.equal(st.stats.binary, true);
  assert.equal(st.stats.redactions, 2);
  // Valid UTF-8 then invalid later: the held UTF-8 text is re-read as its bytes.
  const st2 = createScrubStream(s);
  const got = await run(st2, [Buffer.from(`é ${SECRET.slice(0, 5)}`), Buffer.concat([Buffer.from(SECRET.slice(5)), Buffer.from([0xff])])]);
  assert.deepEqual(got, Buffer.concat([Buffer.from('é [REDACTED:plain]'), Buffer.from([0xff])]));
});

test('credential shapes split anywhere: OpenAI key, JWT, PEM private key, AWS secret assignment', async () => {
  const s = createScrubber([], {});
  const jwt = `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.c2lnbmF0dXJlLXZhbHVlLTAxMjM0NTY3ODk`;
  const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234567890abcdefghij\nABCDEFGHIJKLMNOPQRSTUVWXYZ0123\n-----END RSA PRIVATE KEY-----';
  const bodies = [
    'data: {"k":"sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"}\n\n',
    `token ${jwt} done\n`,
    `key:\n${pem}\nafter\n`,
    'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n',
    '{"private_key_id": "0123456789abcdef0123456789abcdef01234567"}\n',
  ];
  for (const text of bodies) {
    const expected = s.scrubText(text).text;
    assert.match(expected, /\[REDACTED:/);
    await everySplit(s, Buffer.from(text), Buffer.from(expected));
  }
});

test('an SSE event is sent at once, whole: nothing held when nothing could straddle', () => {
  const s = createScrubber([SECRET]);
  const st = createScrubStream(s);
  const event = Buffer.from('data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n');
  st.write(event);
  assert.deepEqual(st.read(), event);
  // A chunk ending in the middle of a possible form start: only that tail waits.
  st.write(Buffer.from(`data: x ${SECRET.slice(0, 6)}`));
  assert.equal(st.read()!.toString(), 'data: x ');
  st.write(Buffer.from(`${SECRET.slice(6)}"}\n\n`));
  assert.equal(st.read()!.toString(), '[REDACTED:plain]"}\n\n');
  // A JSON-looking word at a chunk end is held (a shape may go on), the rest sent.
  st.write(Buffer.from('data: {"a":1} abc'));
  assert.equal(st.read()!.toString(), 'data: {"a":1} ');
});

test('hits are reported per piece, with forms and labels, never values', async () => {
  const s = createScrubber([{ value: SECRET, label: 'kv/openai/key' }], { shapes: false });
  const hits: ScrubHit[] = [];
  const st = createScrubStream(s, { onHits: (h) => hits.push(...h) });
  await run(st, [Buffer.from(`${SECRET.slice(0, 3)}`), Buffer.from(`${SECRET.slice(3)} ${Buffer.from(SECRET).toString('hex')}`)]);
  assert.deepEqual(hits, [{ kind: 'secret', form: 'plain', label: 'kv/openai/key' }, { kind: 'secret', form: 'hex', label: 'kv/openai/key' }]);
  assert.equal(st.stats.redactions, 2);
});

test('a large body streams through with the hold bounded by the longest form (not buffered)', async () => {
  const secrets = [SECRET, 'another-secret-value-with/special+chars=', 'третий-секрет-значение'];
  const s = createScrubber(secrets);
  const longest = s.maxFormLength();
  assert.ok(longest > 0);
  const event = (i: number): string => `data: {"id":${i},"choices":[{"delta":{"content":"token ${i} ${i % 97 === 0 ? secrets[i % 3] : 'plain words here'}"}}]}\n\n`;
  const body = Buffer.from(Array.from({ length: 40_000 }, (_, i) => event(i)).join(''), 'utf8'); // ≈ 3.5 MB
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += 1500) chunks.push(body.subarray(i, i + 1500)); // cuts anywhere, mid-character too
  const st = createScrubStream(s);
  let outChunks = 0;
  const out: Buffer[] = [];
  st.on('data', (b: Buffer) => {
    outChunks++;
    out.push(b);
  });
  const ended = new Promise<void>((r) => st.on('end', r));
  for (const c of chunks) st.write(c);
  st.end();
  await ended;
  const expected = s.scrubText(body.toString('utf8')).text;
  assert.equal(Buffer.concat(out).toString('utf8'), expected);
  assert.ok(!expected.includes(SECRET));
  assert.ok(outChunks >= chunks.length - 1, `sent as it came: ${outChunks} pieces for ${chunks.length} chunks`);
  // The held text never exceeded the longest form − 1, or a word being written (shapes), + 3 bytes.
  assert.ok(st.stats.maxHeld <= Math.max(longest - 1, 200) + 3, `held at most ${st.stats.maxHeld} (longest form ${longest})`);
});

test('pathological bodies: one endless token, an unterminated PEM block — the hold stays bounded', async () => {
  const s = createScrubber([SECRET]);
  const st = createScrubStream(s);
  const chunks = Array.from({ length: 2000 }, () => Buffer.from('A'.repeat(1000))); // 2 MB without a break
  const out = await run(st, chunks);
  assert.equal(out.length, 2_000_000);
  assert.ok(st.stats.maxHeld <= SHAPE_RUN_HOLD + 1000, `held ${st.stats.maxHeld}`);
  const st2 = createScrubStream(s);
  const pemChunks = [Buffer.from('x -----BEGIN PRIVATE KEY-----\n'), ...Array.from({ length: 100 }, () => Buffer.from(`${'B'.repeat(63)}\n`.repeat(16)))];
  const pemOut = await run(st2, pemChunks);
  assert.ok(st2.stats.maxHeld > PEM_HOLD && st2.stats.maxHeld <= MAX_HOLD + 1024, `held ${st2.stats.maxHeld}`);
  assert.ok(pemOut.toString().startsWith('x [REDACTED:pem-private-key]'));
});

test('the session (createScrubSession): the last chunk given to end() is scrubbed whole at every split, multibyte and binary included', () => {
  const s = createScrubber([SECRET], { shapes: false });
  const bodies = [
    Buffer.from(`{"a":"${SECRET}","b":"${Buffer.from(SECRET).toString('base64')}","c":"${Buffer.from(SECRET).toString('hex')}"}`),
    Buffer.from(`héllo 😀 ${SECRET} 中文`, 'utf8'),
    Buffer.concat([Buffer.from([0xff, 0x00, 0xc3]), Buffer.from(`..${SECRET}..`, 'latin1'), Buffer.from([0xe2, 0x82])]),
  ];
  for (const body of bodies) {
    const expected = Buffer.concat([createScrubSession(s).end(body)]);
    assert.ok(!expected.includes(SECRET), 'end(whole) redacts');
    for (let i = 0; i <= body.length; i++) {
      const session = createScrubSession(s, { shapes: false });
      const got = Buffer.concat([session.write(body.subarray(0, i)), session.end(body.subarray(i))]);
      assert.equal(got.toString('latin1'), expected.toString('latin1'), `split at ${i}`);
    }
  }
  const session = createScrubSession(s);
  session.end();
  assert.throws(() => session.write(Buffer.from('x')), /after end/);
});

test('the session hands back a chunk that needs nothing unchanged (no copy); shapes: false holds only what could start a value', () => {
  const s = createScrubber([SECRET], { shapes: false });
  const session = createScrubSession(s, { shapes: false });
  const event = Buffer.from('data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n');
  assert.equal(session.write(event), event, 'the same Buffer');
  // A word at the end is held only as far as it could begin a form of the secret (no shape rule).
  const word = 'data: {"a":1} xyzzy';
  const cut = s.partialFrom(word);
  assert.equal(session.write(Buffer.from(word)).toString(), word.slice(0, cut));
  assert.equal(session.write(Buffer.from(` ${SECRET.slice(0, 4)}`)).toString(), `${word.slice(cut)} `);
  const last = Buffer.from('{"done":true}');
  assert.equal(session.end(last).toString(), `${SECRET.slice(0, 4)}{"done":true}`);
  const clean = createScrubSession(s, { shapes: false });
  assert.equal(clean.end(last), last, 'a whole body that needs nothing: the same Buffer');
  // With shapes (the default) the word is held: it may be the start of a credential shape.
  const withShapes = createScrubSession(createScrubber([SECRET]));
  assert.equal(withShapes.write(Buffer.from('data: {"a":1} abc')).toString(), 'data: {"a":1} ');
});
