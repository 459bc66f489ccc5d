import type { FastifyInstance } from 'fastify';
import type { MetricsRegistry } from '../shared/metrics.js';

export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<{ ok: boolean; detail?: unknown }>;
}

/**
 * `/healthz` (the process is alive), `/readyz` (every dependency is usable: store, policy set,
 * audit, signing keys — a failing check names itself) and `/metrics` (Prometheus text).
 */
export function registerSystemRoutes(app: FastifyInstance, deps: { metrics: MetricsRegistry; checks: readonly ReadinessCheck[]; version: string }): void {
  app.get('/healthz', async () => ({ status: 'ok', version: deps.version }));

  app.get('/readyz', async (_req, reply) => {
    const results: Record<string, { ok: boolean; detail?: unknown }> = {};
    let ready = true;
    for (const c of deps.checks) {
      try {
        results[c.name] = await c.check();
      } catch (e) {
        results[c.name] = { ok: false, detail: (e as Error).message };
      }
      if (!results[c.name]!.ok) ready = false;
    }
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: results });
  });

  app.get('/metrics', async (_req, reply) => {
    return reply.type('text/plain; version=0.0.4').send(await deps.metrics.render());
  });
}

/** Request counters and latency for every route, labelled by route pattern (never the raw URL). */
export function instrumentRequests(app: FastifyInstance, metrics: MetricsRegistry): void {
  const requests = metrics.counter('tessera_http_requests_total', 'HTTP requests by route, method and status');
  const latency = metrics.histogram('tessera_http_request_duration_seconds', 'HTTP request latency by route');
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions?.url ?? 'unmatched';
    requests.inc({ route, method: req.method, status: String(reply.statusCode) });
    latency.observe(reply.elapsedTime / 1000, { route });
  });
}
