import { EVENTS } from '../tables.js';
import { TABLE_SETTINGS, ttlClause, type Migration } from './context.js';

// Heimdall's structured events. Ordered by time (and id, the page tiebreaker), so every listing
// (newest first, any filters, one tenant or all) reads granules in key order from the newest and
// stops once its page is full; bloom filters serve the id lookups (correlation, trace, actor, event
// id) and an n-gram filter the "message contains" search.
export const migration0005: Migration = {
  version: 5,
  name: EVENTS.name,
  retention: [{ table: EVENTS.name, column: 'toDateTime(Timestamp)', signal: 'events' }],
  statements: (ctx) => [
    `CREATE TABLE IF NOT EXISTS ${EVENTS.name}${ctx.onCluster} (
  Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
  Id String CODEC(ZSTD(1)),
  TenantId LowCardinality(String) CODEC(ZSTD(1)),
  EventType LowCardinality(String) CODEC(ZSTD(1)),
  Source LowCardinality(String) CODEC(ZSTD(1)),
  Severity UInt8,
  Category LowCardinality(String) CODEC(ZSTD(1)),
  Message String CODEC(ZSTD(1)),
  CorrelationId String CODEC(ZSTD(1)),
  TraceId String CODEC(ZSTD(1)),
  SpanId String CODEC(ZSTD(1)),
  ActorId String CODEC(ZSTD(1)),
  Status LowCardinality(String) CODEC(ZSTD(1)),
  DurationMs Float64 CODEC(ZSTD(1)),
  Payload String CODEC(ZSTD(1)),
  ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
  INDEX idx_id Id TYPE bloom_filter(0.001) GRANULARITY 1,
  INDEX idx_correlation_id CorrelationId TYPE bloom_filter(0.001) GRANULARITY 1,
  INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
  INDEX idx_actor_id ActorId TYPE bloom_filter(0.01) GRANULARITY 1,
  INDEX idx_lower_message lower(Message) TYPE ngrambf_v1(3, 65536, 2, 0) GRANULARITY 4
) ENGINE = ${ctx.engine}
PARTITION BY toDate(Timestamp)
ORDER BY (Timestamp, Id)${ttlClause('toDateTime(Timestamp)', ctx.retention.events)}
SETTINGS ${TABLE_SETTINGS}`,
  ],
};
