/**
 * Resource subscriptions made through the gateway (MCP 2025-11-25 "Resources" §Subscriptions):
 * which sessions subscribed which upstream URI on which upstream connection. An update an
 * upstream announces goes only to the sessions that subscribed that URI on that connection — a
 * resource subscribed by one agent is never announced to another (whose connection differs), nor
 * to a session of the same agent that did not subscribe it.
 *
 * The upstream's `resources/subscribe` for a URI is made once per connection, by the first
 * session; while it is in flight, later sessions wait for that same promise (`settled`), and
 * when it fails every waiter fails and the URI is forgotten on the connection (no session
 * believes it is subscribed to what the upstream refused).
 */
const MAX_PER_SESSION = 256;

export interface Subscriptions {
  /** Records the subscription; `first` when no other session had it on this connection; false `ok` past the bound. */
  add(connection: object, sessionId: string, uri: string): { ok: boolean; first: boolean };
  /** Removes it; `last` when no session has it on this connection any more. */
  remove(connection: object, sessionId: string, uri: string): { last: boolean };
  /** The sessions that subscribed `uri` on this connection. */
  sessionsFor(connection: object, uri: string): readonly string[];
  /**
   * Records the upstream subscribe in flight for `uri` on this connection (the first session's).
   * When it rejects, every session of that URI on the connection is forgotten.
   */
  track(connection: object, uri: string, subscribing: Promise<unknown>): void;
  /** Resolves when the upstream subscribe of `uri` on this connection succeeded; rejects with its error. */
  settled(connection: object, uri: string): Promise<void>;
  /** Whether the connection has subscriptions (an idle connection with some is kept). */
  has(connection: object): boolean;
  /** Forgets every subscription on the connection (it stopped); what was forgotten. */
  dropConnection(connection: object): readonly { sessionId: string; uri: string }[];
  /**
   * Forgets a closed session's subscriptions; returns those it was the last subscriber of on
   * their connection (the upstream is to be unsubscribed).
   */
  closeSession(sessionId: string): readonly { connection: object; uri: string }[];
  readonly maxPerSession: number;
}

export function createSubscriptions(maxPerSession = MAX_PER_SESSION): Subscriptions {
  const byConnection = new WeakMap<object, Map<string, Set<string>>>();
  /** Upstream subscribes, per connection and URI (in flight or done). */
  const subscribing = new WeakMap<object, Map<string, Promise<void>>>();
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
    subscribing.get(connection)?.delete(uri);
    return { last: true };
  }

  /** Forgets `uri` on the connection for every session. */
  function forget(connection: object, uri: string): { sessionId: string; uri: string }[] {
    const set = byConnection.get(connection)?.get(uri);
    const out = [...(set ?? [])].map((sessionId) => ({ sessionId, uri }));
    for (const e of out) remove(connection, e.sessionId, uri);
    return out;
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
    track(connection, uri, pending) {
      let m = subscribing.get(connection);
      if (!m) subscribing.set(connection, (m = new Map()));
      const p = pending.then(() => undefined);
      m.set(uri, p);
      p.catch(() => {
        if (subscribing.get(connection)?.get(uri) === p) forget(connection, uri);
      });
    },
    settled(connection, uri) {
      return subscribing.get(connection)?.get(uri) ?? Promise.resolve();
    },
    has(connection) {
      return (byConnection.get(connection)?.size ?? 0) > 0;
    },
    dropConnection(connection) {
      const out: { sessionId: string; uri: string }[] = [];
      for (const uri of [...(byConnection.get(connection)?.keys() ?? [])]) out.push(...forget(connection, uri));
      subscribing.delete(connection);
      return out;
    },
    closeSession(sessionId) {
      const mine = bySession.get(sessionId);
      bySession.delete(sessionId);
      const emptied: { connection: object; uri: string }[] = [];
      for (const { connection, uri } of mine?.values() ?? []) if (remove(connection, sessionId, uri).last) emptied.push({ connection, uri });
      return emptied;
    },
  };
}
