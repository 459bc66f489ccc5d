/**
 * The container image (Dockerfile, .dockerignore; docs/kubernetes.md "The image").
 *
 * THE IMAGE ITSELF IS NOT BUILT HERE: the machines Tessera is developed and tested on have no
 * container engine (a docker client without a daemon) and reach no image registry, so neither
 * `node:20-bookworm` nor `gcr.io/distroless/nodejs20-debian12` can be pulled. What is checked
 * instead, for real:
 *  - the Dockerfile, parsed: two stages, the final one distroless `:nonroot`, a numeric non-root
 *    USER, no RUN (distroless has no shell) and no package manager or compiler in it, the
 *    ENTRYPOINT in exec form on the copied bin/tessera.js, the ports of the manifests, OCI labels;
 *  - the build stage's inputs: every COPY source exists and is not excluded by .dockerignore; in
 *    a directory holding only those files (node_modules linked from this checkout instead of
 *    `npm ci`, which needs the network) tsc reads exactly the files it reads here with no error
 *    (`--listFilesOnly`: a full emit costs minutes of CPU; the JavaScript is then this checkout's
 *    dist/src, compiled from those same files) and the console's `vite build` succeeds;
 *  - the final stage: a directory holding exactly what it COPYs (package.json, bin, dist/src,
 *    dist/console, and node_modules reduced to the lockfile's production packages) runs the
 *    ENTRYPOINT's command line — `node bin/tessera.js init|server --config …` with the generated
 *    SQLite tessera.yaml, its paths moved under a temporary "volume" — serves /healthz and /readyz,
 *    and writes nothing outside the data directory and TMPDIR (the image's files and the working
 *    directory are unchanged afterwards: it runs with a read-only root filesystem).
 * What stays unproven here: that the base images' Node and glibc load the addon built in the
 * builder (same Debian 12 glibc by construction), and the image's layers as a registry sees them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { manifestObjects, NONROOT_UID, parseManifestOptions, plainObjects, PORTS } from '../../../src/k8s/manifests/index.js';
import { VERSION } from '../../../src/shared/package.js';

const REPO = process.cwd();

interface Instruction { readonly op: string; readonly args: string; readonly line: number }
interface Stage { readonly from: string; readonly name?: string; readonly instructions: Instruction[] }

/** A Dockerfile's instructions by stage, line continuations joined, comments dropped, global ARG defaults substituted. */
function parseDockerfile(text: string): { globalArgs: Record<string, string>; stages: Stage[] } {
  const logical: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (buf === '' && (line === '' || line.startsWith('#'))) return;
    if (buf !== '' && line.startsWith('#')) return; // a comment inside a continued instruction
    if (buf === '') start = i + 1;
    if (line.endsWith('\\')) {
      buf += `${line.slice(0, -1).trim()} `;
      return;
    }
    buf += line;
    const m = /^(\S+)\s*(.*)$/.exec(buf)!;
    logical.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
    buf = '';
  });
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  const subst = (s: string): string => s.replace(/\$\{(\w+)\}/g, (_, n: string) => globalArgs[n] ?? `\${${n}}`);
  for (const ins of logical) {
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ from: subst(m[1]!), ...(m[2] ? { name: m[2] } : {}), instructions: [] });
    } else if (stages.length === 0) {
      assert.equal(ins.op, 'ARG', `line ${ins.line}: only ARG may come before the first FROM`);
      const [k, v] = ins.args.split('=');
      globalArgs[k!] = v ?? '';
    } else stages[stages.length - 1]!.instructions.push(ins);
  }
  return { globalArgs, stages };
}

/** COPY's flags, sources and destination (shell form: the last word is the destination). */
function copyOf(ins: Instruction): { from?: string; sources: string[]; dest: string } {
  const words = ins.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const rest = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { ...(from ? { from } : {}), sources: rest.slice(0, -1), dest: rest[rest.length - 1]! };
}

const dockerfile = parseDockerfile(readFileSync('Dockerfile', 'utf8'));
const [build, final] = [dockerfile.stages[0]!, dockerfile.stages[dockerfile.stages.length - 1]!];
const WORKDIR = (s: Stage): string => s.instructions.filter((i) => i.op === 'WORKDIR').pop()!.args;

test('two stages: the builder on node:20-bookworm, the final stage distroless Node 20 (Debian 12) :nonroot', () => {
  assert.equal(dockerfile.stages.length, 2);
  assert.equal(build.from, 'node:20-bookworm');
  assert.equal(build.name, 'build');
  assert.equal(final.from, 'gcr.io/distroless/nodejs20-debian12:nonroot');
  assert.equal(final.name, undefined);
});

test('the final stage: numeric non-root USER, no RUN, no package manager or compiler, exec-form ENTRYPOINT on bin/tessera.js, the manifests\' ports, OCI labels', () => {
  const ops = final.instructions.map((i) => i.op);
  const users = final.instructions.filter((i) => i.op === 'USER');
  assert.equal(users.length, 1);
  const [uid, gid] = users[0]!.args.split(':');
  assert.match(uid!, /^\d+$/, 'numeric, so the kubelet can check runAsNonRoot');
  assert.notEqual(Number(uid), 0);
  assert.equal(Number(uid), NONROOT_UID, 'the uid the manifests run as');
  assert.equal(Number(gid), NONROOT_UID);
  assert.ok(ops.lastIndexOf('USER') > ops.lastIndexOf('COPY'), 'USER after the last COPY');
  assert.ok(!ops.includes('RUN'), 'no RUN: distroless has no shell');
  assert.ok(!ops.includes('ADD'), 'no ADD (no remote fetches, no archive extraction)');
  for (const ins of final.instructions) assert.doesNotMatch(ins.args, /\b(apt(-get)?|apk|dpkg|gcc|g\+\+|make|python3?|npm|npx|curl|wget)\b/, `line ${ins.line}: ${ins.op} ${ins.args}`);
  for (const ins of final.instructions.filter((i) => i.op === 'COPY')) assert.equal(copyOf(ins).from, 'build', `line ${ins.line}: the final stage copies only from the builder`);
  const entry = final.instructions.filter((i) => i.op === 'ENTRYPOINT');
  assert.equal(entry.length, 1);
  assert.deepEqual(JSON.parse(entry[0]!.args), ['/nodejs/bin/node', '/app/bin/tessera.js'], 'exec form (no shell), distroless node');
  assert.equal(WORKDIR(final), '/app');
  // glibc's malloc arenas capped for the server (docs/adr/0290-server-memory-lazy-kubernetes-client.md): read only at process start, so set by the image.
  const env = final.instructions.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
  assert.match(env, /(^|\s)MALLOC_ARENA_MAX=2(\s|$)/, 'ENV MALLOC_ARENA_MAX=2 in the final stage');
  const copied = final.instructions.filter((i) => i.op === 'COPY').map((i) => copyOf(i).dest.replace(/^\.\//, '/app/'));
  assert.ok(copied.includes('/app/bin'), 'the ENTRYPOINT file is copied');
  assert.ok(!copied.some((d) => d === '/app/src' || d.startsWith('/app/src/')), 'no sources: bin/tessera.js always runs the compiled dist/');
  const expose = final.instructions.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map(Number);
  assert.deepEqual(expose, [PORTS.api, PORTS.proxy]);
  const labels = final.instructions.filter((i) => i.op === 'LABEL').map((i) => i.args).join(' ');
  for (const key of ['title', 'description', 'licenses', 'source', 'version', 'revision']) assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key}=`), key);
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { license: string; version: string };
  assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.licenses="${pkg.license}"`));
  assert.match(readFileSync('Dockerfile', 'utf8'), new RegExp(`ARG VERSION=${pkg.version.replace(/\./g, '\\.')}\\b`), 'the default version label is the package version');
  assert.match(readFileSync('Dockerfile', 'utf8'), /has not been built where Tessera is developed/, 'the file says it was not built here');
});

test('the builder: installs from the lockfile, builds better-sqlite3 from source, drops dev dependencies; every COPY source exists and is not ignored', () => {
  const runs = build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
  assert.ok(runs.some((r) => /^npm ci\b/.test(r)), 'npm ci (the lockfile)');
  assert.ok(runs.some((r) => /npm rebuild better-sqlite3 --build-from-source/.test(r)));
  assert.ok(runs.some((r) => /^npm run build$/.test(r)));
  assert.ok(runs.some((r) => /^npm prune --omit=dev\b/.test(r)));
  assert.ok(runs.findIndex((r) => /npm prune/.test(r)) > runs.findIndex((r) => /npm run build/.test(r)), 'pruned after the build');
  const ignored = readFileSync('.dockerignore', 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const must of ['.git', '.tessera', '.env', 'node_modules', 'dist']) assert.ok(ignored.includes(must), `.dockerignore excludes ${must}`);
  for (const ins of build.instructions.filter((i) => i.op === 'COPY')) {
    const c = copyOf(ins);
    assert.equal(c.from, undefined);
    for (const s of c.sources) {
      assert.ok(existsSync(s), `line ${ins.line}: ${s} exists`);
      assert.ok(!ignored.includes(s) && !ignored.includes(s.split('/')[0]!), `line ${ins.line}: ${s} is not excluded by .dockerignore`);
    }
  }
});

// --- the build stage's inputs, built; the final stage's files, run -------------------------------

const readJson = (p: string): any => JSON.parse(readFileSync(p, 'utf8'));

let ctx: string;
let app: string;

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** Every file under dir (symlinks not followed) with size and mtime. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      out.set(relative(dir, p), `${st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f'}:${st.size}:${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

before(() => {
  ctx = mkdtempSync(join(tmpdir(), 'tessera-image-build-'));
  // The builder's context: exactly the files its COPY instructions name.
  for (const ins of build.instructions.filter((i) => i.op === 'COPY')) for (const s of copyOf(ins).sources) cpSync(s, join(ctx, s), { recursive: true });
  symlinkSync(join(REPO, 'node_modules'), join(ctx, 'node_modules'));
  // `npm run build` is `tsc -p tsconfig.build.json && vite build …`. A full tsc emit costs minutes
  // of CPU on a shared 2-core machine (it ran past the runner's per-file timeout), so its half is
  // proven without emitting: tsc, run in the context, must read exactly the files it reads in this
  // checkout (a source outside the COPY set would be missing there) and report no error; the
  // emitted JavaScript is then this checkout's dist/src, compiled from those same files. The
  // console's half is built for real in the context.
  assert.equal(readJson(join(REPO, 'package.json')).scripts.build, 'tsc -p tsconfig.build.json && vite build --config console/vite.config.mjs', 'the build script this test mirrors');
  const inputsIn = (dir: string): string[] => {
    const r = spawnSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '--listFilesOnly', '-p', 'tsconfig.build.json'], { cwd: dir, encoding: 'utf8', timeout: 540_000 });
    assert.equal(r.status, 0, `tsc --listFilesOnly in ${dir} failed:\n${r.stdout}\n${r.stderr}`);
    return r.stdout.split('\n').filter(Boolean).map((f) => (f.startsWith(`${dir}/`) ? f.slice(dir.length + 1) : f.startsWith(`${REPO}/`) ? f.slice(REPO.length + 1) : f)).sort();
  };
  const inCtx = inputsIn(ctx);
  assert.ok(inCtx.includes('src/main.ts'), 'tsc reads the sources in the context');
  assert.deepEqual(inCtx, inputsIn(REPO), 'the build context holds every file the TypeScript build reads');
  assert.ok(existsSync(join(REPO, 'dist', 'src', 'main.js')), 'dist/src is built (npm install / npm ci run `prepare`)');
  mkdirSync(join(ctx, 'dist'));
  cpSync(join(REPO, 'dist', 'src'), join(ctx, 'dist', 'src'), { recursive: true });
  const vite = spawnSync(process.execPath, [join(REPO, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'console/vite.config.mjs'], { cwd: ctx, encoding: 'utf8', timeout: 540_000 });
  assert.equal(vite.status, 0, `vite build in the build context failed:\n${vite.stdout}\n${vite.stderr}`);

  // The final stage's files: each COPY --from=build, from the built context.
  app = mkdtempSync(join(tmpdir(), 'tessera-image-app-'));
  const buildDir = WORKDIR(build);
  for (const ins of final.instructions.filter((i) => i.op === 'COPY')) {
    const c = copyOf(ins);
    const src = c.sources[0]!;
    assert.ok(src.startsWith(`${buildDir}/`), src);
    const rel = src.slice(buildDir.length + 1);
    const dest = join(app, c.dest.replace(/^\.\//, '').replace(/^\/app\//, ''));
    if (rel === 'node_modules') {
      // `npm prune --omit=dev`: the lockfile's production packages only (linked from this checkout).
      const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
      mkdirSync(dest, { recursive: true });
      for (const [key, meta] of Object.entries(lock.packages)) {
        if (!key.startsWith('node_modules/') || key.slice('node_modules/'.length).includes('node_modules/') || meta.dev) continue;
        const name = key.slice('node_modules/'.length);
        mkdirSync(dirname(join(dest, name)), { recursive: true });
        if (existsSync(join(REPO, key))) symlinkSync(join(REPO, key), join(dest, name));
      }
      continue;
    }
    assert.ok(existsSync(join(ctx, rel)), `COPY --from=build ${src}: exists after npm run build`);
    cpSync(join(ctx, rel), dest, { recursive: true });
  }
  assert.ok(!existsSync(join(app, 'node_modules', 'typescript')) && !existsSync(join(app, 'node_modules', 'tsx')), 'no dev dependencies');
}, { timeout: 600_000 }); // tsc's file list twice and a vite build on a shared machine

after(() => {
  for (const d of [ctx, app]) if (d) rmSync(d, { recursive: true, force: true });
});

test('the final stage\'s files run the ENTRYPOINT: init and server with the generated tessera.yaml on a temporary volume; /healthz and /readyz; nothing written outside the volume and TMPDIR', { timeout: 300_000 }, async () => {
  const entry = join(app, 'bin', 'tessera.js');
  const root = mkdtempSync(join(tmpdir(), 'tessera-image-run-'));
  try {
    const etc = join(root, 'etc-tessera');
    const data = join(root, 'var-lib-tessera');
    const tmp = join(root, 'tmp');
    const cwd = join(root, 'cwd');
    for (const d of [etc, data, tmp, cwd]) mkdirSync(d);
    // The ConfigMap's tessera.yaml (SQLite flavour), its mount paths moved under `root`.
    const cm = plainObjects(manifestObjects(parseManifestOptions({ store: 'sqlite' }, VERSION))).find((o) => o.kind === 'ConfigMap') as { data: Record<string, string> };
    const config = parseYaml(cm.data['tessera.yaml']!) as Record<string, any>;
    assert.equal(config.data_dir, '/var/lib/tessera');
    config.data_dir = data;
    config.policy.dir = etc;
    const port = await freePort();
    config.server.listen = `127.0.0.1:${port}`;
    config.proxy.listen = '127.0.0.1:0';
    writeFileSync(join(etc, 'tessera.yaml'), stringify(config));
    chmodSync(etc, 0o555);
    const env = { PATH: process.env.PATH ?? '', NODE_ENV: 'production', TMPDIR: tmp, HOME: '/nonexistent', TESSERA_MASTER_KEY: randomBytes(32).toString('base64') };
    // The image's files are not writable (root-owned in the image; here read-only where the OS enforces it).
    spawnSync('chmod', ['-R', 'a-w', app]);
    const before = snapshot(app);

    const version = spawnSync(process.execPath, [entry, '--version'], { cwd, env, encoding: 'utf8' });
    assert.equal(version.stdout.trim(), VERSION, version.stderr);
    const init = spawnSync(process.execPath, [entry, 'init', '--config', join(etc, 'tessera.yaml'), '--json'], { cwd, env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(init.status, 0, init.stderr);
    assert.equal((JSON.parse(init.stdout) as { data_dir: string }).data_dir, data);
    assert.ok(existsSync(join(data, 'tessera.db')), 'the database is on the volume');
    assert.ok(!existsSync(join(data, 'master.key')), 'the master key comes from the environment (the Secret), never a file');

    const server = spawn(process.execPath, [entry, 'server', '--config', join(etc, 'tessera.yaml')], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    server.stderr.on('data', (c: Buffer) => void (err += c.toString()));
    const exited = new Promise<number | null>((res) => server.on('exit', (code) => res(code)));
    try {
      const url = await new Promise<string>((res, rej) => {
        const t = setTimeout(() => rej(new Error(`the server did not start in 60 s: ${err.slice(-2000)}`)), 60_000);
        server.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          // The line names the public URL (the in-cluster address); the test calls the listener.
          if (/Tessera is listening on http:\/\/tessera\.tessera\.svc:8200/.test(out)) {
            clearTimeout(t);
            res(`http://127.0.0.1:${port}`);
          }
        });
        void exited.then((code) => rej(new Error(`the server exited (${code}): ${err.slice(-2000)}`)));
      });
      for (const path of ['/healthz', '/readyz']) {
        const r = await fetch(url + path);
        assert.equal(r.status, 200, `${path}: ${await r.text()}`);
      }
    } finally {
      server.kill('SIGTERM');
      assert.equal(await exited, 0, err.slice(-2000));
    }
    assert.deepEqual([...snapshot(app)].filter(([k, v]) => before.get(k) !== v), [], 'the image\'s files are unchanged');
    assert.deepEqual(readdirSync(cwd), [], 'nothing written in the working directory');
    assert.deepEqual(readdirSync(etc).sort(), ['tessera.yaml'], 'nothing written in the configuration directory');
    assert.ok(statSync(data).isDirectory());
  } finally {
    spawnSync('chmod', ['-R', 'u+w', app]);
    rmSync(root, { recursive: true, force: true });
  }
});
