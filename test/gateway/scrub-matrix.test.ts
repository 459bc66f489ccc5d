/**
 * The scrubbing promises of docs/gateway-scrubbing.md, checked as a matrix through the real
 * Tessera (src/main.ts) and the official MCP SDK client (which validates every result against
 * the SDK's CallToolResult schema):
 *
 *   every form the docs' tables name (one encoding, and every two-encoding combination), in its
 *   variants (case-changed, inside a longer base64 stream, …)
 *   × every nesting level ("Where": content text, embedded resource text and blob, image and
 *     audio data, `_meta`, nested structuredContent values and keys, error message and data)
 *   + split across content items.
 *
 * The forms come from the docs: a form added there without an encoding here fails the first test.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { ToolProvider } from '../../src/gateway/index.js';
import { startGatewayHarness, type GatewayHarness } from './harness.js';

// Changes under every encoding ("/", "+", "=", " ", a quote, non-ASCII), and plain ASCII (the
// scrubber's fast paths skip forms equal to the value).
const SPECIAL = 'Zq7/tessera+inj"ected=VALUE 41x9ä€';
const ASCII = 'plainASCIIsecret0123456789';
const AGENT = 'spiffe://example.org/ns/gw/sa/matrix';

const DOC = readFileSync(join(import.meta.dirname, '../../docs/gateway-scrubbing.md'), 'utf8');

/** First-column form names of the table under `### <heading>` in the docs. */
function docForms(heading: string, cell: RegExp): string[] {
  const section = DOC.split(/^### /m).find((s) => s.startsWith(heading));
  assert.ok(section, `docs/gateway-scrubbing.md has a "### ${heading}" section`);
  return section.split('\n').flatMap((line) => {
    const m = cell.exec(line);
    return m ? [m[1]!] : [];
  });
}

// ---- encodings -------------------------------------------------------------------------------

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
const json = (s: string): string => JSON.stringify(s).slice(1, -1);
const asciiJson = (s: string, upper = false): string => json(s).replace(/[\u007f-\uffff]/g, (c) => '\\u' + (upper ? c.charCodeAt(0).toString(16).toUpperCase() : c.charCodeAt(0).toString(16)).padStart(4, '0'));
const everyU = (s: string): string => [...s].map((c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')).join('');
const formEnc = (s: string): string => new URLSearchParams({ v: s }).toString().slice(2);
const everyPct = (s: string): string => utf8(s).toString('hex').toUpperCase().replace(/../g, '%$&');
const hex = (s: string): string => utf8(s).toString('hex');
const mixed = (s: string): string => [...s].map((c, i) => (i % 2 ? c.toUpperCase() : c.toLowerCase())).join('');
/** `s` base64-encoded inside a longer stream, starting `pre` bytes into it (every alignment mod 3). */
const inStream = (s: string, pre: number, alphabet: 'base64' | 'base64url'): string => Buffer.concat([Buffer.alloc(pre, 0xa7), utf8(s), Buffer.from([0x5c, 0xe1])]).toString(alphabet);
const b64Variants = (s: string, alphabet: 'base64' | 'base64url'): string[] => [utf8(s).toString(alphabet), utf8(s).toString(alphabet).replace(/=+$/, ''), inStream(s, 1, alphabet), inStream(s, 2, alphabet), inStream(s, 3, alphabet)];

/** Variants of each one-encoding form, as a tool might print them. */
const ONE: Record<string, (v: string) => string[]> = {
  plain: (v) => [v, v.toUpperCase(), v.toLowerCase(), mixed(v), `${v}`.trim()],
  'json-escaped': (v) => [json(v), json(v).replace(/\//g, '\\/'), asciiJson(v), asciiJson(v, true), everyU(v), everyU(v).toUpperCase().replace(/\\U/g, '\\u'), json(json(v)), json(asciiJson(v)), json(everyU(v)), json(v.toUpperCase())],
  url: (v) => [encodeURIComponent(v), encodeURIComponent(v).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()), formEnc(v), everyPct(v), everyPct(v).toLowerCase(), encodeURIComponent(v.toUpperCase())],
  hex: (v) => [hex(v), hex(v).toUpperCase(), mixed(hex(v)), hex(v.toUpperCase()), hex(v.toLowerCase())],
  base64: (v) => [...b64Variants(v, 'base64'), utf8(v.toUpperCase()).toString('base64'), utf8(v.toLowerCase()).toString('base64')],
  base64url: (v) => [...b64Variants(v, 'base64url'), utf8(v.toUpperCase()).toString('base64url'), utf8(v.toLowerCase()).toString('base64url')],
};

/** The second encoding, applied to a one-encoding text. */
const OUTER: Record<string, (t: string) => string[]> = {
  'json-escaped': (t) => [json(t), json(t).replace(/\//g, '\\/')],
  url: (t) => [encodeURIComponent(t), formEnc(t)],
  hex: (t) => [hex(t), hex(t).toUpperCase()],
  base64: (t) => b64Variants(t, 'base64'),
  base64url: (t) => b64Variants(t, 'base64url'),
};

interface Case {
  readonly name: string;
  readonly text: string;
}

function cases(secret: string, withCombinations: boolean): Case[] {
  const out: Case[] = [];
  for (const [form, variants] of Object.entries(ONE)) variants(secret).forEach((text, i) => out.push({ name: `${form}#${i}`, text }));
  if (!withCombinations) return out;
  for (const [outer, enc] of Object.entries(OUTER)) {
    for (const [inner, variants] of Object.entries(ONE)) {
      if (inner === 'plain') continue;
      // The canonical variant of the inner form, and its first non-canonical one.
      for (const [i, innerText] of variants(secret).slice(0, 2).entries()) enc(innerText).forEach((text, j) => out.push({ name: `${outer}-of-${inner}#${i}.${j}`, text }));
    }
  }
  return out;
}

// ---- the tool that places a text everywhere ----------------------------------------------------

const b64 = (s: string): string => utf8(s).toString('base64');

/** A result with `x` at every nesting level, and split over the last three text items. */
function everywhere(x: string): Record<string, unknown> {
  const cut1 = Math.floor(x.length / 3);
  const cut2 = Math.floor((2 * x.length) / 3);
  return {
    content: [
      { type: 'text', text: `a ${x} b` },
      { type: 'resource', resource: { uri: 'file:///r.txt', mimeType: 'text/plain', text: `r ${x}` } },
      { type: 'resource', resource: { uri: 'file:///r.bin', mimeType: 'application/octet-stream', blob: b64(`bin ${x} bin`) } },
      { type: 'image', mimeType: 'image/png', data: b64(`\u0089PNG\r\n ${x}`) },
      { type: 'audio', mimeType: 'audio/wav', data: b64(`RIFF ${x}`) },
      { type: 'text', text: 'clean', _meta: { note: x } },
      { type: 'image', mimeType: 'image/png', data: b64('\u0089PNG\r\n nothing secret here') },
      // Split: x over three text items, with a clean image between two of them.
      { type: 'text', text: `split ${x.slice(0, cut1)}` },
      { type: 'image', mimeType: 'image/png', data: b64('\u0089PNG\r\n between') },
      { type: 'text', text: x.slice(cut1, cut2) },
      { type: 'text', text: `${x.slice(cut2)} end` },
    ],
    structuredContent: { a: { b: [{ c: `s ${x}` }] }, [`k ${x}`]: 1 },
    _meta: { trace: [x] },
  };
}

const provider: ToolProvider = {
  server: 'matrix',
  listTools: async () => [
    { name: 'everywhere', inputSchema: { type: 'object', properties: { x: { type: 'string' } }, required: ['x'] } },
    { name: 'fail', inputSchema: { type: 'object', properties: { x: { type: 'string' } }, required: ['x'] } },
  ],
  async callTool(tool, args, ctx) {
    // The secrets this tool "holds": resolved through Tessera, so the call's scrubber knows them.
    await ctx.resolveSecret('gw/matrix/special');
    await ctx.resolveSecret('gw/matrix/ascii');
    const x = String(args.x);
    if (tool === 'fail') throw new TesseraError('TESSERA_TOOL_UPSTREAM_FAILED', `the upstream said: ${x}`, { echo: x, nested: { list: [x] } });
    return everywhere(x) as never;
  },
  close: async () => undefined,
};

let h: GatewayHarness;
let client: Client;

before(async () => {
  h = await startGatewayHarness({
    policies: `
@id("matrix-call") permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"matrix");
@id("matrix-inject") permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"gw");
`,
    secrets: { 'gw/matrix/special': SPECIAL, 'gw/matrix/ascii': ASCII },
    gateway: {},
    providers: [provider],
  });
  client = await h.connect(await h.login(AGENT));
});

after(async () => {
  await h?.close();
});

/** `x` (any case) does not occur in `where`, and something was redacted there. */
function assertScrubbed(where: unknown, x: string, what: string): void {
  const text = typeof where === 'string' ? where : JSON.stringify(where);
  assert.ok(!text.toLowerCase().includes(x.toLowerCase()), `${what}: the text survived: ${text.slice(0, 300)}`);
  assert.match(text, /\[REDACTED:[a-z0-9-]+\]/, `${what}: nothing was redacted: ${text.slice(0, 300)}`);
}

test('the test covers exactly the forms the docs name', () => {
  assert.deepEqual(docForms('One encoding', /^\| `([a-z0-9-]+)` \|/).sort(), Object.keys(ONE).sort());
  assert.deepEqual(docForms('Two encodings', /^\| `([a-z0-9-]+)-of-…` \|/).sort(), Object.keys(OUTER).sort());
});

for (const [label, secret, combos] of [['a secret with special characters', SPECIAL, true], ['a plain ASCII secret', ASCII, true]] as const) {
  test(`matrix: every documented form of ${label}, at every nesting level and split over items`, async () => {
    const all = cases(secret, combos);
    assert.ok(all.length > 100, `${all.length} cases`);
    for (const c of all) {
      const r = await client.callTool({ name: 'matrix__everywhere', arguments: { x: c.text } });
      const content = r.content as Record<string, any>[];
      assertScrubbed(content[0]!.text, c.text, `${c.name} content text`);
      assertScrubbed(content[1]!.resource.text, c.text, `${c.name} resource text`);
      for (const [i, kind] of [[2, 'resource'], [3, 'image'], [4, 'audio']] as const) {
        assert.deepEqual(content[i], { type: 'text', text: `[REDACTED:${kind}] Tessera removed the ${kind} item that was here: its data contained a secret value.` }, `${c.name} ${kind} item replaced by a notice`);
      }
      assertScrubbed(content[5]!._meta, c.text, `${c.name} content _meta`);
      assert.equal(content[6]!.type, 'image', `${c.name}: a clean image is kept`);
      assert.equal(content[8]!.type, 'image', `${c.name}: a clean image between split parts is kept`);
      assertScrubbed(content[7]!.text + content[9]!.text + content[10]!.text, c.text, `${c.name} split over three items`);
      assertScrubbed((r.structuredContent as { a: unknown }).a, c.text, `${c.name} nested structuredContent`);
      assertScrubbed(Object.keys(r.structuredContent as object).filter((k) => k !== 'a'), c.text, `${c.name} structuredContent key`);
      assertScrubbed(r._meta, c.text, `${c.name} result _meta`);

      let err: unknown;
      try {
        await client.callTool({ name: 'matrix__fail', arguments: { x: c.text } });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof McpError, `${c.name}: the failing tool fails`);
      assert.equal((err.data as { code: string }).code, 'TESSERA_TOOL_UPSTREAM_FAILED');
      assertScrubbed(err.message, c.text, `${c.name} error message`);
      assertScrubbed((err.data as { details: unknown }).details, c.text, `${c.name} error data`);
    }
  });
}

test('the audit records what the agent really got: allowed, redacted, items replaced, per-form counts', async () => {
  await client.callTool({ name: 'matrix__everywhere', arguments: { x: Buffer.from(SPECIAL).toString('base64') } });
  await h.tessera.audit.flush();
  const rows = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.tool_call' ORDER BY seq DESC LIMIT 1");
  const ev = JSON.parse(rows[0]!.body) as { result: string; details: { decision: string; outcome: string; items_replaced: number; redactions: Record<string, number>; scrub_hits: number } };
  assert.equal(ev.result, 'allow');
  assert.equal(ev.details.decision, 'allow');
  assert.equal(ev.details.outcome, 'redacted');
  assert.equal(ev.details.items_replaced, 3);
  assert.ok(ev.details.redactions.base64! >= 1, JSON.stringify(ev.details.redactions));
  assert.equal(Object.values(ev.details.redactions).reduce((a, b) => a + b, 0), ev.details.scrub_hits);
  const hits = await h.tessera.store.all<{ body: string }>("SELECT body FROM audit_events WHERE kind = 'gateway.exfiltration_suspected'");
  assert.ok(hits.some((x) => (JSON.parse(x.body) as { details: { split?: boolean } }).details.split === true), 'a split hit is audited as such');
  assert.ok(hits.every((x) => !x.body.includes(SPECIAL) && !x.body.includes(ASCII)));
});
