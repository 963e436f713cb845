import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

const shared = new WeakMap<Registry, Map<string, unknown>>();

/**
 * The metrics `create` makes, made once per registry and key: every listener registered in one
 * registry shares them (registering a metric name twice in a registry throws).
 */
export function perRegistry<T>(registry: Registry, key: string, create: () => T): T {
  let byKey = shared.get(registry);
  if (!byKey) shared.set(registry, (byKey = new Map<string, unknown>()));
  if (!byKey.has(key)) byKey.set(key, create());
  return byKey.get(key) as T;
}

/** Options for createMetrics. */
export interface MetricsOptions {
  version: string;
  build: string;
}

/**
 * Creates the one metrics registry every component registers into and /metrics reads:
 * process and Node.js runtime metrics and `heimdall_build_info`, all with the `heimdall_` prefix.
 */
export function createMetrics(options: MetricsOptions): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'heimdall_' });
  // prom-client names three gauges `*_total`, which Prometheus reserves for counters (promtool
  // refuses them); heimdall_nodejs_active_resources{type} carries the same information.
  for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) registry.removeSingleMetric(`heimdall_nodejs_${name}`);
  const info = new Gauge({
    name: 'heimdall_build_info',
    help: 'Build information of the running agent; the value is always 1.',
    labelNames: ['version', 'build', 'node_version'] as const,
    registers: [registry],
  });
  info.set({ version: options.version, build: options.build, node_version: process.version }, 1);
  return registry;
}
