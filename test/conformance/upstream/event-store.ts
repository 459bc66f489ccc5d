/**
 * An in-memory SSE event store (the SDK's `EventStore` port) so the fixture's streams are
 * resumable (MCP Streamable HTTP "Resumability and Redelivery", SEP-1699). Event ids are a
 * counter, so replay order is the order events were stored. Test fixture only: unbounded.
 */
import type { EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

export function memoryEventStore(): EventStore {
  const events: { id: number; streamId: string; message: JSONRPCMessage }[] = [];
  const streamOf = (eventId: string): string | undefined => events.find((e) => String(e.id) === eventId)?.streamId;
  return {
    async storeEvent(streamId, message) {
      const id = events.length + 1;
      events.push({ id, streamId, message });
      return String(id);
    },
    async getStreamIdForEventId(eventId) {
      return streamOf(eventId);
    },
    async replayEventsAfter(lastEventId, { send }) {
      const streamId = streamOf(lastEventId);
      if (streamId === undefined) return '';
      for (const e of events) if (e.streamId === streamId && e.id > Number(lastEventId)) await send(String(e.id), e.message);
      return streamId;
    },
  };
}
