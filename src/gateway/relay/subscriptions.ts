/**
 * Resource subscriptions made through the gateway (MCP 2025-11-25 "Resources" §Subscriptions):
 * which sessions subscribed which upstream URI on which upstream connection. An update an
 * upstream announces goes only to the sessions that subscribed that URI on that connection — a
 * resource subscribed by one agent is never announced to another (whose connection differs), nor
 * to a session of the same agent that did not subscribe it.
 */
const MAX_PER_SESSION = 256;

export interface Subscriptions {
  /** Records the subscription; `first` when no other session had it on this connection; false `ok` past the bound. */
  add(connection: object, sessionId: string, uri: string): { ok: boolean; first: boolean };
  /** Removes it; `last` when no session has it on this connection any more. */
  remove(connection: object, sessionId: string, uri: string): { last: boolean };
  /** The sessions that subscribed `uri` on this connection. */
  sessionsFor(connection: object, uri: string): readonly string[];
  /** Forgets a closed session's subscriptions. */
  closeSession(sessionId: string): void;
  readonly maxPerSession: number;
}

export function createSubscriptions(maxPerSession = MAX_PER_SESSION): Subscriptions {
  const byConnection = new WeakMap<object, Map<string, Set<string>>>();
  const bySession = new Map<string, Map<string, { connection: object; uri: string }>>();
  const ids = new WeakMap<object, number>();
  let next = 0;
  const idOf = (c: object): number => {
    let n = ids.get(c);
    if (n === undefined) ids.set(c, (n = next++));
    return n;
  };
  const keyOf = (c: object, uri: string): string => `${idOf(c)}\n${uri}`;

  function remove(connection: object, sessionId: string, uri: string): { last: boolean } {
    bySession.get(sessionId)?.delete(keyOf(connection, uri));
    const uris = byConnection.get(connection);
    const set = uris?.get(uri);
    if (!set) return { last: false };
    set.delete(sessionId);
    if (set.size > 0) return { last: false };
    uris!.delete(uri);
    return { last: true };
  }

  return {
    maxPerSession,
    add(connection, sessionId, uri) {
      let mine = bySession.get(sessionId);
      if (!mine) bySession.set(sessionId, (mine = new Map()));
      const key = keyOf(connection, uri);
      if (!mine.has(key) && mine.size >= maxPerSession) return { ok: false, first: false };
      mine.set(key, { connection, uri });
      let uris = byConnection.get(connection);
      if (!uris) byConnection.set(connection, (uris = new Map()));
      let set = uris.get(uri);
      const first = !set || set.size === 0;
      if (!set) uris.set(uri, (set = new Set()));
      set.add(sessionId);
      return { ok: true, first };
    },
    remove,
    sessionsFor(connection, uri) {
      return [...(byConnection.get(connection)?.get(uri) ?? [])];
    },
    closeSession(sessionId) {
      const mine = bySession.get(sessionId);
      bySession.delete(sessionId);
      for (const { connection, uri } of mine?.values() ?? []) remove(connection, sessionId, uri);
    },
  };
}
