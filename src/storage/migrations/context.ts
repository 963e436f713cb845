/** What a migration needs to render its DDL for this deployment. */
export interface SchemaContext {
  /** ` ON CLUSTER "name"` or empty. */
  onCluster: string;
  /** Engine clause body for MergeTree tables, e.g. `MergeTree()` or `ReplicatedMergeTree('...')`. */
  engine: string;
  /** The aggregating variant of that engine (for tables of SimpleAggregateFunction columns). */
  aggregatingEngine: string;
  /** The replacing variant of that engine with its own arguments (version and is-deleted columns). */
  replacingEngine: (args: string) => string;
  /** Retention per signal in milliseconds; 0 keeps data forever. */
  retention: { traces: number; logs: number; metrics: number; events: number };
  /** The engine is the embedded one (chdb, in this process, on the sidecar's cores), not a server. */
  embedded: boolean;
}

/** One schema step: numbered, applied once, each statement idempotent on its own. */
export interface Migration {
  version: number;
  name: string;
  /** Tables this migration creates and the time column their retention TTL applies to. */
  retention?: ReadonlyArray<{ table: string; column: string; signal: keyof SchemaContext['retention'] }>;
  statements(ctx: SchemaContext): string[];
}

/** Renders ` TTL <column> + toIntervalSecond(n)` for a retention, or empty for 0 (keep forever). */
export function ttlClause(column: string, retentionMs: number): string {
  return retentionMs > 0 ? `\nTTL ${ttlExpression(column, retentionMs)}` : '';
}

/** The TTL expression itself: `toDateTime(col) + toIntervalSecond(n)` with n whole seconds. */
export function ttlExpression(column: string, retentionMs: number): string {
  return `${column} + toIntervalSecond(${Math.max(1, Math.round(retentionMs / 1000))})`;
}

/**
 * SETTINGS of every data table: the exporter's, plus a deduplication window so a retried insert
 * with the same `insert_deduplication_token` is stored once on non-replicated tables too.
 */
export const TABLE_SETTINGS = 'index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000';
