/**
 * Where a policy directory comes from in Git (docs/drift.md "Policy drift"), read fail-soft:
 * the commit is read from `.git` directly (HEAD, the ref file or `packed-refs`; worktrees and
 * submodules through their `gitdir:` file and `commondir`), without spawning anything. Whether
 * the directory has uncommitted changes needs the index, so it is asked of `git status` when a
 * `git` binary is on the PATH (bounded by a timeout); otherwise it is unknown (`dirty` absent).
 * Any failure yields `undefined` fields, never an error: this is a report, not a gate.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';

export interface GitSource {
  /** The work tree's top directory. */
  readonly root: string;
  /** The commit HEAD names (40 or 64 hex digits); absent when it cannot be read. */
  readonly commit?: string;
  /** The branch HEAD is on, when it is on one. */
  readonly branch?: string;
  /** Uncommitted changes (or untracked files) under the policy directory; absent when unknown. */
  readonly dirty?: boolean;
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
const MAX_WALK = 64;

function read(p: string): string | undefined {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

/** The `.git` directory of the work tree holding `dir`, and its top directory. */
export function findGitDir(dir: string): { root: string; gitDir: string } | undefined {
  let d = resolve(dir);
  for (let i = 0; i < MAX_WALK; i++) {
    const dotGit = join(d, '.git');
    try {
      const st = statSync(dotGit);
      if (st.isDirectory()) return { root: d, gitDir: dotGit };
      const m = /^gitdir:\s*(.+)\s*$/m.exec(read(dotGit) ?? '');
      if (m) return { root: d, gitDir: isAbsolute(m[1]!) ? m[1]! : resolve(d, m[1]!) };
    } catch {
      // not here: look further up
    }
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
  return undefined;
}

/** Resolves HEAD to a commit by reading files only. */
export function readHead(gitDir: string): { commit?: string; branch?: string } {
  const head = read(join(gitDir, 'HEAD'))?.trim();
  if (!head) return {};
  if (SHA.test(head)) return { commit: head };
  const m = /^ref:\s*(refs\/\S+)$/.exec(head);
  if (!m) return {};
  const ref = m[1]!;
  const branch = ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
  const common = read(join(gitDir, 'commondir'))?.trim();
  const commonDir = common ? resolve(gitDir, common) : gitDir;
  for (const base of [gitDir, commonDir]) {
    const v = read(join(base, ref))?.trim();
    if (v && SHA.test(v)) return { commit: v, ...(branch ? { branch } : {}) };
  }
  for (const line of (read(join(commonDir, 'packed-refs')) ?? '').split('\n')) {
    const [sha, name] = line.trim().split(' ');
    if (name === ref && sha && SHA.test(sha)) return { commit: sha, ...(branch ? { branch } : {}) };
  }
  return branch ? { branch } : {};
}

/** `git status --porcelain` under `dir`: true when anything is changed or untracked; undefined when git is unavailable. */
export function gitDirty(dir: string, timeoutMs = 2000): Promise<boolean | undefined> {
  return new Promise((done) => {
    try {
      execFile('git', ['-C', dir, 'status', '--porcelain=v1', '--untracked-files=normal', '--', '.'], { timeout: timeoutMs, maxBuffer: 1 << 20, env: { PATH: process.env['PATH'] ?? '', GIT_OPTIONAL_LOCKS: '0' } }, (err, stdout) => {
        done(err ? undefined : stdout.trim().length > 0);
      });
    } catch {
      done(undefined);
    }
  });
}

/** The Git source of `dir`, or undefined when it is not in a Git work tree. */
export async function gitSourceOf(dir: string, opts: { dirty?: boolean } = {}): Promise<GitSource | undefined> {
  const found = findGitDir(dir);
  if (!found) return undefined;
  const head = readHead(found.gitDir);
  const dirty = opts.dirty === false ? undefined : await gitDirty(dir);
  return { root: found.root, ...head, ...(dirty !== undefined ? { dirty } : {}) };
}
