import { useNow } from '../hooks.js';
import { duration, secondsUntil } from '../format.js';

/** Time left until `until` (RFC 3339), ticking every second; `expired` once past. */
export function Countdown({ until }: { until: string | null | undefined }) {
  const now = useNow();
  const left = secondsUntil(until, now);
  if (!until) return <span class="muted">no expiry</span>;
  return (
    <time dateTime={until} class={left <= 0 ? 'expired' : left < 60 ? 'soon' : undefined} title={new Date(until).toLocaleString()} data-testid="countdown">
      {duration(left)}
    </time>
  );
}
