/**
 * Runs the real `tessera injector` command (runCli, the same code path as the binary) on
 * 127.0.0.1 with a certificate from a throwaway CA, and posts to it over real HTTPS with undici.
 * The Kubernetes API server cannot run here; the tests post what it would (fixtures.ts).
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1';
import { runCli, type Runtime } from '../../../src/cli/index.js';
import { createTestCa, type TestCa } from '../../proxy/fixtures/test-ca.js';

/** The injector needs no server runtime: every member refuses, so a call would fail the test. */
const noRuntime = new Proxy({}, { get: () => () => Promise.reject(new Error('the injector must not use the server runtime')) }) as Runtime;

export interface Answer {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

export interface Injector {
  readonly url: string;
  readonly dir: string;
  readonly ca: TestCa;
  readonly stderr: () => string;
  post(body: unknown, opts?: { contentType?: string; raw?: string | Buffer; path?: string; method?: 'POST' | 'GET' | 'PUT' }): Promise<Answer>;
  /** POSTs a review and returns its AdmissionReview response (asserting HTTP 200). */
  admit(review: unknown): Promise<Record<string, unknown> & { uid: string; allowed: boolean; patch?: string; patchType?: string; status?: { code: number; message: string }; warnings?: string[] }>;
  /** SIGTERM, then the exit code of the command. */
  stop(): Promise<number>;
  /** SIGTERM only (the command then drains and exits; `stop()` awaits it). */
  terminate(): void;
}

/** Starts `tessera injector --config <file> --json` with `injector` as `kubernetes.injector` (listen, TLS files added). */
export async function startInjectorCli(injector: Record<string, unknown> = {}, opts: { ca?: TestCa } = {}): Promise<Injector> {
  const ca = opts.ca ?? (await createTestCa('Tessera injector test CA'));
  const dir = mkdtempSync(join(tmpdir(), 'tessera-injector-'));
  const leaf = await ca.issue(['127.0.0.1', 'tessera-injector.tessera.svc']);
  writeFileSync(join(dir, 'tls.crt'), leaf.certPem);
  writeFileSync(join(dir, 'tls.key'), leaf.keyPem, { mode: 0o600 });
  const config = join(dir, 'tessera.yaml');
  writeFileSync(config, JSON.stringify({ kubernetes: { injector: { listen: '127.0.0.1:0', tls_cert_file: join(dir, 'tls.crt'), tls_key_file: join(dir, 'tls.key'), ...injector } } }));
  let out = '';
  let err = '';
  const signals = new EventEmitter();
  let urlSeen: (u: string) => void = () => {};
  const urlPromise = new Promise<string>((resolve) => (urlSeen = resolve));
  const stdout = { write: (s: string) => { out += s; const m = /"url":"([^"]+)"/.exec(out); if (m) urlSeen(m[1]!); return true; } };
  const stderr = { write: (s: string) => { err += s; return true; } };
  const exit = runCli(['injector', '--config', config, '--json'], noRuntime, { stdout, stderr, env: {}, signals });
  const url = await Promise.race([urlPromise, exit.then((code) => Promise.reject(new Error(`tessera injector exited with ${code}: ${err}`)))]);
  const dispatcher = new Agent({ connect: { ca: ca.certPem }, keepAliveTimeout: 1000 });
  const post: Injector['post'] = async (body, o = {}) => {
    const r = await request(`${url}${o.path ?? '/mutate'}`, {
      method: o.method ?? 'POST',
      dispatcher,
      headers: o.method === 'GET' ? {} : { 'content-type': o.contentType ?? 'application/json' },
      ...(o.method === 'GET' ? {} : { body: o.raw ?? JSON.stringify(body) }),
    });
    const text = await r.body.text();
    return { status: r.statusCode, json: JSON.parse(text) as Record<string, unknown> };
  };
  return {
    url,
    dir,
    ca,
    stderr: () => err,
    post,
    async admit(review) {
      const a = await post(review);
      if (a.status !== 200) throw new Error(`expected 200, got ${a.status}: ${JSON.stringify(a.json)}`);
      if (a.json.apiVersion !== 'admission.k8s.io/v1' || a.json.kind !== 'AdmissionReview') throw new Error(`not an AdmissionReview: ${JSON.stringify(a.json)}`);
      return a.json.response as never;
    },
    terminate: () => void signals.emit('SIGTERM'),
    async stop() {
      if (signals.listenerCount('SIGTERM') > 0) signals.emit('SIGTERM');
      const code = await exit;
      await dispatcher.close();
      rmSync(dir, { recursive: true, force: true });
      if (!opts.ca) ca.dispose();
      return code;
    },
  };
}

/** The decoded JSONPatch of a response. */
export function opsOf(response: { patch?: string; patchType?: string }): Operation[] {
  if (response.patchType !== 'JSONPatch' || typeof response.patch !== 'string') throw new Error('no JSONPatch in the response');
  return JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[];
}

/** Applies a response's patch to the review's object (validating each operation), then checks the Pod against the API schema. */
export function applied(review: Record<string, unknown>, response: { patch?: string; patchType?: string }): Record<string, any> {
  const object = (review.request as { object: unknown }).object;
  const result = jsonpatch.applyPatch(structuredClone(object), opsOf(response), true, false).newDocument as Record<string, unknown>;
  new Pod(result as never).validate();
  apiServerRules(result as Record<string, any>);
  return result;
}

/**
 * The API server's pod validation rules the OpenAPI schema does not express (ValidatePodSpec in
 * k8s.io/kubernetes pkg/apis/core/validation): unique volume names, unique container names across
 * containers and init containers, mounts naming an existing volume, unique mount paths per
 * container, `restartPolicy` only on init containers and only `Always`, a projected token of at
 * least 600 seconds. A patch that broke one would be refused by a real API server.
 */
export function apiServerRules(pod: Record<string, any>): void {
  const unique = (names: string[], what: string): void => {
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw new Error(`duplicate ${what} ${dup}`);
  };
  const volumes: string[] = (pod.spec.volumes ?? []).map((v: { name: string }) => v.name);
  unique(volumes, 'volume name');
  const containers: Record<string, any>[] = pod.spec.containers;
  const inits: Record<string, any>[] = pod.spec.initContainers ?? [];
  unique([...containers, ...inits].map((c) => c.name), 'container name');
  for (const c of [...containers, ...inits]) {
    unique((c.volumeMounts ?? []).map((m: { mountPath: string }) => m.mountPath), `mountPath in ${c.name}`);
    for (const m of c.volumeMounts ?? []) if (!volumes.includes(m.name)) throw new Error(`${c.name} mounts ${m.name}, which is not a volume`);
    unique((c.env ?? []).map((e: { name: string }) => e.name), `env name in ${c.name}`);
  }
  for (const c of containers) if (c.restartPolicy !== undefined) throw new Error(`regular container ${c.name} has a restartPolicy`);
  for (const c of inits) if (c.restartPolicy !== undefined && c.restartPolicy !== 'Always') throw new Error(`init container ${c.name} has restartPolicy ${c.restartPolicy}`);
  for (const v of pod.spec.volumes ?? []) {
    for (const src of v.projected?.sources ?? []) {
      const t = src.serviceAccountToken;
      if (t && t.expirationSeconds !== undefined && t.expirationSeconds < 600) throw new Error('a projected token of less than 600 s');
    }
  }
}

/** The same review with `object` replaced (a new uid, as a second request would have). */
export function again(review: Record<string, unknown>, object: unknown): Record<string, unknown> {
  const req = review.request as Record<string, unknown>;
  return { ...review, request: { ...req, uid: `${String(req.uid)}-again`, object } };
}
