/**
 * Scrubbing of one MCP `CallToolResult` (spec 2025-11-25 "Tools" §Tool Result) so that what
 * reaches the agent is both free of secrets and still a valid result. Pure: no I/O.
 *
 * On top of `Scrubber.scrubValue` (every string, number and key, at any depth):
 *  - **Binary items.** An `image` or `audio` item's `data` and an embedded `resource`'s `blob`
 *    are base64 (RFC 4648 §4): they are scanned as text *and decoded* (the bytes read as UTF-8
 *    and as Latin-1), so every form of a secret inside the binary is found, not only its plain
 *    bytes. A binary that carried a secret cannot keep a redaction marker inside (it would no
 *    longer be base64, and the SDK refuses the whole result with `-32602 Invalid Base64`): the
 *    whole item is replaced by a `text` notice in its place.
 *  - **Split across content items.** The texts of the `text` items, in order, are also scanned
 *    as one string; a match that crosses items is redacted in each item it touches.
 *  - **Still valid.** The scrubbed result is checked against the SDK's CallToolResultSchema; a
 *    content item that no longer validates (a number field that held a secret became a marker
 *    string) is replaced by a notice too, and a result that still fails becomes an `isError`
 *    result with a notice.
 */
import { CallToolResultSchema, ContentBlockSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Scrubber, ScrubHit } from './scrubber.js';

export interface ScrubbedResult<T> {
  readonly value: T;
  readonly hits: readonly ScrubHit[];
  /** Content items replaced by a notice (binary with a secret, or invalid after scrubbing). */
  readonly replaced: number;
}

type Item = Record<string, unknown>;

/** The base64 field of a binary content item, if it is one (image/audio `data`, resource `blob`). */
function binaryField(item: Item): string[] | undefined {
  if ((item.type === 'image' || item.type === 'audio') && typeof item.data === 'string') return ['data'];
  const r = item.resource as Item | undefined;
  if (item.type === 'resource' && r && typeof r === 'object' && typeof r.blob === 'string') return ['resource', 'blob'];
  return undefined;
}

/** Hits in the bytes a base64 field decodes to, read as UTF-8, else as Latin-1 (one byte, one character). */
function decodedHits(scrubber: Scrubber, b64: string, path: string): ScrubHit[] {
  const bytes = Buffer.from(b64, 'base64');
  for (const enc of ['utf8', 'latin1'] as const) {
    const found = scrubber.find(bytes.toString(enc));
    if (found.length > 0) return found.map((m) => ({ ...m.hit, path: `${path}(decoded)` }));
  }
  return [];
}

function fieldAt(item: Item, path: readonly string[]): unknown {
  let v: unknown = item;
  for (const k of path) v = v && typeof v === 'object' ? (v as Item)[k] : undefined;
  return v;
}

/** The text item put in place of a removed one. Never contains any of the removed content. */
export function noticeItem(kind: string, why: string): { type: 'text'; text: string } {
  return { type: 'text', text: `[REDACTED:${kind}] Tessera removed the ${kind} item that was here: ${why}.` };
}

function itemKind(item: Item): string {
  return item.type === 'resource' ? 'resource' : typeof item.type === 'string' && /^[a-z_]{1,32}$/.test(item.type) ? item.type : 'content';
}

/** Index of the item whose text holds offset `at` of the joined text (`starts` ascending, starts[0] = 0). */
function itemAt(starts: readonly number[], at: number): number {
  let k = 0;
  while (k + 1 < starts.length && starts[k + 1]! <= at) k++;
  return k;
}

/** Redacts the matches of the joined texts of the `text` items that cross from one item to the next. */
function scrubSplits(content: Item[], scrubber: Scrubber, hits: ScrubHit[]): void {
  const idx: number[] = [];
  for (let i = 0; i < content.length; i++) if (content[i]!.type === 'text' && typeof content[i]!.text === 'string') idx.push(i);
  if (idx.length < 2) return;
  const texts = idx.map((i) => content[i]!.text as string);
  const starts: number[] = [];
  let joined = '';
  for (const t of texts) {
    starts.push(joined.length);
    joined += t;
  }
  // Per item: the ranges (in its own text) to replace, and by what.
  const cuts = texts.map(() => [] as { from: number; to: number; marker: string }[]);
  for (const m of scrubber.find(joined)) {
    const first = itemAt(starts, m.start);
    const last = itemAt(starts, m.end - 1);
    if (first === last) continue; // inside one item: already redacted by the item's own scrub
    for (let k = first; k <= last; k++) {
      const from = Math.max(0, m.start - starts[k]!);
      const to = Math.min(texts[k]!.length, m.end - starts[k]!);
      if (to > from) cuts[k]!.push({ from, to, marker: m.marker });
    }
    hits.push({ ...m.hit, path: `$.content[${idx[first]!}..${idx[last]!}].text`, split: true });
  }
  cuts.forEach((list, k) => {
    if (list.length === 0) return;
    let t = texts[k]!;
    for (const c of list.sort((a, b) => b.from - a.from)) t = t.slice(0, c.from) + c.marker + t.slice(c.to);
    content[idx[k]!] = { ...content[idx[k]!]!, text: t };
  });
}

export function scrubToolResult<T>(scrubber: Scrubber, result: T): ScrubbedResult<T> {
  if (!result || typeof result !== 'object' || !Array.isArray((result as Item).content)) {
    const s = scrubber.scrubValue(result);
    return { value: s.value, hits: s.hits, replaced: 0 };
  }
  const hits: ScrubHit[] = [];
  let replaced = 0;
  const out: Item = {};
  for (const [k, v] of Object.entries(result as Item)) {
    if (k === 'content') continue;
    // A key that held a secret is renamed to its marker (paths use scrubbed keys only).
    const key = scrubber.scrubText(k);
    if (key.hits.length) hits.push(...key.hits.map((h) => ({ ...h, path: '$', inKey: true })));
    const s = scrubber.scrubValue(v, [key.text]);
    hits.push(...s.hits);
    out[key.text] = s.value;
  }
  const content = ((result as Item).content as unknown[]).map((raw, i): Item => {
    const s = scrubber.scrubValue(raw, ['content', i]);
    hits.push(...s.hits);
    const item = s.value as Item;
    if (!raw || typeof raw !== 'object') return item;
    const field = binaryField(raw as Item);
    if (!field) return item;
    const data = fieldAt(raw as Item, field) as string;
    const inDecoded = decodedHits(scrubber, data, `$.content[${i}].${field.join('.')}`);
    hits.push(...inDecoded);
    if (fieldAt(item, field) !== data || inDecoded.length > 0) {
      replaced++;
      return noticeItem(itemKind(raw as Item), 'its data contained a secret value');
    }
    return item;
  });
  scrubSplits(content, scrubber, hits);
  out.content = content;
  // What the SDK's Server checks before sending: an invalid item would turn the whole answer
  // into an error without a Tessera code. The whole result is checked first (its content is an
  // array of ContentBlockSchema): only when it fails is each item checked to find the ones to replace.
  if (CallToolResultSchema.safeParse(out).success) return { value: out as T, hits, replaced };
  for (let i = 0; i < content.length; i++) {
    if (!ContentBlockSchema.safeParse(content[i]).success) {
      replaced++;
      content[i] = noticeItem(itemKind(content[i]!), 'it was no longer a valid content item after secrets were removed from it');
    }
  }
  out.content = content;
  if (!CallToolResultSchema.safeParse(out).success) {
    return { value: { content: [noticeItem('result', 'it was no longer a valid tool result after secrets were removed from it')], isError: true } as T, hits, replaced: replaced + 1 };
  }
  return { value: out as T, hits, replaced };
}
