/**
 * Test harness of the `tessera agent` sidecar: a REAL Tessera (src/main.ts, dev mode) with
 *  - a `jwt` attestor with `template: kubernetes` trusting a local JWKS file — standing in for the
 *    cluster's service-account issuer, which cannot run here (no API server on these machines);
 *  - projected-token-shaped JWTs signed with jose, written the way the kubelet writes a projected
 *    volume (AtomicWriter: a timestamped directory, the `..data` symlink swapped with rename(2),
 *    `token` → `..data/token`), so a rotation is what a pod sees;
 *  - the injection proxy with a plain-HTTP route (`plain`, forward host `plain.test`) and an HTTPS
 *    route (`secure`, `localhost`, intercepted at CONNECT) to upstreams on loopback that record
 *    what reached them; an `echo` MCP tool on the gateway; the Cedar permits for the pod's agent.
 * Restartable on the same ports and data (a Tessera restart while the sidecar runs).
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { parseConfig } from '../../../src/config/index.js';
import { startTessera, type RunningTessera } from '../../../src/main.js';
import { silentLogger } from '../../../src/shared/logger.js';
import type { ToolProvider } from '../../../src/gateway/index.js';
import { startUpstream, type Upstream } from '../../proxy/helpers.js';
import { createTestCa, type TestCa } from '../../proxy/fixtures/test-ca.js';

export const KUBE_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const NAMESPACE = 'agents';
export const SERVICE_ACCOUNT = 'bot';
export const AGENT_SPIFFE_ID = `spiffe://example.org/ns/${NAMESPACE}/sa/${SERVICE_ACCOUNT}`;
export const PLAIN_KEY = 'sk-plain-upstream-key-0123456789';
export const SECURE_KEY = 'sk-secure-upstream-key-9876543210';

const echo: ToolProvider = {
  server: 'echo',
  listTools: async () => [{ name: 'say', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } }],
  callTool: async (_tool, args) => ({ content: [{ type: 'text', text: `said: ${String(args.text)}` }] }),
  close: async () => undefined,
};

const WHO = `when { principal.path == "/ns/${NAMESPACE}/sa/${SERVICE_ACCOUNT}" };`;
const POLICY = [
  `@id("pod-plain") permit (principal, action == Tessera::Action::"http.request", resource == Tessera::Route::"plain") ${WHO}`,
  `@id("pod-secure") permit (principal, action == Tessera::Action::"http.request", resource == Tessera::Route::"secure") ${WHO}`,
  `@id("pod-plain-key") permit (principal, action == Tessera::Action::"secret.inject", resource == Tessera::Secret::"plain/key") ${WHO}`,
  `@id("pod-secure-key") permit (principal, action == Tessera::Action::"secret.inject", resource == Tessera::Secret::"secure/key") ${WHO}`,
  `@id("pod-echo") permit (principal, action == Tessera::Action::"tool.call", resource in Tessera::Server::"echo") ${WHO}`,
  `@id("pod-tasks") permit (principal, action == Tessera::Action::"token.delegate", resource) ${WHO}`,
].join('\n');

/** The cluster's service-account issuer, as far as Tessera sees it: a key pair and its JWKS file. */
export interface KubeletIssuer {
  readonly jwksFile: string;
  /** The projected volume's directory and its `token` path. */
  readonly volume: string;
  readonly tokenFile: string;
  /** Writes a new projected token (kubelet rotation); `ttlS` seconds of validity. Returns it. */
  rotate(ttlS?: number, podName?: string): Promise<string>;
  /** Every token written so far (for the no-token-in-output checks). */
  readonly written: string[];
}

export async function kubeletIssuer(): Promise<KubeletIssuer> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-agent-kube-'));
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'sa-1', alg: 'ES256', use: 'sig' }] }));
  const volume = join(dir, 'serviceaccount');
  mkdirSync(volume);
  const written: string[] = [];
  let n = 0;
  const rotate = async (ttlS = 600, podName = 'agent-7d9f-abcde'): Promise<string> => {
    const token = await projected(privateKey, ttlS, podName);
    // k8s.io/kubernetes pkg/volume/util/atomic_writer.go: new dir, `..data_tmp` → it, rename over `..data`.
    const ts = join(volume, `..${Date.now()}_${n++}`);
    mkdirSync(ts);
    writeFileSync(join(ts, 'token'), token, { mode: 0o644 });
    const tmpLink = join(volume, '..data_tmp');
    rmSync(tmpLink, { force: true });
    symlinkSync(ts.slice(volume.length + 1), tmpLink);
    renameSync(tmpLink, join(volume, '..data'));
    try {
      symlinkSync(join('..data', 'token'), join(volume, 'token'));
    } catch {
      /* exists since the first write */
    }
    written.push(token);
    return token;
  };
  await rotate();
  return { jwksFile, volume, tokenFile: join(volume, 'token'), rotate, written };
}

/** A projected service-account token as the API server issues it (TokenRequest, audience `tessera`). */
async function projected(key: CryptoKey, ttlS: number, podName: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    'kubernetes.io': {
      namespace: NAMESPACE,
      pod: { name: podName, uid: randomUUID() },
      serviceaccount: { name: SERVICE_ACCOUNT, uid: randomUUID() },
    },
  })
    .setProtectedHeader({ alg: 'ES256', kid: 'sa-1' })
    .setIssuer(KUBE_ISSUER)
    .setAudience('tessera')
    .setSubject(`system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + ttlS)
    .sign(key);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export interface SecureUpstream {
  readonly port: number;
  readonly ca: TestCa;
  readonly seen: { url: string; headers: Record<string, string | string[] | undefined> }[];
  close(): Promise<void>;
}

/** An HTTPS upstream on localhost (its own test CA) answering JSON about each request. */
export async function startSecureUpstream(): Promise<SecureUpstream> {
  const ca = await createTestCa();
  const leaf = await ca.issue(['localhost']);
  const seen: SecureUpstream['seen'] = [];
  const server: HttpsServer = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ secure: true, url: req.url }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port, ca, seen,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
      ca.dispose();
    }),
  };
}

export interface Stack {
  tessera: RunningTessera;
  readonly apiPort: number;
  readonly proxyPort: number;
  readonly addr: string;
  readonly proxyUrl: string;
  readonly plain: Upstream;
  readonly secure: SecureUpstream;
  readonly kube: KubeletIssuer;
  /** Stops Tessera (the upstreams stay). */
  stop(): Promise<void>;
  /** Starts Tessera again on the same ports and data. */
  start(): Promise<void>;
  /** Tessera's interception CA (PEM). */
  tesseraCa(): Promise<string>;
  close(): Promise<void>;
}

/** One Tessera with the proxy, the gateway and the kubernetes attestor; `agentTtl`/`taskTtl` as config durations. */
export async function startStack(opts: { agentTtl?: string; taskTtl?: string; kube?: KubeletIssuer } = {}): Promise<Stack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-agent-stack-'));
  const policies = join(dataDir, 'policies');
  mkdirSync(policies);
  writeFileSync(join(policies, 'pod.cedar'), POLICY);
  const kube = opts.kube ?? (await kubeletIssuer());
  const plain = await startUpstream();
  const secure = await startSecureUpstream();
  const apiPort = await freePort();
  const proxyPort = await freePort();
  const config = parseConfig({
    data_dir: dataDir,
    trust_domain: 'example.org',
    server: { listen: `127.0.0.1:${apiPort}` },
    policy: { dir: policies, watch: false },
    log: { level: 'silent' },
    tokens: { agent_ttl: opts.agentTtl ?? '5m', task_ttl: opts.taskTtl ?? '15m', clock_skew: '0s' },
    attestors: [
      { kind: 'join_token', name: 'join_token' },
      { kind: 'jwt', name: 'k8s', issuer: KUBE_ISSUER, audience: 'tessera', jwks_file: kube.jwksFile, template: 'kubernetes', algorithms: ['ES256'] },
    ],
    gateway: {},
    proxy: {
      listen: `127.0.0.1:${proxyPort}`,
      routes: [
        { name: 'plain', upstream: plain.url, hosts: ['plain.test'], credential: { secret: 'plain/key', header: 'Authorization', format: 'Bearer {value}' }, allow_private: ['127.0.0.1/32'] },
        { name: 'secure', upstream: `https://localhost:${secure.port}`, upstream_ca_file: secure.ca.certFile, credential: { secret: 'secure/key', header: 'x-api-key', format: '{value}' }, allow_private: ['127.0.0.1/32', `localhost:${secure.port}`] },
      ],
    },
  });
  const boot = async (): Promise<RunningTessera> => {
    const t = await startTessera({ config, mode: 'dev', logger: silentLogger, gatewayProviders: [echo] });
    for (const [path, value] of [['plain/key', PLAIN_KEY], ['secure/key', SECURE_KEY]] as const) {
      const r = await fetch(`${t.localUrl}/v1/admin/secrets/${path}`, { method: 'PUT', headers: { authorization: `Bearer ${t.adminToken!}`, 'content-type': 'application/json' }, body: JSON.stringify({ value }) });
      if (r.status >= 300) throw new Error(`secret ${path}: ${r.status} ${await r.text()}`);
    }
    return t;
  };
  let running = true;
  const stack: Stack = {
    tessera: await boot(),
    apiPort, proxyPort,
    addr: `http://127.0.0.1:${apiPort}`,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    plain, secure, kube,
    async stop() {
      if (!running) return;
      running = false;
      await stack.tessera.close();
    },
    async start() {
      stack.tessera = await boot();
      running = true;
    },
    async tesseraCa() {
      return (await fetch(`${stack.addr}/v1/proxy/ca.pem`)).text();
    },
    async close() {
      await stack.stop();
      await plain.close();
      await secure.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** Polls `cond` every 50 ms up to `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
