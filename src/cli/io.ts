import { accessSync, constants, statSync, type Stats } from 'node:fs';
import { TesseraApiError, TesseraConnectionError } from '../sdk/errors.js';
import type { FetchLike } from '../sdk/http.js';
import { forCli, nextStepOf } from '../shared/next-steps.js';
import { TOKEN_KIND_WORDS, tokenKindOf } from '../shared/token-kind.js';

export interface CliWritable {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export type ShutdownSignal = 'SIGINT' | 'SIGTERM';

/** Everything the CLI touches outside itself, injectable for tests. */
export interface CliIo {
  stdout: CliWritable;
  stderr: CliWritable;
  env: Record<string, string | undefined>;
  /** Read when a command is given `-` (a value, a token or a secret from a pipe). */
  stdin?: AsyncIterable<string | Uint8Array>;
  /** Where SIGINT/SIGTERM come from (default: `process`). */
  signals?: { once(sig: ShutdownSignal, fn: () => void): unknown; removeListener(sig: ShutdownSignal, fn: () => void): unknown };
  fetch?: FetchLike;
  /** Wall clock for display (`token inspect`) — default Date.now. */
  now?: () => number;
  /** Sleep used by `audit tail -f`; resolves early when the signal aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/**
 * Exit codes (documented in docs/cli.md). `BROKEN_PIPE` is 128 + SIGPIPE, what a shell reports
 * for any program whose reader went away (`tessera audit tail | head -n 1`): Node ignores SIGPIPE,
 * so the CLI exits with that status itself (see `exitQuietlyOnBrokenPipe`).
 */
export const EXIT = { OK: 0, REFUSED: 1, USAGE: 2, CONNECT: 3, BROKEN_PIPE: 141 } as const;

/** A process's standard output streams, as far as the broken-pipe guard needs them. */
export interface StdStreams {
  readonly stdout: { on(event: 'error', fn: (e: Error) => void): unknown };
  readonly stderr: { on(event: 'error', fn: (e: Error) => void): unknown };
}

/**
 * Once the reader of stdout or stderr is gone (EPIPE: `| head`, a closed terminal, a client that
 * hung up on `tessera mcp`), nothing more can be said to anyone: exit at once with
 * `EXIT.BROKEN_PIPE`, without a stack trace (there is nowhere to print one). Any other stream
 * error is not ours to swallow and is thrown again. Installed once by the `tessera` entry point,
 * for every command; `exit` is `process.exit` there.
 */
export function exitQuietlyOnBrokenPipe(streams: StdStreams, exit: (code: number) => void): void {
  const onError = (e: Error): void => {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return exit(EXIT.BROKEN_PIPE);
    throw e;
  };
  streams.stdout.on('error', onError);
  streams.stderr.on('error', onError);
}

/** A failure the CLI reports with a stable code and an exit code. Never holds a token. */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number,
    readonly extra: { status?: number; requestId?: string } = {},
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usage = (message: string): CliError => new CliError('TESSERA_CLI_USAGE', message, EXIT.USAGE);

const NEEDS = {
  admin: 'an admin token (tsr_admin_…, printed by `tessera dev` or `tessera init`)',
  agent: 'an agent token (from `tessera login`)',
} as const;

/**
 * The token a command sends: `--token`, else TESSERA_TOKEN. Refused before any request (usage,
 * exit 2) when missing, set but empty (usually `X=$(tessera …)` whose command failed), or of the
 * wrong kind by its shape — an agent's JWT or a join token for an operator command, an admin or
 * a join token for an agent command — with what to do instead.
 */
export function requireToken(given: { readonly flag?: string; readonly env?: string }, need: 'admin' | 'agent'): string {
  const where = given.flag !== undefined ? '--token' : 'TESSERA_TOKEN';
  const raw = given.flag ?? given.env;
  if (raw === undefined) throw usage(`this command needs ${NEEDS[need]}: set TESSERA_TOKEN (or pass --token)`);
  const t = raw.trim();
  if (t === '') throw usage(`${where} is set but empty: did the command that produced it fail? This command needs ${NEEDS[need]}`);
  const kind = tokenKindOf(t);
  if (need === 'admin' && (kind === 'jwt' || kind === 'join')) {
    throw usage(`this command needs ${NEEDS.admin}, but ${where} holds ${TOKEN_KIND_WORDS[kind]}; agent tokens are for agent commands (\`tessera creds\`) and the agent endpoints`);
  }
  if (need === 'agent' && kind === 'admin') {
    throw usage(`this command needs ${NEEDS.agent}, but ${where} holds ${TOKEN_KIND_WORDS.admin}: log in as the agent first (\`tessera login --token-file FILE --out agent.token\`) and pass that token`);
  }
  if (need === 'agent' && kind === 'join') {
    throw usage(`this command needs ${NEEDS.agent}, but ${where} holds ${TOKEN_KIND_WORDS.join}: exchange it first (\`tessera login --join-token - --out agent.token\`) and pass the agent token`);
  }
  return t;
}

/**
 * Checks a path given on the command line before the command uses it: it exists, is a `file`
 * or a `directory` as the command needs, and is readable. Otherwise a usage error (exit 2)
 * naming the argument (`what`, e.g. "--from-file" or "the policy test file"), the path, what is
 * wrong in words, and `hint` when the likely mistake has a known fix. What a readable file
 * then contains is the command's business (its own error code, exit 1).
 */
export function requireLocalPath(path: string, kind: 'file' | 'directory', what: string, hint?: string): void {
  const fail = (why: string): never => {
    throw usage(`${what} ${path} ${why}${hint ? `; ${hint}` : ''}`);
  };
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'does not exist (a part of the path is a file)' : code === 'EACCES' ? 'cannot be reached (permission denied)' : `cannot be read (${code ?? 'error'})`);
  }
  if (kind === 'file' && st.isDirectory()) fail('is a directory, not a file');
  if (kind === 'file' && !st.isFile()) fail('is not a regular file');
  if (kind === 'directory' && !st.isDirectory()) fail('is a file, not a directory');
  try {
    accessSync(path, kind === 'directory' ? constants.R_OK | constants.X_OK : constants.R_OK);
  } catch {
    fail('is not readable (permission denied)');
  }
}

export function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  // A server message names an HTTP route as its next step; the CLI names the command instead.
  if (err instanceof TesseraApiError) return new CliError(err.code, forCli(err.message, nextStepOf(err.details)), EXIT.REFUSED, { status: err.status, requestId: err.requestId });
  if (err instanceof TesseraConnectionError) return new CliError(err.code === 'TESSERA_SDK_CONNECT_FAILED' ? 'TESSERA_CLI_CONNECT_FAILED' : err.code, err.message, EXIT.CONNECT);
  const e = err as { code?: unknown; message?: unknown };
  // TesseraError from the runtime (init, rotate-master-key, ...): keep its stable code.
  if (typeof e?.code === 'string' && /^TESSERA_/.test(e.code)) return new CliError(e.code, String(e.message ?? e.code), EXIT.REFUSED);
  return new CliError('TESSERA_CLI_FAILED', err instanceof Error ? err.message : String(err), EXIT.REFUSED);
}

/** Standard input as bytes, at most `limit` of them. */
export async function readAllBytes(stream: AsyncIterable<string | Uint8Array> | undefined, limit = 1024 * 1024): Promise<Buffer> {
  if (!stream) throw usage('`-` means "read from standard input", but no input is available');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    const b = typeof c === 'string' ? Buffer.from(c) : Buffer.from(c);
    size += b.length;
    if (size > limit) throw usage(`standard input is larger than ${limit} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Standard input as text (tokens, URLs: never binary). */
export async function readAll(stream: AsyncIterable<string | Uint8Array> | undefined, limit = 1024 * 1024): Promise<string> {
  return (await readAllBytes(stream, limit)).toString('utf8');
}

/**
 * The bytes of a secret value as the text Tessera stores (secrets are UTF-8 strings, JSON on
 * the wire), refusing what would change on the way: bytes that are not UTF-8 (a DER key, a
 * keystore) would come back as U+FFFD. `from` names the source in the message (`--from-file
 * key.der`, `standard input`). Unless `keepNewline`, exactly one trailing line break (LF or
 * CRLF) is dropped: the one an editor or `echo` adds, which no header or URL may carry.
 */
export function secretText(bytes: Buffer, from: string, keepNewline: boolean): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    throw usage(`the value from ${from} is not UTF-8 text (byte 0x${bytes[at]!.toString(16).padStart(2, '0')} at offset ${at} starts no valid character): Tessera stores secrets as text, and would change these bytes. Store binary data encoded, e.g. base64 -w0 FILE | tessera kv put PATH -`);
  }
  return keepNewline ? text : text.replace(/\r?\n$/, '');
}

/** Offset of the first byte that starts no valid UTF-8 sequence (RFC 3629 §4). */
function firstInvalidUtf8(b: Buffer): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    const n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n === 0 || i + n > b.length) return i;
    const seq = b.subarray(i, i + n);
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(seq);
    } catch {
      return i;
    }
    i += n;
  }
  return 0;
}

export function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Resolves with the first SIGINT/SIGTERM, then stops listening. */
export function waitForShutdown(io: CliIo): { promise: Promise<ShutdownSignal>; cancel(): void } {
  const signals = io.signals ?? process;
  let cancel = (): void => {};
  const promise = new Promise<ShutdownSignal>((resolve) => {
    const onInt = (): void => finish('SIGINT');
    const onTerm = (): void => finish('SIGTERM');
    function finish(sig: ShutdownSignal): void {
      cancel();
      resolve(sig);
    }
    cancel = () => {
      signals.removeListener('SIGINT', onInt);
      signals.removeListener('SIGTERM', onTerm);
    };
    signals.once('SIGINT', onInt);
    signals.once('SIGTERM', onTerm);
  });
  return { promise, cancel: () => cancel() };
}
