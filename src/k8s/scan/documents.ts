/**
 * Text of one input (a file or standard input) → the JSON/YAML documents it holds, with the
 * limits that keep hostile input from taking the scanner down (ADR 0272):
 *  - at most MAX_INPUT_BYTES per input (the caller stops reading there);
 *  - JSON (first character `{` or `[`) with JSON.parse, anything else as YAML 1.2 (core schema,
 *    several `---` documents allowed) with at most MAX_YAML_ALIASES alias expansions (a
 *    "billion laughs" bomb fails fast), unique keys, no custom tags;
 *  - every document at most MAX_DEPTH levels deep (checked iteratively, so depth never
 *    overflows a stack in later code).
 * Parser messages are never passed on (`prettyErrors` only computes their line numbers): they quote the input (V8's JSON errors and the `yaml`
 * package's code frames do), which may be a secret. Only a line number is.
 *
 * Pure: no I/O. Errors: TESSERA_K8S_SCAN_INPUT_EMPTY, _MALFORMED, _TOO_DEEP.
 */
import { parseAllDocuments } from 'yaml';
import { TesseraError } from '../../shared/errors.js';
import { jsonDepth } from '../../shared/json-depth.js';

export const MAX_INPUT_BYTES = 128 * 1024 * 1024;
export const MAX_DEPTH = 64;
export const MAX_YAML_ALIASES = 100;

/** The documents of `text`; `where` names the input in messages. */
export function parseDocuments(text: string, where: string): unknown[] {
  const trimmed = text.replace(/^\uFEFF/, '').trimStart();
  if (trimmed === '') throw new TesseraError('TESSERA_K8S_SCAN_INPUT_EMPTY', `${where} is empty: nothing to scan (did the command that wrote it fail?)`);
  const docs = trimmed.startsWith('{') || trimmed.startsWith('[') ? [parseJson(trimmed, where)] : parseYaml(text, where);
  const present = docs.filter((d) => d !== null && d !== undefined);
  if (present.length === 0) throw new TesseraError('TESSERA_K8S_SCAN_INPUT_EMPTY', `${where} holds no document: nothing to scan`);
  for (const [i, d] of present.entries()) {
    if (jsonDepth(d, MAX_DEPTH) > MAX_DEPTH) {
      throw new TesseraError('TESSERA_K8S_SCAN_INPUT_TOO_DEEP', `${docName(where, i, present.length)} is nested deeper than ${MAX_DEPTH} levels; no Kubernetes object is`, { limit: MAX_DEPTH });
    }
  }
  return present;
}

/** `cluster.yaml` for a single document, `cluster.yaml document 2` among several. */
export const docName = (where: string, i: number, n: number): string => (n > 1 ? `${where} document ${i + 1}` : where);

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    // V8: "... in JSON at position 123 (line 4 column 2)" — keep the line, drop the quoted text.
    const line = /line (\d+)/.exec((e as Error).message)?.[1];
    throw new TesseraError('TESSERA_K8S_SCAN_INPUT_MALFORMED', `${where} is not valid JSON${line ? ` (line ${line})` : ''}`);
  }
}

/**
 * Deeper indentation than this is refused before the YAML parser sees it: the `yaml` package
 * compiles a regular expression per indentation width, and a few thousand columns exhaust V8's
 * regexp compiler memory, a crash no try/catch can stop. 64 levels of kubectl's two-space
 * indentation need 128 columns.
 */
export const MAX_YAML_INDENT = 1000;
// (Block indicators `- `, `? `, `: ` at the start of a line indent what follows as much as spaces do.)

function parseYaml(text: string, where: string): unknown[] {
  const deep = new RegExp(`^[ \\t?:-]{${MAX_YAML_INDENT + 1}}`, 'm').exec(text);
  if (deep) {
    const line = text.slice(0, deep.index).split('\n').length;
    throw new TesseraError('TESSERA_K8S_SCAN_INPUT_TOO_DEEP', `${where} is indented more than ${MAX_YAML_INDENT} columns at line ${line}; no Kubernetes object is`, { limit: MAX_DEPTH });
  }
  let out: unknown[];
  try {
    const docs = parseAllDocuments(text, { schema: 'core', uniqueKeys: true, merge: false, prettyErrors: true, strict: true });
    const list = Array.isArray(docs) ? docs : [docs];
    out = list.map((d) => {
      const err = d.errors[0];
      if (err) throw malformed(where, `not valid YAML${lineOf(err.linePos)}: ${err.code}`);
      const warn = d.warnings.find((w) => w.code === 'TAG_RESOLVE_FAILED');
      if (warn) throw malformed(where, `uses a custom YAML tag${lineOf(warn.linePos)}; kubectl output has none`);
      return d.toJS({ maxAliasCount: MAX_YAML_ALIASES });
    });
  } catch (e) {
    if (e instanceof TesseraError) throw e;
    if (e instanceof RangeError) throw new TesseraError('TESSERA_K8S_SCAN_INPUT_TOO_DEEP', `${where} is nested too deeply to parse; no Kubernetes object is`, { limit: MAX_DEPTH });
    // yaml's ReferenceError for an alias bomb: "Excessive alias count indicates a resource exhaustion attack".
    if (/alias/i.test((e as Error).message ?? '')) throw malformed(where, `expands more than ${MAX_YAML_ALIASES} YAML aliases (a resource-exhaustion "billion laughs" document)`);
    throw malformed(where, 'is not valid YAML');
  }
  return out;
}

const lineOf = (pos: readonly { line: number }[] | undefined): string => (pos?.[0] ? ` at line ${pos[0].line}` : '');
const malformed = (where: string, what: string): TesseraError => new TesseraError('TESSERA_K8S_SCAN_INPUT_MALFORMED', what.startsWith('not') || what.startsWith('is') ? `${where} is ${what.replace(/^is /, '')}` : `${where} ${what}`);
