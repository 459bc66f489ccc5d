/**
 * Prompt arguments (and completion arguments) as the gateway accepts them. Pure.
 *
 * MCP gives prompt arguments as a string → string map (spec 2025-11-25 `GetPromptRequest`);
 * the message check (messages.ts) already refuses any other shape, so nothing here is nested.
 * Bounded (counts and lengths below), and a value holding a credential shape (a JWT or a Tessera
 * token) is refused: prompt arguments become text the model reads, and are echoed into the
 * prompt's messages, so they are never a place for a credential (ADR 0171). A secret value the
 * agent somehow holds is in any case scrubbed from the result on the way back.
 */
import { credentialLike } from '../../shared/credential-like.js';
import { TesseraError } from '../../shared/errors.js';

export const PROMPT_ARG_LIMITS = { count: 32, name: 128, value: 8192, total: 32_768 } as const;

function refuse(message: string, argument?: string): TesseraError {
  return new TesseraError('TESSERA_GATEWAY_PROMPT_ARGS_INVALID', message, argument !== undefined ? { argument: argument.slice(0, PROMPT_ARG_LIMITS.name) } : undefined);
}

/**
 * The arguments, checked: at most `count` of them, names ≤ `name` characters, values strings of
 * ≤ `value` characters and ≤ `total` together, no credential shape in a name or value.
 * Throws TESSERA_GATEWAY_PROMPT_ARGS_INVALID naming the argument (never its value).
 */
export function checkPromptArguments(raw: unknown): Readonly<Record<string, string>> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw refuse('arguments: must be a JSON object of strings');
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > PROMPT_ARG_LIMITS.count) throw refuse(`arguments: at most ${PROMPT_ARG_LIMITS.count} arguments`);
  let total = 0;
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > PROMPT_ARG_LIMITS.name) throw refuse(`arguments: an argument name must be 1 to ${PROMPT_ARG_LIMITS.name} characters`);
    if (credentialLike(k) !== undefined) throw refuse('arguments: an argument name looks like a credential');
    if (typeof v !== 'string') throw refuse(`argument "${k}": must be a string`, k);
    if (v.length > PROMPT_ARG_LIMITS.value) throw refuse(`argument "${k}": longer than ${PROMPT_ARG_LIMITS.value} characters`, k);
    total += v.length;
    if (total > PROMPT_ARG_LIMITS.total) throw refuse(`arguments: longer than ${PROMPT_ARG_LIMITS.total} characters together`, k);
    const shape = credentialLike(v);
    if (shape) throw refuse(`argument "${k}": holds what looks like ${shape}; prompt arguments become text the model reads, never pass a credential in one`, k);
    out[k] = v;
  }
  return out;
}
