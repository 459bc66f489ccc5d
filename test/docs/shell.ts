/**
 * Reads command lines out of documentation the way a shell would split them, far enough to
 * find each simple command and its words: quotes, `\` line continuations, comments, pipes and
 * `&&`/`||`/`;`, redirections, `VAR=value` prefixes, here-documents and `$(…)` / backtick
 * substitutions (whose commands are commands too).
 *
 * Two dialects:
 * - `block` (a fenced sh block): real shell rules, except that `<word …>` is a placeholder, as
 *   docs write it, not a redirection.
 * - `inline` (a code span in prose): also a synopsis notation — `a|b` without spaces is a choice
 *   between `a` and `b`, `[…]` marks an optional part, `…` stands for more.
 */

export interface SimpleCommand {
  /** The words after assignments and redirections; `words[0]` is the command name. */
  readonly words: readonly string[];
  /** Line (1-based, relative to the text given) where the command starts. */
  readonly line: number;
  /** The command as written, for messages. */
  readonly raw: string;
  /** A standalone `…`/`...` or a `[…]` was dropped: the line is a synopsis, not a full invocation. */
  readonly synopsis: boolean;
}

type Tok = { kind: 'word'; value: string; placeholder: boolean } | { kind: 'op'; value: string } | { kind: 'redir'; value: string };

const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;
const PREFIX_COMMANDS = new Set(['export', 'env', 'sudo', 'time', 'exec', 'command', 'nohup']);

/** Every simple command in `text`, including those inside command substitutions. */
export function simpleCommands(text: string, dialect: 'block' | 'inline'): SimpleCommand[] {
  const out: SimpleCommand[] = [];
  const lines = text.split('\n');
  let heredoc: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (heredoc !== null) {
      if (line.replace(/^\t+/, '') === heredoc) heredoc = null;
      continue;
    }
    const start = i;
    // `\` at the end of a line continues the command on the next one.
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < lines.length) line = line.slice(0, -1) + ' ' + lines[++i]!;
    const here = /<<-?\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\1/.exec(line.replace(/<<</g, '   '));
    if (here) heredoc = here[2]!;
    for (const cmd of commandsOfLine(line, dialect)) out.push({ ...cmd, line: start + 1 + cmd.line - 1 });
  }
  return out;
}

function commandsOfLine(line: string, dialect: 'block' | 'inline'): SimpleCommand[] {
  const nested: SimpleCommand[] = [];
  const toks = tokenize(line, dialect, (inner) => nested.push(...commandsOfLine(inner, dialect)));
  const out: SimpleCommand[] = [];
  let seg: Tok[] = [];
  const flush = (): void => {
    const words: string[] = [];
    let synopsis = false;
    let skipNext = false;
    for (const t of seg) {
      if (skipNext) {
        skipNext = false;
        continue;
      }
      if (t.kind === 'redir') {
        skipNext = !/&\d$/.test(t.value); // `2>&1` has no target word
        continue;
      }
      if (t.kind !== 'word') continue;
      if (t.value === '…' || t.value === '...') {
        synopsis = true;
        continue;
      }
      words.push(t.value);
    }
    seg = [];
    while (words.length && (ASSIGNMENT.test(words[0]!) || PREFIX_COMMANDS.has(words[0]!))) words.shift();
    if (words.length) out.push({ words, line: 1, raw: rawOf(words), synopsis });
  };
  for (const t of toks) {
    if (t.kind === 'op') flush();
    else seg.push(t);
  }
  flush();
  return [...out, ...nested];
}

function rawOf(words: readonly string[]): string {
  return words.map((w) => (/^[\w@%+=:,./<>[\]|…-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`)).join(' ');
}

function tokenize(line: string, dialect: 'block' | 'inline', onSubstitution: (inner: string) => void): Tok[] {
  const toks: Tok[] = [];
  let word = '';
  let inWord = false;
  const end = (): void => {
    if (inWord) toks.push({ kind: 'word', value: word, placeholder: false });
    word = '';
    inWord = false;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    const next = line[i + 1];
    if (c === ' ' || c === '\t') {
      end();
    } else if (c === '#' && !inWord) {
      break; // comment
    } else if (c === '\\') {
      word += next ?? '';
      inWord = true;
      i++;
    } else if (c === "'") {
      const j = line.indexOf("'", i + 1);
      word += line.slice(i + 1, j < 0 ? line.length : j);
      inWord = true;
      i = j < 0 ? line.length : j;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\') {
          word += line[++j] ?? '';
        } else if (line[j] === '$' && line[j + 1] === '(') {
          const close = matchParen(line, j + 1);
          onSubstitution(line.slice(j + 2, close));
          word += line.slice(j, close + 1);
          j = close;
        } else word += line[j];
      }
      inWord = true;
      i = j;
    } else if (c === '$' && next === '(') {
      const close = matchParen(line, i + 1);
      if (line[i + 2] !== '(') onSubstitution(line.slice(i + 2, close)); // not $(( arithmetic ))
      word += line.slice(i, close + 1);
      inWord = true;
      i = close;
    } else if (c === '`' && dialect === 'block') {
      const j = line.indexOf('`', i + 1);
      onSubstitution(line.slice(i + 1, j < 0 ? line.length : j));
      word += '$(…)';
      inWord = true;
      i = j < 0 ? line.length : j;
    } else if (c === '<' && !inWord && /[A-Za-z]/.test(next ?? '') && line.indexOf('>', i) > 0 && !/[|;&]/.test(line.slice(i, line.indexOf('>', i)))) {
      // `<spiffe-id>`, `<admin token printed by tessera dev>`: a placeholder, as docs write them.
      const j = line.indexOf('>', i);
      word += line.slice(i, j + 1);
      inWord = true;
      i = j;
    } else if (c === '<' || c === '>' || (c === '&' && next === '>')) {
      const m = /^(?:&>>?|<<<|<<-?|<>|>>|>&\d|>\||[<>])(?:&\d)?/.exec(line.slice(i))!;
      const fd = inWord && /^\d+$/.test(word);
      if (!fd) end();
      else {
        word = '';
        inWord = false;
      }
      toks.push({ kind: 'redir', value: m[0] });
      i += m[0].length - 1;
    } else if (c === '|' && dialect === 'inline' && inWord && next !== undefined && next !== ' ' && next !== '|') {
      word += c; // `put|get|list`: a choice in a synopsis
    } else if (c === '|' || c === ';' || c === '&' || c === '(' || c === ')') {
      end();
      const two = line.slice(i, i + 2);
      const op = two === '||' || two === '&&' || two === ';;' ? two : c;
      toks.push({ kind: 'op', value: op });
      i += op.length - 1;
    } else {
      word += c;
      inWord = true;
    }
  }
  end();
  return toks;
}

/** Index of the `)` closing the `(` at `open`, honouring quotes and nesting (end of text if none). */
function matchParen(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === "'") {
      const j = s.indexOf("'", i + 1);
      if (j < 0) return s.length;
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      i = j;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return s.length;
}

/**
 * The invocations a synopsis stands for: `[x]` brackets dropped (the optional part is checked
 * as if given), and each `a|b` choice expanded (at most `limit` combinations).
 */
export function expandSynopsis(words: readonly string[], limit = 64): { words: string[]; synopsis: boolean }[] {
  let synopsis = false;
  const options = words.map((w) => {
    let v = w;
    if (/^\[|\]$/.test(v)) {
      synopsis = true;
      v = v.replace(/^\[+/, '').replace(/\]+$/, '');
    }
    return v.length > 1 && v.includes('|') && !v.startsWith('|') && !v.endsWith('|') && !/^['"{]/.test(v) ? v.split('|') : [v];
  });
  let combos: string[][] = [[]];
  for (const o of options) {
    combos = combos.flatMap((c) => o.map((x) => [...c, x])).slice(0, limit);
  }
  return combos.map((c) => ({ words: c.filter((x) => x !== ''), synopsis }));
}

/** A word that names something to fill in: `<spiffe-id>`, `TARGET`, `FILE`, `$(…)`. */
export function isPlaceholder(word: string): boolean {
  return /^<[^>]+>$/.test(word) || /^[A-Z][A-Z0-9_]*$/.test(word) || /^\$/.test(word);
}
