/**
 * `tessera agent` (issue 12 item 3) against a REAL Tessera on loopback (test/k8s/agent/harness.ts):
 * the sidecar logs in with a projected-token-shaped JWT (signed here with jose, as the API server
 * would; no Kubernetes API server can run on these machines — the `jwt` attestor with
 * `template: kubernetes` and a local JWKS stands in for the cluster's issuer), and an app that
 * only sets HTTP(S)_PROXY / an MCP URL reaches upstreams and tools with no token of its own:
 *  - absolute-form HTTP, origin-form (reverse routes) and CONNECT (TLS intercepted at Tessera,
 *    the app trusting Tessera's CA) through the local proxy, the credential injected upstream;
 *  - the app's own Proxy-Authorization dropped;
 *  - MCP tools/call through the local endpoint with the official MCP SDK client, DELETE passed on;
 *  - /healthz and `probeSidecar` before and after login;
 *  - task defaults: the task token is used (its scope binds), a revoked task is not re-opened;
 *  - --token-out only on tmpfs; listen addresses only loopback (exact codes).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { parseSidecarOptions, probeSidecar, startSidecar, checkMemoryBacked, filesystemOf, parseMounts } from '../../../src/agent/index.js';
import { isTesseraError } from '../../../src/shared/errors.js';
import { startStack, until, PLAIN_KEY, SECURE_KEY, freePort, type Stack } from './harness.js';
import { sidecar, viaProxy, viaConnect, health, JWT_SHAPE, type TestSidecar } from './clients.js';

let stack: Stack;
let s: TestSidecar;
let ca: string;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  stack = await startStack();
  s = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, proxyUrl: stack.proxyUrl });
  cleanups.push(() => s.close());
  await until(() => s.keeper.current() !== undefined, 'the first login');
  ca = await stack.tesseraCa();
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await stack?.close();
});

const lastPlain = () => stack.plain.seen.at(-1)!;

describe('the local forward proxy', () => {
  test('absolute-form HTTP: the upstream gets the route credential, never the agent token or a Proxy-Authorization', async () => {
    const r = await viaProxy(s.proxyAddress!, 'http://plain.test/items?x=1');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { method: 'GET', url: '/items?x=1', body: '' });
    const seen = lastPlain();
    assert.equal(seen.headers.authorization, `Bearer ${PLAIN_KEY}`);
    assert.equal(seen.headers['proxy-authorization'], undefined);
    assert.ok(!JSON.stringify(seen.headers).includes(s.keeper.current()!.token));
  });

  test('a request body is streamed on (POST)', async () => {
    const r = await viaProxy(s.proxyAddress!, 'http://plain.test/things', { 'content-type': 'application/json' }, 'POST', '{"a":1}');
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).body, '{"a":1}');
  });

  test("the app's own Proxy-Authorization is dropped: Tessera sees only the sidecar's token", async () => {
    // Were it relayed, Tessera would read the first Proxy-Authorization (the app's) and answer 407.
    for (const value of ['Bearer app-made-up-token', 'Basic YWdlbnQ6bm90LWEtdG9rZW4=', 'Negotiate abc']) {
      const r = await viaProxy(s.proxyAddress!, 'http://plain.test/own', { 'proxy-authorization': value });
      assert.equal(r.status, 200, `${value}: ${r.body}`);
      assert.equal(lastPlain().headers['proxy-authorization'], undefined);
      assert.equal(lastPlain().headers.authorization, `Bearer ${PLAIN_KEY}`);
    }
  });

  test('origin-form requests go to the reverse routes (OPENAI_BASE_URL=http://127.0.0.1:15001/<route>)', async () => {
    const r = await viaProxy(s.proxyAddress!, '/plain/v1/models', { authorization: 'Bearer placeholder-key' });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).url, '/v1/models');
    assert.equal(lastPlain().headers.authorization, `Bearer ${PLAIN_KEY}`, "the app's placeholder key is replaced by Tessera");
  });

  test('Tessera refusals pass through unchanged (no route for the host)', async () => {
    const r = await viaProxy(s.proxyAddress!, 'http://unrouted.test/x');
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error.code, 'TESSERA_PROXY_NO_ROUTE');
  });

  test('CONNECT is chained to the Tessera proxy: TLS intercepted there, the credential injected upstream', async () => {
    const from = stack.secure.seen.length;
    const r = await viaConnect(s.proxyAddress!, `https://localhost:${stack.secure.port}/v1/secure?q=1`, ca, { 'x-api-key': 'app-placeholder' });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { secure: true, url: '/v1/secure?q=1' });
    const seen = stack.secure.seen.slice(from);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.headers['x-api-key'], SECURE_KEY);
    assert.equal(seen[0]!.headers['proxy-authorization'], undefined);
  });

  test('a CONNECT target that is not host:port is refused by the sidecar (TESSERA_AGENT_REQUEST_INVALID)', async () => {
    const { connect } = await import('node:net');
    const u = new URL(s.proxyAddress!);
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(u.port), u.hostname, () => sock.write('CONNECT user@host:443 HTTP/1.1\r\nHost: x\r\n\r\n'));
      let got = '';
      sock.on('data', (c: Buffer) => (got += c.toString('utf8')));
      sock.on('end', () => resolve(got));
      sock.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /TESSERA_AGENT_REQUEST_INVALID/);
  });
});

describe('the local MCP endpoint', () => {
  test('tools/list and tools/call with the official MCP SDK client, no token in the app; DELETE ends the session', async () => {
    const client = new Client({ name: 'pod-app', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${s.mcpAddress}/mcp`));
    await client.connect(transport);
    const tools = await client.listTools();
    assert.equal(tools.tools.length, 1);
    const r = await client.callTool({ name: tools.tools[0]!.name, arguments: { text: 'hello from the pod' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'said: hello from the pod' }]);
    assert.ok(transport.sessionId, 'the gateway session id passed through');
    await transport.terminateSession();
    assert.equal(transport.sessionId, undefined, 'DELETE answered 2xx through the sidecar');
    await client.close();
  });

  test('/healthz is 200 once logged in; probeSidecar agrees; other paths are refused', async () => {
    const h = await health(s);
    assert.equal(h.status, 200);
    assert.deepEqual(JSON.parse(h.body), { status: 'ok' });
    assert.deepEqual(await probeSidecar(Number(new URL(s.mcpAddress!).port)), { ok: true, detail: 'ready' });
    const other = await viaProxy(s.mcpAddress!, '/v1/secrets/x');
    assert.equal(other.status, 400);
    assert.equal(JSON.parse(other.body).error.code, 'TESSERA_AGENT_REQUEST_INVALID');
  });
});

describe('before the first login', () => {
  test('Tessera unreachable: /healthz, the proxy and MCP answer 503 TESSERA_AGENT_NOT_READY; the probe fails', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const early = await sidecar({ addr: down, tokenFile: stack.kube.tokenFile, proxyUrl: stack.proxyUrl });
    try {
      for (const r of [await health(early), await viaProxy(early.proxyAddress!, 'http://plain.test/x'), await viaProxy(early.mcpAddress!, '/mcp', { 'content-type': 'application/json' }, 'POST', '{}')]) {
        assert.equal(r.status, 503, r.body);
        assert.equal(JSON.parse(r.body).error.code, 'TESSERA_AGENT_NOT_READY');
        assert.equal(r.headers['retry-after'], '1');
      }
      const p = await probeSidecar(Number(new URL(early.mcpAddress!).port));
      assert.equal(p.ok, false);
      await until(() => early.stderr().includes('renewal failed'), 'a logged retry');
      assert.match(early.stderr(), /retrying in \d+\.\ds/);
    } finally {
      await early.close();
    }
  });
});

describe('task defaults', () => {
  test('--task-scope: the task token is used, so its scope binds; a revoked task is never re-opened', async () => {
    const t = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, proxyUrl: stack.proxyUrl, taskScope: 'http:plain secret:plain/key', taskPurpose: 'sidecar test', taskTtl: '2m' });
    try {
      await until(() => t.keeper.current() !== undefined, 'the task');
      const txn = t.keeper.current()!.txn;
      assert.match(txn ?? '', /^task_/);
      assert.equal((await viaProxy(t.proxyAddress!, 'http://plain.test/in-scope')).status, 200);
      const out = await viaConnect(t.proxyAddress!, `https://localhost:${stack.secure.port}/v1/x`, ca).catch((e: Error) => ({ status: 0, body: e.message }));
      assert.notEqual(out.status, 200, 'the secure route is outside the task scope');

      // Renewal opens a new root task only after the server confirmed the previous one alive.
      await t.keeper.renewNow();
      const txn2 = t.keeper.current()!.txn;
      assert.notEqual(txn2, txn);
      const rv = await fetch(`${stack.addr}/v1/admin/revocations`, { method: 'POST', headers: { authorization: `Bearer ${stack.tessera.adminToken!}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'task', target: txn2, reason: 'test' }) });
      assert.ok(rv.status < 300, await rv.text());
      await t.keeper.renewNow();
      assert.equal(t.keeper.state, 'ended');
      const r = await viaProxy(t.proxyAddress!, 'http://plain.test/after-revoke');
      assert.equal(r.status, 403);
      assert.equal(JSON.parse(r.body).error.code, 'TESSERA_AGENT_TASK_ENDED');
      assert.equal((await health(t)).status, 403);
      assert.match(t.stderr(), /was revoked: no new task is opened/);
    } finally {
      await t.close();
    }
  });
});

describe('--token-out', () => {
  test('refused on a regular disk directory with TESSERA_AGENT_TOKEN_OUT_NOT_MEMORY, before anything listens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-agent-disk-'));
    const type = filesystemOf(dir, parseMounts(readFileSync('/proc/self/mounts', 'utf8')));
    assert.ok(type && type !== 'tmpfs' && type !== 'ramfs', `this check needs ${dir} on a disk (it is on ${type})`);
    const options = parseSidecarOptions({ addr: stack.addr, tokenFile: stack.kube.tokenFile, listenMcp: '127.0.0.1:0', tokenOut: join(dir, 'token') });
    await assert.rejects(startSidecar(options, { stderr: { write: () => undefined } }), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_AGENT_TOKEN_OUT_NOT_MEMORY' && /not tmpfs or ramfs/.test(e.message));
    assert.equal(existsSync(join(dir, 'token')), false);
  });

  test('refused when the directory does not exist, or the path is a directory', () => {
    for (const p of ['/nonexistent-dir-xyz/token', '/dev/shm/']) {
      assert.throws(() => checkMemoryBacked(p), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_AGENT_TOKEN_OUT_NOT_MEMORY');
    }
  });

  test('refused when the mount table cannot be read (not Linux)', () => {
    assert.throws(() => checkMemoryBacked('/dev/shm/token', '/nonexistent/mounts'), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_AGENT_TOKEN_OUT_NOT_MEMORY' && /cannot be checked/.test(e.message));
  });

  test('accepted on /dev/shm (tmpfs): the current token, mode 0600, removed at stop', { skip: existsSync('/dev/shm') ? undefined : 'no /dev/shm here' }, async () => {
    const dir = mkdtempSync('/dev/shm/tessera-agent-');
    const out = join(dir, 'token');
    const t = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, tokenOut: out });
    try {
      await until(() => existsSync(out), 'the token file');
      assert.equal(readFileSync(out, 'utf8'), t.keeper.current()!.token);
      assert.equal(statSync(out).mode & 0o777, 0o600);
    } finally {
      await t.close();
    }
    assert.equal(existsSync(out), false, 'removed at stop');
  });
});

describe('options', () => {
  const base = { addr: 'http://tessera.tessera.svc:8200', tokenFile: '/var/run/secrets/tessera.io/serviceaccount/token', proxyUrl: 'http://tessera.tessera.svc:8201' };
  test('a non-loopback listen address is refused with TESSERA_AGENT_LISTEN_NOT_LOOPBACK', () => {
    for (const [flag, value] of [['listenProxy', '0.0.0.0:15001'], ['listenProxy', '10.0.0.5:15001'], ['listenMcp', '[::]:15002'], ['listenMcp', 'tessera.example.com:15002'], ['listenMcp', '[fe80::1]:15002'], ['listenProxy', '128.0.0.1:1']] as const) {
      assert.throws(() => parseSidecarOptions({ ...base, [flag]: value }), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_AGENT_LISTEN_NOT_LOOPBACK', `${flag} ${value}`);
    }
    for (const ok of ['127.0.0.1:15001', '127.9.9.9:1', '[::1]:15001', 'localhost:15001']) {
      assert.ok(parseSidecarOptions({ ...base, listenProxy: ok }).listenProxy, ok);
    }
  });

  test('every other bad option is refused with TESSERA_AGENT_OPTIONS_INVALID', () => {
    const bad: Record<string, unknown>[] = [
      { ...base, addr: undefined, listenMcp: '127.0.0.1:1' },
      { ...base, tokenFile: undefined, listenMcp: '127.0.0.1:1' },
      { ...base },
      { ...base, proxyUrl: undefined, listenProxy: '127.0.0.1:1' },
      { ...base, proxyUrl: 'https://tessera:8201', listenProxy: '127.0.0.1:1' },
      { ...base, proxyUrl: 'http://agent:tok@tessera:8201', listenProxy: '127.0.0.1:1' },
      { ...base, proxyUrl: 'http://tessera:8201/base', listenProxy: '127.0.0.1:1' },
      { ...base, addr: 'ftp://tessera', listenMcp: '127.0.0.1:1' },
      { ...base, addr: 'not a url', listenMcp: '127.0.0.1:1' },
      { ...base, listenMcp: '127.0.0.1:99999' },
      { ...base, listenMcp: '127.0.0.1' },
      { ...base, listenMcp: '127.0.0.1:1', listenProxy: '127.0.0.1:1' },
      { ...base, listenMcp: '127.0.0.1:1', role: 'bad role' },
      { ...base, listenMcp: '127.0.0.1:1', role: '' },
      { ...base, listenMcp: '127.0.0.1:1', taskPurpose: 'no scope' },
      { ...base, listenMcp: '127.0.0.1:1', taskScope: 'http:a', taskTtl: 'forever' },
      { ...base, listenMcp: '127.0.0.1:1', taskScope: 'http:a', taskTtl: '1s' },
      { ...base, listenMcp: '127.0.0.1:1', taskScope: 'http:a "quoted"' },
      { ...base, listenMcp: '127.0.0.1:1', taskScope: 'http:a', taskPurpose: 'two\nlines' },
      { ...base, listenMcp: '127.0.0.1:1', taskScope: 'http:a', taskPurpose: 'x'.repeat(513) },
      { ...base, listenMcp: '127.0.0.1:1', drain: '10m' },
    ];
    for (const raw of bad) {
      assert.throws(() => parseSidecarOptions(raw), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_AGENT_OPTIONS_INVALID', JSON.stringify(raw));
    }
  });

  test('a port already in use is refused with TESSERA_AGENT_OPTIONS_INVALID', async () => {
    const taken = new URL(s.mcpAddress!).port;
    const options = parseSidecarOptions({ addr: stack.addr, tokenFile: stack.kube.tokenFile, listenMcp: `127.0.0.1:${taken}` });
    await assert.rejects(startSidecar(options, { stderr: { write: () => undefined } }), (e: unknown) => isTesseraError(e) && e.code === 'TESSERA_AGENT_OPTIONS_INVALID' && /EADDRINUSE/.test(e.message));
  });
});

test('nothing the sidecar logged holds a token', () => {
  assert.doesNotMatch(s.stderr(), JWT_SHAPE);
  for (const t of stack.kube.written) assert.ok(!s.stderr().includes(t));
});
