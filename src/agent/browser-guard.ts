/**
 * The sidecar's local endpoints against web pages (docs/k8s-agent.md "Web pages in the pod"):
 * the sidecar adds the pod's identity to whatever reaches 127.0.0.1, which makes that identity
 * an ambient credential for every process in the pod — including a browser the agent drives.
 * A page can send a "simple" cross-origin request there (no CORS preflight: the side effect
 * happens even though the page cannot read the answer), or, by DNS rebinding (its own name
 * resolving to 127.0.0.1), a same-origin one. MCP transports 2025-11-25 "Security Warning":
 * servers MUST validate `Origin`; Tessera's API does (src/server/origin.ts). Refused here:
 *
 *  - `Host` that is not a loopback name (127.0.0.0/8, `localhost`, `[::1]`), with a port other
 *    than the listener's when it names one → TESSERA_AGENT_HOST_NOT_ALLOWED (DNS rebinding);
 *  - `Origin` other than `http://<loopback name>:<listener port>` (a page of another origin,
 *    `null` from sandboxed frames and file: pages) → TESSERA_AGENT_ORIGIN_NOT_ALLOWED;
 *  - `Sec-Fetch-Site` (W3C Fetch Metadata) other than `same-origin` or `none` — sent by browsers
 *    even where they send no `Origin` (`<img>`, no-cors GET) → TESSERA_AGENT_ORIGIN_NOT_ALLOWED.
 *
 * Programs (curl, SDKs, MCP clients) send none of these, or loopback values, and pass. Pure.
 */
import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { ErrorCode } from '../shared/errors.js';

const HOST = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?$/;
const ORIGIN = /^http:\/\/(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?$/;

function loopbackName(name: string): boolean {
  const n = name.toLowerCase().replace(/^\[|\]$/g, '');
  if (n === 'localhost' || n === 'localhost.') return true;
  if (isIP(n) === 4) return n.startsWith('127.');
  if (isIP(n) === 6) return n === '::1' || n === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * `host[:port]` (or a serialized origin's authority) names this loopback listener: a loopback
 * name, and the listener's port — or no port, which for a Host is safe (a rebinding page sends
 * its own name) and for an Origin means 80.
 */
function isSelf(m: RegExpExecArray | null, port: number, noPortMeans: number | 'any'): boolean {
  if (!m || !loopbackName(m[1]!)) return false;
  if (m[2] === undefined) return noPortMeans === 'any' || noPortMeans === port;
  return Number(m[2]) === port;
}

/**
 * Why a request to the loopback listener on `port` is refused, or undefined when it may pass.
 * Not for absolute-form requests through the forward proxy: there `Host` is the target, and a
 * browser configured with the proxy is the app's own choice (Tessera's proxy decides).
 */
export function browserRefusal(headers: IncomingHttpHeaders, port: number): { code: ErrorCode; message: string } | undefined {
  const host = headers.host;
  if (typeof host !== 'string' || !isSelf(HOST.exec(host), port, 'any')) {
    return { code: 'TESSERA_AGENT_HOST_NOT_ALLOWED', message: `the Host header must name this loopback listener (127.0.0.1:${port}, localhost:${port}, [::1]:${port}); another name is what a DNS-rebinding web page sends` };
  }
  const origin = headers.origin;
  if (origin !== undefined && !isSelf(ORIGIN.exec(String(origin)), port, 80)) {
    return { code: 'TESSERA_AGENT_ORIGIN_NOT_ALLOWED', message: `requests from a web page (Origin ${JSON.stringify(String(origin).slice(0, 100))}) are not relayed: the sidecar would lend it the pod's identity` };
  }
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return { code: 'TESSERA_AGENT_ORIGIN_NOT_ALLOWED', message: `requests from a web page (Sec-Fetch-Site: ${JSON.stringify(String(site).slice(0, 32))}) are not relayed: the sidecar would lend it the pod's identity` };
  }
  return undefined;
}
