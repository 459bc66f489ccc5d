/**
 * HTTP load generator for the benches, loopback only, bounded by duration.
 *
 * Uses `wrk` (https://github.com/wg/wrk, Debian package `wrk`) when it is on PATH: a separate
 * native process (LuaJIT for the per-request variation), so the measurement is about the server
 * and not about the client. On a 2-core machine a Node client needs a core of its own to reach
 * ~8k req/s, which caps every HTTP bench at the client's speed; wrk reaches 40k req/s on
 * `/healthz` with the same server. Falls back to a keep-alive `node:http` client in a worker
 * thread when wrk is missing (or `TESSERA_BENCH_CLIENT=node`); the result says which ran, and
 * the bench rows name it, because numbers from the fallback reflect the client.
 *
 * Per request, bearer tokens (`Authorization: Bearer …`) and bodies are cycled independently by
 * request index: request i carries tokens[i mod n] and bodies[i mod m]. With wrk every thread
 * starts at an evenly spaced offset of the cycle, so the threads together walk the whole list
 * (a cache smaller than the list misses on every request, as with one sequential client).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

export interface HttpLoadSpec {
  /** Base URL of the server, e.g. `http://127.0.0.1:4100`; loopback only. */
  readonly url: string;
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Bearer tokens, cycled per request (none: no Authorization header). */
  readonly tokens?: readonly string[];
  /** The Authorization scheme for `tokens` (default `Bearer`; `DPoP` for DPoP-bound tokens). */
  readonly scheme?: string;
  /**
   * One more header whose values are cycled per request, independently (e.g. `DPoP` proofs,
   * each good once: give at least as many as requests, or set `maxRequests`).
   */
  readonly cycled?: { readonly name: string; readonly values: readonly string[] };
  /** Request bodies, cycled per request (none: no body). */
  readonly bodies?: readonly string[];
  readonly contentType?: string;
  /** Every other status (and every socket error or timeout) counts as unexpected. */
  readonly expectStatus: number;
  readonly concurrency: number;
  /** Measured duration, whole seconds (wrk's resolution). */
  readonly seconds: number;
  /** Warm-up before the measurement (connections, JIT, caches); default 1 s, 0 for none. */
  readonly warmupSeconds?: number;
  /** Safety cap on requests. wrk: per thread, via thread:stop(); `capped` reports it (rps is then understated). */
  readonly maxRequests?: number;
  /** wrk threads; default 1 (one wrk thread drives ~40k req/s, leaving the other core to the server). */
  readonly threads?: number;
}

export interface HttpLoadResult {
  readonly rps: number;
  readonly requests: number;
  readonly unexpected: number;
  /** Status (and start of the body) of one unexpected response, or the socket error counts. */
  readonly firstUnexpected?: string;
  readonly tool: 'wrk' | 'node';
  readonly capped?: boolean;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

let wrkChecked: boolean | undefined;
/** True when `wrk` runs (and the Node client is not forced with TESSERA_BENCH_CLIENT=node). */
export function wrkAvailable(): boolean {
  if (process.env.TESSERA_BENCH_CLIENT === 'node') return false;
  if (wrkChecked === undefined) {
    // `wrk --version` prints its banner and exits 1; ENOENT is what matters.
    const r = spawnSync('wrk', ['--version'], { stdio: 'ignore', timeout: 5000 });
    wrkChecked = r.error === undefined;
  }
  return wrkChecked;
}

/** The load tool `httpLoad` will use, for bench row names. */
export function loadToolLabel(): string {
  return wrkAvailable() ? 'client: wrk' : 'client: Node fallback, install wrk';
}

export async function httpLoad(spec: HttpLoadSpec): Promise<HttpLoadResult> {
  const u = new URL(spec.url);
  if (!LOOPBACK.has(u.hostname)) throw new Error(`httpLoad: ${u.hostname} is not loopback; benches only load 127.0.0.1`);
  if (!Number.isInteger(spec.seconds) || spec.seconds < 1 || spec.seconds > 60) throw new Error('httpLoad: seconds must be an integer in 1..60');
  if (spec.concurrency < 1 || spec.concurrency > 1024) throw new Error('httpLoad: concurrency must be in 1..1024');
  return wrkAvailable() ? wrkLoad(spec) : nodeLoad(spec);
}

// ---------------------------------------------------------------------------------------------
// wrk

/** A Lua string literal for any bytes: printable ASCII kept, everything else as \ddd (Lua 5.1 §2.1). */
function luaString(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c) out += String.fromCharCode(b);
    else out += `\\${b.toString().padStart(3, '0')}`;
  }
  return `${out}"`;
}

/** Length-prefixed records ("<bytes>\n<data>"), so tokens and bodies may contain any byte. */
function writeItems(file: string, items: readonly string[]): void {
  const parts: Buffer[] = [];
  for (const it of items) {
    const b = Buffer.from(it, 'utf8');
    parts.push(Buffer.from(`${b.length}\n`), b);
  }
  writeFileSync(file, Buffer.concat(parts));
}

function wrkScript(spec: HttpLoadSpec, tokensFile: string | undefined, bodiesFile: string | undefined, threads: number, maxPerThread: number, cycledFile?: string): string {
  const headers: Record<string, string> = { ...(spec.headers ?? {}) };
  if (spec.contentType) headers['Content-Type'] = spec.contentType;
  const headerLua = Object.entries(headers).map(([k, v]) => `[${luaString(k)}] = ${luaString(v)}`).join(', ');
  return `-- Generated by bench/http-load.ts. Each wrk thread has its own Lua state: the lists are
-- loaded and every request pre-formatted in init(), request() is a table lookup.
local method = ${luaString(spec.method)}
local path = ${luaString(spec.path)}
local baseHeaders = { ${headerLua} }
local tokensFile = ${tokensFile ? luaString(tokensFile) : 'nil'}
local bodiesFile = ${bodiesFile ? luaString(bodiesFile) : 'nil'}
local cycledFile = ${cycledFile ? luaString(cycledFile) : 'nil'}
local cycledName = ${luaString(spec.cycled?.name ?? '')}
local scheme = ${luaString(spec.scheme ?? 'Bearer')}
local nthreads = ${threads}
local expectStatus = ${spec.expectStatus}
local maxPerThread = ${maxPerThread}

-- setup()/done() run in the main Lua state, which keeps the thread handles.
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

local function readItems(file)
  local items = {}
  if file == nil then return items end
  local f = assert(io.open(file, "rb"))
  local data = f:read("*a")
  f:close()
  local pos, len = 1, #data
  while pos <= len do
    local nl = string.find(data, "\\n", pos, true)
    local n = tonumber(string.sub(data, pos, nl - 1))
    items[#items + 1] = string.sub(data, nl + 1, nl + n)
    pos = nl + n + 1
  end
  return items
end

local requests = {}
local nreq = 0
local idx = -1
unexpected = 0
responses = 0
example = ""
capped = 0

function init(args)
  local tokens = readItems(tokensFile)
  local bodies = readItems(bodiesFile)
  local cycled = readItems(cycledFile)
  nreq = math.max(#tokens, #bodies, #cycled, 1)
  for i = 0, nreq - 1 do
    local h = {}
    for k, v in pairs(baseHeaders) do h[k] = v end
    if #tokens > 0 then h["Authorization"] = scheme .. " " .. tokens[(i % #tokens) + 1] end
    if #cycled > 0 then h[cycledName] = cycled[(i % #cycled) + 1] end
    local body = nil
    if #bodies > 0 then body = bodies[(i % #bodies) + 1] end
    requests[i + 1] = wrk.format(method, path, h, body)
  end
  offset = tonumber(args[1] or "0") or 0
end

function request()
  if idx < 0 then
    -- id is set by setup(); evenly spaced start, shifted past what the warm-up used.
    idx = (math.floor((id or 0) * nreq / nthreads) + offset) % nreq
  end
  local r = requests[idx + 1]
  idx = (idx + 1) % nreq
  return r
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= expectStatus then
    unexpected = unexpected + 1
    if example == "" then
      example = tostring(status) .. " " .. string.gsub(string.sub(body or "", 1, 300), "[%c]", " ")
    end
  end
  if maxPerThread > 0 and responses >= maxPerThread and capped == 0 then
    capped = 1
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local u, ex, c = 0, "", 0
  for _, t in ipairs(threads) do
    u = u + (t:get("unexpected") or 0)
    c = c + (t:get("capped") or 0)
    local e = t:get("example")
    if ex == "" and e ~= nil and e ~= "" then ex = e end
  end
  local err = summary.errors
  io.write(string.format("TESSERA_LOAD requests=%d duration_us=%d unexpected=%d capped=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.requests, summary.duration, u, c, err.connect, err.read, err.write, err.timeout))
  io.write("TESSERA_EXAMPLE " .. ex .. "\\n")
end
`;
}

interface WrkRun {
  requests: number;
  durationUs: number;
  rps: number;
  unexpected: number;
  socketErrors: number;
  socketDetail: string;
  capped: boolean;
  example: string;
}

function runWrk(args: string[], timeoutMs: number): Promise<WrkRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const m = /TESSERA_LOAD requests=(\d+) duration_us=(\d+) unexpected=(\d+) capped=(\d+) connect=(\d+) read=(\d+) write=(\d+) timeout=(\d+)/.exec(out);
      if (code !== 0 || !m) {
        reject(new Error(`wrk failed (exit ${code ?? signal}): ${(err || out).trim().slice(0, 500)}`));
        return;
      }
      const n = m.slice(1).map(Number) as [number, number, number, number, number, number, number, number];
      const [requests, durationUs, unexpected, capped, connect, read, write, timeout] = n;
      const rpsLine = /Requests\/sec:\s*([\d.]+)/.exec(out);
      resolve({
        requests,
        durationUs,
        rps: rpsLine ? Number(rpsLine[1]) : (requests / durationUs) * 1e6,
        unexpected,
        socketErrors: connect + read + write + timeout,
        socketDetail: `socket errors: connect ${connect}, read ${read}, write ${write}, timeout ${timeout}`,
        capped: capped > 0,
        example: /TESSERA_EXAMPLE (.*)/.exec(out)?.[1]?.trim() ?? '',
      });
    });
  });
}

async function wrkLoad(spec: HttpLoadSpec): Promise<HttpLoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-wrk-'));
  try {
    const threads = Math.max(1, Math.min(spec.threads ?? 1, spec.concurrency));
    const tokens = spec.tokens ?? [];
    const bodies = spec.bodies ?? [];
    const tokensFile = tokens.length ? join(dir, 'tokens.dat') : undefined;
    const bodiesFile = bodies.length ? join(dir, 'bodies.dat') : undefined;
    if (tokensFile) writeItems(tokensFile, tokens);
    if (bodiesFile) writeItems(bodiesFile, bodies);
    const cycledFile = spec.cycled?.values.length ? join(dir, 'cycled.dat') : undefined;
    if (cycledFile) writeItems(cycledFile, spec.cycled!.values);
    const maxPerThread = spec.maxRequests ? Math.max(1, Math.ceil(spec.maxRequests / threads)) : 0;
    const script = join(dir, 'load.lua');
    writeFileSync(script, wrkScript(spec, tokensFile, bodiesFile, threads, maxPerThread, cycledFile));
    const target = new URL(spec.path, spec.url).toString();
    const common = [`-t${threads}`, `-c${spec.concurrency}`, '--timeout', '10s', '-s', script, target];

    let offset = 0;
    const warmup = spec.warmupSeconds ?? 1;
    if (warmup > 0) {
      const w = await runWrk([...common.slice(0, -1), '-d', `${Math.round(warmup)}s`, target, '--', '0'], (warmup + 30) * 1000);
      // The measurement continues the cycle where the warm-up stopped, so a cache the warm-up
      // filled is not hit again (a FIFO cache smaller than the list keeps missing).
      offset = Math.floor(w.requests / threads);
      // Requests still in flight when the warm-up stopped were sent but not counted: single-use
      // values (proofs) skip past them.
      if (spec.cycled) offset += Math.ceil(spec.concurrency / threads);
    }
    const r = await runWrk([...common.slice(0, -1), '-d', `${spec.seconds}s`, target, '--', String(offset)], (spec.seconds + 30) * 1000);
    const unexpected = r.unexpected + r.socketErrors;
    const firstUnexpected = r.example || (r.socketErrors ? r.socketDetail : undefined);
    return { rps: r.rps, requests: r.requests, unexpected, tool: 'wrk', ...(firstUnexpected ? { firstUnexpected } : {}), ...(r.capped ? { capped: true } : {}) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Node fallback: keep-alive node:http client in a worker thread (its own event loop and core).

// Plain JS so the worker needs no TypeScript loader.
const WORKER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const s = workerData;
const u = new URL(s.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: s.concurrency });
let ops = 0, bad = 0, firstBad;
function once(i) {
  return new Promise((resolve) => {
    const body = s.bodies.length ? s.bodies[i % s.bodies.length] : '';
    const headers = { ...s.headers };
    if (s.tokens.length) headers.authorization = s.scheme + ' ' + s.tokens[i % s.tokens.length];
    if (s.cycled.length) headers[s.cycledName] = s.cycled[i % s.cycled.length];
    if (s.bodies.length) headers['content-length'] = Buffer.byteLength(body);
    const req = http.request({ host: u.hostname, port: u.port, method: s.method, path: s.path, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== s.expectStatus) { bad++; firstBad ??= res.statusCode + ' ' + Buffer.concat(chunks).toString().slice(0, 300); }
        resolve();
      });
    });
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { bad++; firstBad ??= String(e); resolve(); });
    if (body) req.write(body);
    req.end();
  });
}
(async () => {
  let i = 0;
  async function loop(deadline, max) { while (performance.now() < deadline && ops < max) { ops++; await once(i++); } }
  if (s.warmupMs > 0) {
    // Warm-up: open the connections, JIT; the cycle then continues where it stopped.
    const wd = performance.now() + s.warmupMs;
    await Promise.all(Array.from({ length: s.concurrency }, () => loop(wd, s.maxOps)));
  }
  ops = 0; bad = 0; firstBad = undefined;
  const start = performance.now();
  const deadline = start + s.ms;
  await Promise.all(Array.from({ length: s.concurrency }, () => loop(deadline, s.maxOps)));
  const elapsed = performance.now() - start;
  agent.destroy();
  parentPort.postMessage({ ops, elapsed, bad, firstBad, capped: ops >= s.maxOps });
})();
`;

async function nodeLoad(spec: HttpLoadSpec): Promise<HttpLoadResult> {
  const headers: Record<string, string> = { ...(spec.headers ?? {}) };
  if (spec.contentType) headers['content-type'] = spec.contentType;
  const workerData = {
    url: spec.url, method: spec.method, path: spec.path, headers,
    tokens: [...(spec.tokens ?? [])], bodies: [...(spec.bodies ?? [])], scheme: spec.scheme ?? 'Bearer',
    cycled: [...(spec.cycled?.values ?? [])], cycledName: spec.cycled?.name ?? '',
    expectStatus: spec.expectStatus, concurrency: spec.concurrency,
    ms: spec.seconds * 1000, warmupMs: (spec.warmupSeconds ?? 1) * 1000, maxOps: spec.maxRequests ?? Number.MAX_SAFE_INTEGER,
  };
  const worker = new Worker(WORKER_SRC, { eval: true, workerData });
  try {
    const r = await new Promise<{ ops: number; elapsed: number; bad: number; firstBad?: string; capped: boolean }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    return { rps: (r.ops / r.elapsed) * 1000, requests: r.ops, unexpected: r.bad, tool: 'node', ...(r.firstBad ? { firstUnexpected: r.firstBad } : {}), ...(r.capped ? { capped: true } : {}) };
  } finally {
    await worker.terminate();
  }
}
