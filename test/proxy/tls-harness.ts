/**
 * Test harness for the TLS part of the proxy: a real node:http server standing in for the CORE's
 * proxy listener (its 'connect' event goes to handleConnect), a real interceptor with a real CA,
 * an inner HTTP server for the decrypted traffic, and a loopback TLS server for tunnels.
 * Everything listens on 127.0.0.1.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { ManualClock, systemClock, type Clock } from '../../src/shared/clock.js';
import { masterSealer } from '../../src/secrets/master-key.js';
import { TesseraError } from '../../src/shared/errors.js';
import type { AgentPrincipal } from '../../src/shared/principal.js';
import { loadOrCreateProxyCa, generateLeafKeyPair, mintLeafCertificate, type ProxyCa } from '../../src/proxy/ca.js';
import { createTlsInterceptor, type TlsInterceptor } from '../../src/proxy/intercept.js';
import { handleConnect, createTunnelRegistry, type ConnectDeps, type InterceptedTunnel, type TunnelRegistry } from '../../src/proxy/connect.js';
import { MemoryAuditWriter } from '../helpers/audit.js';
import { createSsrfGuard } from '../../src/proxy/ssrf.js';
import { registerSensitive } from '../helpers/leak-registry.js';

export const AGENT = 'spiffe://example.org/ns/prod/sa/agent-one';
export const TOKEN = `tok-${randomBytes(8).toString('hex')}`;
// The suite-wide leak scan checks that no audit event carries it.
registerSensitive(TOKEN);

export function principal(spiffeId = AGENT): AgentPrincipal {
  return { spiffeId, trustDomain: 'example.org', path: spiffeId.replace(/^spiffe:\/\/[^/]+/, ''), attributes: {}, jti: 'jti-x', expiresAt: Date.UTC(2030, 0, 1), task: 'txn-1' };
}

export async function newCa(clock: Clock = systemClock): Promise<ProxyCa & { privateKey: CryptoKey }> {
  const store = openSqliteStore({ file: ':memory:' });
  await store.migrate();
  try {
    return await loadOrCreateProxyCa({ store, sealer: masterSealer(randomBytes(32)), clock, audit: new MemoryAuditWriter(), trustDomain: 'example.org' });
  } finally {
    await store.close();
  }
}

/** `Bearer <token>` or `Basic base64(agent:<token>)` → the agent; anything else 401. */
function authenticateProxy(req: IncomingMessage): Promise<{ principal: AgentPrincipal; token: string }> {
  const h = req.headers['proxy-authorization'];
  let token: string | undefined;
  if (h?.startsWith('Bearer ')) token = h.slice(7);
  else if (h?.startsWith('Basic ')) token = Buffer.from(h.slice(6), 'base64').toString('utf8').split(':').slice(1).join(':');
  if (!h) return Promise.reject(new TesseraError('TESSERA_TOKEN_MISSING', 'no token'));
  if (token !== TOKEN) return Promise.reject(new TesseraError('TESSERA_TOKEN_SIGNATURE_INVALID', 'bad token'));
  return Promise.resolve({ principal: principal(), token });
}

export interface Harness {
  readonly port: number;
  readonly proxyUrl: string;
  readonly dir: string;
  readonly caFile: string;
  readonly ca: ProxyCa & { privateKey: CryptoKey };
  readonly interceptor: TlsInterceptor;
  readonly audit: MemoryAuditWriter;
  readonly mints: string[];
  readonly served: InterceptedTunnel[];
  readonly tunnels: TunnelRegistry;
  readonly clock: ManualClock;
  /** Loopback TLS server for tunnels: its port, its own CA file, and what it received. */
  readonly upstream: { port: number; caFile: string; received: Buffer[] };
  close(): Promise<void>;
}

export async function startHarness(options: { routes?: string[]; permit?: string[]; maxTunnels?: number; leafTtlMs?: number; authenticate?: ConnectDeps['authenticate']; logger?: ConnectDeps['logger'] } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-proxy-tls-'));
  const clock = new ManualClock(Date.now());
  const ca = await newCa(clock);
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certificatePem);
  const mints: string[] = [];
  const interceptor = createTlsInterceptor(ca, { clock, leafTtlMs: options.leafTtlMs ?? 24 * 3_600_000, onMint: (h) => mints.push(h) });
  const audit = new MemoryAuditWriter();
  const served: InterceptedTunnel[] = [];
  const tunnelOf = new WeakMap<object, InterceptedTunnel>();

  // The decrypted side: what the CORE's proxy server would do with the request.
  const inner: Server = createServer((req, res) => {
    const t = tunnelOf.get(req.socket);
    const body = JSON.stringify({ host: req.headers.host, path: req.url, method: req.method, agent: t?.principal.spiffeId, route: t?.route, alpn: (req.socket as TLSSocket).alpnProtocol });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });

  // Loopback TLS upstream for tunnels, with a CA of its own (the proxy never sees inside).
  const upCa = await newCa();
  const upKeys = await generateLeafKeyPair();
  const upCert = await mintLeafCertificate(upCa, upKeys, { host: 'tunnel.example.test', ip: false }, { notBefore: Date.now() - 60_000, notAfter: Date.now() + 3_600_000 });
  const upCaFile = join(dir, 'upstream-ca.pem');
  writeFileSync(upCaFile, upCa.certificatePem);
  const received: Buffer[] = [];
  const upstream: TlsServer = createTlsServer({ key: upKeys.privateKeyPem, cert: upCert, ALPNProtocols: ['http/1.1'] }, (s) => {
    s.on('error', () => s.destroy());
    let buf = '';
    s.on('data', (c: Buffer) => {
      received.push(c);
      buf += c.toString('latin1');
      if (buf.includes('\r\n\r\n')) {
        const body = 'hello from the tunnelled upstream';
        s.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      }
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upPort = (upstream.address() as AddressInfo).port;

  const routes = new Set(options.routes ?? ['api.example.test', '10.1.2.3', 'fd00::1']);
  const permit = new Set(options.permit ?? []);
  const tunnels = createTunnelRegistry();
  const names: Record<string, string> = { 'tunnel.example.test': '127.0.0.1', 'internal.example.test': '10.0.0.7', 'metadata.example.test': '169.254.169.254' };
  const ssrf = createSsrfGuard({
    lookup: async (host) => {
      const address = names[host];
      if (!address) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return [{ address, family: 4 }];
    },
  });
  const deps: ConnectDeps = {
    authenticate: options.authenticate ?? authenticateProxy,
    ...(options.logger ? { logger: options.logger } : {}),
    routeForHost: (host) => (routes.has(host) ? { name: host === 'api.example.test' ? 'example' : `r-${host.replace(/[^a-z0-9]/g, '-')}` } : undefined),
    authorizeTunnel: (_p, host) => {
      if (!permit.has(host)) throw new TesseraError('TESSERA_PROXY_TUNNEL_DENIED', `policy does not permit a tunnel to ${host}`);
    },
    // The real SSRF guard, with a resolver for the test names; loopback is allowed only for the
    // test upstream's address (what a route's allow_private would say).
    vet: (host, port) => ssrf.vet(host, port, { allow: ['127.0.0.1/32'] }),
    interceptor,
    serveIntercepted: (socket, tunnel) => {
      served.push(tunnel);
      tunnelOf.set(socket, tunnel);
      inner.emit('connection', socket);
    },
    audit,
    tunnels,
    maxTunnelsPerAgent: options.maxTunnels ?? 64,
    idleTimeoutMs: 10_000,
    replica: 'test',
  };
  const proxy = createServer((_req, res) => res.writeHead(404).end());
  proxy.on('connect', (req, socket, head) => handleConnect(req, socket, head, deps));
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const port = (proxy.address() as AddressInfo).port;
  return {
    port, proxyUrl: `http://127.0.0.1:${port}`, dir, caFile, ca, interceptor, audit, mints, served, tunnels, clock,
    upstream: { port: upPort, caFile: upCaFile, received },
    async close() {
      proxy.closeAllConnections();
      inner.closeAllConnections();
      await new Promise((r) => proxy.close(r));
      await new Promise((r) => upstream.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sends a raw CONNECT and reads the proxy's answer head (and body when it closes). */
export async function rawConnect(port: number, target: string, headers: Record<string, string> = {}): Promise<{ status: number; head: string; body: string; socket: Socket }> {
  const socket = netConnect({ host: '127.0.0.1', port });
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  socket.write(lines.join('\r\n') + '\r\n\r\n');
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = text.slice(0, end);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      if (status === 200) {
        socket.off('data', onData);
        resolve({ status, head, body: '', socket });
        return;
      }
      const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length >= end + 4 + len) {
        socket.off('data', onData);
        resolve({ status, head, body: buf.subarray(end + 4, end + 4 + len).toString('utf8'), socket });
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed without a full answer: ${JSON.stringify(buf.toString('latin1'))}`)));
  });
}

export const basic = (token = TOKEN): string => `Basic ${Buffer.from(`agent:${token}`).toString('base64')}`;

/** Runs a child process without blocking this event loop (the servers live in this process). */
export function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = { ...process.env };
  for (const k of Object.keys(base)) if (/^(https?|all|no)_proxy$/i.test(k) || k === 'NODE_OPTIONS') delete base[k];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...base, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** Bounded polling for a condition (no sleeps racing work). */
export async function until(cond: () => boolean, what: string, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
