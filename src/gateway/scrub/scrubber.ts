/**
 * The gateway's last line of defence against a tool handing a credential back to the agent:
 * every result and error is scrubbed of every secret value Tessera injected or holds for the
 * call, in its common encodings, and of common credential shapes. Pure: no I/O, no clock.
 *
 * Scrubbing is a backstop, not the boundary (docs/gateway-scrubbing.md): a tool that reverses,
 * splits, compresses or encrypts a secret gets it past any scrubber. The boundary is that the
 * agent never gets the secret to begin with.
 *
 * Performance: the forms of every secret are computed once per call (lazily, after the last
 * `add`) into a rolling-hash table, so each string is scanned once for all literals whatever
 * their number, plus one RegExp pass for all credential shapes.
 */
import { formsOf, type Literal, type SecretForm } from './forms.js';
import { SHAPES, type ShapeName } from './shapes.js';

export type { SecretForm } from './forms.js';
export type { ShapeName } from './shapes.js';

/** Secrets shorter than this (in UTF-16 code units) are not scrubbed by default. */
export const DEFAULT_MIN_SECRET_LENGTH = 6;
/** The lowest `minLength` accepted: shorter values would redact ordinary words and numbers. */
export const MIN_SECRET_LENGTH_FLOOR = 4;
/** Nesting deeper than this is replaced as a whole (JSON from an upstream is untrusted). */
export const MAX_DEPTH = 256;

export interface SecretInput {
  readonly value: string;
  /** Where the value came from (`kv/github/token`, `lease:<id>`), for the audit. Never the value. */
  readonly label?: string;
}

export interface ScrubHit {
  readonly kind: 'secret' | 'shape' | 'depth';
  /** The encoding (`plain`, `base64`, `hex`, ...) or the credential shape (`jwt`, `aws-access-key`, ...). */
  readonly form: SecretForm | ShapeName | 'too-deep';
  /** The label of the secret that matched (kind `secret`), when it was registered with one. */
  readonly label?: string;
  /** JSONPath-like location in `scrubValue` (`$.content[0].text`), built from already scrubbed keys. */
  readonly path?: string;
  /** True when the match was in an object key. */
  readonly inKey?: boolean;
  /** True when the match spanned several content items (scrubToolResult). */
  readonly split?: boolean;
}

export interface ScrubberOptions {
  /** Minimum secret length to scrub (default 6, at least 4). Shorter secrets are counted in `skipped`. */
  readonly minLength?: number;
  /** Credential shapes to scrub: all (default, `true`), none (`false`) or a list. */
  readonly shapes?: boolean | readonly ShapeName[];
  /** Replacement text; default `[REDACTED:<form>]`. Must not contain a secret. */
  readonly marker?: (form: ScrubHit['form']) => string;
}

export interface Scrubber {
  /**
   * Registers a sensitive value (and its trimmed form, if different). Returns false when it is
   * too short to scrub safely (it is then counted in `skipped`) or already known.
   */
  add(secret: string | SecretInput): boolean;
  /**
   * A new scrubber with this one's secrets (their encoded forms are reused, not recomputed) plus
   * `more`. For a gateway: one scrubber per upstream for the values injected into its process,
   * derived per call for the values that call resolves.
   */
  derive(more?: Iterable<string | SecretInput>): Scrubber;
  /** Number of distinct secret values scrubbed. */
  readonly size: number;
  /** Number of registered values too short to scrub (non-zero deserves a warning in the audit). */
  readonly skipped: number;
  scrubText(text: string): { text: string; hits: ScrubHit[] };
  /**
   * Scrubs every string, number and object key of a JSON value. Unchanged subtrees are returned
   * as is. `at`: the location of `value` inside a larger value, for the hits' paths.
   */
  scrubValue<T>(value: T, at?: readonly (string | number)[]): { value: T; hits: ScrubHit[] };
  /**
   * Where secrets and shapes occur in `text` (merged, sorted, non-overlapping), without
   * replacing anything: for callers that must redact across several strings (a secret split
   * over two content items). `marker` is the replacement `scrubText` would use.
   */
  find(text: string): { start: number; end: number; hit: ScrubHit; marker: string }[];
  /**
   * The length of the longest encoded form of any registered secret (UTF-16 code units; 0 with
   * none). A form can only straddle two pieces of a stream within this many characters.
   */
  maxFormLength(): number;
  /**
   * Where a secret's form may begin in the tail of `text` and go on past its end: the smallest
   * index i such that `text.slice(i)` is a proper prefix of some form (in the letter case rules
   * of that form), or — for the base64/hex forms — is one once wrapping separators (line breaks,
   * spaces, colons, escaped `\n`) are taken out; `text.length` when none. For streams
   * (src/proxy/scrub-stream.ts): everything before i can be scrubbed and sent now. Only looks at
   * the last `maxFormLength() − 1` characters (twice that for wrapped forms). Shapes are not
   * considered (their length is unbounded): the caller holds those back by its own rule.
   */
  partialFrom(text: string): number;
}

interface Entry {
  readonly kind: 'secret' | 'shape';
  readonly form: SecretForm | ShapeName;
  readonly label: string | undefined;
}

/** One encoded form of one secret, ready to verify at a candidate position. */
interface Lit {
  readonly text: string;
  /** Compare ignoring ASCII letter case. */
  readonly ci: boolean;
  readonly entry: Entry;
}

/** Literals ready for one Rabin–Karp scan. */
interface LitTable {
  readonly lits: readonly Lit[];
  /** Window length of the rolling hash: the shortest literal, at most 8. */
  readonly w: number;
  /** Rolling hash of the case-folded first `w` characters → literals starting that way. */
  readonly byPrefix: ReadonlyMap<number, readonly Lit[]>;
  /**
   * A 4096-bit Bloom-style bitset of the prefix hashes (in a plain SMI array: a typed array
   * costs more to allocate and collect per call than the whole scan of a small result).
   * Skips the Map lookup at almost every position.
   */
  readonly filter: number[];
  /** HASH_BASE^(w-1), to drop the character leaving the window. */
  readonly pow: number;
}

interface Compiled extends LitTable {
  /**
   * The base64, base64url and hex forms (one or two encodings), looked for again in the text with
   * line breaks, spaces and colons taken out: MIME wraps base64 at 76 columns, PEM at 64, `xxd`
   * and `openssl` wrap or group hex, often with CRLF; a break inside a form would hide it.
   */
  readonly wrapped: LitTable | undefined;
  readonly shapes: RegExp | undefined;
  readonly shapeDefs: readonly { readonly entry: Entry; readonly tail: number | undefined }[];
  readonly minText: number;
  /** Longest literal (all forms), and longest wrappable one. */
  readonly maxLen: number;
  readonly maxWrapLen: number;
  /** Case-folded prefixes shorter than the hash window, of all literals and of the wrappable ones. */
  readonly short: ReadonlySet<string>;
  readonly wrapShort: ReadonlySet<string>;
}

const HASH_BASE = 31;
const FILTER_BITS = 4096;

/** ASCII case folding for hashing; verification decides whether case mattered. */
function fold(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

function foldText(text: string): string {
  return text.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** The case-folded prefixes of 1 to w − 1 characters of `lits` (for ends shorter than the hash window). */
function shortPrefixes(lits: readonly Lit[], w: number): Set<string> {
  const out = new Set<string>();
  for (const l of lits) for (let k = 1; k < w && k < l.text.length; k++) out.add(foldText(l.text.slice(0, k)));
  return out;
}

interface Span {
  start: number;
  end: number;
  entry: Entry;
}

const defaultMarker = (form: string): string => `[REDACTED:${form}]`;

function selectShapes(opt: ScrubberOptions['shapes']): typeof SHAPES {
  if (opt === false) return [];
  if (opt === undefined || opt === true) return SHAPES;
  const wanted = new Set(opt);
  return SHAPES.filter((s) => wanted.has(s.name));
}

/**
 * The shapes RegExp, one per selection for the process: building it per call costs more than
 * scanning a typical result. Sharing a global RegExp is safe because a scan is synchronous and
 * always starts by resetting `lastIndex`.
 */
const shapeRegexCache = new Map<string, RegExp>();
function shapesRegex(shapes: typeof SHAPES): RegExp | undefined {
  if (shapes.length === 0) return undefined;
  const key = shapes.map((s) => s.name).join(',');
  let re = shapeRegexCache.get(key);
  if (!re) {
    re = new RegExp(shapes.map((s) => `(${s.source})`).join('|'), 'g');
    shapeRegexCache.set(key, re);
  }
  return re;
}

function formatPath(segments: readonly (string | number)[]): string {
  let p = '$';
  for (const s of segments) {
    if (typeof s === 'number') p += `[${s}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(s)) p += `.${s}`;
    else p += `[${JSON.stringify(s)}]`;
  }
  return p;
}

/** The forms whose text is base64, base64url or hex (of the value or of another form of it). */
const WRAPPABLE_FORM = /^(?:base64|base64url|hex)(?:$|-of-)/;

function litTable(lits: readonly Lit[]): LitTable {
  const w = Math.min(8, ...lits.map((l) => l.text.length));
  let pow = 1;
  for (let i = 1; i < w; i++) pow = Math.imul(pow, HASH_BASE);
  const byPrefix = new Map<number, Lit[]>();
  const filter = new Array<number>(FILTER_BITS >>> 5).fill(0);
  for (const lit of lits) {
    let h = 0;
    for (let i = 0; i < w; i++) h = (Math.imul(h, HASH_BASE) + fold(lit.text.charCodeAt(i))) | 0;
    filter[(h >>> 5) & ((FILTER_BITS >>> 5) - 1)]! |= 1 << (h & 31);
    const list = byPrefix.get(h);
    if (list) list.push(lit);
    else byPrefix.set(h, [lit]);
  }
  return { lits, w, byPrefix, filter, pow };
}

/**
 * Whether the character at `i` starts a wrapping separator, and its length: whitespace (space,
 * tab, CR, LF, VT, FF, NBSP), `:` (grouped hex: `de:ad:be:ef`), or a JSON/C escape of a line
 * break or tab written once, twice or three times escaped (`\n`, `\\r\\n`). None of these
 * characters occurs in base64, base64url or hex, so taking them out only joins a wrapped form.
 */
function separatorAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 32 || (c >= 9 && c <= 13) || c === 58 || c === 0xa0) return 1;
  if (c !== 92) return 0;
  let j = i;
  while (j < text.length && j - i < 4 && text.charCodeAt(j) === 92) j++;
  const e = text.charCodeAt(j);
  return j - i <= 4 && (e === 110 || e === 114 || e === 116) ? j - i + 1 : 0;
}

/**
 * `text` with every wrapping separator taken out, and for each character of the result its index
 * in `text`; undefined when there is no separator (the plain scan has seen it all already).
 */
function unwrap(text: string, minLength: number): { text: string; at: Int32Array } | undefined {
  if (text.length <= minLength || !/[\s:\\\u00a0]/.test(text)) return undefined;
  const at = new Int32Array(text.length);
  const parts: string[] = [];
  let n = 0;
  let runStart = 0;
  let removed = false;
  for (let i = 0; i < text.length;) {
    const sep = separatorAt(text, i);
    if (sep === 0) {
      at[n++] = i++;
      continue;
    }
    if (i > runStart) parts.push(text.slice(runStart, i));
    removed = true;
    i += sep;
    runStart = i;
  }
  if (!removed) return undefined;
  if (runStart < text.length) parts.push(text.slice(runStart));
  return { text: parts.join(''), at: at.subarray(0, n) };
}

/** A registered value; its forms are computed once and shared with derived scrubbers. */
interface Registered {
  readonly label: string | undefined;
  forms?: readonly Literal[];
}

export function createScrubber(secrets: Iterable<string | SecretInput> = [], options: ScrubberOptions = {}): Scrubber {
  return build(secrets, options, new Map(), 0);
}

function build(secrets: Iterable<string | SecretInput>, options: ScrubberOptions, values: Map<string, Registered>, skippedBefore: number): Scrubber {
  const minLength = Math.max(MIN_SECRET_LENGTH_FLOOR, Math.floor(options.minLength ?? DEFAULT_MIN_SECRET_LENGTH));
  const shapes = selectShapes(options.shapes);
  const marker = options.marker ?? defaultMarker;
  let skipped = skippedBefore;
  let compiled: Compiled | undefined;

  function addOne(value: string, label: string | undefined): boolean {
    if (value.length < minLength) return false;
    if (values.has(value)) return false;
    values.set(value, { label });
    compiled = undefined;
    return true;
  }

  function add(secret: string | SecretInput): boolean {
    const { value, label } = typeof secret === 'string' ? { value: secret, label: undefined } : secret;
    if (typeof value !== 'string') return false;
    const trimmed = value.trim();
    // A value read from a file often carries a newline the tool will not print back.
    if (trimmed.length < minLength) {
      if (value.length > 0) skipped++;
      return false;
    }
    const a = addOne(value, label);
    const b = trimmed !== value ? addOne(trimmed, label) : false;
    return a || b;
  }

  function compile(): Compiled | undefined {
    if (compiled) return compiled;
    const seen = new Set<string>();
    const lits: Lit[] = [];
    for (const [value, reg] of values) {
      const label = reg.label;
      reg.forms ??= formsOf(value);
      for (const lit of reg.forms) {
        // Alignment cores of short secrets can get short; never scrub fewer than the floor.
        if (lit.text.length < MIN_SECRET_LENGTH_FLOOR) continue;
        if (seen.has(lit.text)) continue;
        seen.add(lit.text);
        lits.push({ text: lit.text, ci: lit.ci, entry: { kind: 'secret', form: lit.form, label } });
      }
    }
    const shapeDefs = shapes.map((s) => ({ entry: { kind: 'shape' as const, form: s.name, label: undefined }, tail: s.tail }));
    if (lits.length === 0 && shapes.length === 0) return undefined;
    const table = litTable(lits);
    const wrappable = lits.filter((l) => WRAPPABLE_FORM.test(l.entry.form));
    compiled = {
      ...table,
      wrapped: wrappable.length > 0 ? litTable(wrappable) : undefined,
      // One alternation for all shapes: one scan; the group that matched names the shape.
      shapes: shapesRegex(shapes),
      shapeDefs,
      minText: Math.min(lits.length > 0 ? table.w : Infinity, shapes.length > 0 ? 8 : Infinity),
      maxLen: lits.reduce((m, l) => Math.max(m, l.text.length), 0),
      maxWrapLen: wrappable.reduce((m, l) => Math.max(m, l.text.length), 0),
      short: shortPrefixes(lits, table.w),
      wrapShort: shortPrefixes(wrappable, wrappable.length > 0 ? litTable(wrappable).w : 0),
    };
    return compiled;
  }

  /** Whether `text.slice(at)` is a proper prefix of `lit` (its letter case rule). */
  function prefixAt(text: string, at: number, lit: Lit): boolean {
    const rest = text.length - at;
    const t = lit.text;
    if (rest >= t.length) return false;
    for (let i = 0; i < rest; i++) {
      const a = text.charCodeAt(at + i);
      const b = t.charCodeAt(i);
      if (a !== b && !(lit.ci && fold(a) === fold(b))) return false;
    }
    return true;
  }

  /** Smallest i ≥ from where text.slice(i) is a proper prefix of a literal of `t`, else text.length. */
  function partialIn(text: string, from: number, t: LitTable, short: ReadonlySet<string>): number {
    const n = text.length;
    for (let p = Math.max(0, from); p < n; p++) {
      const rest = n - p;
      if (rest < t.w) {
        if (short.has(foldText(text.slice(p)))) return p;
        continue;
      }
      let h = 0;
      for (let i = 0; i < t.w; i++) h = (Math.imul(h, HASH_BASE) + fold(text.charCodeAt(p + i))) | 0;
      const cands = t.byPrefix.get(h);
      if (cands) for (const lit of cands) if (prefixAt(text, p, lit)) return p;
    }
    return n;
  }

  function partialFrom(text: string): number {
    const c = compile();
    const n = text.length;
    if (!c || c.maxLen === 0 || n === 0) return n;
    let best = partialIn(text, n - (c.maxLen - 1), c, c.short);
    if (c.wrapped && c.maxWrapLen > 0) {
      // A wrapped form split at the end: look in the tail with the separators taken out (and a
      // trailing run of backslashes, which may start an escaped line break).
      const start = Math.max(0, n - 2 * c.maxWrapLen);
      let tail = text.slice(start);
      const bs = /\\{1,4}$/.exec(tail);
      if (bs) tail = tail.slice(0, bs.index);
      const joined = unwrap(tail, 0);
      if (joined) {
        const q = partialIn(joined.text, joined.text.length - (c.maxWrapLen - 1), c.wrapped, c.wrapShort);
        if (q < joined.text.length) best = Math.min(best, start + joined.at[q]!);
      } else if (bs) {
        const q = partialIn(tail, tail.length - (c.maxWrapLen - 1), c.wrapped, c.wrapShort);
        if (q < tail.length) best = Math.min(best, start + q);
      }
    }
    return best;
  }

  function matchesAt(text: string, at: number, lit: Lit): boolean {
    const t = lit.text;
    if (at + t.length > text.length) return false;
    const ci = lit.ci;
    for (let i = 0; i < t.length; i++) {
      const a = text.charCodeAt(at + i);
      const b = t.charCodeAt(i);
      if (a !== b && !(ci && fold(a) === fold(b))) return false;
    }
    return true;
  }

  /**
   * Every occurrence of every literal, overlapping ones included (Rabin–Karp over a window of
   * the shortest literal length, then an exact check), plus every shape match; merged.
   * A RegExp alternation of ~20 forms per secret measured ~10× slower (docs/gateway-scrubbing.md).
   */
  function scan(text: string, c: Compiled): Span[] {
    const spans: Span[] = [];
    scanLits(text, c, spans, undefined);
    if (c.wrapped) {
      const joined = unwrap(text, c.wrapped.w);
      if (joined) scanLits(joined.text, c.wrapped, spans, joined.at);
    }
    if (c.shapes) {
      const re = c.shapes;
      re.lastIndex = 0;
      // Bounded: lastIndex strictly increases on every iteration.
      for (let m = re.exec(text); m; m = re.exec(text)) {
        let g = 1;
        while (g < m.length && m[g] === undefined) g++;
        const def = c.shapeDefs[g - 1]!;
        const end = m.index + m[0].length;
        spans.push({ start: def.tail !== undefined ? end - def.tail : m.index, end, entry: def.entry });
        // Resume one character later: another shape may start inside this one.
        re.lastIndex = m.index + 1;
      }
    }
    if (spans.length <= 1) return spans;
    spans.sort((a, b) => a.start - b.start || b.end - a.end);
    const merged: Span[] = [spans[0]!];
    for (let i = 1; i < spans.length; i++) {
      const s = spans[i]!;
      const last = merged[merged.length - 1]!;
      if (s.start < last.end) {
        // Overlap (two secrets sharing characters, a secret inside a JWT): one redaction,
        // named after the longer match.
        if (s.end - s.start > last.end - last.start) last.entry = s.entry;
        if (s.end > last.end) last.end = s.end;
      } else {
        merged.push(s);
      }
    }
    return merged;
  }

  /**
   * Every occurrence of every literal of `t` in `text`, overlapping ones included (Rabin–Karp
   * over a window of the shortest literal length, then an exact check). `at` maps positions of
   * `text` to the string the spans are for (see `unwrap`).
   */
  function scanLits(text: string, t: LitTable, spans: Span[], at: Int32Array | undefined): void {
    const n = text.length;
    const w = t.w;
    if (t.lits.length === 0 || n < w) return;
    let h = 0;
    for (let i = 0; i < w; i++) h = (Math.imul(h, HASH_BASE) + fold(text.charCodeAt(i))) | 0;
    const filter = t.filter;
    for (let i = 0; ; i++) {
      if ((filter[(h >>> 5) & ((FILTER_BITS >>> 5) - 1)]! & (1 << (h & 31))) !== 0) {
        const cands = t.byPrefix.get(h);
        if (cands) {
          for (const lit of cands) {
            if (!matchesAt(text, i, lit)) continue;
            const end = i + lit.text.length;
            spans.push(at ? { start: at[i]!, end: at[end - 1]! + 1, entry: lit.entry } : { start: i, end, entry: lit.entry });
          }
        }
      }
      if (i + w >= n) break;
      h = (Math.imul((h - Math.imul(fold(text.charCodeAt(i)), t.pow)) | 0, HASH_BASE) + fold(text.charCodeAt(i + w))) | 0;
    }
  }

  function scrubString(text: string, hits: ScrubHit[], where: (() => { path: string; inKey?: boolean }) | undefined): string {
    const c = compile();
    if (!c || text.length < c.minText) return text;
    const spans = scan(text, c);
    if (spans.length === 0) return text;
    let out = '';
    let pos = 0;
    const loc = where?.();
    for (const s of spans) {
      out += text.slice(pos, s.start) + marker(s.entry.form);
      pos = s.end;
      const hit: { -readonly [K in keyof ScrubHit]: ScrubHit[K] } = { kind: s.entry.kind, form: s.entry.form };
      if (s.entry.label !== undefined) hit.label = s.entry.label;
      if (loc) {
        hit.path = loc.path;
        if (loc.inKey) hit.inKey = true;
      }
      hits.push(hit);
    }
    return out + text.slice(pos);
  }

  function walk(value: unknown, segments: (string | number)[], hits: ScrubHit[], depth: number): unknown {
    if (typeof value === 'string') return scrubString(value, hits, () => ({ path: formatPath(segments) }));
    if (typeof value === 'number') {
      // A numeric secret (a PIN, an account number) printed as a JSON number.
      const s = String(value);
      const scrubbed = scrubString(s, hits, () => ({ path: formatPath(segments) }));
      return scrubbed === s ? value : scrubbed;
    }
    if (value === null || typeof value !== 'object') return value;
    if (depth >= MAX_DEPTH) {
      hits.push({ kind: 'depth', form: 'too-deep', path: formatPath(segments) });
      return marker('too-deep');
    }
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        segments.push(i);
        const v = walk(value[i], segments, hits, depth + 1);
        segments.pop();
        if (v !== value[i]) {
          copy ??= value.slice();
          copy[i] = v;
        }
      }
      return copy ?? value;
    }
    let changed = false;
    const entries: [string, unknown][] = [];
    for (const [k, v] of Object.entries(value)) {
      const key = scrubString(k, hits, () => ({ path: formatPath(segments), inKey: true }));
      segments.push(key);
      const nv = walk(v, segments, hits, depth + 1);
      segments.pop();
      if (key !== k || nv !== v) changed = true;
      entries.push([key, nv]);
    }
    return changed ? Object.fromEntries(entries) : value;
  }

  for (const s of secrets) add(s);

  return {
    add,
    derive(more = []) {
      return build(more, options, new Map(values), skipped);
    },
    get size() {
      return values.size;
    },
    get skipped() {
      return skipped;
    },
    scrubText(text) {
      const hits: ScrubHit[] = [];
      return { text: scrubString(text, hits, undefined), hits };
    },
    scrubValue<T>(value: T, at: readonly (string | number)[] = []) {
      const hits: ScrubHit[] = [];
      return { value: walk(value, [...at], hits, at.length) as T, hits };
    },
    find(text) {
      const c = compile();
      if (!c || text.length < c.minText) return [];
      return scan(text, c).map((s) => {
        const hit: { -readonly [K in keyof ScrubHit]: ScrubHit[K] } = { kind: s.entry.kind, form: s.entry.form };
        if (s.entry.label !== undefined) hit.label = s.entry.label;
        return { start: s.start, end: s.end, hit, marker: marker(s.entry.form) };
      });
    },
    maxFormLength() {
      return compile()?.maxLen ?? 0;
    },
    partialFrom,
  };
}

/** Hit counts by form, for the per-call audit (`scrub count`) — never values. */
export function countHits(hits: readonly ScrubHit[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const h of hits) out[h.form] = (out[h.form] ?? 0) + 1;
  return out;
}
