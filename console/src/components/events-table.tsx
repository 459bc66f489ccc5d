import { when } from '../format.js';
import { flatEvent } from '../lib/events.js';

/** An audit event as the tree, the agent detail and `GET /v1/admin/audit` give it (metadata only). */
export interface EventRow {
  seq: number;
  ts?: string;
  kind: string;
  action?: string;
  resource?: string;
  result?: string;
  reason?: { code?: string; message?: string; policies?: string[] };
  [k: string]: unknown;
}

function resultClass(r: string | undefined): string | undefined {
  if (r === 'deny' || r === 'failure' || r === 'error') return 'deny';
  if (r === 'allow' || r === 'success') return 'allow';
  return undefined;
}

function Result({ e }: { e: EventRow }) {
  return (
    <td class={resultClass(e.result)}>
      {e.result ?? ''}
      {e.reason?.code && (
        <>
          {' '}
          <code>{e.reason.code}</code>
        </>
      )}
    </td>
  );
}

/**
 * Audit events as a table: time, kind, action, resource, result (with the refusal code);
 * `compact` (narrow side panels) puts the time under the kind and leaves out the action.
 */
export function EventsTable({ events: raw, testid, label, compact }: { events: unknown[]; testid: string; label: string; compact?: boolean }) {
  const events: EventRow[] = raw.map(flatEvent);
  if (compact) {
    return (
      <table data-testid={testid} aria-label={label}>
        <thead>
          <tr>
            <th scope="col">Event</th>
            <th scope="col">Resource</th>
            <th scope="col">Result</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.seq} data-testid="event-row" data-kind={e.kind} data-result={e.result ?? ''}>
              <td>
                <code>{e.kind}</code>
                <br />
                <span class="muted">{when(e.ts)}</span>
              </td>
              <td class="wrap">{e.resource ?? e.action ?? ''}</td>
              <Result e={e} />
            </tr>
          ))}
        </tbody>
      </table>
    );
  }
  return (
    <table data-testid={testid} aria-label={label}>
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Event</th>
          <th scope="col">Action</th>
          <th scope="col">Resource</th>
          <th scope="col">Result</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr key={e.seq} data-testid="event-row" data-kind={e.kind} data-result={e.result ?? ''}>
            <td>{when(e.ts)}</td>
            <td>
              <code>{e.kind}</code>
            </td>
            <td>{e.action ?? ''}</td>
            <td class="wrap">{e.resource ?? ''}</td>
            <Result e={e} />
          </tr>
        ))}
      </tbody>
    </table>
  );
}
