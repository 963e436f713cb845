import type { Registry } from 'prom-client';
import { sendJson, type HttpServer } from '../server/http.js';
import { createMetricsRoute, type MetricsRouteOptions } from './metrics-route.js';
import { agentStatus, type StatusSource } from './status.js';

/**
 * Adds the admin endpoints: `/livez` (200 while the process serves; no dependency checks),
 * `/readyz` (200 only when every critical component is ready, else 503 with each component's
 * state and reason), `/status` (the agent's status document) and `/metrics` (Prometheus text,
 * streamed: `/livez` never waits behind it).
 */
export function addAdminRoutes(server: HttpServer, source: StatusSource, metrics: Registry, scrapes: Omit<MetricsRouteOptions, 'registry'>): void {
  server.route('GET', '/livez', (_req, res) => sendJson(res, 200, { status: 'alive' }));
  server.route('GET', '/readyz', (_req, res) => {
    const { ready, reasons } = source.registry.readiness();
    const components = source.registry.components().map(({ name, state, reason, critical, since }) => ({ name, state, reason, critical, since }));
    sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', reasons, components });
  });
  server.route('GET', '/status', (_req, res) => sendJson(res, 200, agentStatus(source)), 'admin');
  server.route('GET', '/metrics', createMetricsRoute({ registry: metrics, ...scrapes }));
}
