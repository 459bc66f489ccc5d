/**
 * Listening and draining for the sidecar's two local servers (./forward-proxy.ts,
 * ./mcp-endpoint.ts): on SIGTERM a server stops accepting, lets the requests in flight finish for
 * up to `--drain`, then cuts every connection that is left.
 */
import type { Server } from 'node:http';

/** One of the sidecar's local listeners. */
export interface LocalServer {
  readonly server: Server;
  /** Closes the listener; waits for requests and tunnels in flight up to `drainMs`, then cuts them. */
  close(drainMs: number): Promise<void>;
}

/** Counts the requests in flight so a close can wait for them, within a bound. */
export class InFlight {
  private count = 0;
  private idle: (() => void) | undefined;

  enter(): void {
    this.count++;
  }

  leave(): void {
    if (--this.count === 0) this.idle?.();
  }

  /** Resolves once nothing is in flight, or after `ms` milliseconds, whichever comes first. */
  settled(ms: number): Promise<void> {
    if (this.count <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.idle = resolve;
      setTimeout(resolve, ms).unref();
    });
  }
}

/**
 * Listens on `listen.host:listen.port`. Rejects with the listen error (EADDRINUSE, EACCES, …).
 * The returned `close(drainMs)` stops accepting, closes idle keep-alive connections, waits for
 * `inflight` up to `drainMs`, then closes every connection and runs `release` (agents, tunnels).
 */
export function listenDraining(server: Server, listen: { host: string; port: number }, inflight: InFlight, release: () => void): Promise<LocalServer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve({
        server,
        async close(drainMs) {
          server.close();
          server.closeIdleConnections();
          await inflight.settled(drainMs);
          server.closeAllConnections();
          release();
        },
      });
    });
  });
}
