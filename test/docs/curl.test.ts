/**
 * Every `curl` to Tessera in README.md and docs/** works as written: a route that needs a
 * credential carries `Authorization: Bearer …` or `Authorization: DPoP …`; a JSON body
 * (`-d '{…}'`) carries `content-type: application/json` (curl's default is a form, which the
 * JSON routes refuse); and a URL with `?`, `*` or `[` is quoted (zsh, the macOS default shell,
 * stops at an unquoted one: "no matches found"). A `curl …` synopsis line is not checked.
 *
 * Tessera's URLs are the ones the docs use for it: `$TESSERA_ADDR`, `http://127.0.0.1:8200`,
 * `https://tessera.example.com|org`. The routes that take no credential are the public ones of
 * test/e2e/auth-coverage.test.ts (which checks the server itself refuses the others).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { docFiles, readDoc } from './markdown.js';
import { simpleCommands } from './shell.js';

const SHELL_LANGS = new Set(['', 'sh', 'bash', 'shell', 'console', 'zsh']);
const TESSERA_ORIGIN = /^(?:\$\{?TESSERA_ADDR\}?|https?:\/\/127\.0\.0\.1:8200|https:\/\/tessera\.example\.(?:com|org))(\/[^\s]*)?$/;
/** Routes that take no credential (RFC 8414/9728/7517 discovery, the token endpoint, RFC 7009, probes). */
const PUBLIC = [/^\/v1\/oauth\/token$/, /^\/v1\/oauth\/revoke$/, /^\/\.well-known\//, /^\/healthz$/, /^\/readyz$/, /^\/metrics$/, /^\/v1\/openapi\.json$/, /^\/v1\/bundle$/, /^\/v1\/proxy\/ca\.pem$/];

/** What is wrong with one curl command line, or undefined. */
export function curlProblems(words: readonly string[], rawLine: string): string[] {
  const problems: string[] = [];
  const headers: string[] = [];
  const data: string[] = [];
  let url: string | undefined;
  for (let i = 1; i < words.length; i++) {
    const w = words[i]!;
    if (w === '-H' || w === '--header') headers.push(words[++i] ?? '');
    else if (/^(?:-d|--data|--data-raw|--data-binary)$/.test(w)) data.push(words[++i] ?? '');
    else if (/^(?:--data-urlencode|-X|--request|-o|--output|-u|--user|-w|--write-out|--max-time|-m|--cacert|--cert|--key)$/.test(w)) i++;
    else if (w === '--json') headers.push('content-type: application/json');
    else if (!w.startsWith('-') && url === undefined) url = w;
  }
  const m = url !== undefined ? TESSERA_ORIGIN.exec(url.split('?')[0]!) : null;
  if (!m) return problems; // not a Tessera URL
  const path = m[1] ?? '/';
  const auth = headers.some((h) => /^authorization:\s*(?:Bearer|DPoP)\s+\S/i.test(h));
  if (!PUBLIC.some((p) => p.test(path)) && !auth) problems.push(`${path} needs a credential: add -H "authorization: Bearer $TESSERA_TOKEN" (or the agent's token)`);
  if (data.some((d) => /^\s*[{[]/.test(d)) && !headers.some((h) => /^content-type:\s*application\/json/i.test(h))) {
    problems.push(`a JSON body needs -H 'content-type: application/json' (curl sends a form otherwise)`);
  }
  if (unquotedGlob(rawLine)) problems.push('a URL with ?, * or [ must be quoted (zsh: "no matches found")');
  return problems;
}

/** True when a word of `line` that looks like a URL has `?`, `*` or `[` outside quotes. */
function unquotedGlob(line: string): boolean {
  let quote: string | null = null;
  let word = '';
  let globbed = false;
  const words: { text: string; globbed: boolean }[] = [];
  for (const c of line) {
    if (quote) {
      if (c === quote) quote = null;
      word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word += c;
    } else if (c === ' ' || c === '\t') {
      words.push({ text: word, globbed });
      word = '';
      globbed = false;
    } else if (c === '#' && word === '') break;
    else {
      if (c === '?' || c === '*' || c === '[') globbed = true;
      word += c;
    }
  }
  words.push({ text: word, globbed });
  return words.some((w) => w.globbed && /:\/\/|TESSERA_ADDR/.test(w.text));
}

test('curlProblems: finds each kind of problem, and accepts the right form', () => {
  const words = (s: string): string[] => simpleCommands(s, 'block')[0]!.words.slice();
  const check = (s: string): string[] => curlProblems(words(s), s);
  assert.deepEqual(check('curl -s "$TESSERA_ADDR/v1/admin/secrets/a/b" -H "authorization: Bearer $TESSERA_TOKEN"'), []);
  assert.match(check('curl $TESSERA_ADDR/v1/admin/secrets/a/b').join(), /needs a credential/);
  assert.match(check('curl -H "authorization: Bearer $T" $TESSERA_ADDR/v1/admin/secrets/a/b?version=1').join(), /must be quoted/);
  assert.match(check(`curl -X PUT "$TESSERA_ADDR/v1/admin/secrets/a" -H "authorization: Bearer $T" -d '{"value":"x"}'`).join(), /content-type/);
  assert.deepEqual(check(`curl -X PUT "$TESSERA_ADDR/v1/admin/secrets/a" -H "authorization: Bearer $T" -H 'content-type: application/json' -d '{"value":"x"}'`), []);
  assert.deepEqual(check('curl -s http://127.0.0.1:8200/v1/oauth/token --data-urlencode "subject_token=$J"'), []);
  assert.deepEqual(check('curl -s http://127.0.0.1:8200/.well-known/jwks.json'), []);
  assert.deepEqual(check('curl -s https://hooks.slack.com/services/x'), [], 'not Tessera');
  assert.deepEqual(check(`curl -s "$TESSERA_ADDR/v1/whoami" -H "Authorization: DPoP $T" -H "DPoP: $P"`), []);
});

for (const file of docFiles()) {
  test(`every curl to Tessera in ${file} has the headers it needs and is quoted where a shell needs it`, () => {
    const doc = readDoc(file);
    const problems: string[] = [];
    for (const block of doc.blocks) {
      if (!SHELL_LANGS.has(block.lang)) continue;
      const lines = block.text.split('\n');
      for (const cmd of simpleCommands(block.text, 'block')) {
        if (cmd.words[0] !== 'curl' || cmd.synopsis) continue;
        // The command as written: its first line and the continuation lines after it.
        let raw = '';
        for (let i = cmd.line - 1; i < lines.length; i++) {
          raw += ` ${lines[i]!.replace(/\\$/, '')}`;
          if (!/\\$/.test(lines[i]!)) break;
        }
        for (const p of curlProblems(cmd.words, raw)) problems.push(`${file}:${block.line + cmd.line - 1}: ${p}\n    ${cmd.raw}`);
      }
    }
    assert.deepEqual(problems, []);
  });
}
