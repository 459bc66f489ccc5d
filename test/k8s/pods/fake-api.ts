/**
 * A stand-in for the Kubernetes API server, on 127.0.0.1 over HTTPS (a throwaway CA), for the pod
 * watch and TokenReview tests. No real API server can run on these machines (no container
 * runtime, no kubelet, no etcd), so this speaks exactly the parts of the protocol Tessera uses,
 * as documented in kubernetes.io/docs/reference/using-api/api-concepts/:
 *
 * - GET /api/v1/pods and /api/v1/namespaces/<ns>/pods: a PodList, paged with `limit` and
 *   `continue`, with the collection's `metadata.resourceVersion`;
 * - the same with `watch=true&resourceVersion=<rv>`: a chunked stream of JSON lines
 *   `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}`; a resourceVersion older
 *   than the compaction point answers one ERROR event with a 410 Status and closes (as the API
 *   server does);
 * - POST /apis/authentication.k8s.io/v1/tokenreviews: a TokenReview answered by `review`;
 * - every request must carry `Authorization: Bearer <apiToken>` (Tessera's own SA token).
 *
 * The test drives it: add/delete pods (with or without telling watchers), drop connections, make
 * watches fail, compact history (410), send malformed lines.
 */
import { createServer, type Server } from 'node:https';
import type { ServerResponse } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { createTestCa, type TestCa } from '../../proxy/fixtures/test-ca.js';

export interface FakePod {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
}

export interface FakeApi {
  readonly url: string;
  readonly caFile: string;
  readonly tokenFile: string;
  /** Requests seen, by kind. */
  readonly counts: { list: number; watch: number; review: number; unauthorized: number };
  addPod(p: FakePod): void;
  /** Deletes the pod and sends DELETED to open watches (returns the time the event was written, ms). */
  deletePod(uid: string): number;
  /** Deletes the pod without telling anyone (it happened while the watch was down). */
  deleteSilently(uid: string): void;
  /** Ends every open watch stream (a network cut). */
  dropWatches(): void;
  /** While set, watch and list requests answer this HTTP status. */
  failWith(status: number | null): void;
  /** Forgets history up to now: a watch from an older resourceVersion gets ERROR 410. Open watches get it too. */
  compact(): void;
  /** Writes a raw line to every open watch. */
  sendRaw(line: string): void;
  /** How the TokenReview endpoint answers (status, body). */
  review: (token: string, audiences: readonly string[]) => { status: number; body: unknown };
  /** Resolves once `n` watches are open. */
  watching(n?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeApi(opts: { apiToken?: string } = {}): Promise<FakeApi> {
  const ca: TestCa = await createTestCa('Fake Kubernetes API CA');
  const leaf = await ca.issue(['127.0.0.1', 'localhost']);
  const dir = mkdtempSync(join(tmpdir(), 'tessera-fake-k8s-'));
  const apiToken = opts.apiToken ?? `fake-sa-token-${Math.random().toString(36).slice(2)}`;
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, apiToken);
  let rv = 100;
  let compactedAt = 0;
  let failStatus: number | null = null;
  const pods = new Map<string, FakePod & { rv: number }>();
  const watches = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const counts = { list: 0, watch: 0, review: 0, unauthorized: 0 };
  const waiters: { n: number; resolve: () => void }[] = [];

  const podObject = (p: FakePod & { rv: number }) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { uid: p.uid, name: p.name, namespace: p.namespace, resourceVersion: String(p.rv) }, spec: { serviceAccountName: 'agent', containers: [{ name: 'app', image: 'busybox' }] }, status: { phase: 'Running' } });
  const send = (type: string, object: unknown) => {
    const line = `${JSON.stringify({ type, object })}\n`;
    for (const w of watches) w.write(line);
  };
  const notify = () => {
    for (const w of [...waiters]) if (watches.size >= w.n) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };

  const api: FakeApi = {
    url: '',
    caFile: ca.certFile,
    tokenFile,
    counts,
    addPod(p) {
      const pod = { ...p, rv: ++rv };
      pods.set(p.uid, pod);
      send('ADDED', podObject(pod));
    },
    deletePod(uid) {
      const p = pods.get(uid);
      if (!p) throw new Error(`no pod ${uid}`);
      pods.delete(uid);
      const at = performance.now();
      send('DELETED', podObject({ ...p, rv: ++rv }));
      return at;
    },
    deleteSilently(uid) {
      pods.delete(uid);
      rv++;
    },
    dropWatches() {
      for (const w of watches) w.destroy();
      watches.clear();
    },
    failWith(status) {
      failStatus = status;
    },
    compact() {
      compactedAt = ++rv;
      send('ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 });
      for (const w of watches) w.end();
      watches.clear();
    },
    sendRaw(line) {
      for (const w of watches) w.write(`${line}\n`);
    },
    review: () => ({ status: 500, body: { kind: 'Status', code: 500 } }),
    watching(n = 1) {
      return new Promise((resolve) => {
        waiters.push({ n, resolve });
        notify();
      });
    },
    async close() {
      for (const w of watches) w.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      ca.dispose();
    },
  };

  const server: Server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    if (req.headers.authorization !== `Bearer ${apiToken}`) {
      counts.unauthorized++;
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 401, reason: 'Unauthorized' }));
      return;
    }
    if (req.method === 'POST' && url.pathname === '/apis/authentication.k8s.io/v1/tokenreviews') {
      counts.review++;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { spec?: { token?: string; audiences?: string[] } };
        const answer = api.review(body.spec?.token ?? '', body.spec?.audiences ?? []);
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
      });
      return;
    }
    const m = /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?pods$/.exec(url.pathname);
    if (req.method !== 'GET' || !m) {
      res.writeHead(404).end();
      return;
    }
    if (failStatus !== null) {
      res.writeHead(failStatus, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: failStatus }));
      return;
    }
    const ns = m[1];
    const mine = [...pods.values()].filter((p) => ns === undefined || p.namespace === ns);
    if (url.searchParams.get('watch') === 'true') {
      counts.watch++;
      const from = Number(url.searchParams.get('resourceVersion') ?? '0');
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      if (from < compactedAt) {
        res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 } })}\n`);
        return;
      }
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: String(rv) } } })}\n`);
      watches.add(res);
      res.on('close', () => watches.delete(res));
      notify();
      return;
    }
    counts.list++;
    const limit = Number(url.searchParams.get('limit') ?? '0') || mine.length;
    const start = Number(url.searchParams.get('continue') ?? '0');
    const page = mine.slice(start, start + limit);
    const next = start + limit < mine.length ? String(start + limit) : undefined;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(rv), ...(next ? { continue: next } : {}) }, items: page.map(podObject) }));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  (api as { url: string }).url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  return api;
}
