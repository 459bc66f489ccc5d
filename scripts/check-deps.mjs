#!/usr/bin/env node
// Dependency direction check (run by `npm run lint` and CI):
//  1. Only src/main.ts (the composition root) imports store adapters (src/store/sqlite, src/store/postgres).
//  2. Pure core modules import no I/O: no fs/net/http/child_process, no drivers, no HTTP framework.
//  3. The SDK (src/sdk) imports nothing from the server side.
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';

const root = process.cwd();
const PURE = [
  'src/shared/clock.ts',
  'src/shared/credential-like.ts',
  'src/shared/json-depth.ts',
  'src/config/duration.ts',
  'src/identity/spiffe-id.ts',
  'src/policy/scope.ts',
  'src/policy/types.ts',
  'src/secrets/path.ts',
  'src/audit/chain.ts',
  'src/audit/canonical.ts',
  'src/audit/statements.ts',
  'src/audit/events.ts',
  'src/shared/auth-epoch.ts',
  'src/shared/auth-cache.ts',
  'src/shared/rate-limit.ts',
  'src/server/origin.ts',
  'src/shared/terminal.ts',
  'src/shared/plural.ts',
  'src/dpop/htu.ts',
  'src/dpop/replay.ts',
  'src/dpop/nonce.ts',
  'src/dpop/settings.ts',
  'src/dpop/jwk.ts',
  'src/shared/token-kind.ts',
  'src/shared/next-steps.ts',
  'src/shared/duration.ts',
  'src/rotation/schedule.ts',
  // Issue 12: the scan's rules and report (not api.ts, the API client), the injector's decision
  // (not server.ts / tls.ts / config.ts, which read files), the drift digests and findings.
  'src/k8s/scan/credentials.ts',
  'src/k8s/scan/documents.ts',
  'src/k8s/scan/netpol.ts',
  'src/k8s/scan/objects.ts',
  'src/k8s/scan/report.ts',
  'src/k8s/scan/scan.ts',
  'src/k8s/scan/severity.ts',
  'src/k8s/scan/suggest.ts',
  'src/k8s/injector/annotations.ts',
  'src/k8s/injector/inject.ts',
  'src/k8s/injector/mutate.ts',
  'src/k8s/injector/review.ts',
  'src/drift/config.ts',
  'src/drift/digest.ts',
  'src/drift/findings.ts',
  // What those import, I/O-free too: config field types, task parameters and claims, user identity.
  'src/config/fields.ts',
  'src/tasks/params.ts',
  'src/tasks/claims.ts',
  'src/users/identity.ts',
  'src/users/config.ts',
];
const IO_MODULES = /^(node:)?(fs|fs\/promises|net|http|https|http2|child_process|dgram|dns|tls|worker_threads)$|^(better-sqlite3|pg|fastify|undici)$/;
const ADAPTERS = ['src/store/sqlite', 'src/store/postgres'];

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function imports(file) {
  const text = readFileSync(file, 'utf8');
  const out = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'";]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    // `import type …` / `export type …` is erased by the compiler: it loads nothing at run time.
    if (/^\s*(?:import|export)\s+type\s/.test(m[0])) continue;
    out.push(m[1] ?? m[2]);
  }
  return out;
}

function resolveLocal(file, spec) {
  if (!spec.startsWith('.')) return null;
  return relative(root, resolve(dirname(file), spec)).replace(/\.js$/, '.ts');
}

const problems = [];
for (const file of walk('src')) {
  const rel = relative(root, file);
  for (const spec of imports(file)) {
    const local = resolveLocal(file, spec);
    if (local && ADAPTERS.some((a) => local.startsWith(a)) && rel !== 'src/main.ts' && !ADAPTERS.some((a) => rel.startsWith(a))) {
      problems.push(`${rel}: imports store adapter ${spec}; only src/main.ts chooses adapters`);
    }
    if (PURE.includes(rel)) {
      if (IO_MODULES.test(spec)) problems.push(`${rel}: pure core module imports I/O module ${spec}`);
      if (local && !PURE.includes(local) && !local.startsWith('src/shared/errors') && !local.startsWith('src/shared/principal')) {
        problems.push(`${rel}: pure core module imports non-pure ${local}`);
      }
    }
    if (rel.startsWith('src/sdk/') && local && !local.startsWith('src/sdk/') && !local.startsWith('src/shared/')) {
      problems.push(`${rel}: the SDK must not import server-side code (${local})`);
    }
  }
}
if (problems.length) {
  console.error(`dependency check failed:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`dependency check: ok (${walk('src').length} files)`);
