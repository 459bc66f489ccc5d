/**
 * Small formatting helpers for human output. Every value that came from the server goes
 * through `cell` (or `esc`), which escapes control and bidi characters visibly
 * (src/shared/terminal.ts): an agent-chosen string can never act on the operator's terminal.
 */
import { escapeTerminal, terminalJson } from '../shared/terminal.js';

/** A stored or remote string, made safe for a terminal (also escapes newlines and tabs). */
export const esc = (s: string): string => escapeTerminal(s);

/** Accepts epoch seconds, epoch milliseconds or an ISO string; returns ISO-8601 UTC. */
export function fmtTime(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v)) return new Date(v < 1e12 ? v * 1000 : v).toISOString();
  if (typeof v === 'string') return esc(v);
  return '-';
}

export function humanDuration(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const parts = [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', sec || s === 0 ? `${sec}s` : ''].filter(Boolean);
  return parts.slice(0, 2).join(' ');
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
