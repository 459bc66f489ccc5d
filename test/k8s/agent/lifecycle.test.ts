/**
 * The sidecar over time, against a REAL Tessera (test/k8s/agent/harness.ts) with short agent
 * token lifetimes (5 s) so that expiry comes within the test:
 *  - the token is renewed before each expiry: an app calling all along never sees a refusal;
 *  - the kubelet rotates the projected token (AtomicWriter symlink swap) and the old one expires:
 *    the sidecar re-reads the file at each login and keeps going;
 *  - Tessera stops for longer than a token lifetime and starts again on the same address: the
 *    sidecar answers 502/503 meanwhile, never exits, and recovers by itself;
 *  - the real `tessera agent` process (bin/tessera.js): `tessera agent probe` exits 1 then 0,
 *    a request in flight at SIGTERM is given --drain, the process exits 0, nothing it printed
 *    holds a token;
 *  - --role: the login carries scope=role:<name>; a role no policy permits is refused.
 * Waits are bounded polls for conditions; no assertion depends on a duration.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startStack, until, freePort, type Stack } from './harness.js';
import { sidecar, viaProxy, health, JWT_SHAPE } from './clients.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const BIN = join(ROOT, 'bin', 'tessera.js');
let stack: Stack;

before(async () => {
  stack = await startStack({ agentTtl: '5s' });
});
after(async () => {
  await stack?.close();
});

test('the agent token is renewed before it expires: calls across several lifetimes all succeed', async () => {
  const s = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, proxyUrl: stack.proxyUrl });
  try {
    await until(() => s.keeper.current() !== undefined, 'login');
    const tokens = new Set<string>();
    const statuses: number[] = [];
    const end = Date.now() + 10_000; // two 5 s lifetimes
    while (Date.now() < end) {
      tokens.add(s.keeper.current()?.token ?? 'none');
      statuses.push((await viaProxy(s.proxyAddress!, 'http://plain.test/tick')).status);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(statuses.every((x) => x === 200), `every call succeeded: ${statuses.join(',')}`);
    assert.ok(tokens.size >= 3, `renewed at least twice (${tokens.size} tokens seen)`);
    assert.ok(!tokens.has('none'));
    assert.doesNotMatch(s.stderr(), JWT_SHAPE);
  } finally {
    await s.close();
  }
});

test('a CONNECT tunnel is closed just before the token it was opened with expires (Tessera would refuse its requests after)', async () => {
  const s = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, proxyUrl: stack.proxyUrl });
  try {
    await until(() => s.keeper.current() !== undefined, 'login');
    const expiresAt = s.keeper.current()!.expiresAt;
    const { connect } = await import('node:net');
    const u = new URL(s.proxyAddress!);
    const sock = connect(Number(u.port), u.hostname);
    let got = '';
    sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
    const closed = new Promise<number>((r) => sock.once('close', () => r(Date.now())));
    sock.write(`CONNECT localhost:${stack.secure.port} HTTP/1.1\r\nHost: localhost:${stack.secure.port}\r\n\r\n`);
    await until(() => got.includes('\r\n\r\n'), 'the CONNECT answer');
    assert.match(got, /^HTTP\/1\.1 200 /);
    const at = await closed;
    assert.ok(at <= expiresAt + 100, `closed ${at - expiresAt} ms after the token's expiry`);
    assert.match(s.stderr(), /closing a tunnel to localhost:\d+: the token it was opened with expires/);
  } finally {
    await s.close();
  }
});

test('kubelet rotation: the file is re-read at each login, so the sidecar outlives the first projected token', async () => {
  // The first projected token expires in 4 s; the kubelet writes a new one a second in.
  await stack.kube.rotate(4);
  const s = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, proxyUrl: stack.proxyUrl });
  try {
    await until(() => s.keeper.current() !== undefined, 'login');
    await new Promise((r) => setTimeout(r, 1_000));
    await stack.kube.rotate(600);
    const firstExpired = Date.now() + 4_000;
    await until(() => Date.now() > firstExpired + 3_500, 'the first projected token to expire and a renewal after it', 15_000);
    assert.equal(s.keeper.state, 'ready', s.stderr());
    assert.equal((await viaProxy(s.proxyAddress!, 'http://plain.test/after-rotation')).status, 200);
    assert.doesNotMatch(s.stderr(), /renewal failed/, 'no renewal failed: the new file was read');
  } finally {
    await s.close();
  }
});

test('Tessera restarts (down longer than a token lifetime): the sidecar keeps running and recovers by itself', async () => {
  const s = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, proxyUrl: stack.proxyUrl });
  try {
    await until(() => s.keeper.current() !== undefined, 'login');
    await stack.stop();
    const down = await viaProxy(s.proxyAddress!, 'http://plain.test/while-down');
    assert.equal(down.status, 502, down.body);
    assert.equal(JSON.parse(down.body).error.code, 'TESSERA_AGENT_UPSTREAM_UNREACHABLE');
    await until(() => s.keeper.current() === undefined, 'the held token to expire', 10_000);
    const h = await health(s);
    assert.equal(h.status, 503);
    assert.equal(JSON.parse(h.body).error.code, 'TESSERA_AGENT_NOT_READY');
    await stack.start();
    await until(async () => (await health(s)).status === 200, 'recovery after the restart', 30_000);
    assert.equal((await viaProxy(s.proxyAddress!, 'http://plain.test/after-restart')).status, 200);
    assert.match(s.stderr(), /renewal failed: .*retrying in/);
    assert.doesNotMatch(s.stderr(), JWT_SHAPE);
  } finally {
    await s.close();
  }
});

test('the real process: probe 1 then 0, SIGTERM with a request in flight exits 0 after --drain, no token printed', async () => {
  const mcpPort = await freePort();
  const proxyPort = await freePort();
  const env = { PATH: process.env.PATH ?? '', TESSERA_ADDR: stack.addr, TESSERA_TOKEN_FILE: stack.kube.tokenFile, TESSERA_PROXY_URL: stack.proxyUrl };
  // Asynchronous: a spawnSync here would block this process's event loop, where the Tessera the
  // agent logs in to runs, and starve the very login the probe waits for.
  const probe = (): Promise<number | null> =>
    new Promise((resolve) => {
      const p = spawn(process.execPath, [BIN, 'agent', 'probe', '--port', String(mcpPort)], { env, stdio: 'ignore', timeout: 60_000 });
      p.once('exit', (code) => resolve(code));
      p.once('error', () => resolve(null));
    });
  assert.equal(await probe(), 1, 'nothing listens yet');
  const child = spawn(process.execPath, [BIN, 'agent', '--listen-proxy', `127.0.0.1:${proxyPort}`, '--listen-mcp', `127.0.0.1:${mcpPort}`, '--drain', '1s'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await until(async () => (await probe()) === 0, 'the probe to pass', 60_000);
    // A request that never gets an answer (the upstream's /hang) is in flight at SIGTERM.
    const hanging = viaProxy(`http://127.0.0.1:${proxyPort}`, 'http://plain.test/hang').catch((e: Error) => e);
    await until(() => stack.plain.seen.some((x) => x.url === '/hang'), 'the request to reach the upstream');
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 15_000))]);
    assert.equal(code, 0, out);
    assert.ok((await hanging) instanceof Error, 'the request in flight was cut after --drain');
    assert.match(out, /SIGTERM: stopping/);
    assert.match(out, /stopped/);
    assert.doesNotMatch(out, JWT_SHAPE);
  } finally {
    child.kill('SIGKILL');
  }
});

test('--role: login with scope=role:<name>; a role policy does not permit is refused with TESSERA_ROLE_NOT_PERMITTED', async () => {
  const s = await sidecar({ addr: stack.addr, tokenFile: stack.kube.tokenFile, proxyUrl: stack.proxyUrl, role: 'not-permitted-role' });
  try {
    await until(() => s.keeper.lastError !== undefined, 'the refused login');
    assert.equal(s.keeper.lastError!.code, 'TESSERA_ROLE_NOT_PERMITTED');
    assert.equal((await health(s)).status, 503);
  } finally {
    await s.close();
  }
});
