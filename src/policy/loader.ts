import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readdirSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, sep } from 'node:path';
import './wasm-tuning.js'; // before Cedar's wasm module is compiled
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { SCHEMA_TEXT, USER_SCHEMA_TEXT } from './schema.js';
import { credentialLike } from '../shared/credential-like.js';
import { trustDomainsPinnedBy } from './trust-domains.js';

/** A problem in a policy file, located the way editors and CI annotations expect. */
export interface PolicyFileError {
  /** Path relative to the policy directory, with `/` separators. */
  readonly file: string;
  /** 1-based; 0 when the problem is not in one place (e.g. a duplicate id across files). */
  readonly line: number;
  readonly column: number;
  readonly message: string;
  /** A stable code when the problem has one (e.g. TESSERA_POLICY_FILE_REFUSED: an entry not read at all). */
  readonly code?: 'TESSERA_POLICY_FILE_REFUSED';
}

export interface LoadedPolicy {
  readonly id: string;
  readonly effect: 'permit' | 'forbid';
  readonly file: string;
  readonly line: number;
  readonly text: string;
  /** Actions the policy's scope names, or 'all' when it does not constrain the action. */
  readonly actions: readonly string[] | 'all';
  /** Every string the policy mentions (see literalsOf); at most MAX_LITERALS. */
  readonly literals: readonly string[];
  /** Whose decisions it takes part in: the acting workload's (`agent`) or a person's (`user`); see principalKindOf. */
  readonly principals: 'agent' | 'user';
  /** The trust domains the policy pins (trust-domains.ts), lower-case. */
  readonly trustDomains?: readonly string[];
}

const MAX_LITERALS = 1000;

/**
 * Every string of a policy's JSON form (string literals, entity ids, attribute names) plus each
 * `like` pattern with its wildcards removed: what a caller may try as resource names to find out
 * whether the policy could permit anything (Cedar has no string concatenation, so a name a
 * policy can permit is a literal, a pattern instance, or an attribute of the request).
 */
export function literalsOf(json: unknown): string[] {
  const out = new Set<string>();
  const walk = (v: unknown, depth: number): void => {
    if (out.size >= MAX_LITERALS || depth > 64) return;
    if (typeof v === 'string') {
      out.add(v);
    } else if (Array.isArray(v)) {
      // A `like` pattern: ["Wildcard", {"Literal": "read_"}, ...].
      if (v.some((x) => x === 'Wildcard')) out.add(v.map((x) => (x && typeof x === 'object' && 'Literal' in x ? String((x as { Literal: unknown }).Literal) : '')).join(''));
      for (const x of v) walk(x, depth + 1);
    } else if (v && typeof v === 'object') {
      for (const x of Object.values(v)) walk(x, depth + 1);
    }
  };
  walk(json, 0);
  return [...out];
}

export interface LoadedPolicySet {
  readonly policies: ReadonlyMap<string, LoadedPolicy>;
  readonly files: readonly string[];
  /** Policy texts keyed by id, as Cedar's `staticPolicies` wants them. */
  readonly staticPolicies: Record<string, string>;
}

/**
 * The digest of a policy set (docs/drift.md "Policy drift"): `sha256:` over each policy's id,
 * file and text, sorted by id, one `id NUL file NUL text NUL` record each. Comments outside
 * policies and the order of files do not change it; any policy's text does.
 */
export function policySetDigest(set: Pick<LoadedPolicySet, 'policies'>): string {
  const h = createHash('sha256');
  for (const p of [...set.policies.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) h.update(`${p.id}\0${p.file}\0${p.text}\0`, 'utf8');
  return `sha256:${h.digest('hex')}`;
}

export type LoadResult = { readonly ok: true; readonly set: LoadedPolicySet } | { readonly ok: false; readonly errors: readonly PolicyFileError[]; readonly files: readonly string[] };

export function formatPolicyError(e: PolicyFileError): string {
  return e.line > 0 ? `${e.file}:${e.line}:${e.column}: ${e.message}` : `${e.file}: ${e.message}`;
}

/**
 * Bounds of one policy directory read (docs/adr/0066-policy-dir-safety.md): nesting, `*.cedar`
 * files, directory entries looked at, and bytes per file. Past a bound the load fails.
 */
export interface PolicyDirLimits {
  readonly maxDepth: number;
  readonly maxFiles: number;
  readonly maxEntries: number;
  readonly maxFileBytes: number;
}
export const POLICY_DIR_LIMITS: PolicyDirLimits = { maxDepth: 16, maxFiles: 1000, maxEntries: 10_000, maxFileBytes: 1024 * 1024 };

/** One `*.cedar` file to read: its name relative to the directory, and the real path to open. */
export interface PolicyFileRef {
  readonly file: string;
  readonly real: string;
}

/**
 * Walks a policy directory without ever blocking or leaving it (pen-test F10): entries are
 * `lstat`ed, never opened to find out what they are; a symlink is followed only when its real
 * path is inside the directory's real path (Kubernetes ConfigMap mounts: `x.cedar ->
 * ..data/x.cedar`), each real directory is read once (a link back to an ancestor is a loop,
 * refused), and a `*.cedar` entry that is not a regular file (FIFO, socket, device), a dangling
 * link, or a file over the size bound is refused unread. Names starting with `.` are skipped.
 * Every refusal is a `TESSERA_POLICY_FILE_REFUSED` problem naming the entry; sorted output.
 */
export function scanPolicyDir(dir: string, limits: PolicyDirLimits = POLICY_DIR_LIMITS): { files: PolicyFileRef[]; problems: PolicyFileError[]; dirs: string[] } {
  const files: PolicyFileRef[] = [];
  const problems: PolicyFileError[] = [];
  const refuse = (file: string, message: string): void => {
    if (problems.length < 100) problems.push({ file, line: 0, column: 0, message: `TESSERA_POLICY_FILE_REFUSED: ${message}`, code: 'TESSERA_POLICY_FILE_REFUSED' });
  };
  const root = realpathSync(dir);
  if (!statSync(root).isDirectory()) throw new Error(`${dir} is not a directory`);
  const inside = (real: string): boolean => real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
  const seen = new Set<string>([root]);
  let entries = 0;
  let stop = false;
  const walk = (realDir: string, rel: string, depth: number): void => {
    for (const name of readdirSync(realDir).sort()) {
      if (stop) return;
      if (name.startsWith('.')) continue; // editor swap files, .git, ConfigMap's ..data
      if (++entries > limits.maxEntries) {
        refuse(rel || '.', `more than ${limits.maxEntries} entries in the policy directory; nothing was loaded from it`);
        stop = true;
        return;
      }
      const shown = rel ? `${rel}/${name}` : name;
      let path = join(realDir, name);
      let st: Stats = lstatSync(path);
      if (st.isSymbolicLink()) {
        try {
          path = realpathSync(path);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ELOOP') refuse(shown, 'a symlink loop (the link resolves to itself); remove it');
          else if (name.endsWith('.cedar')) refuse(shown, `a symlink that leads nowhere (${code ?? 'unresolvable'}); remove it or fix its target`);
          continue;
        }
        if (!inside(path)) {
          refuse(shown, 'a symlink that leads outside the policy directory; policies are read only from inside it (copy the file in, or point policy.dir at the real directory)');
          continue;
        }
        st = statSync(path);
      }
      if (st.isDirectory()) {
        if (seen.has(path)) {
          refuse(shown, 'a symlink loop: it leads back to a directory already read; remove it');
          continue;
        }
        if (depth + 1 > limits.maxDepth) {
          refuse(shown, `nested more than ${limits.maxDepth} directories deep; not read`);
          continue;
        }
        seen.add(path);
        walk(path, shown, depth + 1);
        continue;
      }
      if (!name.endsWith('.cedar')) continue;
      if (!st.isFile()) {
        refuse(shown, `not a regular file (${st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device or other special file'}); policy files must be regular files, it was not opened`);
        continue;
      }
      if (st.size > limits.maxFileBytes) {
        refuse(shown, `larger than ${limits.maxFileBytes} bytes; not read`);
        continue;
      }
      if (files.length >= limits.maxFiles) {
        refuse(shown, `more than ${limits.maxFiles} policy files; nothing was loaded`);
        stop = true;
        return;
      }
      files.push({ file: shown, real: path });
    }
  };
  walk(root, '', 0);
  return { files, problems, dirs: [...seen] };
}

/** Every `*.cedar` file under dir (recursively, see scanPolicyDir), as real paths; throws on a refused entry. */
export function listPolicyFiles(dir: string): string[] {
  const r = scanPolicyDir(dir);
  if (r.problems.length) throw new Error(r.problems.map(formatPolicyError).join('; '));
  return r.files.map((f) => f.real);
}

/**
 * Reads one policy file that scanPolicyDir accepted, without blocking should it have been
 * replaced meanwhile: opened non-blocking and without following a final symlink, then checked
 * (regular file, size bound) on the open descriptor. Returns a problem instead of throwing.
 */
export function readPolicyFile(ref: PolicyFileRef, limits: PolicyDirLimits = POLICY_DIR_LIMITS): { text: string } | { problem: PolicyFileError } {
  const refused = (message: string) => ({ problem: { file: ref.file, line: 0, column: 0, message: `TESSERA_POLICY_FILE_REFUSED: ${message}`, code: 'TESSERA_POLICY_FILE_REFUSED' as const } });
  let fd: number;
  try {
    fd = openSync(ref.real, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOFOLLOW);
  } catch (e) {
    return refused(`cannot be opened (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return refused('not a regular file; it was not read');
    if (st.size > limits.maxFileBytes) return refused(`larger than ${limits.maxFileBytes} bytes; not read`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return { text: buf.subarray(0, off).toString('utf8') };
  } finally {
    closeSync(fd);
  }
}

function lineCol(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let last = -1;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line += 1;
      last = i;
    }
  }
  return { line, column: end - last };
}

function describe(err: cedar.DetailedError): string {
  const labels = (err.sourceLocations ?? []).map((l) => l.label).filter((l): l is string => !!l);
  return [err.message, ...labels, err.help ? `(${err.help})` : ''].filter(Boolean).join('; ');
}

/**
 * The one validation error class we accept: reading a tool argument or a task fact. Cedar 4
 * cannot declare an open record, so `context.args`, `context.tctx` and
 * `context.delegation.tctx` are `{}` in the schema and any `<record>.<name>` is "not found" to
 * the validator. See schema.ts.
 */
export function isTolerated(err: cedar.DetailedError): boolean {
  return /^for policy `[^`]*`, attribute `(?:args|tctx|delegation\.tctx|http\.body)\.[^`]+` in context for .* not found$/.test(err.message);
}

/**
 * The action ids a policy scope names. Tessera's schema declares no action groups, so
 * `action in [A, B]` can only match A or B; a policy whose scope does not match the request's
 * action is never satisfied and never evaluated, so leaving it out of that action's set
 * cannot change a decision (engine.ts partitions by action for speed).
 */
function actionsOf(c: cedar.ActionConstraint): readonly string[] | 'all' {
  if (c.op === 'All') return 'all';
  const ids = (list: cedar.EntityUidJson[]): string[] => list.map((e) => ('__entity' in e ? e.__entity.id : e.id));
  if (c.op === '==') return 'entity' in c ? ids([c.entity]) : 'all';
  return 'entities' in c ? ids(c.entities) : ids([c.entity]);
}

/**
 * Whose decisions a policy takes part in, from its principal scope: a scope naming
 * `Tessera::User` or `Tessera::Group` (`principal == Tessera::User::"…"`, `principal in
 * Tessera::Group::"…"`, `principal is Tessera::User [in …]`) decides a person's entitlement;
 * every other scope (including an unconstrained `principal`) decides for the acting workload, as
 * before users existed. So no existing policy starts granting people anything (ADR 0130).
 */
export function principalKindOf(c: unknown): 'agent' | 'user' {
  const types: string[] = [];
  const o = (c ?? {}) as { op?: string; entity?: unknown; entity_type?: unknown; in?: { entity?: unknown } };
  const typeOf = (e: unknown): string | undefined => {
    const x = (e && typeof e === 'object' && '__entity' in e ? (e as { __entity: unknown }).__entity : e) as { type?: unknown } | undefined;
    return typeof x?.type === 'string' ? x.type : undefined;
  };
  if (typeof o.entity_type === 'string') types.push(o.entity_type);
  const t = typeOf(o.entity);
  if (t) types.push(t);
  const inT = typeOf(o.in?.entity);
  if (inT) types.push(inT);
  return types.some((x) => x === 'Tessera::User' || x === 'Tessera::Group') ? 'user' : 'agent';
}

/** Parses and validates one directory. Pure with respect to the filesystem snapshot it reads. */
export function loadPolicyDir(dir: string): LoadResult {
  let scan: ReturnType<typeof scanPolicyDir>;
  try {
    scan = scanPolicyDir(dir);
  } catch (e) {
    return { ok: false, files: [], errors: [{ file: dir, line: 0, column: 0, message: `cannot read policy directory: ${(e as Error).message}` }] };
  }
  const problems = [...scan.problems];
  const sources: { file: string; text: string }[] = [];
  for (const ref of scan.files) {
    const r = readPolicyFile(ref);
    if ('problem' in r) problems.push(r.problem);
    else sources.push({ file: ref.file, text: r.text });
  }
  // A refused entry fails the load (the last good set stays active): a policy silently left
  // out could be a forbid.
  if (problems.length) return { ok: false, files: scan.files.map((f) => f.file), errors: problems };
  return loadPolicySources(sources);
}

/** Same as loadPolicyDir over in-memory `{ file, text }` sources (used by tests and the test runner). */
export function loadPolicySources(sources: readonly { file: string; text: string }[]): LoadResult {
  const errors: PolicyFileError[] = [];
  const files = sources.map((s) => s.file);
  const policies = new Map<string, LoadedPolicy>();
  const where = new Map<string, { file: string; text: string; start: number }>();

  for (const { file, text } of sources) {
    const parsed = cedar.checkParsePolicySet({ staticPolicies: text });
    if (parsed.type === 'failure') {
      for (const err of parsed.errors) {
        const at = lineCol(text, err.sourceLocations?.[0]?.start ?? 0);
        errors.push({ file, ...at, message: describe(err) });
      }
      continue;
    }
    const parts = cedar.policySetTextToParts(text);
    if (parts.type === 'failure') {
      errors.push({ file, line: 1, column: 1, message: parts.errors.map(describe).join('; ') });
      continue;
    }
    if (parts.policy_templates.length > 0) {
      const start = text.indexOf(parts.policy_templates[0]!);
      errors.push({ file, ...lineCol(text, Math.max(0, start)), message: 'policy templates (with ?principal / ?resource slots) are not supported; write static policies' });
      continue;
    }
    let cursor = 0;
    parts.policies.forEach((ptext, index) => {
      // Parts are source slices (comments between policies dropped), so indexOf finds them.
      const found = text.indexOf(ptext, cursor);
      const start = found >= 0 ? found : cursor;
      cursor = found >= 0 ? found + ptext.length : cursor;
      const json = cedar.policyToJson(ptext);
      const effect = json.type === 'success' ? json.json.effect : 'permit';
      const annotated = json.type === 'success' ? json.json.annotations?.['id'] : undefined;
      const id = annotated ?? `${file}#${index}`;
      const actions = json.type === 'success' ? actionsOf(json.json.action) : 'all';
      const principals = json.type === 'success' ? principalKindOf(json.json.principal) : 'agent';
      const literals = json.type === 'success' ? literalsOf({ principal: json.json.principal, resource: json.json.resource, conditions: json.json.conditions }) : [];
      const at = lineCol(text, start);
      // Policy ids are recorded in clear in every decision's audit event (ADR 0041).
      if (credentialLike(id) || id.length > 256) {
        errors.push({ file, ...at, message: `policy id "${id.length > 256 ? `${id.slice(0, 40)}…` : '…'}" ${id.length > 256 ? 'is longer than 256 characters' : 'looks like a credential (a JWT or a tsr_… token)'}; policy ids are recorded in clear in audit events: rename it (or the file)` });
        return;
      }
      const prev = policies.get(id);
      if (prev) {
        errors.push({ file, ...at, message: `duplicate policy id "${id}" (also at ${prev.file}:${prev.line}); @id annotations must be unique across the directory` });
        return;
      }
      const trustDomains = json.type === 'success' ? trustDomainsPinnedBy(json.json) : [];
      policies.set(id, { id, effect, file, line: at.line, text: ptext, actions, literals, principals, trustDomains });
      where.set(id, { file, text, start });
    });
  }

  // Workload policies validate with principal Agent, user policies with principal User (schema.ts).
  const parsedAll = errors.length === 0;
  for (const [kind, schema] of [['agent', SCHEMA_TEXT], ['user', USER_SCHEMA_TEXT]] as const) {
    if (!parsedAll) break;
    const staticPolicies = Object.fromEntries([...policies].filter(([, p]) => p.principals === kind).map(([id, p]) => [id, p.text]));
    if (Object.keys(staticPolicies).length === 0) continue;
    const v = cedar.validate({ schema, policies: { staticPolicies }, validationSettings: { mode: 'strict' } });
    if (v.type === 'failure') {
      errors.push(...v.errors.map((e) => ({ file: '(schema)', line: 0, column: 0, message: describe(e) })));
    } else {
      for (const ve of v.validationErrors) {
        if (isTolerated(ve.error)) continue;
        const w = where.get(ve.policyId);
        if (!w) {
          errors.push({ file: '(unknown)', line: 0, column: 0, message: describe(ve.error) });
          continue;
        }
        const at = lineCol(w.text, w.start + (ve.error.sourceLocations?.[0]?.start ?? 0));
        errors.push({ file: w.file, ...at, message: describe(ve.error) });
      }
    }
  }
  if (errors.length > 0) return { ok: false, errors, files };
  const staticPolicies = Object.fromEntries([...policies].map(([id, p]) => [id, p.text]));
  return { ok: true, set: { policies, files, staticPolicies } };
}

/** `tessera policy validate <dir>`: every problem in the directory, formatted `file:line:col: message`. */
export function validatePolicyDir(dir: string): { ok: boolean; errors: readonly PolicyFileError[]; files: readonly string[]; policies: number; pinned: readonly { id: string; file: string; line: number; trustDomains?: readonly string[] }[] } {
  const r = loadPolicyDir(dir);
  return r.ok
    ? { ok: true, errors: [], files: r.set.files, policies: r.set.policies.size, pinned: [...r.set.policies.values()].map(({ id, file, line, trustDomains }) => ({ id, file, line, trustDomains })) }
    : { ok: false, errors: r.errors, files: r.files, policies: 0, pinned: [] };
}
