/**
 * `--token-out <path>` (docs/k8s-agent.md "A token file for agents that want one"): the current
 * token written for an agent that reads a file, ONLY on a memory-backed filesystem — a Kubernetes
 * `emptyDir` with `medium: Memory` is tmpfs — so the token never reaches a disk (issue 12 item 3).
 *
 * The filesystem is found in /proc/self/mounts (proc(5)): the mount whose mount point is the
 * longest prefix of the directory's real path; its type must be `tmpfs` or `ramfs`. Anything
 * else, or no /proc (not Linux), is refused: TESSERA_AGENT_TOKEN_OUT_NOT_MEMORY.
 * Writes are atomic (a 0600 temp file in the same directory, then rename(2)).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TesseraError } from '../shared/errors.js';

const MEMORY_FS = new Set(['tmpfs', 'ramfs']);

/** The mount table's entries (mount point, type); `\040`-style escapes decoded (fstab(5)). */
export function parseMounts(text: string): { mountPoint: string; type: string }[] {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').flatMap((line) => {
    const f = line.split(' ');
    return f.length >= 3 ? [{ mountPoint: unescape(f[1]!), type: f[2]! }] : [];
  });
}

/** The filesystem type holding `realDir` per the mount table (the longest matching mount point). */
export function filesystemOf(realDir: string, mounts: readonly { mountPoint: string; type: string }[]): string | undefined {
  let best: { mountPoint: string; type: string } | undefined;
  for (const m of mounts) {
    const inside = realDir === m.mountPoint || m.mountPoint === '/' || realDir.startsWith(`${m.mountPoint}/`);
    // Later entries over-mount earlier ones at the same point (proc(5): in mount order).
    if (inside && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best?.type;
}

/**
 * Checks that `path`'s directory exists and is memory-backed; returns the real directory.
 * Throws TESSERA_AGENT_TOKEN_OUT_NOT_MEMORY. `mountsFile` is injectable for tests.
 */
export function checkMemoryBacked(path: string, mountsFile = '/proc/self/mounts'): string {
  const refuse = (why: string): TesseraError => new TesseraError('TESSERA_AGENT_TOKEN_OUT_NOT_MEMORY', `--token-out ${path}: ${why}; the token is written only to a memory-backed filesystem (tmpfs/ramfs) — mount an emptyDir with medium: Memory there (docs/k8s-agent.md)`);
  if (!basename(path) || path.endsWith('/')) throw refuse('give a file path, not a directory');
  let dir: string;
  try {
    dir = realpathSync(dirname(path));
  } catch (e) {
    throw refuse(`its directory cannot be resolved (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let mounts: string;
  try {
    mounts = readFileSync(mountsFile, 'utf8');
  } catch {
    throw refuse(`the filesystem type cannot be checked (${mountsFile} is unreadable: not Linux?)`);
  }
  const type = filesystemOf(dir, parseMounts(mounts));
  if (!type || !MEMORY_FS.has(type)) throw refuse(`${dir} is on ${type ?? 'an unknown filesystem'}, not tmpfs or ramfs`);
  return dir;
}

/**
 * Writes `token` to `path` atomically with mode 0600 (a temp file in the same directory, fsync,
 * rename). Throws TESSERA_AGENT_TOKEN_OUT_FAILED; the message never holds the token.
 */
export async function writeTokenFile(path: string, token: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(token);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new TesseraError('TESSERA_AGENT_TOKEN_OUT_FAILED', `--token-out ${path}: the token could not be written (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
