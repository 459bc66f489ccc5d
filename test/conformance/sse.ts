/**
 * Rewrites the JSON-RPC messages of a `text/event-stream` body as it streams (WHATWG HTML
 * "Server-sent events" §9.2.6 framing: events end at a blank line; `data:` lines carry the
 * message). Everything else of an event (`id`, `retry`, `event`, comments) passes unchanged, so
 * resumability (Last-Event-ID) keeps working through the front.
 */
export type MessageRewrite = (message: unknown) => unknown;

function rewriteEvent(event: string, rewrite: MessageRewrite): string {
  const lines = event.split(/\r\n|\r|\n/);
  const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(l.startsWith('data: ') ? 6 : 5));
  if (data.length === 0 || data.join('').trim() === '') return event;
  let message: unknown;
  try {
    message = JSON.parse(data.join('\n'));
  } catch {
    return event;
  }
  const others = lines.filter((l) => !l.startsWith('data:'));
  return [...others, `data: ${JSON.stringify(rewrite(message))}`].join('\n');
}

/** A stateful rewriter: feed chunks, get back the complete events so far (rewritten). */
export function sseRewriter(rewrite: MessageRewrite): { push(chunk: string): string; end(): string } {
  let buffer = '';
  return {
    push(chunk) {
      buffer += chunk;
      const parts = buffer.split(/(\r\n\r\n|\n\n|\r\r)/);
      buffer = parts.pop() ?? '';
      let out = '';
      for (let i = 0; i + 1 < parts.length; i += 2) out += rewriteEvent(parts[i]!, rewrite) + parts[i + 1]!;
      return out;
    },
    end() {
      const rest = buffer;
      buffer = '';
      return rest;
    },
  };
}
