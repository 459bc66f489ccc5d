import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';

export interface Paged<T> {
  items: T[];
  error: ApiError | undefined;
  loading: boolean;
  /** True when the server said more exist (`next_cursor` / `next`). */
  hasMore: boolean;
  /** Loads the next page and appends it. */
  more: () => void;
  /** Loads the first page again (after a change, or on a live event). */
  reload: () => void;
}

/**
 * A list API paged by an opaque cursor: `path` without the cursor, `key` the array field of the
 * answer, `cursorParam` the query parameter the cursor goes back in (`cursor` for the console
 * read API, `before` for `GET /v1/admin/tasks`, whose answer calls it `next`).
 */
export function usePaged<T>(path: string, key: string, cursorParam = 'cursor'): Paged<T> {
  const [items, setItems] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const fetchPage = useCallback(
    (after: string | undefined) => {
      const mine = ++seq.current;
      setLoading(true);
      const sep = path.includes('?') ? '&' : '?';
      const url = after ? `${path}${sep}${cursorParam}=${encodeURIComponent(after)}` : path;
      api.get<Record<string, unknown>>(url).then(
        (body) => {
          if (mine !== seq.current) return;
          const page = (Array.isArray(body[key]) ? body[key] : []) as T[];
          setItems((prev) => (after ? [...prev, ...page] : page));
          const next = body.next_cursor ?? body.next;
          setCursor(typeof next === 'string' && next ? next : undefined);
          setError(undefined);
          setLoading(false);
        },
        (e: unknown) => {
          if (mine !== seq.current) return;
          setError(e instanceof ApiError ? e : new ApiError('CONSOLE_ERROR', String(e), 0));
          setLoading(false);
        },
      );
    },
    [path, key, cursorParam],
  );
  useEffect(() => fetchPage(undefined), [fetchPage]);
  return {
    items,
    error,
    loading,
    hasMore: cursor !== undefined,
    more: () => cursor && fetchPage(cursor),
    reload: () => fetchPage(undefined),
  };
}
