/**
 * Helpers of the proxy tests: a real upstream on loopback that records what reached it, a policy
 * directory, and raw HTTP calls to the proxy (reverse and absolute-form) with keep-alive control.
 */
import { createServer, request as httpRequest, type Agent, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface Upstream {
  readonly url: string;
  readonly port: number;
  readonly seen: Seen[];
  /** `/big` and `/slow` answers: bytes written so far, whether ended, whether the connection closed before the end. */
  readonly streams: Map<string, { written: number; ended: boolean; cut: boolean }>;
  close(): Promise<void>;
}

/**
 * An upstream that answers JSON describing the request it got. `/echo-key` answers with the
 * value of `x-api-key` (an upstream that leaks the credential back; `/echo-key-length` with a
 * Content-Length); `/hang` never answers;
 * `/sse` streams three events; `/redirect` answers 302; `/big?id=…&mb=…` writes that many MiB
 * as fast as its connection takes them and `/slow?id=…` a line every 20 ms for 5 s, both recorded
 * in `streams`.
 */
export async function startUpstream(): Promise<Upstream> {
  const seen: Seen[] = [];
  const streams = new Map<string, { written: number; ended: boolean; cut: boolean }>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const path = (req.url ?? '').split('?')[0]!;
      if (path.endsWith('/hang')) return; // never answers
      if (path.endsWith('/echo-key')) {
        const key = String(req.headers['x-api-key'] ?? new URL(req.url!, 'http://x').searchParams.get('api_key') ?? '');
        res.writeHead(200, { 'content-type': 'text/plain' });
        // The key once plainly, once split over two writes, once base64.
        res.write(`your key is ${key}; again: ${key.slice(0, 5)}`);
        setImmediate(() => res.end(`${key.slice(5)}; b64 ${Buffer.from(key).toString('base64')}\n`));
        return;
      }
      if (path.endsWith('/big') || path.endsWith('/slow')) {
        const q = new URL(req.url!, 'http://x').searchParams;
        const st = { written: 0, ended: false, cut: false };
        streams.set(q.get('id') ?? '', st);
        res.on('close', () => (st.cut = !st.ended));
        res.writeHead(200, { 'content-type': 'text/plain' });
        if (path.endsWith('/big')) {
          const chunk = Buffer.alloc(64 * 1024, 'x');
          const total = Number(q.get('mb') ?? '1') * 16;
          const more = (): void => {
            while (st.written < total * chunk.length && !res.destroyed) {
              st.written += chunk.length;
              if (!res.write(chunk)) return void res.once('drain', more);
            }
            st.ended = true;
            res.end();
          };
          more();
        } else {
          const timer = setInterval(() => {
            if (res.destroyed) return clearInterval(timer);
            st.written++;
            res.write(`line ${st.written}\n`);
            if (st.written >= 250) {
              clearInterval(timer);
              st.ended = true;
              res.end();
            }
          }, 20);
        }
        return;
      }
      if (path.endsWith('/echo-key-length')) {
        // The key in a body with a Content-Length: in one write, or (?split=1) cut inside the key over two.
        const key = String(req.headers['x-api-key'] ?? new URL(req.url!, 'http://x').searchParams.get('api_key') ?? '');
        const text = `{"echo":"${key}","b64":"${Buffer.from(key).toString('base64')}"}`;
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        if (!(req.url ?? '').includes('split=1')) return void res.end(text);
        const cut = text.indexOf(key) + 5;
        res.write(text.slice(0, cut));
        setTimeout(() => res.end(text.slice(cut)), 20);
        return;
      }
      if (path.endsWith('/echo-key-headers')) {
        // The key in response header values (and a same-origin Location carrying it in the query).
        const key = String(req.headers['x-api-key'] ?? new URL(req.url!, 'http://x').searchParams.get('api_key') ?? '');
        const port = (server.address() as { port: number }).port;
        res.writeHead(302, { 'x-echo': key, 'www-authenticate': `Bearer error="invalid_token", key="${key}"`, 'set-cookie': [`k=${key}; HttpOnly`, 'plain=1'], location: `http://127.0.0.1:${port}/base/next?api_key=${encodeURIComponent(key)}` });
        res.end();
        return;
      }
      if (path.endsWith('/redirect-same')) {
        res.writeHead(301, { location: `http://127.0.0.1:${(server.address() as { port: number }).port}/base/v1/next?x=1` });
        res.end();
        return;
      }
      if (path.endsWith('/redirect')) {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
      res.end(JSON.stringify({ method: req.method, url: req.url, body }));
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`, port, seen, streams,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** A policy directory with these Cedar files. */
export function policyDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-proxy-policy-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  readonly json: any;
  readonly socket: Socket;
}

/** One HTTP/1.1 request to the proxy: `path` is origin-form (reverse) or absolute-form (forward). */
export function call(proxy: string, method: string, path: string, opts: { headers?: Record<string, string>; body?: string | Buffer; agent?: Agent } = {}): Promise<Answer> {
  const u = new URL(proxy);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method, path, headers: opts.headers ?? {}, agent: opts.agent ?? false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, socket: req.socket as Socket });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** Waits (bounded polling) until `cond` holds. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
