/**
 * The CLI (`kv put --rotator`, `kv rotate`, `kv rotation status`) against the real rotation and
 * secret routes, and the pure parts: rotator options, schedule and backoff, config defaults.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, type CliIo, type Runtime } from '../../src/cli/index.js';
import { backoffMs, dueAt, parseRotator, rotationConfigSchema, rotatorFromFlags, rotatorToJson, shouldAttempt } from '../../src/rotation/index.js';
import { rotatorFromJson } from '../../src/rotation/options.js';
import { eachLimited, nextEventAt } from '../../src/rotation/schedule.js';
import { TesseraError } from '../../src/shared/errors.js';
import { ADMIN, keyService, rotationHarness, type RotationHarness } from './helpers.js';

const reject = (): Promise<never> => Promise.reject(new Error('not used'));
const runtime: Runtime = { dev: reject, server: reject, init: reject, rotateMasterKey: reject };
let h: RotationHarness;
let svc: Awaited<ReturnType<typeof keyService>>;

before(async () => {
  svc = await keyService((body, n) => (body.action === 'retire' ? { status: 204, body: '' } : { status: 200, body: { value: `cli-key-${n}` } }));
  h = await rotationHarness({ config: { http_rotators: { keys: { url: svc.url, auth_secret: 'ops/auth', allow_private: ['127.0.0.1/32'] } } } });
  await h.call('PUT', '/v1/admin/secrets/ops/auth', { value: 'auth-credential' });
});
after(async () => {
  await h?.close();
  await svc?.close();
});

async function cli(argv: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s) },
    env: { TESSERA_ADDR: h.base, TESSERA_TOKEN: ADMIN },
    ...(stdin !== undefined ? { stdin: (async function* () { yield stdin; })() } : {}),
  };
  return { code: await runCli(argv, runtime, io), stdout, stderr };
}

test('kv put --rotator, kv rotate, kv rotation status (table and --json)', async () => {
  const put = await cli(['kv', 'put', 'apps/cli/key', '-', '--rotation-period', '30d', '--rotator', 'http', '--rotator-opt', 'endpoint=keys', '--rotator-opt', 'grace_period=10m'], 'first\n');
  assert.equal(put.code, 0, put.stderr);
  const meta = await h.kv.metadata('apps/cli/key');
  assert.deepEqual(meta.rotator, { kind: 'http', endpoint: 'keys', grace_period: '600s' });
  const rot = await cli(['kv', 'rotate', 'apps/cli/key']);
  assert.equal(rot.code, 0, rot.stderr);
  assert.match(rot.stdout, /rotated apps\/cli\/key with http: version 1 → 2; the previous credential is retired at /);
  assert.doesNotMatch(rot.stdout, /cli-key/);
  const st = await cli(['kv', 'rotation', 'status']);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /apps\/cli\/key\s+http\s+2/);
  const js = await cli(['--json', 'kv', 'rotation', 'status']);
  const body = JSON.parse(js.stdout) as { secrets: { path: string; failures: number }[] };
  assert.equal(body.secrets.find((s) => s.path === 'apps/cli/key')?.failures, 0);
  const rj = JSON.parse((await cli(['--json', 'kv', 'rotate', 'apps/cli/key', '--expected-version', '2'])).stdout) as { version: number };
  assert.equal(rj.version, 3);
});

test('CLI bad inputs: stable codes', async () => {
  const cases: [string[], RegExp][] = [
    [['kv', 'put', 'apps/cli/x', 'v', '--rotator', 'nope'], /TESSERA_ROTATION_ROTATOR_UNKNOWN/],
    [['kv', 'put', 'apps/cli/x', 'v', '--rotator', 'http', '--rotator-opt', 'endpoint'], /TESSERA_ROTATION_OPTIONS_INVALID/],
    [['kv', 'put', 'apps/cli/x', 'v', '--rotator', 'postgres-static', '--rotator-opt', 'engine=main'], /TESSERA_ROTATION_OPTIONS_INVALID/],
    [['kv', 'put', 'apps/cli/x', 'v', '--rotator-opt', 'engine=main'], /needs --rotator/],
    [['kv', 'rotate', 'apps/cli/key', '--expected-version', '1'], /TESSERA_ROTATION_CONFLICT/],
    [['kv', 'rotate', 'apps/cli/key', '--expected-version', 'x'], /--expected-version/],
    [['kv', 'rotate', 'apps/cli/none'], /TESSERA_SECRET_NOT_FOUND/],
  ];
  for (const [argv, re] of cases) {
    const r = await cli(argv);
    assert.notEqual(r.code, 0, argv.join(' '));
    assert.match(r.stderr, re, `${argv.join(' ')}: ${r.stderr}`);
  }
});

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return e instanceof TesseraError ? e.code : String(e);
  }
  return 'none';
};

test('rotator options: parse, store and read back, flags', () => {
  const spec = parseRotator({ kind: 'postgres-static', engine: 'main', role: 'App User"x', grace_period: '1h' });
  assert.deepEqual(spec, { kind: 'postgres-static', engine: 'main', role: 'App User"x', end_sessions: true, grace_period: 3_600_000 });
  assert.deepEqual(rotatorFromJson(rotatorToJson(spec)), spec, 'the grace period survives storage');
  assert.equal(rotatorFromJson(null), null);
  assert.equal(code(() => rotatorFromJson('{')), 'TESSERA_ROTATION_OPTIONS_INVALID');
  assert.equal(code(() => parseRotator({ kind: 'http', endpoint: 'x' }, new Set(['y']))), 'TESSERA_ROTATION_ROTATOR_UNKNOWN');
  assert.equal(code(() => parseRotator({ kind: 'http', endpoint: 'x', grace_period: '1s' })), 'TESSERA_ROTATION_OPTIONS_INVALID', 'grace at least 2 s');
  assert.equal(code(() => parseRotator(null)), 'TESSERA_ROTATION_ROTATOR_UNKNOWN');
  assert.equal(code(() => parseRotator({ kind: 'postgres-static', engine: 'main', role: 'a\u0000b' })), 'TESSERA_ROTATION_OPTIONS_INVALID');
  assert.deepEqual(rotatorFromFlags('postgres-static', ['engine=main', 'role=a=b', 'end_sessions=false']), { kind: 'postgres-static', engine: 'main', role: 'a=b', end_sessions: false });
  assert.equal(code(() => rotatorFromFlags('manual', ['=x'])), 'TESSERA_ROTATION_OPTIONS_INVALID');
});

test('schedule: due, attempts, backoff, next event; bounded concurrency', async () => {
  assert.equal(dueAt({ periodMs: null, versionCreatedAt: 5 }), null);
  assert.equal(dueAt({ periodMs: 10, versionCreatedAt: 5 }), 15);
  assert.equal(shouldAttempt({ periodMs: 10, versionCreatedAt: 5, failures: 0, nextAttemptAt: null }, 14), false);
  assert.equal(shouldAttempt({ periodMs: 10, versionCreatedAt: 5, failures: 0, nextAttemptAt: null }, 15), true);
  assert.equal(shouldAttempt({ periodMs: 10, versionCreatedAt: 5, failures: 2, nextAttemptAt: 30 }, 29), false);
  assert.equal(shouldAttempt({ periodMs: 10, versionCreatedAt: 5, failures: 2, nextAttemptAt: 30 }, 30), true);
  const p = { initialMs: 1000, maxMs: 5000 };
  assert.deepEqual([1, 2, 3, 4, 100].map((n) => backoffMs(n, p)), [1000, 2000, 4000, 5000, 5000]);
  assert.equal(nextEventAt({ periodMs: 10, versionCreatedAt: 5, failures: 1, nextAttemptAt: 40, retireAt: 20 }), 20);
  assert.equal(nextEventAt({ periodMs: null, versionCreatedAt: 5, failures: 0, nextAttemptAt: null, retireAt: null }), null);
  let running = 0;
  let peak = 0;
  await eachLimited([...Array(20).keys()], 3, async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 2));
    running--;
  });
  assert.equal(peak, 3);
  const c = rotationConfigSchema.parse({});
  assert.deepEqual({ interval: c.interval, grace: c.grace_period, conc: c.max_concurrency, retry: c.retry }, { interval: 60_000, grace: 3_600_000, conc: 8, retry: { initial: 30_000, max: 3_600_000 } });
  assert.equal(rotationConfigSchema.safeParse({ grace_period: '1s' }).success, false);
  assert.equal(rotationConfigSchema.safeParse({ http_rotators: { k: { url: 'ftp://x', auth_secret: 'a/b' } } }).success, false);
  assert.equal(rotationConfigSchema.safeParse({ http_rotators: { k: { url: 'https://x', auth_secret: 'a/b', allow_private: ['nonsense!'] } } }).success, false);
});
