// Module customization hook (Node "Customization hooks", `resolve`): the conformance package's
// `fs` / `node:fs` imports resolve to ./node20-fs-shim.mjs; every other import is unchanged.
// Registered by ./node20-fs.mjs only when `fs.globSync` is missing (Node < 22). ADR 0180.
const PACKAGE = '/node_modules/@modelcontextprotocol/conformance/';
const SHIM = new URL('./node20-fs-shim.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  const fromPackage = typeof context.parentURL === 'string' && context.parentURL.includes(PACKAGE);
  if (fromPackage && (specifier === 'fs' || specifier === 'node:fs')) return { url: SHIM, shortCircuit: true };
  return nextResolve(specifier, context);
}
