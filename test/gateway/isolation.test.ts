/**
 * Process isolation of stdio upstreams (F2, ADR 0145–0146, docs/gateway.md "Process isolation").
 *
 * The attack: an agent allowed to use any file-reading upstream (a filesystem server) reads
 * `/proc/<pid>/environ` of another upstream process (where Tessera injected its secret), the
 * master key file and the SQLite database — all readable when every upstream runs as Tessera's
 * own uid. With `run_as`, the upstream runs as a uid of its own in a private directory.
 *
 * The end-to-end part needs real setuid: it runs when the tests run as root (as in CI and this
 * project's containers) and is skipped otherwise, saying so. The configuration rules, the
 * environment and the uid pool are checked under any user.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { parseConfig } from '../../src/config/index.js';
import { checkConfigPaths } from '../../src/config/check.js';
import { upstreamEnvironment } from '../../src/gateway/stdio-transport.js';
import { UidPool, createIsolation } from '../../src/gateway/isolation.js';
import { startGatewayHarness, ENV_ECHO_SERVER, FIXTURES, type GatewayHarness } from './harness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FS_READER = join(FIXTURES, 'fs-reader-server.mjs');
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const NOT_ROOT = IS_ROOT ? false : 'needs root to switch users (run_as): the tests run as uid ' + String(process.getuid?.());

function configError(gateway: Record<string, unknown>): string {
  try {
    parseConfig({ data_dir: '/tmp/x', gateway });
  } catch (e) {
    assert.equal((e as { code?: string }).code, 'TESSERA_CONFIG_INVALID');
    return (e as Error).message;
  }
  assert.fail('the configuration was accepted');
}

const stdio = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ name, transport: 'stdio', command: process.execPath, args: [FS_READER], ...extra });

describe('run_as configuration', () => {
  test('gateway.require_isolation: true refuses a stdio server without run_as (fail closed), names the key', () => {
    const m = configError({ require_isolation: true, servers: [stdio('fs')] });
    assert.match(m, /gateway\.servers\.0\.run_as: server "fs" has no run_as, and gateway\.require_isolation is true/);
    // HTTP upstreams are not processes of Tessera's: nothing to isolate.
    parseConfig({ data_dir: '/tmp/x', gateway: { require_isolation: true, servers: [{ name: 'web', transport: 'streamable_http', url: 'http://127.0.0.1:1/mcp' }, stdio('fs', { run_as: { uid: 61001 } })] } });
  });

  test('run_as: auto needs gateway.run_as_uids', () => {
    assert.match(configError({ servers: [stdio('fs', { run_as: 'auto' })] }), /run_as: auto, which needs gateway\.run_as_uids/);
    parseConfig({ data_dir: '/tmp/x', gateway: { run_as_uids: { first: 61100, count: 10 }, servers: [stdio('fs', { run_as: 'auto' })] } });
  });

  test('two servers with one uid, a uid inside the auto range, root and bad ids are refused', () => {
    assert.match(configError({ servers: [stdio('a', { run_as: { uid: 61001 } }), stdio('b', { run_as: { uid: 61001, gid: 7 } })] }), /servers "a" and "b" both run as uid 61001/);
    assert.match(configError({ run_as_uids: { first: 61000, count: 10 }, servers: [stdio('a', { run_as: { uid: 61005 } })] }), /inside gateway\.run_as_uids/);
    for (const run_as of [{ uid: 0 }, { uid: 61001, gid: 0 }, { uid: -1 }, { uid: 1.5 }, { uid: 2 ** 31 }, { user: 'nobody' }, 'root', { uid: '61001' }]) {
      configError({ servers: [stdio('a', { run_as })] });
    }
  });

  test('tessera config validate warns about every stdio server without run_as (and not about HTTP ones)', () => {
    const config = parseConfig({ data_dir: mkdtempSync(join(tmpdir(), 'gw-iso-')), policy: { dir: ROOT }, gateway: { servers: [stdio('fs'), stdio('iso', { run_as: { uid: 61001 } }), { name: 'web', transport: 'streamable_http', url: 'http://127.0.0.1:1/mcp' }] } });
    const r = checkConfigPaths(config, process.env);
    rmSync(config.data_dir, { recursive: true, force: true });
    assert.deepEqual(r.warnings.map((w) => w.key), ['gateway.servers[0].run_as']);
    assert.match(r.warnings[0]!.message, /server "fs" has no run_as: it runs as Tessera's own user/);
    if (IS_ROOT) assert.ok(!r.problems.some((p) => p.key.endsWith('.run_as')));
    else assert.ok(r.problems.some((p) => p.key === 'gateway.servers[1].run_as'), 'a user that cannot switch users gets a problem for run_as');
  });

  test('tessera config validate warns about a data directory other users may enter', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-iso-'));
    try {
      spawnSync('chmod', ['755', dir]);
      const r = checkConfigPaths(parseConfig({ data_dir: dir, policy: { dir: ROOT } }), process.env);
      assert.ok(r.warnings.some((w) => w.key === 'data_dir' && /mode 755: other users may enter it; run chmod 700/.test(w.message)));
      spawnSync('chmod', ['700', dir]);
      assert.ok(!checkConfigPaths(parseConfig({ data_dir: dir, policy: { dir: ROOT } }), process.env).warnings.some((w) => w.key === 'data_dir'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the environment of a stdio upstream', () => {
  test('only the SDK minimal variables plus the configured ones: nothing else of Tessera\'s', () => {
    process.env.TESSERA_F2_CANARY = 'canary-value-never-inherited';
    process.env.AWS_SECRET_ACCESS_KEY = 'also-never-inherited';
    try {
      const env = upstreamEnvironment({ API_KEY: 'k' });
      assert.deepEqual(Object.keys(env).filter((k) => !['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER', 'API_KEY'].includes(k)), []);
      assert.equal(env.API_KEY, 'k');
      const iso = upstreamEnvironment({ API_KEY: 'k' }, '/private/home');
      assert.equal(iso.HOME, '/private/home');
      assert.equal(iso.USER, undefined);
      assert.equal(iso.LOGNAME, undefined);
      // A configured value wins, also over HOME.
      assert.equal(upstreamEnvironment({ HOME: '/h' }, '/private/home').HOME, '/h');
    } finally {
      delete process.env.TESSERA_F2_CANARY;
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });
});

describe('the uid pool of run_as: auto', () => {
  test('one uid per process, given back on stop, none when the range is used up', () => {
    const pool = new UidPool(61100, 3);
    const a = pool.take()!;
    const b = pool.take()!;
    const c = pool.take()!;
    assert.deepEqual(new Set([a, b, c]), new Set([61100, 61101, 61102]));
    assert.equal(pool.take(), undefined);
    pool.give(b);
    assert.equal(pool.take(), b);
    assert.equal(pool.inUse, 3);
  });
});

describe('without the right to switch users, run_as refuses to start (fail closed)', () => {
  test('createIsolation as a user without CAP_SETUID: TESSERA_CONFIG_INVALID, says what to do', { skip: IS_ROOT ? false : 'runs the check as another user, which needs root' }, () => {
    // The check itself, run by an unprivileged user (uid 65534): what a non-root Tessera would do at start.
    const script = `import('${join(ROOT, 'src/gateway/isolation.ts')}').then((m) => { try { m.createIsolation({ servers: [{ name: 'fs', transport: 'stdio', run_as: { uid: 61001 } }] }, undefined); console.log('STARTED'); } catch (e) { console.log(e.code + ' ' + e.message); } })`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, uid: 65534, gid: 65534, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: '/tmp' } });
    assert.match(r.stdout, /^TESSERA_CONFIG_INVALID gateway\.servers "fs" has run_as, but Tessera runs as uid 65534 without CAP_SETUID and CAP_SETGID/, r.stderr);
  });

  test('run_as with Tessera\'s own uid isolates nothing: refused', { skip: NOT_ROOT }, () => {
    assert.throws(() => createIsolation({ servers: [{ name: 'fs', transport: 'stdio', run_as: { uid: 0 } } as never] }, undefined), /Tessera's own uid/);
  });

  test('gateway.upstream_work_dir inside data_dir is refused (other users cannot enter it)', { skip: NOT_ROOT }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-iso-'));
    try {
      assert.throws(() => createIsolation({ servers: [{ name: 'fs', transport: 'stdio', run_as: { uid: 61001 } } as never], upstream_work_dir: join(dir, 'up') }, dir), /inside data_dir/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// End to end, real setuid: the attacker's input.

const HOLDER_KEY = 'f2-holder-injected-Qm81Zr/x+Lp=';
const AGENT = 'spiffe://example.org/ns/gw/sa/agent';
const AGENT2 = 'spiffe://example.org/ns/gw/sa/agent2';
const POLICIES = `
@id("gw-all")
permit (principal, action == Tessera::Action::"tool.call", resource)
when { principal.hasTag("team") && principal.getTag("team") == "gw" };

@id("gw-inject")
permit (principal, action == Tessera::Action::"secret.inject", resource in Tessera::Folder::"gw")
when { principal.hasTag("team") };
`;

describe('run_as end to end (real setuid)', { skip: NOT_ROOT }, () => {
  let h: GatewayHarness;
  let client: Client;
  let client2: Client;
  let workDir: string;
  const text = (r: unknown): string => ((r as { content: { text: string }[] }).content[0]!.text);
  const call = async (c: Client, name: string, args: Record<string, unknown> = {}): Promise<string> => text(await c.callTool({ name, arguments: args }));

  before(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'gw-iso-work-'));
    rmSync(workDir, { recursive: true });
    process.env.TESSERA_F2_CANARY = 'canary-value-never-inherited';
    h = await startGatewayHarness({
      policies: POLICIES,
      secrets: { 'gw/holder/key': HOLDER_KEY },
      gateway: {
        run_as_uids: { first: 61100, count: 8 },
        upstream_work_dir: workDir,
        servers: [
          // The upstream whose injected secret the attacker wants.
          { name: 'holder', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER], env: { API_KEY: { secret: 'gw/holder/key' } }, run_as: { uid: 61001 } },
          // The attacker's tool: a filesystem server, isolated.
          { name: 'reader', transport: 'stdio', command: process.execPath, args: [FS_READER], run_as: 'auto' },
          // The same server as Tessera's own user: the threat is real without run_as.
          { name: 'sameuid', transport: 'stdio', command: process.execPath, args: [FS_READER] },
        ],
      },
    });
    client = await h.connect(await h.login(AGENT, { team: 'gw' }));
    client2 = await h.connect(await h.login(AGENT2, { team: 'gw' }));
  });

  after(async () => {
    delete process.env.TESSERA_F2_CANARY;
    await h?.close();
    assert.ok(!existsSync(workDir) || statSync(workDir).isDirectory());
    rmSync(workDir, { recursive: true, force: true });
  });

  test('the upstreams run as their own uids, in private 0700 directories, with a minimal environment', async () => {
    const reader = JSON.parse(await call(client, 'reader__whoami'));
    assert.ok(reader.uid >= 61100 && reader.uid < 61108, `auto uid from the range: ${reader.uid}`);
    assert.equal(reader.gid, reader.uid);
    assert.deepEqual(reader.groups, [reader.uid], 'no supplementary groups of Tessera\'s (root)');
    assert.equal(reader.cwd, join(workDir, `reader.${reader.uid}`));
    assert.equal(reader.home, reader.cwd);
    assert.equal(reader.cwd_mode, '700');
    assert.equal(reader.cwd_uid, reader.uid);
    assert.deepEqual(reader.env, ['HOME', 'PATH', 'SHELL', 'TERM'].filter((k) => k === 'HOME' || k === 'PATH' || process.env[k] !== undefined), 'only the minimal environment');
    const same = JSON.parse(await call(client, 'sameuid__whoami'));
    assert.equal(same.uid, process.getuid!());
    assert.ok(!same.env.includes('TESSERA_F2_CANARY'), 'Tessera\'s own environment never reaches an upstream');
    assert.equal((statSync(workDir).mode & 0o777).toString(8), '711');
  });

  test('two agents\' processes of one auto server run as different uids', async () => {
    const a = JSON.parse(await call(client, 'reader__whoami'));
    const b = JSON.parse(await call(client2, 'reader__whoami'));
    assert.notEqual(a.pid, b.pid);
    assert.notEqual(a.uid, b.uid);
    assert.match(await call(client, 'reader__read_file', { path: `/proc/${b.pid}/environ` }), /^ERR EACCES$/);
    assert.match(await call(client, 'reader__list_dir', { path: b.cwd }), /^ERR EACCES$/);
  });

  test('the attack: an isolated reader cannot read another upstream\'s /proc/<pid>/environ, Tessera\'s, the master key or the database', async () => {
    const holderPid = Number(await call(client, 'holder__pid'));
    assert.ok(holderPid > 1);
    const dataDir = h.tessera.config.data_dir;
    const targets = [
      `/proc/${holderPid}/environ`,
      `/proc/${process.pid}/environ`,
      `/proc/${holderPid}/cmdline`.replace('cmdline', 'mem'),
      join(dataDir, 'master.key'),
      join(dataDir, 'tessera.db'),
      join(dataDir, 'tessera.db-wal'),
    ];
    for (const path of targets) {
      const r = await call(client, 'reader__read_file', { path });
      assert.match(r, /^ERR (EACCES|EPERM)$/, `${path}: ${r.slice(0, 80)}`);
      assert.ok(!r.includes(HOLDER_KEY));
    }
    assert.match(await call(client, 'reader__list_dir', { path: dataDir }), /^ERR EACCES$/);
    assert.match(await call(client, 'reader__list_dir', { path: join(workDir, 'holder') }), /^ERR EACCES$/);
  });

  test('the control: without run_as the same reader reads the other upstream\'s injected secret (why run_as exists)', async () => {
    const holderPid = Number(await call(client, 'holder__pid'));
    // The holder runs as uid 61001; a process of Tessera's own uid (root here) may read its
    // environment — as may any same-uid process: the threat docs/security-model.md names.
    const r = await call(client, 'sameuid__read_file', { path: `/proc/${holderPid}/environ` });
    assert.ok(r.includes(`API_KEY=${HOLDER_KEY}`), 'a same-uid (here: root) reader sees the injected secret');
    const key = await call(client, 'sameuid__read_file', { path: join(h.tessera.config.data_dir, 'master.key') });
    assert.ok(!key.startsWith('ERR'), 'and the master key');
  });

  test('the data files are private: data dir 0700, master key and database files 0600', () => {
    const dataDir = h.tessera.config.data_dir;
    assert.equal((statSync(dataDir).mode & 0o777).toString(8), '700');
    for (const f of ['master.key', 'tessera.db', 'tessera.db-wal', 'tessera.db-shm']) {
      const p = join(dataDir, f);
      if (!existsSync(p)) continue;
      assert.equal((statSync(p).mode & 0o777).toString(8), '600', f);
    }
    assert.ok(readFileSync(join(dataDir, 'master.key'), 'utf8').length > 0);
  });

  test('the metric counts the stdio servers without run_as', () => {
    assert.equal(h.tessera.metrics.gauge('tessera_gateway_unisolated_upstreams', '').get(), 1);
  });

  test('an auto uid and its directory are given back when the process stops', async () => {
    const before = JSON.parse(await call(client2, 'reader__whoami'));
    assert.ok(existsSync(before.cwd));
    await h.admin('POST', '/v1/admin/revocations', { kind: 'agent', target: AGENT2, reason: 'test' });
    // Bounded polling for the stop (revocation stops the process at once, asynchronously).
    for (let i = 0; i < 500 && existsSync(before.cwd); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(!existsSync(before.cwd), 'the per-process directory is removed');
  });
});

// ---------------------------------------------------------------------------------------------
// The OS sandbox wrapper of docs/gateway.md (bubblewrap): isolation without root, by configuration only.

const BWRAP = ['/usr/bin/bwrap', '/bin/bwrap'].find((p) => existsSync(p));
const bwrapWorks = BWRAP !== undefined && spawnSync(BWRAP, ['--ro-bind', '/', '/', '--unshare-pid', '--proc', '/proc', '--dev', '/dev', '--', '/bin/true']).status === 0;
const NO_BWRAP = bwrapWorks ? false : BWRAP ? 'bwrap is installed but cannot create namespaces here' : 'bubblewrap is not installed (apt-get install bubblewrap)';

/** docs/gateway.md's worked example, with this checkout as the application directory. */
function bwrapArgs(appDir: string, script: string): string[] {
  return [
    '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/bin', '/bin',
    // The tmpfs first: a later `--tmpfs /tmp` would hide an application directory under /tmp.
    '--tmpfs', '/tmp', '--ro-bind', appDir, appDir, '--proc', '/proc', '--dev', '/dev',
    '--unshare-all', '--die-with-parent', '--chdir', '/tmp',
    '--', process.execPath, script,
  ];
}

describe('an OS sandbox wrapper (bubblewrap) as the command', { skip: NO_BWRAP }, () => {
  let h: GatewayHarness;
  let client: Client;
  const text = (r: unknown): string => ((r as { content: { text: string }[] }).content[0]!.text);

  before(async () => {
    h = await startGatewayHarness({
      policies: POLICIES,
      secrets: { 'gw/holder/key': HOLDER_KEY },
      gateway: {
        servers: [
          { name: 'holder', transport: 'stdio', command: process.execPath, args: [ENV_ECHO_SERVER], env: { API_KEY: { secret: 'gw/holder/key' } } },
          { name: 'boxed', transport: 'stdio', command: BWRAP, args: bwrapArgs(ROOT, FS_READER) },
        ],
      },
    });
    client = await h.connect(await h.login(AGENT, { team: 'gw' }));
  });
  after(async () => {
    await h?.close();
  });

  test('the boxed reader sees no other process, no data directory and no master key', async () => {
    const holderPid = Number(text(await client.callTool({ name: 'holder__pid', arguments: {} })));
    const dataDir = h.tessera.config.data_dir;
    for (const path of [`/proc/${holderPid}/environ`, `/proc/${process.pid}/environ`, join(dataDir, 'master.key'), join(dataDir, 'tessera.db')]) {
      const r = text(await client.callTool({ name: 'boxed__read_file', arguments: { path } }));
      assert.match(r, /^ERR (ENOENT|EACCES)$/, `${path}: ${r.slice(0, 80)}`);
    }
    const procs = text(await client.callTool({ name: 'boxed__list_dir', arguments: { path: '/proc' } })).split('\n').filter((x) => /^\d+$/.test(x));
    assert.ok(procs.length <= 3, `only the sandbox's own processes: ${procs.join(',')}`);
  });
});

describe('the database files are private', () => {
  test('an older database with mode 0644 (and its -wal) is narrowed to 0600 when opened', async () => {
    const { openSqliteStore } = await import('../../src/store/sqlite/index.js');
    const dir = mkdtempSync(join(tmpdir(), 'gw-iso-db-'));
    try {
      const file = join(dir, 'tessera.db');
      const s1 = openSqliteStore({ file });
      await s1.close();
      spawnSync('chmod', ['644', file]);
      const s2 = openSqliteStore({ file });
      try {
        for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) assert.equal((statSync(f).mode & 0o777).toString(8), '600', f);
      } finally {
        await s2.close();
      }
      // A new database: 0600 from the start.
      const fresh = join(dir, 'new.db');
      const s3 = openSqliteStore({ file: fresh });
      await s3.close();
      assert.equal((statSync(fresh).mode & 0o777).toString(8), '600');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
