import type { Conversion } from '../otlp/result.js';

/** Resource attributes set from Kubernetes downward-API variables, by default. */
export const DEFAULT_ENRICHMENT_ENV: Readonly<Record<string, string>> = {
  K8S_POD_NAME: 'k8s.pod.name',
  K8S_POD_UID: 'k8s.pod.uid',
  K8S_NAMESPACE_NAME: 'k8s.namespace.name',
  K8S_NODE_NAME: 'k8s.node.name',
  K8S_CLUSTER_NAME: 'k8s.cluster.name',
};

/** Adds resource attributes taken from the environment when the data does not carry them. */
export interface Enrichment {
  process(c: Conversion): void;
  /** The attributes added (empty when none of the variables is set). */
  readonly attributes: Readonly<Record<string, string>>;
}

/** Creates the enrichment processor from `env` and a map of variable name to attribute key. */
export function createEnrichment(fromEnv: Readonly<Record<string, string>>, env: NodeJS.ProcessEnv = process.env): Enrichment {
  const attributes: Record<string, string> = {};
  for (const [variable, key] of Object.entries(fromEnv)) {
    const value = env[variable];
    if (value) attributes[key] = value;
  }
  const keys = Object.keys(attributes);
  return {
    attributes,
    process(c) {
      if (keys.length > 0) mergeResourceAttributes(c, attributes, 'default');
    },
  };
}

/** The resource attribute that carries the tenant of data written with a tenant-bound token. */
export const TENANT_ATTRIBUTE = 'tenant.id';

/**
 * Merges `attributes` into every row's ResourceAttributes, keeping keys sorted: as defaults (the
 * data's own values win) or as overrides (they replace the data's, as a token's tenant does).
 */
export function mergeResourceAttributes(c: Conversion, attributes: Readonly<Record<string, string>>, mode: 'default' | 'override'): void {
  const keys = Object.keys(attributes);
  // Rows of one resource share one map object: merge into each map once.
  const done = new Set<object>();
  for (const rows of c.tables.values()) {
    for (const row of rows) {
      const map = row.ResourceAttributes as Record<string, string> | undefined;
      if (!map || done.has(map)) continue;
      done.add(map);
      if (mode === 'default' ? keys.every((k) => k in map) : keys.every((k) => map[k] === attributes[k])) continue;
      const merged = Object.assign(Object.create(null) as Record<string, string>, ...(mode === 'default' ? [attributes, map] : [map, attributes])) as Record<string, string>;
      for (const k of Object.keys(map)) delete map[k];
      for (const k of Object.keys(merged).sort()) map[k] = merged[k] ?? '';
    }
  }
}
