/**
 * A real Server-Sent Events reader for tests (WHATWG HTML §9.2.6 parsing, the parts Tessera
 * uses): fetch + the body stream, blocks split on a blank line, `event`, `id`, `data` fields and
 * comments. `waitFor` polls what arrived (bounded), never sleeps on a guess.
 */
import assert from 'node:assert/strict';

export interface SseMessage {
  readonly event: string;
  readonly id?: string;
  readonly data: string;
}

export interface SseStream {
  readonly status: number;
  readonly headers: Headers;
  /** The error body when the server refused the stream. */
  readonly body?: any;
  readonly messages: SseMessage[];
  readonly comments: string[];
  /** Everything received, as text (leak checks). */
  text(): string;
  /** Resolves when the server ended the stream. */
  readonly ended: Promise<void>;
  waitFor(what: string, pred: () => boolean, tries?: number): Promise<void>;
  close(): void;
}

export async function openSse(url: string, token: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  let all = '';
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) {
    const body = await res.json().catch(() => undefined);
    return { status: res.status, headers: res.headers, body, messages, comments, text: () => '', ended: Promise.resolve(), waitFor: async () => assert.fail('no stream'), close: () => ac.abort() };
  }
  let buf = '';
  const decoder = new TextDecoder();
  const ended = (async () => {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true });
        all += text;
        buf += text;
        let i: number;
        while ((i = buf.indexOf('\n\n')) !== -1) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          let id: string | undefined;
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length) messages.push({ event, ...(id !== undefined ? { id } : {}), data: data.join('\n') });
        }
      }
    } catch {
      // aborted by close(), or the server dropped the connection
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    messages,
    comments,
    text: () => all,
    ended,
    async waitFor(what, pred, tries = 400) {
      for (let i = 0; i < tries && !pred(); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(pred(), `timed out waiting for ${what}; received: ${all.slice(-2000)}`);
    },
    close: () => ac.abort(),
  };
}

/** The `event: audit` messages as parsed audit entries. */
export const auditEntries = (s: SseStream): any[] => s.messages.filter((m) => m.event === 'audit').map((m) => JSON.parse(m.data));
