// Regenerates docs/errors.md from the error catalogue: `npx tsx scripts/gen-errors-doc.ts`.
import { writeFileSync } from 'node:fs';
import { ERROR_CATALOGUE } from '../src/shared/errors.js';

const rows = Object.entries(ERROR_CATALOGUE).map(([code, spec]) => {
  const s = spec as { status: number; oauth?: string; description: string };
  return `| \`${code}\` | ${s.status} | ${s.oauth ? `\`${s.oauth}\`` : ''} | ${s.description.replace(/\|/g, '\\|')} |`;
});
const text = `# Error codes

Every error Tessera returns carries a stable machine code. HTTP APIs answer
\`{ "error": { "code", "message", "request_id" } }\`; OAuth endpoints answer the RFC 6749 §5.2
shape \`{ "error", "error_description", "code" }\`; the CLI prints \`error: <message> [<code>]\` and
exits non-zero. Codes are never renamed or reused. This file is generated from
\`src/shared/errors.ts\` by \`npx tsx scripts/gen-errors-doc.ts\`; a test keeps them in step.

| code | HTTP | OAuth error | meaning and what to do |
|------|------|-------------|------------------------|
${rows.join('\n')}
`;
writeFileSync(new URL('../docs/errors.md', import.meta.url), text);
console.log(`docs/errors.md: ${rows.length} codes`);
