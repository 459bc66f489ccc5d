/**
 * Process isolation of stdio upstreams (docs/gateway.md "Process isolation", ADR 0145, 0146).
 *
 * A stdio upstream that runs as Tessera's own user can read everything Tessera can: the master
 * key file, the SQLite database, and `/proc/<pid>/environ` of every other upstream process, where
 * Tessera injected their secrets (proc(5): readable by the same uid, PTRACE_MODE_READ). With
 * `run_as`, the process runs as another uid and gid (set by the kernel at spawn, supplementary
 * groups dropped by libuv), in a private working directory (mode 0700, owned by that uid) that is
 * also its HOME, with only the SDK's minimal environment plus the configured values.
 *
 * `run_as: auto` hands each process a uid of its own from `gateway.run_as_uids` (given back when
 * the process stops): two agents' processes of one server cannot read each other's environment
 * either. An explicit `{ uid, gid }` is shared by every process of that server.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, isAbsolute } from 'node:path';
import { TesseraError } from '../shared/errors.js';
import type { GatewayConfig, StdioServerConfig } from './config.js';

/** The uid and gid an upstream process runs as, and its private directory. */
export interface RunAsIdentity {
  readonly uid: number;
  readonly gid: number;
  /** The process's working directory (unless `cwd` is configured) and HOME: mode 0700, owned by uid:gid. */
  readonly home: string;
  /** Gives the uid (auto) back and removes a per-process directory. Idempotent. */
  release(): void;
}

/** CAP_SETGID (6) and CAP_SETUID (7), capabilities(7). */
const CAP_SETGID = 6n;
const CAP_SETUID = 7n;

/**
 * Whether this process may start children as another user: root, or (Linux) both CAP_SETUID and
 * CAP_SETGID in its effective set (read from /proc/self/status `CapEff`).
 */
export function canSwitchUser(): boolean {
  if (typeof process.getuid !== 'function') return false;
  if (process.getuid() === 0) return true;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (!m) return false;
    const caps = BigInt(`0x${m[1]}`);
    return ((caps >> CAP_SETUID) & 1n) === 1n && ((caps >> CAP_SETGID) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** The uids of `gateway.run_as_uids`, one per running `run_as: auto` process. */
export class UidPool {
  private readonly used = new Set<number>();
  private next = 0;
  constructor(readonly first: number, readonly count: number) {}

  /** A free uid, or undefined when every one is in use. */
  take(): number | undefined {
    for (let i = 0; i < this.count; i++) {
      const uid = this.first + ((this.next + i) % this.count);
      if (this.used.has(uid)) continue;
      this.used.add(uid);
      // Round robin: a uid just given back is reused last (its old files are gone by then).
      this.next = (uid - this.first + 1) % this.count;
      return uid;
    }
    return undefined;
  }

  give(uid: number): void {
    this.used.delete(uid);
  }

  get inUse(): number {
    return this.used.size;
  }
}

export interface Isolation {
  /** The base of the private directories (mode 0711): absolute. */
  readonly workDir: string;
  /** Prepares the identity of one new process of `server`; throws TESSERA_GATEWAY_UPSTREAM_FAILED when no uid is free. */
  identityFor(server: StdioServerConfig): RunAsIdentity | undefined;
  /** Removes the work directory when Tessera made it (the default one). */
  close(): void;
}

function isInside(child: string, parent: string): boolean {
  const r = relative(resolve(parent), resolve(child));
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/** A directory owned by `uid:gid` with mode `mode`, refusing a symbolic link in its place. */
function ownedDir(path: string, mode: number, uid: number, gid: number): void {
  mkdirSync(path, { recursive: true, mode });
  const st = lstatSync(path);
  if (!st.isDirectory()) throw new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${path} is not a directory; remove it (it is the private directory of an upstream)`);
  chownSync(path, uid, gid);
  chmodSync(path, mode);
}

/**
 * Checks what `run_as` needs at gateway start (fail closed: a configuration that asks for
 * isolation Tessera cannot give refuses to start) and makes the work directory.
 * Returns undefined when no server has `run_as`.
 */
export function createIsolation(config: Pick<GatewayConfig, 'servers' | 'run_as_uids' | 'upstream_work_dir'>, dataDir: string | undefined): Isolation | undefined {
  const isolated = config.servers.filter((s): s is StdioServerConfig => s.transport === 'stdio' && s.run_as !== undefined);
  if (isolated.length === 0) return undefined;
  const own = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (!canSwitchUser()) {
    throw new TesseraError('TESSERA_CONFIG_INVALID', `gateway.servers "${isolated[0]!.name}" has run_as, but Tessera runs as uid ${own} without CAP_SETUID and CAP_SETGID: it cannot start a process as another user. Run Tessera as root (it drops to run_as for upstreams only), grant those capabilities, or remove run_as and wrap the command in an OS sandbox (docs/gateway.md "Process isolation")`);
  }
  for (const s of isolated) {
    if (s.run_as !== 'auto' && s.run_as?.uid === own) throw new TesseraError('TESSERA_CONFIG_INVALID', `gateway.servers "${s.name}" has run_as uid ${own}, which is Tessera's own uid: that isolates nothing; choose a uid of its own`);
  }
  const range = config.run_as_uids;
  if (range && own >= range.first && own < range.first + range.count) {
    throw new TesseraError('TESSERA_CONFIG_INVALID', `gateway.run_as_uids contains Tessera's own uid ${own}; choose a range without it`);
  }
  let workDir: string;
  let made = false;
  if (config.upstream_work_dir !== undefined) {
    workDir = resolve(config.upstream_work_dir);
    if (dataDir !== undefined && isInside(workDir, dataDir)) throw new TesseraError('TESSERA_CONFIG_INVALID', `gateway.upstream_work_dir ${workDir} is inside data_dir, which other users cannot enter (mode 0700); choose a directory outside it`);
    ownedDir(workDir, 0o711, own, typeof process.getgid === 'function' ? process.getgid() : 0);
  } else {
    workDir = mkdtempSync(join(tmpdir(), 'tessera-upstreams-'));
    chmodSync(workDir, 0o711);
    made = true;
  }
  const pool = range ? new UidPool(range.first, range.count) : undefined;
  return {
    workDir,
    identityFor(server) {
      const runAs = server.run_as;
      if (runAs === undefined) return undefined;
      if (runAs !== 'auto') {
        const gid = runAs.gid ?? runAs.uid;
        const home = join(workDir, server.name);
        ownedDir(home, 0o700, runAs.uid, gid);
        return { uid: runAs.uid, gid, home, release: () => undefined };
      }
      const uid = pool?.take();
      if (uid === undefined) throw new TesseraError('TESSERA_GATEWAY_UPSTREAM_FAILED', `${server.name}: every uid of gateway.run_as_uids is in use by a running upstream; retry when one stops, or widen the range`);
      // A directory per process: removed when it stops, so the next process with this uid starts clean.
      const home = join(workDir, `${server.name}.${uid}`);
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        try {
          rmSync(home, { recursive: true, force: true });
        } finally {
          pool!.give(uid);
        }
      };
      try {
        rmSync(home, { recursive: true, force: true });
        ownedDir(home, 0o700, uid, uid);
      } catch (e) {
        release();
        throw e;
      }
      return { uid, gid: uid, home, release };
    },
    close() {
      if (made) rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/** Stdio servers that run as Tessera's own user (no `run_as`), by name. */
export function unisolatedServers(config: Pick<GatewayConfig, 'servers'>): string[] {
  return config.servers.filter((s) => s.transport === 'stdio' && s.run_as === undefined).map((s) => s.name);
}
