import type { MessageInitShape } from '@bufbuild/protobuf';
import { SEVERITY_NAMES } from '../events/events.js';
import type { GetSummaryResponseSchema } from '../gen/heimdall/v1/query_pb.js';
import { EVENTS, LOGS, TRACES } from '../storage/tables.js';
import type { QueryParams } from '../storage/transport.js';
import { timestamp } from '../time/range.js';
import type { Query, Range } from './budget.js';
import { eventsWhere, otelWhere, windowParams } from './sql.js';

/** The key under which a breakdown sums the keys it does not list. */
const OTHER_KEY = '__other__';

/** Keys each breakdown lists when the request says 0, and at most. */
const DEFAULT_TOP = 10;
const MAX_TOP = 1000;

interface KeyCount {
  key: string;
  count: string;
  /** Events in all keys of the breakdown (a window total, so the rest is exact whatever is written meanwhile). */
  total: string;
}

interface ServiceRow {
  service: string;
  spans: string;
  errors: string;
  logs: string;
  all_spans: string;
  all_errors: string;
  all_logs: string;
}

/** The most frequent keys, then the rest as one `__other__` count when there is a rest. */
function withOther(rows: KeyCount[]): Array<{ key: string; count: bigint }> {
  const listed = rows.map((r) => ({ key: r.key, count: BigInt(r.count) }));
  const rest = BigInt(rows[0]?.total ?? 0) - listed.reduce((sum, r) => sum + r.count, 0n);
  return rest > 0n ? [...listed, { key: OTHER_KEY, count: rest }] : listed;
}

/**
 * GetSummary over `range` for `tenant` (empty: every tenant): totals and severities, the `top` most
 * frequent sources, event types, categories and services (the rest of each under `__other__`), and
 * the `top` sources by errors. Each grouping returns at most `top` rows, so the reply stays small
 * whatever the data's cardinality; the grouping itself is bounded by query.max_memory.
 */
export async function summarize(query: Query, range: Range, tenant: string, requestedTop: number): Promise<MessageInitShape<typeof GetSummaryResponseSchema>> {
  const top = requestedTop === 0 ? DEFAULT_TOP : Math.min(requestedTop, MAX_TOP);
  const params: QueryParams = { ...windowParams(range, tenant), top };
  const events = `${EVENTS.name} WHERE ${eventsWhere(tenant)}`;
  const otel = (table: string) => `${table} WHERE ${otelWhere(tenant)}`;
  const counts = (column: string, limit: string) =>
    query<KeyCount>(`SELECT toString(${column}) AS key, count() AS count, sum(count()) OVER () AS total FROM ${events} GROUP BY key ORDER BY count DESC, key${limit}`, params);
  const topCounts = (column: string) => counts(column, ' LIMIT {top:UInt32}');
  const [totals, bySeverity, bySource, byType, byCategory, topErrors, services] = await Promise.all([
    query<{ n: string; errors: string }>(`SELECT count() AS n, countIf(Severity >= 5) AS errors FROM ${events}`, params),
    // Severities are few (validated on write); every one is listed.
    counts('Severity', ''),
    topCounts('Source'),
    topCounts('EventType'),
    topCounts('Category'),
    query<{ key: string; count: string }>(`SELECT Source AS key, count() AS count FROM ${events} AND Severity >= 5 GROUP BY key ORDER BY count DESC, key LIMIT {top:UInt32}`, params),
    query<ServiceRow>(
      `SELECT service, sum(span_count) AS spans, sum(error_count) AS errors, sum(log_count) AS logs,
         sum(sum(span_count)) OVER () AS all_spans, sum(sum(error_count)) OVER () AS all_errors, sum(sum(log_count)) OVER () AS all_logs
       FROM (
         SELECT ServiceName AS service, count() AS span_count, countIf(StatusCode = 'Error') AS error_count, toUInt64(0) AS log_count FROM ${otel(TRACES.name)} GROUP BY service
         UNION ALL
         SELECT ServiceName AS service, toUInt64(0), toUInt64(0), count() FROM ${otel(LOGS.name)} GROUP BY service
       )
       GROUP BY service ORDER BY spans + logs DESC, service LIMIT {top:UInt32}`,
      params,
    ),
  ]);
  const n = Number(totals[0]?.n ?? 0);
  const listed = services.map((s) => ({ serviceName: s.service, spans: BigInt(s.spans), errorSpans: BigInt(s.errors), logs: BigInt(s.logs) })).sort((a, b) => a.serviceName.localeCompare(b.serviceName));
  const first = services[0];
  const rest = {
    serviceName: OTHER_KEY,
    spans: BigInt(first?.all_spans ?? 0) - listed.reduce((sum, s) => sum + s.spans, 0n),
    errorSpans: BigInt(first?.all_errors ?? 0) - listed.reduce((sum, s) => sum + s.errorSpans, 0n),
    logs: BigInt(first?.all_logs ?? 0) - listed.reduce((sum, s) => sum + s.logs, 0n),
  };
  return {
    startTime: timestamp(range.start.toString()),
    endTime: timestamp(range.end.toString()),
    events: BigInt(n),
    errorRate: n === 0 ? 0 : Number(totals[0]?.errors ?? 0) / n,
    bySeverity: bySeverity.map((r) => ({ key: SEVERITY_NAMES[Number(r.key)] ?? r.key, count: BigInt(r.count) })),
    bySource: withOther(bySource),
    byEventType: withOther(byType),
    byCategory: withOther(byCategory),
    topErrorSources: topErrors.map((r) => ({ key: r.key, count: BigInt(r.count) })),
    services: rest.spans > 0n || rest.logs > 0n ? [...listed, rest] : listed,
  };
}
