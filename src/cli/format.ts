/**
 * Small formatting helpers for human output. Every value that came from the server goes
 * through `cell` (or `esc`), which escapes control and bidi characters visibly
 * (src/shared/terminal.ts): an agent-chosen string can never act on the operator's terminal.
 */
import { escapeTerminal, terminalJson } from '../shared/terminal.js';
import { describeDuration } from '../shared/duration.js';

/** A stored or remote string, made safe for a terminal (also escapes newlines and tabs). */
export const esc = (s: string): string => escapeTerminal(s);

/** Accepts epoch seconds, epoch milliseconds or an ISO string; returns ISO-8601 UTC. */
export function fmtTime(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v)) return new Date(v < 1e12 ? v * 1000 : v).toISOString();
  if (typeof v === 'string') return esc(v);
  return '-';
}

/** Whole seconds, the two largest units: "4m 59s", "2d 3h" (src/shared/duration.ts). */
export function humanDuration(ms: number): string {
  return describeDuration(Math.round(Math.abs(ms) / 1000) * 1000, 2);
}

/** One value on one line: strings escaped, objects as (escaped) JSON, absent as `-`. */
export function cell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (typeof v === 'string') return esc(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return esc(terminalJson(v));
}

/** Left-aligned columns; every row is a record, missing cells print as `-`. */
export function table(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: readonly string[]): string => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

/** Finds the list in a response that is either an array or `{ <something>: [...] }`. */
export function listOf(body: unknown): Record<string, unknown>[] {
  const arr = Array.isArray(body) ? body : body && typeof body === 'object' ? Object.values(body).find(Array.isArray) : undefined;
  return (arr ?? []).map((x: unknown) => (x && typeof x === 'object' ? (x as Record<string, unknown>) : { value: x }));
}
