/**
 * F8: base64 and hex forms of a secret survive scrubbing when the encoded text is wrapped (MIME
 * at 76 columns: 19 of 76 alignments got through; PEM at 64; CRLF; hex grouped by spaces or
 * colons; line breaks written as JSON escapes). The scrubber also looks for those forms in the
 * text with the wrapping taken out. Every alignment is tried: the secret at every byte offset of
 * the stream, so its encoding starts at every column and every 3-byte (base64) or 1-byte (hex)
 * phase, and every line break falls at every place inside it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createScrubber, base64Core, scrubToolResult } from '../../src/gateway/scrub/index.js';

const SECRET = 'Wr4pped-S3cret/Value+42_xyz';
const OTHER_SECRET = 'second-Secret:with spaces\nand a newline';
const B = Buffer.from(SECRET, 'utf8');

/** Bytes before the secret in the stream: deterministic, not secret-like. */
function prefix(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => 0x41 + ((i * 7) % 26)));
}

function wrap(text: string, cols: number, eol: string): string {
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += cols) lines.push(text.slice(i, i + cols));
  return lines.join(eol);
}

/** Every separator the scrubber takes out; what is left of the output must hold no core of the secret. */
const unwrapped = (s: string): string => s.replace(/[\s:\u00a0]|\\{1,4}[nrt]/g, '');

function assertGone(out: string, alphabet: 'base64' | 'base64url' | 'hex', why: string): void {
  const flat = unwrapped(out);
  if (alphabet === 'hex') {
    assert.ok(!flat.toLowerCase().includes(B.toString('hex')), `${why}: hex survived`);
    // Any 12-byte run of the secret, at either nibble phase.
    const hex = B.toString('hex');
    for (let i = 0; i + 24 <= hex.length; i += 1) assert.ok(!flat.toLowerCase().includes(hex.slice(i, i + 24)) || i % 2 === 1, `${why}: part of the hex survived`);
    return;
  }
  for (const offset of [0, 1, 2] as const) {
    const core = base64Core(B, offset, alphabet);
    assert.ok(!flat.includes(core), `${why}: the ${alphabet} core at offset ${offset} survived`);
  }
}

const BASE64_WRAPPINGS: [string, (s: string) => string][] = [
  ['MIME 76 LF', (s) => wrap(s, 76, '\n')],
  ['MIME 76 CRLF', (s) => wrap(s, 76, '\r\n')],
  ['PEM 64 LF', (s) => `-----BEGIN DATA-----\n${wrap(s, 64, '\n')}\n-----END DATA-----`],
  ['groups of 4 by spaces', (s) => wrap(s, 4, ' ')],
  ['76 with JSON-escaped \\n', (s) => wrap(s, 76, '\\n')],
  ['64 with twice-escaped \\r\\n', (s) => wrap(s, 64, '\\\\r\\\\n')],
  ['76 with CRLF and indentation', (s) => wrap(s, 76, '\r\n    ')],
  ['odd width 17 with tabs', (s) => wrap(s, 17, '\t')],
];

for (const alphabet of ['base64', 'base64url'] as const) {
  for (const [name, wrapper] of BASE64_WRAPPINGS) {
    test(`${alphabet}, ${name}: caught at every alignment (secret at byte offsets 0…227)`, () => {
      const scrubber = createScrubber([SECRET, OTHER_SECRET]);
      let caught = 0;
      const total = 3 * 76;
      for (let p = 0; p < total; p++) {
        const stream = Buffer.concat([prefix(p), B, prefix(40)]).toString(alphabet);
        const text = `attachment:\n${wrapper(stream)}\n-- end`;
        const r = scrubber.scrubText(text);
        assertGone(r.text, alphabet, `${name}, offset ${p}`);
        if (r.hits.some((h) => h.kind === 'secret')) caught++;
        // What is around the secret is kept: the redaction does not swallow the whole text.
        assert.ok(r.text.startsWith('attachment:\n') && r.text.endsWith('\n-- end'), `${name}, offset ${p}`);
      }
      assert.equal(caught, total);
    });
  }
}

const HEX_WRAPPINGS: [string, (s: string) => string][] = [
  ['xxd -p (60 columns)', (s) => wrap(s, 60, '\n')],
  ['76 CRLF', (s) => wrap(s, 76, '\r\n')],
  ['bytes by spaces', (s) => wrap(s, 2, ' ')],
  ['bytes by colons, 15 per line (openssl)', (s) => wrap(wrap(s, 2, ':'), 45, ':\n    ')],
  ['upper case, 32 columns', (s) => wrap(s.toUpperCase(), 32, '\n')],
  ['odd width 31 (a byte split by the break)', (s) => wrap(s, 31, '\n')],
];

for (const [name, wrapper] of HEX_WRAPPINGS) {
  test(`hex, ${name}: caught at every alignment (secret at byte offsets 0…75)`, () => {
    const scrubber = createScrubber([SECRET]);
    for (let p = 0; p < 76; p++) {
      const stream = Buffer.concat([prefix(p), B, prefix(20)]).toString('hex');
      const r = scrubber.scrubText(`dump: ${wrapper(stream)} .`);
      assert.ok(r.hits.some((h) => h.kind === 'secret' && String(h.form).startsWith('hex')), `${name}, offset ${p}: not caught`);
      assertGone(r.text, 'hex', `${name}, offset ${p}`);
    }
  });
}

test('two encodings, wrapped: base64 of the hex form, and hex of the base64 form', () => {
  const scrubber = createScrubber([SECRET]);
  for (let p = 0; p < 76; p++) {
    const b64ofHex = Buffer.concat([prefix(p), Buffer.from(B.toString('hex'))]).toString('base64');
    const r1 = scrubber.scrubText(wrap(b64ofHex, 76, '\r\n'));
    assert.ok(r1.hits.some((h) => h.form === 'base64-of-hex'), `base64-of-hex at ${p}`);
    const hexOfB64 = Buffer.concat([prefix(p), Buffer.from(B.toString('base64'))]).toString('hex');
    const r2 = scrubber.scrubText(wrap(hexOfB64, 60, '\n'));
    assert.ok(r2.hits.some((h) => h.form === 'hex-of-base64'), `hex-of-base64 at ${p}`);
  }
});

test('a wrapped secret inside a tool result: redacted, and the result stays valid', () => {
  const scrubber = createScrubber([SECRET]);
  const body = wrap(Buffer.concat([prefix(5), B]).toString('base64'), 76, '\r\n');
  const r = scrubToolResult(scrubber, { content: [{ type: 'text', text: `Content-Transfer-Encoding: base64\r\n\r\n${body}` }] });
  assert.ok(r.hits.length > 0);
  assertGone((r.value.content[0] as { text: string }).text, 'base64', 'tool result');
});

test('ordinary text with spaces and line breaks is not changed (no secret across words)', () => {
  const scrubber = createScrubber([SECRET, 'hunter22abc']);
  for (const text of ['the quick brown fox\njumps over: the lazy dog', 'hunter 22 abc is not the password', 'de ad be ef 00 11', 'key: value\r\nother: thing', 'a\\nb\\nc']) {
    assert.equal(scrubber.scrubText(text).text, text);
  }
  // The plain secret split by a space is left alone: only the encoded forms are joined.
  assert.equal(scrubber.scrubText('hunter22 abc').text, 'hunter22 abc');
});
