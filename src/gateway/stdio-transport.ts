/**
 * MCP stdio client transport (spec 2025-11-25 "Transports" §stdio: one JSON-RPC message per
 * line) for upstream servers, used instead of the SDK's StdioClientTransport for two reasons:
 *
 *  - **Bounded reading.** A message longer than `maxMessageBytes` is never buffered: from the
 *    limit on, its bytes are dropped until the newline that ends it, and the request it answers
 *    is failed at once with a JSON-RPC error carrying TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE
 *    (the SDK's ReadBuffer concatenates every chunk, quadratic in the message size, and then
 *    closes the whole connection). Which request: the `id` in the first or last 512 bytes of the
 *    message, else the only request in flight; with several in flight and no id seen yet, the
 *    transport waits for the end of the line, then fails all of them. The connection stays
 *    usable once the line ends; a message that goes on past 16 times the limit (a server that
 *    never ends its line) gets the process killed instead (restarted on the next call).
 *  - **Stopping at once.** The server runs in its own process group (`detached`), so `kill()`
 *    ends it and every process it started (`npx` → `node`) with SIGKILL, immediately: a revoked
 *    caller's tool call cannot finish its side effects during a grace period. `close()` is the
 *    graceful stop (end stdin, then SIGTERM, then SIGKILL, 2 s apart), as the SDK does it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { deserializeMessage, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';

export const RESULT_TOO_LARGE = 'TESSERA_GATEWAY_UPSTREAM_RESULT_TOO_LARGE';
/** JSON-RPC code of the synthesized too-large error (Tessera's "upstream failed", docs/gateway.md). */
export const RESULT_TOO_LARGE_RPC = -32002;

export interface BoundedStdioOptions {
  readonly command: string;
  readonly args: readonly string[];
  /** Added to the SDK's minimal safe environment (PATH, HOME, ...); nothing else is inherited. */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /**
   * Run as this user (`run_as`, src/gateway/isolation.ts): uid and gid set at spawn, HOME its
   * private directory, USER and LOGNAME (which name Tessera's user) left out.
   */
  readonly runAs?: { readonly uid: number; readonly gid: number; readonly home: string };
  /** Largest message accepted from the server, in bytes (newline excluded). */
  readonly maxMessageBytes: number;
  /** Grace between the steps of `close()`, in ms (default 2000). */
  readonly graceMs?: number;
}

/**
 * The whole environment of a stdio upstream: the SDK's minimal one (PATH, HOME, LOGNAME, SHELL,
 * TERM, USER; values without `()`, as the SDK filters them) plus the configured values — nothing
 * else of Tessera's environment (its master key variable, tokens). With `home` (run_as): HOME is
 * that directory and USER and LOGNAME are left out.
 */
export function upstreamEnvironment(configured: Readonly<Record<string, string>>, home?: string): Record<string, string> {
  const base: Record<string, string> = { ...getDefaultEnvironment() };
  if (home !== undefined) {
    delete base.USER;
    delete base.LOGNAME;
    base.HOME = home;
  }
  return { ...base, ...configured };
}

const PEEK = 512;
/** Bytes of one oversized message dropped before the server is considered broken, as a multiple of the limit. */
const DROP_FACTOR = 16;
const NL = 0x0a;

/** `"id": 12` or `"id": "abc"` in a slice of a serialized JSON-RPC message (best effort). */
function peekId(text: string): RequestId | undefined {
  const m = /"id"\s*:\s*(-?\d{1,15}|"(?:[^"\\]|\\.){0,256}")/.exec(text);
  if (!m) return undefined;
  try {
    return JSON.parse(m[1]!) as RequestId;
  } catch {
    return undefined;
  }
}

export class BoundedStdioClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private chunks: Buffer[] = [];
  private size = 0;
  /** Set while dropping the rest of an oversized message. */
  private dropping: { head: string; tail: Buffer; failed: boolean; dropped: number } | undefined;
  private readonly inflight = new Set<RequestId>();
  private closed = false;
  private killing = false;

  constructor(private readonly opts: BoundedStdioOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): Promise<void> {
    if (this.child) throw new Error('BoundedStdioClientTransport already started');
    return new Promise((resolve, reject) => {
      const child = spawn(this.opts.command, [...this.opts.args], {
        env: upstreamEnvironment(this.opts.env, this.opts.runAs?.home),
        ...(this.opts.runAs ? { uid: this.opts.runAs.uid, gid: this.opts.runAs.gid } : {}),
        stdio: ['pipe', 'pipe', 'ignore'],
        shell: false,
        detached: process.platform !== 'win32',
        windowsHide: true,
        ...(this.opts.cwd ? { cwd: this.opts.cwd } : {}),
      });
      this.child = child;
      this.exited = new Promise((r) => {
        child.once('close', () => r());
        // A spawn that failed (ENOENT, EACCES) may never emit 'close'.
        child.once('error', () => {
          if (child.pid === undefined) r();
        });
      });
      child.once('error', (e) => {
        reject(e);
        this.onerror?.(e);
      });
      child.once('spawn', () => resolve());
      child.once('close', () => {
        this.child = undefined;
        if (!this.closed) {
          this.closed = true;
          this.onclose?.();
        }
      });
      child.stdin?.on('error', (e) => this.onerror?.(e));
      child.stdout?.on('error', (e) => this.onerror?.(e));
      child.stdout?.on('data', (chunk: Buffer) => this.read(chunk));
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin || this.closed) return Promise.reject(new Error('Not connected'));
    if ('method' in message && 'id' in message) this.inflight.add(message.id);
    if ('method' in message && message.method === 'notifications/cancelled') {
      const id = (message.params as { requestId?: RequestId } | undefined)?.requestId;
      if (id !== undefined) this.inflight.delete(id);
    }
    return new Promise((resolve, reject) => {
      stdin.write(serializeMessage(message), (e) => (e ? reject(e) : resolve()));
    });
  }

  /** Graceful stop: end stdin, then SIGTERM, then SIGKILL to the process group. */
  async close(): Promise<void> {
    const child = this.child;
    if (!child) return this.finish();
    const grace = this.opts.graceMs ?? 2000;
    try {
      child.stdin?.end();
    } catch {
      // already closed
    }
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      if (await this.exitedWithin(grace)) break;
      this.signal(child, signal);
    }
    return this.finish();
  }

  /** Immediate stop: SIGKILL to the process group; resolves when the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child) {
      this.signal(child, 'SIGKILL');
      await this.exited;
    }
    return this.finish();
  }

  private finish(): void {
    this.chunks = [];
    this.size = 0;
    this.dropping = undefined;
    if (!this.closed) {
      this.closed = true;
      this.onclose?.();
    }
  }

  private async exitedWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
    clearTimeout(timer);
    return done;
  }

  private signal(child: ChildProcess, signal: NodeJS.Signals): void {
    try {
      // The whole group: a wrapper (npx, sh) and the server it started.
      if (child.pid !== undefined && process.platform !== 'win32') process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      try {
        child.kill(signal);
      } catch {
        // gone
      }
    }
  }

  private read(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NL, start);
      const end = nl === -1 ? chunk.length : nl;
      this.append(chunk.subarray(start, end));
      if (nl === -1) return;
      this.endOfLine();
      start = nl + 1;
    }
  }

  private append(part: Buffer): void {
    if (part.length === 0) return;
    const d = this.dropping;
    if (d) {
      d.tail = d.tail.length + part.length <= PEEK ? Buffer.concat([d.tail, part]) : Buffer.concat([d.tail.subarray(-PEEK), part.subarray(-PEEK)]).subarray(-PEEK);
      d.dropped += part.length;
      if (d.dropped > DROP_FACTOR * this.opts.maxMessageBytes && this.child && !this.killing) {
        this.killing = true;
        if (!d.failed) this.failTooLarge([...this.inflight]);
        d.failed = true;
        this.onerror?.(new Error(`the upstream sent more than ${DROP_FACTOR * this.opts.maxMessageBytes} bytes in one message; it is stopped`));
        void this.kill();
      }
      return;
    }
    if (this.size + part.length <= this.opts.maxMessageBytes) {
      this.chunks.push(part);
      this.size += part.length;
      return;
    }
    // Over the limit: keep only the head (for the id) and a rolling tail; drop the rest.
    const head = Buffer.concat([...this.chunks, part]).subarray(0, PEEK).toString('utf8');
    this.chunks = [];
    this.size = 0;
    this.dropping = { head, tail: part.subarray(-PEEK), failed: false, dropped: part.length };
    const id = peekId(head);
    if (id !== undefined && this.inflight.has(id)) this.failTooLarge([id]);
    else if (this.inflight.size === 1) this.failTooLarge([...this.inflight]);
    else return;
    this.dropping.failed = true;
  }

  private endOfLine(): void {
    const d = this.dropping;
    if (d) {
      this.dropping = undefined;
      if (d.failed) return;
      const id = peekId(d.tail.toString('utf8'));
      this.failTooLarge(id !== undefined && this.inflight.has(id) ? [id] : [...this.inflight]);
      return;
    }
    if (this.size === 0) return;
    const line = (this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size)).toString('utf8').replace(/\r$/, '');
    this.chunks = [];
    this.size = 0;
    let message: JSONRPCMessage;
    try {
      message = deserializeMessage(line);
    } catch (e) {
      this.onerror?.(e as Error);
      return;
    }
    if (('result' in message || 'error' in message) && 'id' in message && message.id !== undefined) this.inflight.delete(message.id);
    this.deliver(message);
  }

  /**
   * Hands messages on one per microtask, in order. The SDK runs a notification's handler in a
   * microtask but a response's at once: several lines read from one chunk (a tool's last progress
   * notifications and its result) would otherwise have the result drop the call's progress handler
   * before those notifications reach it ("unknown token"). Chaining gives each notification's
   * handler its turn before the next message.
   */
  private delivery: Promise<void> = Promise.resolve();
  private deliver(message: JSONRPCMessage): void {
    this.delivery = this.delivery.then(() => this.onmessage?.(message));
  }

  private failTooLarge(ids: readonly RequestId[]): void {
    for (const id of ids) {
      this.inflight.delete(id);
      this.deliver({
        jsonrpc: '2.0',
        id,
        error: {
          code: RESULT_TOO_LARGE_RPC,
          message: `the upstream's answer is larger than ${this.opts.maxMessageBytes} bytes (gateway max_result_bytes); it was discarded`,
          data: { code: RESULT_TOO_LARGE, limit: this.opts.maxMessageBytes },
        },
      });
    }
  }
}
