import { when } from '../format.js';

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

/** Audit events as a table: time, kind, action, resource, result (with the refusal code). */
export function EventsTable({ events, testid, label }: { events: EventRow[]; testid: string; label: string }) {
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
            <td class={e.result === 'deny' || e.result === 'failure' || e.result === 'error' ? 'deny' : e.result === 'allow' || e.result === 'success' ? 'allow' : undefined}>
              {e.result ?? ''}
              {e.reason?.code && (
                <>
                  {' '}
                  <code>{e.reason.code}</code>
                </>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
