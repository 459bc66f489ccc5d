/**
 * `tessera --version` and `tessera kv put --rotation-period`, through the real CLI against the
 * whole of Tessera (src/main.ts composition) on loopback.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runCli, type CliIo } from '../../src/cli/index.js';
import { runtime } from '../../src/main.js';
import { startHarness, type Harness } from '../e2e/harness.js';

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h.close();
});

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s) },
    env: { TESSERA_ADDR: h.url, TESSERA_TOKEN: h.adminToken },
  };
  return { code: await runCli(argv, runtime, io), stdout, stderr };
}

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { name: string; version: string };

test('tessera --version and -V print the package version and exit 0', async () => {
  for (const flag of ['--version', '-V']) {
    const r = await cli([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${pkg.version}\n`);
    assert.equal(r.stderr, '');
  }
  assert.match(pkg.version, /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
  // `--version` belongs to the program only: `kv get --version N` is still the secret version.
  const put = await cli(['kv', 'put', 'docs/version-check', 'v1', '--mode', 'read']);
  assert.equal(put.code, 0, put.stderr);
  const get = await cli(['kv', 'get', 'docs/version-check', '--version', '1']);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(get.stdout, 'v1');
});

test('kv put --rotation-period stores the period and the server computes rotation_due_at', async () => {
  const put = await cli(['kv', 'put', 'docs/rotating', 'value-1', '--rotation-period', '30d']);
  assert.equal(put.code, 0, put.stderr);
  const meta = await h.admin('GET', '/v1/admin/secrets/docs/rotating');
  assert.equal(meta.status, 200);
  assert.equal(meta.body.metadata?.rotation_period_s ?? meta.body.rotation_period_s, 30 * 86_400);
  const due = meta.body.metadata?.rotation_due_at ?? meta.body.rotation_due_at;
  const created = meta.body.metadata?.created_at ?? meta.body.created_at;
  assert.ok(due !== null && due !== undefined, JSON.stringify(meta.body));
  assert.equal(new Date(due).getTime() - new Date(created).getTime(), 30 * 86_400_000);
  // A new version without the flag keeps the period (metadata is kept unless given).
  assert.equal((await cli(['kv', 'put', 'docs/rotating', 'value-2'])).code, 0);
  const again = await h.admin('GET', '/v1/admin/secrets/docs/rotating');
  assert.equal(again.body.metadata?.rotation_period_s ?? again.body.rotation_period_s, 30 * 86_400);
});

test('kv put --rotation-period refuses what is not a whole-second duration with the server code', async () => {
  for (const bad of ['abc', '1.5s', '0', '-5m', '500ms']) {
    const r = await cli(['kv', 'put', 'docs/rotating-bad', 'value', '--rotation-period', bad]);
    assert.equal(r.code, 1, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, /\[TESSERA_REQUEST_INVALID\]|\[TESSERA_SECRET_VALUE_INVALID\]/, bad);
  }
  const missing = await h.admin('GET', '/v1/admin/secrets/docs/rotating-bad');
  assert.equal(missing.status, 404, 'nothing was stored');
  const noValue = await cli(['kv', 'put', 'docs/rotating-bad', 'value', '--rotation-period']);
  assert.equal(noValue.code, 2, 'a flag without its value is a usage error');
});
