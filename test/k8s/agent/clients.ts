/**
 * What an app in the pod does, as real clients: node:http through HTTP_PROXY (absolute-form),
 * undici's ProxyAgent through HTTPS_PROXY (CONNECT, trusting Tessera's CA), plain requests to a
 * reverse route, and the sidecar started in-process (src/agent) with a stderr it records.
 */
import { request as httpRequest } from 'node:http';
import { ProxyAgent, request as undiciRequest } from 'undici';
import { parseSidecarOptions, startSidecar, type RawSidecarOptions, type RunningSidecar } from '../../../src/agent/index.js';

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One request to `proxy` (http://127.0.0.1:port) with an absolute or origin-form target. */
export function viaProxy(proxy: string, target: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<Answer> {
  const u = new URL(proxy);
  return new Promise((resolve, reject) => {
    const host = target.startsWith('http') ? new URL(target).host : u.host;
    const req = httpRequest({ host: u.hostname, port: u.port, method, path: target, headers: { host, ...headers }, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** An https:// request through `proxy` with CONNECT (undici ProxyAgent), trusting `ca`. */
export async function viaConnect(proxy: string, url: string, ca: string, headers: Record<string, string> = {}): Promise<Answer & { dispatcher: ProxyAgent }> {
  const dispatcher = new ProxyAgent({ uri: proxy, requestTls: { ca } });
  try {
    const r = await undiciRequest(url, { dispatcher, headers });
    return { status: r.statusCode, headers: r.headers, body: await r.body.text(), dispatcher };
  } finally {
    await dispatcher.close();
  }
}

export interface TestSidecar extends RunningSidecar {
  stderr(): string;
}

/** The sidecar in this process, listening on free loopback ports. */
export async function sidecar(raw: RawSidecarOptions): Promise<TestSidecar> {
  let err = '';
  const options = parseSidecarOptions({ listenProxy: raw.proxyUrl ? '127.0.0.1:0' : undefined, listenMcp: '127.0.0.1:0', drain: '1s', ...raw });
  const s = await startSidecar(options, { stderr: { write: (c: string) => (err += c) } });
  return Object.assign(s, { stderr: () => err });
}

export async function health(s: RunningSidecar): Promise<Answer> {
  return viaProxy(s.mcpAddress!, '/healthz');
}

/** A compact JWS in `text` (a token leaked into output). */
export const JWT_SHAPE = /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+/;
