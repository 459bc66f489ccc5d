/**
 * The tool names the gateway shows MCP clients, and back (docs/gateway.md "Tool names",
 * ADR 0051).
 *
 * Strict clients and model APIs (OpenAI and Anthropic function names) accept only
 * `^[a-zA-Z0-9_-]{1,64}$` and refuse the whole tool list otherwise, so by default a tool is
 * exposed as `<server>__<tool>`. Policy entities do not change: Cedar still sees
 * `Tool::"<server>/<tool>"`, and the audit records server and tool.
 *
 * The mapping is a pure function of the server name and that server's tool list:
 *  - Server part: the server name when it is at most 32 characters, has no `__` and does not end
 *    in `_`; otherwise a shortened form plus a hash (`<start>_<hash8>`). It never contains `__`,
 *    so the first `__` of an exposed name ends the server part.
 *  - Tool part: the upstream's tool name when it only uses `[A-Za-z0-9_-]` and the whole name
 *    fits in 64 characters; otherwise its valid characters (others become `_`), shortened to fit,
 *    plus `_<hash8>` of `<server>/<tool>`.
 *  - Collisions (an upstream tool whose plain name equals another's hashed form): the tools are
 *    ordered by name, the first keeps its name, the others get a 16-character hash.
 * Pure: no I/O.
 */
import { createHash } from 'node:crypto';

/** What strict MCP clients accept (and the MCP spec recommends, SEP-986 minus "."). */
export const PORTABLE_TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_TOOL_NAME = 64;
/**
 * The MCP tool-name rules (spec 2025-11-25 "Tools" §Tool names, SEP-986): 1–128 characters of
 * A–Z a–z 0–9 `_` `-` `.`. An upstream tool whose name breaks them is not served (ADR 0148).
 */
export const MCP_TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
export const SEPARATOR = '__';
/** How the gateway names tools in tools/list (`gateway.tool_name_format`). */
export type ToolNameFormat = 'server__tool' | 'server/tool';

const SERVER_PLAIN_MAX = 32;
const PLAIN_PART = /^[A-Za-z0-9_-]+$/;
/** The lowercase RFC 4648 §6 base32 alphabet: hash suffixes stay inside the portable characters. */
const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** `n` base32 characters of SHA-256(text): deterministic, portable. */
export function nameHash(text: string, n: number): string {
  const d = createHash('sha256').update(text).digest();
  let out = '';
  let bits = 0;
  let acc = 0;
  for (let i = 0; out.length < n; i++) {
    acc = (acc << 8) | d[i]!;
    bits += 8;
    while (bits >= 5 && out.length < n) {
      bits -= 5;
      out += B32[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

/** Portable characters only: every other character becomes `_`, runs of `_` collapse to one. */
function sanitize(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, '_').replace(/_{2,}/g, '_');
}

/** The server part of exposed names; never contains `__` and never ends with `_`. */
export function serverPrefix(server: string): string {
  if (server.length <= SERVER_PLAIN_MAX && PLAIN_PART.test(server) && !server.includes(SEPARATOR) && !server.endsWith('_')) return server;
  const start = sanitize(server).slice(0, SERVER_PLAIN_MAX - 9).replace(/_+$/, '');
  return `${start}_${nameHash(`server:${server}`, 8)}`;
}

function hashedName(prefix: string, server: string, tool: string, hashLen: number): string {
  const room = MAX_TOOL_NAME - prefix.length - SEPARATOR.length - 1 - hashLen;
  const start = sanitize(tool).slice(0, Math.max(0, room));
  const hash = nameHash(`${server}/${tool}`, hashLen);
  return `${prefix}${SEPARATOR}${start}_${hash}`;
}

/** The exposed name of one tool when it collides with nothing. */
export function baseExposedName(server: string, tool: string): string {
  const prefix = serverPrefix(server);
  const plain = `${prefix}${SEPARATOR}${tool}`;
  if (PLAIN_PART.test(tool) && plain.length <= MAX_TOOL_NAME) return plain;
  return hashedName(prefix, server, tool, 8);
}

/**
 * Exposed names of every tool of one server (`format` `server/tool` keeps `<server>/<tool>`).
 * Deterministic whatever the order of `tools`; a tool whose name still collides after the long
 * hash (a SHA-256 prefix collision) is left out of the map.
 */
export function exposedNames(server: string, tools: readonly string[], format: ToolNameFormat = 'server__tool'): Map<string, string> {
  const out = new Map<string, string>();
  if (format === 'server/tool') {
    for (const t of tools) out.set(t, `${server}/${t}`);
    return out;
  }
  const sorted = [...new Set(tools)].sort();
  const taken = new Set<string>();
  const prefix = serverPrefix(server);
  // Plain names first: a tool whose own name is portable keeps it.
  const base = new Map(sorted.map((t) => [t, baseExposedName(server, t)]));
  const plainOf = (t: string): boolean => base.get(t) === `${prefix}${SEPARATOR}${t}`;
  for (const pass of [true, false]) {
    for (const t of sorted) {
      if (plainOf(t) !== pass) continue;
      let name = base.get(t)!;
      if (taken.has(name)) name = hashedName(prefix, server, t, 16);
      if (taken.has(name)) continue;
      taken.add(name);
      out.set(t, name);
    }
  }
  return out;
}

/**
 * What a `tools/call` name says before the server's tool list is known: the server, and the tool
 * when the name is a plain `<server>__<tool>` or a `<server>/<tool>` (always accepted); `tool`
 * is undefined when the name may be a hashed form that only the tool list resolves.
 */
export function parseCallName(name: string, serversByPrefix: ReadonlyMap<string, string>): { server: string; tool: string | undefined } | undefined {
  const slash = name.indexOf('/');
  if (slash > 0 && slash < name.length - 1) return { server: name.slice(0, slash), tool: name.slice(slash + 1) };
  const i = name.indexOf(SEPARATOR);
  if (i <= 0 || i + SEPARATOR.length >= name.length) return undefined;
  const server = serversByPrefix.get(name.slice(0, i));
  if (server === undefined) return undefined;
  const rest = name.slice(i + SEPARATOR.length);
  // A hashed form ends in `_<8 or 16 base32>`; anything else can only be the plain form.
  const mayBeHashed = !PLAIN_PART.test(rest) || /_(?:[a-z2-7]{8}|[a-z2-7]{16})$/.test(rest);
  return { server, tool: mayBeHashed ? undefined : rest };
}
