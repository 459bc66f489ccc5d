/**
 * Every command line the docs show is one the real CLI accepts. Each `tessera …` in README.md,
 * the other top-level *.md files and docs/** — in sh code blocks, in inline code, in MCP client
 * configurations (JSON `command` + `args`), and `npm run dev -- …` — is parsed by the real
 * commander program (`buildProgram`, actions stopped before they run): an unknown command or
 * option, a bad choice, an excess argument, or (in full command lines) a missing argument or
 * required option fails with `file:line`, the command and what is wrong.
 *
 * Inline code is read as a synopsis: `put|get` is a choice, `[--ttl 24h]` optional, `…` more;
 * missing arguments and option values are not reported there (a prose mention such as
 * `tessera policy check` or `tessera dev --config` names a command or option, it does not run it). A code-block line with a standalone `…` is a synopsis too.
 *
 * Also: never `npx tessera` or `npm install tessera` (an unrelated npm package), the package is
 * imported as `tessera-broker/<export>`, `npm run <script>` names a script that exists, and a
 * script run with `node`/`tsx` exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Command, CommanderError } from 'commander';
import { buildProgram, isVersionRequest, type CliIo, type Runtime } from '../../src/cli/index.js';
import { docFiles, readDoc, type MarkdownDoc } from './markdown.js';
import { expandSynopsis, isPlaceholder, simpleCommands, type SimpleCommand } from './shell.js';

const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as { name: string; scripts: Record<string, string>; exports: Record<string, unknown> };
const SHELL_LANGS = new Set(['', 'sh', 'bash', 'shell', 'console', 'zsh', 'text']);
const CODE_LANGS = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs', 'tsx']);

const notUsed = (): Promise<never> => Promise.reject(new Error('the docs test never runs a command'));
const runtime: Runtime = { dev: notUsed, server: notUsed, init: notUsed, rotateMasterKey: notUsed, verifyAuditOffline: notUsed };
const STOP = new Error('parsed; action not run');

/** The command a word sequence resolves to (for messages). */
function resolveCommand(program: Command, argv: readonly string[]): Command {
  let cmd = program;
  for (const w of argv) {
    if (w.startsWith('-')) continue;
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (!sub) break;
    cmd = sub;
  }
  return cmd;
}

function pathOf(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function optionsOf(cmd: Command): string {
  const all: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) all.push(...c.options.map((o) => o.long ?? o.short ?? o.flags));
  return all.join(', ');
}

/**
 * Parses `argv` (the words after `tessera`) with the real program; undefined when it is
 * accepted, else what commander (or an option parser) said. `synopsis`: missing arguments,
 * required options and subcommands are supplied instead of reported.
 */
export async function checkArgv(argv: readonly string[], synopsis: boolean): Promise<string | undefined> {
  if (isVersionRequest(argv)) return undefined;
  let words = [...argv];
  for (let attempt = 0; attempt < 8; attempt++) {
    let out = '';
    const io: CliIo = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (out += s) }, env: {} };
    const program = buildProgram(runtime, io);
    program.hook('preAction', () => {
      throw STOP;
    });
    try {
      await program.parseAsync(words, { from: 'user' });
      return 'the command line ran to its end without reaching an action (no command?)';
    } catch (err) {
      if (err === STOP) return undefined;
      if (!(err instanceof CommanderError)) return `rejected: ${(err as Error).message}`;
      if (err.code === 'commander.helpDisplayed') return undefined;
      const leaf = resolveCommand(program, words);
      const msg = err.message.replace(/^error: /, '');
      if (err.code === 'commander.unknownCommand') {
        const bad = /'([^']*)'/.exec(err.message)?.[1] ?? '';
        if (isPlaceholder(bad)) return undefined; // `tessera <command> --help`
        return `${msg.replace(/\n/g, ' ')} (${leaf.parent ? `subcommands of \`${pathOf(leaf)}\`` : 'commands'}: ${leaf.commands.map((c) => c.name()).join(', ')})`;
      }
      if (err.code === 'commander.help') {
        if (synopsis) return undefined;
        return `incomplete: \`${pathOf(leaf)}\` needs a subcommand (${leaf.commands.map((c) => c.name()).join(', ')})`;
      }
      if (err.code === 'commander.unknownOption') return `${msg.replace(/\n/g, ' ')} — options of \`${pathOf(leaf)}\`: ${optionsOf(leaf)}`;
      if (synopsis && err.code === 'commander.missingMandatoryOptionValue') {
        const flag = /option '(-[^ ',]+)/.exec(err.message)?.[1];
        if (!flag) return msg;
        words = [...words, flag, placeholderValue(leaf, flag)];
        continue;
      }
      if (synopsis && err.code === 'commander.missingArgument') {
        words = [...words, 'x'];
        continue;
      }
      // `tessera dev --config` in prose names the option; its value is supplied like a missing argument.
      if (synopsis && err.code === 'commander.optionMissingArgument') {
        const flags = /option '([^']*)'/.exec(err.message)?.[1]?.split(/[ ,]+/).filter((f) => f.startsWith('-')) ?? [];
        const at = Math.max(...flags.map((f) => words.lastIndexOf(f)));
        if (at < 0) return msg;
        words = [...words.slice(0, at + 1), placeholderValue(leaf, words[at]!), ...words.slice(at + 1)];
        continue;
      }
      return msg.replace(/\n/g, ' ');
    }
  }
  return 'could not complete the synopsis';
}

/** A value supplied for an option a synopsis leaves out: one of its choices when it has them. */
function placeholderValue(cmd: Command, flag: string): string {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const o = c.options.find((x) => x.long === flag || x.short === flag);
    if (o) return o.argChoices?.[0] ?? 'x';
  }
  return 'x';
}

interface Problem { at: string; what: string }

/** `tessera …` words of a simple command, or why the command itself is wrong; undefined when not ours. */
function classify(cmd: SimpleCommand): { argv: string[] } | { problem: string } | undefined {
  const [path, ...rest] = cmd.words;
  if (path === undefined) return undefined;
  const first = basename(path); // `/usr/local/bin/tessera`, `/…/bin/node` in client configurations
  if (first === 'tessera') return { argv: rest };
  if (first === 'node' && rest[0] && /(^|\/)bin\/tessera\.js$/.test(rest[0])) return { argv: rest.slice(1) };
  const runner = first === 'npx' || ((first === 'npm' || first === 'pnpm') && (rest[0] === 'exec' || rest[0] === 'dlx')) || (first === 'yarn' && rest[0] === 'dlx');
  if (runner) {
    const pkg = rest.filter((w) => w !== 'exec' && w !== 'dlx').find((w) => !w.startsWith('-'));
    if (pkg !== undefined && /^tessera(@|$)/.test(pkg)) return { problem: 'runs the unrelated npm package `tessera`: use the installed `tessera` command (npm install -g tessera-broker, or npm link in a clone)' };
    if (pkg === 'tsx' && rest[rest.indexOf('tsx') + 1]) return scriptExists(rest[rest.indexOf('tsx') + 1]!);
    return undefined;
  }
  if ((first === 'npm' || first === 'pnpm' || first === 'yarn') && ['install', 'i', 'add', 'link'].includes(rest[0] ?? '')) {
    const bad = rest.slice(1).find((w) => /^tessera(@.*)?$/.test(w));
    if (bad) return { problem: `installs the unrelated npm package \`tessera\`; the package is \`${manifest.name}\`` };
    return undefined;
  }
  if (first === 'npm' && (rest[0] === 'run' || rest[0] === 'run-script' || ['test', 'start', 'stop', 'restart'].includes(rest[0] ?? ''))) {
    const script = rest[0] === 'run' || rest[0] === 'run-script' ? rest[1] : rest[0];
    if (!script) return undefined;
    if (!(script in manifest.scripts)) return { problem: `package.json has no script "${script}" (scripts: ${Object.keys(manifest.scripts).join(', ')})` };
    const dashes = rest.indexOf('--');
    // `npm run dev -- --listen …` is `tessera dev --listen …` (package.json "dev").
    if (/^node bin\/tessera\.js /.test(manifest.scripts[script]!)) {
      const base = manifest.scripts[script]!.replace(/^node bin\/tessera\.js /, '').split(' ');
      return { argv: [...base, ...(dashes >= 0 ? rest.slice(dashes + 1) : [])] };
    }
    return undefined;
  }
  if ((first === 'node' || first === 'tsx') && rest[0] && !rest[0].startsWith('-')) return scriptExists(rest[0]);
  return undefined;
}

function scriptExists(path: string): { problem: string } | undefined {
  if (!/\.(m?js|ts)$/.test(path) || path.includes('$') || path.startsWith('/') || path.includes('<')) return undefined;
  return existsSync(path) ? undefined : { problem: `${path} does not exist` };
}

async function checkCommand(cmd: SimpleCommand, where: string, dialect: 'block' | 'inline', problems: Problem[]): Promise<number> {
  const c = classify(cmd);
  if (!c) return 0;
  if ('problem' in c) {
    problems.push({ at: where, what: `\`${cmd.raw}\` — ${c.problem}` });
    return 1;
  }
  if (c.argv.length === 0) return 0; // the program's name in prose
  const variants = dialect === 'inline' ? expandSynopsis(c.argv) : [{ words: c.argv, synopsis: false }];
  for (const v of variants) {
    const why = await checkArgv(v.words, dialect === 'inline' || cmd.synopsis || v.synopsis);
    if (why) problems.push({ at: where, what: `\`tessera ${v.words.join(' ')}\` — ${why}` });
  }
  return variants.length;
}

/** MCP client configurations: `{ "command": "…/tessera", "args": [...] }` anywhere in a JSON block. */
function* mcpLaunches(value: unknown): Generator<{ command: string; args: string[] }> {
  if (Array.isArray(value)) for (const v of value) yield* mcpLaunches(v);
  else if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.command === 'string') yield { command: o.command, args: Array.isArray(o.args) ? o.args.map(String) : [] };
    for (const v of Object.values(o)) yield* mcpLaunches(v);
  }
}

async function checkDoc(doc: MarkdownDoc): Promise<{ problems: Problem[]; checked: number }> {
  const problems: Problem[] = [];
  let checked = 0;
  for (const block of doc.blocks) {
    if (SHELL_LANGS.has(block.lang)) {
      for (const cmd of simpleCommands(block.text, 'block')) checked += await checkCommand(cmd, `${doc.file}:${block.line + cmd.line - 1}`, 'block', problems);
    } else if (block.lang === 'json' || block.lang === 'jsonc') {
      let json: unknown;
      try {
        json = JSON.parse(block.text);
      } catch (e) {
        if (/"command"\s*:/.test(block.text)) problems.push({ at: `${doc.file}:${block.line}`, what: `a client configuration that is not valid JSON: ${(e as Error).message}` });
        continue;
      }
      for (const l of mcpLaunches(json)) checked += await checkCommand({ words: [l.command, ...l.args], line: 1, raw: [l.command, ...l.args].join(' '), synopsis: false }, `${doc.file}:${block.line}`, 'block', problems);
    }
    if (CODE_LANGS.has(block.lang) || block.lang === 'json') checkImports(block.text, `${doc.file}:${block.line}`, problems);
  }
  for (const span of doc.inline) {
    // `tessera mcp:` is how log lines are prefixed, not a command.
    if (/^\S+( \S+)*:$/.test(span.text)) continue;
    for (const cmd of simpleCommands(span.text, 'inline')) checked += await checkCommand(cmd, `${doc.file}:${span.line}`, 'inline', problems);
    checkImports(span.text, `${doc.file}:${span.line}`, problems);
  }
  return { problems, checked };
}

/** `import … from 'tessera-broker/sdk'`: the package name, and a subpath package.json exports. */
function checkImports(text: string, at: string, problems: Problem[]): void {
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+)['"](tessera[^'"]*)['"]/g)) {
    const spec = m[1]!;
    const [pkg, ...sub] = spec.split('/');
    if (pkg !== manifest.name) {
      problems.push({ at, what: `imports '${spec}': the package is '${manifest.name}' (the npm package 'tessera' is unrelated)` });
      continue;
    }
    const subpath = sub.length ? `./${sub.join('/')}` : '.';
    if (!(subpath in manifest.exports)) problems.push({ at, what: `imports '${spec}', which package.json does not export (exports: ${Object.keys(manifest.exports).join(', ')})` });
  }
}

for (const file of docFiles()) {
  test(`every command line in ${file} is one the CLI accepts`, async () => {
    const { problems } = await checkDoc(readDoc(file));
    assert.deepEqual(problems.map((p) => `${p.at}: ${p.what}`), []);
  });
}

test('the docs show a real number of tessera command lines (the extractor finds them)', async () => {
  let total = 0;
  for (const file of docFiles()) total += (await checkDoc(readDoc(file))).checked;
  assert.ok(total > 150, `only ${total} command lines found`);
  const cli = await checkDoc(readDoc('docs/cli.md'));
  assert.ok(cli.checked > 60, `docs/cli.md: only ${cli.checked}`);
});

test('the checker catches each kind of wrong command line', async () => {
  const { parseMarkdown } = await import('./markdown.js');
  const doc = parseMarkdown(
    'docs/x.md',
    [
      'Run `tessera kv put a/b --value-file key.txt` or `tessera kv put|get|remove`; `tessera dev --config` names an option.',
      '',
      '```sh',
      'tessera kv put app/key --from-file k --rotation-period 30d   # fine',
      'export T=$(tessera login --join-token "$J" --bogus)',
      'tessera revoke agent',
      'tessera join-token create --ttl 10m',
      'tessera kv put a b --mode write',
      'tessera kv get a b',
      'tessera frobnicate',
      'npx tessera dev',
      'npm install -g tessera',
      'npm run devv',
      'npm run dev -- --lissen 127.0.0.1:1',
      'tessera audit tail -n abc',
      'tessera policy check …',
      'tessera <command> --help',
      'tessera --version',
      'tessera dev --config',
      '```',
      '',
      '```json',
      '{ "mcpServers": { "t": { "command": "/usr/local/bin/tessera", "args": ["mcp", "--tokenfile", "x"] },',
      '  "u": { "command": "npx", "args": ["-y", "tessera", "mcp"] },',
      '  "v": { "command": "/opt/node/bin/node", "args": ["/opt/lib/node_modules/tessera-broker/bin/tessera.js", "mcp", "--adr", "x"] } } }',
      '```',
      '',
      '```ts',
      "import { TesseraClient } from 'tessera/sdk';",
      "import { x } from 'tessera-broker/server';",
      '```',
    ].join('\n'),
  );
  const { problems, checked } = await checkDoc(doc);
  const found = problems.map((p) => `${p.at}: ${p.what}`);
  const expect = [
    /^docs\/x.md:1: `tessera kv put a\/b --value-file key.txt` — unknown option '--value-file'.*--from-file/,
    /^docs\/x.md:1: `tessera kv remove` — unknown command 'remove'/,
    /^docs\/x.md:5: `tessera login --join-token \$J --bogus` — unknown option '--bogus'/,
    /^docs\/x.md:6: `tessera revoke agent` — missing required argument/,
    /^docs\/x.md:7: `tessera join-token create --ttl 10m` — required option '--spiffe-id <id>' not specified/,
    /^docs\/x.md:8: .* — option '--mode <mode>' argument 'write' is invalid/,
    /^docs\/x.md:9: `tessera kv get a b` — too many arguments/,
    /^docs\/x.md:10: `tessera frobnicate` — unknown command 'frobnicate'/,
    /^docs\/x.md:11: `npx tessera dev` — runs the unrelated npm package/,
    /^docs\/x.md:12: `npm install -g tessera` — installs the unrelated npm package/,
    /^docs\/x.md:13: `npm run devv` — package.json has no script "devv"/,
    /^docs\/x.md:14: `tessera dev --lissen 127.0.0.1:1` — unknown option '--lissen'/,
    /^docs\/x.md:15: `tessera audit tail -n abc` — rejected: --lines must be a positive integer/,
    /^docs\/x.md:19: `tessera dev --config` — option '--config <file>' argument missing/,
    /^docs\/x.md:23: `tessera mcp --tokenfile x` — unknown option '--tokenfile'/,
    /^docs\/x.md:23: `npx -y tessera mcp` — runs the unrelated npm package/,
    /^docs\/x.md:23: `tessera mcp --adr x` — unknown option '--adr'/,
    /^docs\/x.md:29: imports 'tessera\/sdk': the package is 'tessera-broker'/,
    /^docs\/x.md:29: imports 'tessera-broker\/server', which package.json does not export/,
  ];
  for (const re of expect) assert.ok(found.some((f) => re.test(f)), `not reported: ${re}\n${found.join('\n')}`);
  assert.equal(found.length, expect.length, found.join('\n'));
  assert.ok(checked >= 18);
});
