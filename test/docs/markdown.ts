/**
 * A small Markdown reader for the docs tests: which files are documentation, and in each the
 * fenced code blocks, inline code spans, links, headings and table rows, with line numbers so
 * a failure names `file:line`. CommonMark-ish, enough for this repository's docs.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface CodeBlock {
  readonly file: string;
  /** Line of the first content line (1-based). */
  readonly line: number;
  /** The info string's first word, lower-case ('' when none). */
  readonly lang: string;
  readonly text: string;
}

export interface Span {
  readonly file: string;
  readonly line: number;
  readonly text: string;
}

export interface Link extends Span {
  readonly target: string;
}

export interface MarkdownDoc {
  readonly file: string;
  readonly source: string;
  readonly blocks: readonly CodeBlock[];
  /** Inline code spans outside fenced blocks (a span may cover a line break inside a paragraph). */
  readonly inline: readonly Span[];
  readonly links: readonly Link[];
  readonly headings: readonly Span[];
  /** Table rows outside code blocks, split into cells (code spans may contain `|`). */
  readonly rows: readonly (Span & { readonly cells: readonly string[] })[];
  /** The text outside fenced blocks, same length and line breaks as `source` (blocks blanked). */
  readonly prose: string;
}

/** README.md and the other top-level *.md files, and every *.md under docs/. */
export function docFiles(root = '.'): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(root, dir)).flatMap((n) => {
      const p = dir ? `${dir}/${n}` : n;
      return statSync(join(root, p)).isDirectory() ? walk(p) : n.endsWith('.md') ? [p] : [];
    });
  const top = readdirSync(root).filter((n) => n.endsWith('.md') && statSync(join(root, n)).isFile());
  return [...top, ...walk('docs')].sort();
}

export function readDoc(file: string, root = '.'): MarkdownDoc {
  return parseMarkdown(file, readFileSync(join(root, file), 'utf8'));
}

export function lineAt(text: string, offset: number): number {
  let n = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

export function parseMarkdown(file: string, source: string): MarkdownDoc {
  const lines = source.split('\n');
  const blocks: CodeBlock[] = [];
  const proseLines: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)/.exec(lines[i]!);
    if (!open) {
      proseLines.push(lines[i]!);
      continue;
    }
    const indent = open[1]!.length;
    const fence = open[2]!;
    const content: string[] = [];
    proseLines.push('');
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`).exec(lines[j]!);
      if (close) break;
      const l = lines[j]!;
      content.push(l.slice(Math.min(indent, l.length - l.trimStart().length)));
      proseLines.push('');
    }
    if (j < lines.length) proseLines.push('');
    blocks.push({ file, line: i + 2, lang: open[3]!.toLowerCase(), text: content.join('\n') });
    i = j;
  }
  const prose = proseLines.join('\n');

  // Inline code: a backtick run, then the shortest text up to an equal run, not across a blank line.
  const inline: Span[] = [];
  let blanked = prose;
  for (const m of prose.matchAll(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g)) {
    if (/\n\s*\n/.test(m[2]!)) continue;
    inline.push({ file, line: lineAt(prose, m.index), text: m[2]!.replace(/\s*\n\s*/g, ' ').trim() });
    blanked = blanked.slice(0, m.index) + m[0].replace(/[^\n]/g, ' ') + blanked.slice(m.index + m[0].length);
  }

  const links: Link[] = [];
  for (const m of blanked.matchAll(/!?\[((?:[^\]\\]|\\.)*)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    // The text as written (code spans were blanked only to keep them from matching).
    links.push({ file, line: lineAt(blanked, m.index), text: prose.slice(m.index + (m[0].startsWith('!') ? 2 : 1), m.index + m[0].indexOf('](')), target: m[2]! });
  }
  for (const m of blanked.matchAll(/^ {0,3}\[([^\]]+)\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm)) {
    links.push({ file, line: lineAt(blanked, m.index), text: m[1]!, target: m[2]! });
  }
  for (const m of blanked.matchAll(/<(?:a|img)\s[^>]*?(?:href|src)="([^"]+)"/g)) {
    links.push({ file, line: lineAt(blanked, m.index), text: '', target: m[1]! });
  }

  const headings: Span[] = [];
  const rows: (Span & { cells: string[] })[] = [];
  proseLines.forEach((l, i) => {
    const h = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(l);
    if (h) headings.push({ file, line: i + 1, text: h[1]! });
    if (/^\s*\|/.test(l)) rows.push({ file, line: i + 1, text: l, cells: splitRow(l) });
  });
  return { file, source, blocks, inline, links, headings, rows, prose };
}

/** Cells of a table row; `|` inside a code span or escaped as `\|` does not split. */
export function splitRow(row: string): string[] {
  const cells: string[] = [];
  let cur = '';
  let tick = 0;
  const s = row.trim().replace(/^\|/, '').replace(/\|$/, '');
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && s[i + 1] === '|') {
      cur += '|';
      i++;
    } else if (c === '`') {
      let n = 1;
      while (s[i + n] === '`') n++;
      tick = tick === 0 ? n : tick === n ? 0 : tick;
      cur += '`'.repeat(n);
      i += n - 1;
    } else if (c === '|' && tick === 0) {
      cells.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  cells.push(cur.trim());
  return cells;
}

/** GitHub's heading anchor: lower-case, punctuation dropped, spaces to `-`; repeats get `-1`, `-2`… */
export function anchorsOf(doc: MarkdownDoc): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const h of doc.headings) {
    const text = h.text
      .replace(/`([^`]*)`/g, '$1')
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]+>/g, '');
    const base = text
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of doc.source.matchAll(/<a\s[^>]*(?:name|id)="([^"]+)"/g)) out.add(m[1]!);
  return out;
}
