#!/usr/bin/env node
// Entry point. In a source checkout, run src/ through tsx (so edits take effect at once); in a
// published package (no src/), run the compiled dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src', 'main.ts');
let mod;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(pathToFileURL(source).href);
} else {
  mod = await import(pathToFileURL(join(root, 'dist', 'src', 'main.js')).href);
}
process.exitCode = await mod.main(process.argv.slice(2));
