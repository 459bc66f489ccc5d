/**
 * What the resources and prompts modules share: their dependencies, and one upstream listing
 * followed page by page (MCP "Pagination": `nextCursor` until absent), bounded.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { RequestAuthorizer } from '../pipeline/authorize.js';
import type { Logger } from '../shared/logger.js';
import type { AnswerKit } from './answer.js';
import type { Caller } from './core.js';
import type { ServerProbe } from './probe.js';
import type { SecretInput } from './scrub/index.js';
import type { Serve } from './served.js';
import type { Upstream, UpstreamRequestOptions } from './upstream.js';

/** Pages asked of one upstream per listing, and items kept per upstream. */
export const MAX_LIST_PAGES = 50;
export const MAX_LIST_ITEMS = 1000;

export interface ItemsDeps {
  readonly upstreams: readonly Upstream[];
  readonly authorizer: RequestAuthorizer;
  readonly kit: AnswerKit;
  readonly serve: Serve;
  readonly probe: ServerProbe;
  readonly logger: Logger;
}

/** One page: its items and the cursor of the next, or undefined when the upstream does not offer the capability. */
export type PageOf<T> = (client: Client, cursor: string | undefined, options: UpstreamRequestOptions) => Promise<{ items: readonly T[]; next?: string | undefined } | undefined>;

/**
 * Every page of one listing of `u` (at most MAX_LIST_PAGES pages and MAX_LIST_ITEMS items), and
 * the values injected into the connection (to scrub what is listed). Errors are thrown.
 */
export async function listAll<T>(u: Upstream, caller: Caller, signal: AbortSignal, what: string, page: PageOf<T>): Promise<{ items: T[]; secrets: readonly SecretInput[] }> {
  const items: T[] = [];
  let secrets: readonly SecretInput[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < MAX_LIST_PAGES && items.length < MAX_LIST_ITEMS; i++) {
    const r = await u.request(`${u.server} ${what}`, caller, signal, (client, o) => page(client, cursor, o));
    secrets = r.secrets;
    if (!r.value) break;
    items.push(...r.value.items.slice(0, MAX_LIST_ITEMS - items.length));
    cursor = r.value.next;
    if (!cursor) break;
  }
  return { items, secrets };
}
