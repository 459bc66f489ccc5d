import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from './api.js';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  /** Fetches again (keeps showing the previous data meanwhile). */
  reload: () => void;
}

/** GETs `path` (again whenever it changes); `undefined` path = nothing to load yet. */
export function useApi<T>(path: string | undefined): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [loading, setLoading] = useState(path !== undefined);
  const seq = useRef(0);
  const load = useCallback(() => {
    if (path === undefined) return;
    const mine = ++seq.current;
    setLoading(true);
    api.get<T>(path).then(
      (d) => {
        if (mine !== seq.current) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (mine !== seq.current) return;
        setError(e instanceof ApiError ? e : new ApiError('CONSOLE_ERROR', String(e), 0));
        setLoading(false);
      },
    );
  }, [path]);
  useEffect(load, [load]);
  return { data, error, loading, reload: load };
}

/** One shared 1 s tick for every countdown on the page. */
const tickers = new Set<(now: number) => void>();
let interval: ReturnType<typeof setInterval> | undefined;
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    tickers.add(setNow);
    interval ??= setInterval(() => {
      const t = Date.now();
      tickers.forEach((f) => f(t));
    }, 1000);
    return () => {
      tickers.delete(setNow);
      if (tickers.size === 0 && interval) {
        clearInterval(interval);
        interval = undefined;
      }
    };
  }, []);
  return now;
}
