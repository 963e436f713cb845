import type { Registry } from 'prom-client';
import { sendJson, type HttpServer } from '../server/http.js';
import { createMetricsRoute, type MetricsRouteOptions } from './metrics-route.js';
import type { Readiness } from './registry.js';
import { agentStatus, type StatusSource } from './status.js';

/**
 * Adds the admin endpoints: `/livez` (200 while the process serves; no dependency checks),
 * `/readyz` (the pod-facing readiness: 200 while the agent can serve its local clients, whatever
 * its backends do), `/readyz/strict` (200 only while every backend is ready too), `/status` (the
 * agent's status document) and `/metrics` (Prometheus text, streamed: `/livez` never waits behind
 * it). The probes answer 503 with each component's state and reason when not ready.
 */
export function addAdminRoutes(server: HttpServer, source: StatusSource, metrics: Registry, scrapes: Omit<MetricsRouteOptions, 'registry'>): void {
  const probe = (readiness: () => Readiness) => (_req: unknown, res: Parameters<typeof sendJson>[0]) => {
    const { ready, reasons } = readiness();
    const components = source.registry.components().map(({ name, state, reason, gate, since }) => ({ name, state, reason, gate, since }));
    sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', reasons, components });
  };
  server.route('GET', '/livez', (_req, res) => sendJson(res, 200, { status: 'alive' }));
  server.route('GET', '/readyz', probe(() => source.registry.readiness()));
  server.route('GET', '/readyz/strict', probe(() => source.registry.strictReadiness()));
  server.route('GET', '/status', (_req, res) => sendJson(res, 200, agentStatus(source)), 'admin');
  server.route('GET', '/metrics', createMetricsRoute({ registry: metrics, ...scrapes }));
}
