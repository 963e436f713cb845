import type { MessageInitShape } from '@bufbuild/protobuf';
import { invalidFields, type FieldViolation } from '../errors/agent-error.js';
import { SpanStatus, type SearchTracesRequest, type SearchTracesResponseSchema, type TraceSummarySchema } from '../gen/heimdall/v1/query_pb.js';
import { Status_StatusCode } from '../gen/opentelemetry/proto/trace/v1/trace_pb.js';
import { STATUS } from '../ingest/otlp/traces.js';
import { decodeCursor, encodeCursor, filterHash } from '../paging/cursor.js';
import { TRACES } from '../storage/tables.js';
import type { QueryParams } from '../storage/transport.js';
import { timestamp } from '../time/range.js';
import type { Query, QueryBudget } from './budget.js';
import { boundedCount, MAX_NAME } from './bounds.js';
import { ERROR_STATUS, otelTenant, otelWhere, tenantParams, windowParams } from './sql.js';
import { boundParams, IN_BOUNDS, traceBounds } from './trace-bounds.js';

/** Traces a page holds when the request says 0, and at most. */
const DEFAULT_PAGE = 20;
const MAX_PAGE = 200;
/** Attribute filters a search takes at most, and the longest key (a value: MAX_NAME). */
const MAX_ATTRIBUTE_FILTERS = 16;
const MAX_ATTRIBUTE_KEY = 256;
/** Services a summary lists per trace. */
const MAX_TRACE_SERVICES = 100;

/** The stored text of each status a search asks for. */
const STATUS_TEXT: Record<number, string | undefined> = {
  [SpanStatus.UNSET]: STATUS[Status_StatusCode.UNSET],
  [SpanStatus.OK]: STATUS[Status_StatusCode.OK],
  [SpanStatus.ERROR]: STATUS[Status_StatusCode.ERROR],
};

/** A filter of the search: SQL on one span, its parameters, whether the request asks for it. */
type SpanFilter = readonly [sql: string, params: QueryParams, applies: boolean];

/** Each bound a search request breaks, named by field. */
function violations(req: SearchTracesRequest): FieldViolation[] {
  const out: FieldViolation[] = [];
  const text = (field: string, value: string, max: number) => value.length > max && out.push({ field, description: `at most ${max} characters, got ${value.length}` });
  text('service_name', req.serviceName, MAX_NAME);
  text('span_name', req.spanName, MAX_NAME);
  if (req.attributes.length > MAX_ATTRIBUTE_FILTERS) out.push({ field: 'attributes', description: `at most ${MAX_ATTRIBUTE_FILTERS}, got ${req.attributes.length}` });
  req.attributes.slice(0, MAX_ATTRIBUTE_FILTERS).forEach((a, i) => {
    if (a.key === '') out.push({ field: `attributes[${i}].key`, description: 'must not be empty' });
    text(`attributes[${i}].key`, a.key, MAX_ATTRIBUTE_KEY);
    text(`attributes[${i}].value`, a.value, MAX_NAME);
  });
  for (const [field, ms] of [['min_duration_ms', req.minDurationMs], ['max_duration_ms', req.maxDurationMs]] as const) {
    if (!Number.isFinite(ms) || ms < 0 || ms > 1e12) out.push({ field, description: `0 (none) to 1e12 ms, got ${ms}` });
  }
  if (req.maxDurationMs > 0 && req.maxDurationMs < req.minDurationMs) out.push({ field: 'max_duration_ms', description: 'must not be below min_duration_ms' });
  if (req.status !== SpanStatus.UNSPECIFIED && STATUS_TEXT[req.status] === undefined) out.push({ field: 'status', description: `unknown status ${req.status}` });
  return out;
}

/** The span filters a search asks for; every value a query parameter. */
function spanFilters(req: SearchTracesRequest): SpanFilter[] {
  const ns = (ms: number) => BigInt(Math.round(ms * 1e6)).toString();
  return [
    ['ServiceName = {service:String}', { service: req.serviceName }, req.serviceName !== ''],
    ['SpanName = {spanName:String}', { spanName: req.spanName }, req.spanName !== ''],
    ...req.attributes.map((a, i): SpanFilter => [`SpanAttributes[{k${i}:String}] = {v${i}:String}`, { [`k${i}`]: a.key, [`v${i}`]: a.value }, true]),
    ['Duration >= {minNs:UInt64}', { minNs: ns(req.minDurationMs) }, req.minDurationMs > 0],
    ['Duration <= {maxNs:UInt64}', { maxNs: ns(req.maxDurationMs) }, req.maxDurationMs > 0],
    ['StatusCode = {status:String}', { status: STATUS_TEXT[req.status] ?? '' }, req.status !== SpanStatus.UNSPECIFIED],
  ];
}

interface SummaryRow {
  id: string;
  start: string;
  end: string;
  spans: string;
  errors: string;
  services: string[];
  roots: string;
  root_service: string;
  root_name: string;
  first_service: string;
  first_name: string;
}

/** Summaries of whole traces (all their stored spans, also outside the search window), by trace id. */
async function summaries(query: Query, ids: string[], tenant: string): Promise<Map<string, MessageInitShape<typeof TraceSummarySchema>>> {
  const bounds = await traceBounds(query, ids);
  if (!bounds) return new Map();
  const rows = await query<SummaryRow>(
    `SELECT TraceId AS id, toString(min(toUnixTimestamp64Nano(Timestamp))) AS start, toString(max(toUnixTimestamp64Nano(Timestamp) + toInt64(Duration))) AS end,
       count() AS spans, countIf(StatusCode = {error:String}) AS errors, arraySort(groupUniqArray(${MAX_TRACE_SERVICES})(ServiceName)) AS services,
       countIf(ParentSpanId = '') AS roots, argMinIf(ServiceName, Timestamp, ParentSpanId = '') AS root_service, argMinIf(SpanName, Timestamp, ParentSpanId = '') AS root_name,
       argMin(ServiceName, Timestamp) AS first_service, argMin(SpanName, Timestamp) AS first_name
     FROM ${TRACES.name} WHERE TraceId IN {ids:Array(String)} AND ${IN_BOUNDS}${otelTenant(tenant)}
     GROUP BY TraceId`,
    { ...tenantParams(tenant), ...boundParams(bounds), ids, error: ERROR_STATUS },
  );
  return new Map(
    rows.map((r) => {
      const rootMissing = Number(r.roots) === 0;
      return [
        r.id,
        {
          traceId: r.id,
          rootServiceName: rootMissing ? r.first_service : r.root_service,
          rootSpanName: rootMissing ? r.first_name : r.root_name,
          rootMissing,
          startTime: timestamp(r.start),
          durationMs: Number(BigInt(r.end) - BigInt(r.start)) / 1e6,
          spanCount: Number(r.spans),
          errorCount: Number(r.errors),
          services: r.services,
        },
      ];
    }),
  );
}

/**
 * SearchTraces for `tenant` (empty: every tenant): the traces with a span in the window that
 * matches every filter, newest first by their earliest matching span (keyset paging on it and the
 * trace id, the window pinned by the first page), each summarised over all its stored spans.
 */
export async function searchTraces(query: Query, budget: Pick<QueryBudget, 'checked' | 'window'>, defaultWindowMs: number, tenant: string, req: SearchTracesRequest): Promise<MessageInitShape<typeof SearchTracesResponseSchema>> {
  const bad = violations(req);
  if (bad.length > 0) throw invalidFields(bad);
  const limit = boundedCount(req.pageSize, 'page_size', DEFAULT_PAGE, MAX_PAGE);
  const applied = spanFilters(req).filter(([, , applies]) => applies);
  const hash = filterHash(applied.map(([sql, params]) => [sql, params]));
  const cursor = req.pageToken ? decodeCursor(req.pageToken, hash) : undefined;
  const range = cursor ? budget.checked({ start: BigInt(cursor.start), end: BigInt(cursor.end) }, 'page_token') : budget.window(req, defaultWindowMs);
  const params: QueryParams = { ...windowParams(range, tenant), limit: limit + 1, ...(cursor ? { lastTime: cursor.lastTime, lastId: cursor.lastId } : {}) };
  for (const [, p] of applied) Object.assign(params, p);
  const where = [otelWhere(tenant), "TraceId != ''", ...applied.map(([sql]) => sql)].join(' AND ');
  const found = await query<{ id: string; key: string }>(
    `SELECT TraceId AS id, toString(min(toUnixTimestamp64Nano(Timestamp))) AS key FROM ${TRACES.name} WHERE ${where} GROUP BY TraceId
     ${cursor ? 'HAVING (min(toUnixTimestamp64Nano(Timestamp)), TraceId) < ({lastTime:Int64}, {lastId:String})' : ''}
     ORDER BY min(toUnixTimestamp64Nano(Timestamp)) DESC, TraceId DESC LIMIT {limit:UInt32}`,
    params,
  );
  const kept = found.slice(0, limit);
  const byId = await summaries(query, kept.map((f) => f.id), tenant);
  const last = kept[kept.length - 1];
  return {
    traces: kept.flatMap((f) => byId.get(f.id) ?? []),
    nextPageToken: found.length > limit && last ? encodeCursor({ start: range.start.toString(), end: range.end.toString(), lastTime: last.key, lastId: last.id, filters: hash }) : '',
  };
}
