/**
 * Digests of what drift holds against an approval (ADR 0281). Pure: no I/O, no clock.
 *
 * A tool definition's digest is SHA-256 over the canonical JSON (keys sorted at every level,
 * RFC 8785-style; `undefined` members dropped) of exactly `{ name, title, description,
 * inputSchema, outputSchema, annotations }` as the upstream sent them (MCP 2025-06-18 `Tool`).
 * `_meta` and any other member are left out: an upstream may vary them per call without
 * changing what the model is told. Each field also gets a digest of its own, so a finding can
 * say *what* changed without storing the upstream's text (which may echo an injected value).
 */
import { createHash } from 'node:crypto';

/** Fields of an MCP tool that are pinned, in the order findings name them. */
export const PINNED_TOOL_FIELDS = ['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations'] as const;
export type PinnedToolField = (typeof PINNED_TOOL_FIELDS)[number];

/** Nesting beyond this is refused (an upstream's schema is third-party input). */
export const MAX_CANONICAL_DEPTH = 64;

/**
 * Canonical JSON (sorted keys) of a JSON value. Throws RangeError past MAX_CANONICAL_DEPTH
 * levels; non-JSON values (functions, symbols) become `null` like JSON.stringify in arrays.
 */
export function canonical(v: unknown, depth = 0): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (depth >= MAX_CANONICAL_DEPTH) throw new RangeError(`nested deeper than ${MAX_CANONICAL_DEPTH} levels`);
  if (Array.isArray(v)) return `[${v.map((x) => canonical(x, depth + 1)).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k], depth + 1)}`).join(',')}}`;
}

/** `sha256:<hex>` of a UTF-8 string. */
export function sha256Text(text: string): string {
  return `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;
}

/** The pinned view of a tool: what the model reads and what the arguments must be. */
export interface ToolDefinition {
  readonly name: string;
  readonly title?: unknown;
  readonly description?: unknown;
  readonly inputSchema?: unknown;
  readonly outputSchema?: unknown;
  readonly annotations?: unknown;
}

export interface ToolDigest {
  /** Over the whole pinned view. */
  readonly digest: string;
  /** One per pinned field present (a field absent has no entry). */
  readonly parts: Readonly<Partial<Record<PinnedToolField, string>>>;
}

/** The pinned view of a tool: the pinned fields that are present. */
function pinnedView(t: ToolDefinition): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  for (const f of PINNED_TOOL_FIELDS) if (t[f] !== undefined) view[f] = t[f];
  return view;
}

/** Only the whole digest (one canonical JSON, one SHA-256): what the hot path compares. Equals `toolDigest(t).digest`. */
export function toolDigestOnly(t: ToolDefinition): string {
  return sha256Text(safeCanonical(pinnedView(t)));
}

/**
 * The digest of one tool definition and of each of its pinned fields./**
 * The digest of one tool definition and of each of its pinned fields. A definition nested
 * deeper than MAX_CANONICAL_DEPTH gets a digest of its own marker (it never equals a real one,
 * and the gateway refuses such a tool's calls anyway).
 */
export function toolDigest(t: ToolDefinition): ToolDigest {
  const parts: Partial<Record<PinnedToolField, string>> = {};
  for (const f of PINNED_TOOL_FIELDS) if (t[f] !== undefined) parts[f] = sha256Text(safeCanonical(t[f]));
  return { digest: toolDigestOnly(t), parts };
}

function safeCanonical(v: unknown): string {
  try {
    return canonical(v);
  } catch {
    return '"(too deep)"';
  }
}

/** Names of the fields whose digests differ between two part maps (added, removed or changed). */
export function changedFields(before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>>): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => before[k] !== after[k]).sort((a, b) => order(a) - order(b));
}

const order = (f: string): number => {
  const i = (PINNED_TOOL_FIELDS as readonly string[]).indexOf(f);
  return i < 0 ? 99 : i;
};
