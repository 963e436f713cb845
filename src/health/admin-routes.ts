import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { HttpServer } from '../server/http.js';
import { sendJson } from '../server/http-router.js';
import { createMetricsRoute, type ExtraFamily } from './metrics-route.js';
import type { Readiness } from './registry.js';
import { agentStatus, type StatusSource } from './status.js';

/**
 * Adds the admin endpoints: `/livez` (200 while the process serves; no dependency checks),
 * `/readyz` (the pod-facing readiness: 200 while the agent can serve its local clients, whatever
 * its backends do), `/readyz/strict` (200 only while every backend is ready too), `/status` (the
 * agent's status document, scope admin) and `/metrics` (Prometheus text, streamed: `/livez` never
 * waits behind it; open unless a scope is given). The probes are open, so they name each component
 * and its state only: reasons can quote backend errors (and the rows they refused), and stay in
 * `/status`. `config` (telemetry.metrics) gives the scrape bounds and the scope /metrics needs;
 * `extra` the families of other isolates' registries (the rate-limit worker's) /metrics merges in.
 */
export function addAdminRoutes(server: HttpServer, source: StatusSource, metrics: Registry, config: Config['telemetry']['metrics'], extra?: () => Promise<ExtraFamily[]>): void {
  const probe = (readiness: () => Readiness) => (_req: unknown, res: Parameters<typeof sendJson>[0]) => {
    const { ready, blocking } = readiness();
    const components = source.registry.components().map(({ name, state, gate, since }) => ({ name, state, gate, since }));
    sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', reasons: blocking, components, details: 'GET /status (scope admin) says why' });
  };
  server.route('GET', '/livez', (_req, res) => sendJson(res, 200, { status: 'alive' }));
  server.route('GET', '/readyz', probe(() => source.registry.readiness()));
  server.route('GET', '/readyz/strict', probe(() => source.registry.strictReadiness()));
  server.route('GET', '/status', (_req, res) => sendJson(res, 200, agentStatus(source)), { scope: 'admin' });
  server.route('GET', '/metrics', createMetricsRoute({ registry: metrics, config, extra }), { scope: config.scope === 'none' ? undefined : config.scope });
}
