#!/usr/bin/env node
// Entry point of the `tessera` command.
//
// It runs the compiled JavaScript in dist/ (built by `npm install` through `prepare`, or by
// `npm run build`). The TypeScript sources run through the tsx loader only
//   - when asked: TESSERA_DEV_TS=1 (`npm run dev:ts`), for a change to take effect without a build;
//   - in a checkout whose dist/ is missing or older than src/ (a source edited or pulled since
//     the last build), so that what runs is always the code that is there; a terminal gets a
//     one-line note, scripts and MCP clients get nothing extra on stderr.
// A published package has no src/ and always runs dist/. See docs/adr/0081-cli-hardening.md.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'src');
const distDir = join(root, 'dist', 'src');

/** True when every src/**\/*.ts has a compiled dist/src/**\/*.js at least as new (one stat pair per file). */
function distIsCurrent(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const e of entries) {
    const src = join(dir, e.name);
    if (e.isDirectory()) {
      if (!distIsCurrent(src, join(out, e.name))) return false;
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
      let built;
      try {
        built = statSync(join(out, e.name.slice(0, -3) + '.js')).mtimeMs;
      } catch {
        return false;
      }
      if (built < statSync(src).mtimeMs) return false;
    }
  }
  return true;
}

async function load() {
  const compiled = join(distDir, 'entry.js');
  if (!existsSync(srcDir)) return import(pathToFileURL(compiled).href);
  const wanted = process.env.TESSERA_DEV_TS === '1';
  if (!wanted && distIsCurrent(srcDir, distDir)) return import(pathToFileURL(compiled).href);
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write(`tessera: ${existsSync(compiled) ? 'dist/ is older than src/' : 'dist/ is missing'} and the tsx loader is not installed; run \`npm run build\` in ${root}\n`);
    process.exit(1);
  }
  if (!wanted && process.stderr.isTTY) process.stderr.write('tessera: dist/ is missing or older than src/; running the TypeScript sources (slower start; `npm run build` to compile)\n');
  register();
  return import(pathToFileURL(join(srcDir, 'entry.ts')).href);
}

const mod = await load();
process.exitCode = await mod.main(process.argv.slice(2));
