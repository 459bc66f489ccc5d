// `--import` entry for running the @modelcontextprotocol/conformance CLI on Node 20 (ADR 0180).
//
// The package's bundle (dist/index.js) imports `globSync` from `fs`, which Node has only from
// 22; only its `tier-check` command calls it, but the missing export stops the whole bundle from
// loading. On a Node without `fs.globSync` this registers a module customization hook
// (node:module `register`, Node >= 20.6) that serves that package's `fs` imports a module with
// everything `node:fs` has plus a `globSync` that refuses with a clear message. Nothing else is
// touched: no file of the package is changed, other importers get the real `fs`, and on
// Node >= 22 this does nothing.
import * as fs from 'node:fs';
import { register } from 'node:module';

if (typeof fs.globSync !== 'function') register('./node20-fs-hook.mjs', import.meta.url);
