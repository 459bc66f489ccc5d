/**
 * A real, throwaway PostgreSQL cluster for tests.
 *
 * - `startPostgres()` runs initdb + pg_ctl from the server binaries (PostgreSQL ≥ 13, found in
 *   $TESSERA_PG_BIN, /usr/lib/postgresql/<newest>/bin, or PATH). PostgreSQL refuses to run as
 *   root, so under root the server runs as an unprivileged system user (`postgres`, else
 *   `tessera-pg`, created with useradd if missing). Data and unix socket live in a temp dir owned
 *   by that user; TCP on 127.0.0.1 only, on a free port; fsync off.
 * - Auth (pg_hba.conf): the harness superuser `tessera_admin` uses trust; every other role must
 *   log in with scram-sha-256 (RFC 7677) — the dynamic-credential tests log in as issued users.
 * - `createTestDatabase()` gives one test file its own database, owned by its own password role,
 *   inside the cluster named by env TESSERA_TEST_PG_URL (set by scripts/run-tests.mjs), or inside
 *   a cluster this process starts (and stops at exit) when the file runs alone.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';

export const SUPERUSER = 'tessera_admin';

export interface PostgresCluster {
  /** Superuser URL to the `postgres` database (trust auth, no password). */
  readonly adminUrl: string;
  /** URL of the password role `tessera_app` (scram-sha-256) to database `tessera`, which it owns. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  stop(): Promise<void>;
  /** Synchronous stop, for process 'exit' handlers. */
  stopSync(): void;
}

export interface PostgresBinaries {
  readonly initdb: string;
  readonly pgCtl: string;
  readonly binDir: string;
}

/** Finds initdb/pg_ctl or throws an error that says how to install them. */
export function findPostgresBinaries(): PostgresBinaries {
  const candidates: string[] = [];
  if (process.env.TESSERA_PG_BIN) candidates.push(process.env.TESSERA_PG_BIN);
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(join(base, v, 'bin'));
  }
  candidates.push(...(process.env.PATH ?? '').split(delimiter).filter(Boolean));
  for (const dir of candidates) {
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return { initdb: join(dir, 'initdb'), pgCtl: join(dir, 'pg_ctl'), binDir: dir };
  }
  throw new Error(
    'PostgreSQL server binaries (initdb, pg_ctl) not found in $TESSERA_PG_BIN, /usr/lib/postgresql/*/bin or PATH. ' +
      'Install them (Debian/Ubuntu: apt-get install postgresql) or set TESSERA_PG_BIN to their directory, ' +
      'or point TESSERA_TEST_PG_URL at an existing server (superuser URL).',
  );
}

interface RunAs {
  readonly uid?: number;
  readonly gid?: number;
}

function idOf(user: string): { uid: number; gid: number } | null {
  const r = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const g = spawnSync('id', ['-g', user], { encoding: 'utf8' });
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** Under root: an unprivileged user to run the server as (PostgreSQL refuses root). */
function serverUser(): RunAs {
  if (process.getuid?.() !== 0) return {};
  const existing = idOf('postgres') ?? idOf('tessera-pg');
  if (existing) return existing;
  const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'tessera-pg'], { encoding: 'utf8' });
  const created = idOf('tessera-pg');
  if (!created) throw new Error(`running as root and no unprivileged user to run PostgreSQL as; useradd tessera-pg failed: ${r.stderr}`);
  return created;
}

function run(cmd: string, args: string[], as: RunAs, cwd: string): void {
  const r = spawnSync(cmd, args, { ...as, cwd, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C', LANG: 'C' }, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startPostgres(): Promise<PostgresCluster> {
  const bins = findPostgresBinaries();
  const as = serverUser();
  // The server user must be able to reach the temp dir, and a unix socket path is limited to
  // 107 bytes: fall back to /tmp when TMPDIR is private (e.g. /root/tmp) or too long.
  const parent = (as.uid !== undefined && (statSync(tmpdir()).mode & 0o001) === 0) || tmpdir().length > 60 ? '/tmp' : tmpdir();
  const dir = mkdtempSync(join(parent, 'tessera-pg-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  if (as.uid !== undefined) chownSync(dir, as.uid, as.gid!);
  chmodSync(dir, 0o700);
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    run(bins.initdb, ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'], as, dir);
    writeFileSync(
      join(dataDir, 'pg_hba.conf'),
      [
        '# Written by test/helpers/postgres.ts: the harness superuser is trusted; every other role',
        '# must authenticate with scram-sha-256.',
        `local all ${SUPERUSER} trust`,
        `host  all ${SUPERUSER} 127.0.0.1/32 trust`,
        'local all all scram-sha-256',
        'host  all all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    );
    const ctl = (args: string[]): void => run(bins.pgCtl, ['-D', dataDir, ...args], as, dir);
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      appendFileSync(
        join(dataDir, 'postgresql.conf'),
        [
          '',
          `port = ${port}`,
          "listen_addresses = '127.0.0.1'",
          `unix_socket_directories = '${dir.replace(/'/g, "''")}'`,
          'fsync = off',
          'synchronous_commit = off',
          'full_page_writes = off',
          'max_connections = 200',
          // The kill-switch tests prepare transactions as a leased user (they outlive its sessions).
          'max_prepared_transactions = 10',
          'shared_buffers = 32MB',
          "password_encryption = 'scram-sha-256'",
          '',
        ].join('\n'),
      );
      try {
        ctl(['-l', logFile, '-w', '-t', '30', 'start']);
        break;
      } catch (e) {
        // Another process may have taken the port between the probe and the bind: try again.
        const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
        if (attempt >= 3 || !/could not (bind|create listen)/i.test(log)) throw new Error(`${(e as Error).message}\n${log.slice(-2000)}`, { cause: e });
      }
    }
    const host = '127.0.0.1';
    const adminUrl = `postgres://${SUPERUSER}@${host}:${port}/postgres`;
    let stopped = false;
    const stopSync = (): void => {
      if (stopped) return;
      stopped = true;
      try {
        execFileSync(bins.pgCtl, ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], { ...as, cwd: dir, stdio: 'ignore', timeout: 30_000 });
      } catch {
        // already down
      }
      cleanup();
    };
    let db: { url: string };
    try {
      db = await createDatabaseIn(adminUrl, 'tessera', 'tessera_app');
    } catch (e) {
      stopSync();
      throw e;
    }
    return { adminUrl, url: db.url, host, port, dataDir, stop: async () => stopSync(), stopSync };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** Replaces the database (path) of a postgres:// URL. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

async function createDatabaseIn(adminUrl: string, database: string, owner: string): Promise<{ url: string; password: string }> {
  const password = randomBytes(18).toString('base64url');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    // Identifiers come from [a-z0-9_] only (see sanitize()); the password is base64url.
    await client.query(`CREATE ROLE "${owner}" LOGIN PASSWORD '${password}'`);
    await client.query(`CREATE DATABASE "${database}" OWNER "${owner}"`);
  } finally {
    await client.end();
  }
  const u = new URL(withDatabase(adminUrl, database));
  u.username = owner;
  u.password = password;
  return { url: u.toString(), password };
}

let ownCluster: Promise<PostgresCluster> | null = null;

/** The cluster named by TESSERA_TEST_PG_URL, else one started for this process (stopped at exit). */
export async function testClusterAdminUrl(): Promise<string> {
  const shared = process.env.TESSERA_TEST_PG_URL;
  if (shared) return shared;
  if (!ownCluster) {
    ownCluster = startPostgres().then((c) => {
      process.once('exit', () => c.stopSync());
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
        process.once(sig, () => {
          c.stopSync();
          process.kill(process.pid, sig); // then die of the signal as we would have
        });
      }
      return c;
    });
  }
  return (await ownCluster).adminUrl;
}

export interface TestDatabase {
  /** The database name. */
  readonly name: string;
  /** URL of the database's owner role (password, scram-sha-256): what a store should use. */
  readonly url: string;
  /** Superuser URL to this database. */
  readonly adminUrl: string;
  /** Superuser URL to the cluster's `postgres` database. */
  readonly clusterAdminUrl: string;
  drop(): Promise<void>;
}

function sanitize(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 30);
}

/** A fresh database for one test file, owned by a fresh password role. */
export async function createTestDatabase(name = 'test'): Promise<TestDatabase> {
  const clusterAdminUrl = await testClusterAdminUrl();
  const db = `t_${sanitize(name)}_${randomBytes(4).toString('hex')}`;
  const owner = `${db}_owner`;
  const { url } = await createDatabaseIn(clusterAdminUrl, db, owner);
  return {
    name: db,
    url,
    adminUrl: withDatabase(clusterAdminUrl, db),
    clusterAdminUrl,
    drop: async () => {
      const client = new pg.Client({ connectionString: clusterAdminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
        await client.query(`DROP ROLE IF EXISTS "${owner}"`);
      } finally {
        await client.end();
      }
    },
  };
}
