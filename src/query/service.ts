import type { MessageInitShape } from '@bufbuild/protobuf';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import type { Registry } from 'prom-client';
import type { Principal } from '../auth/auth.js';
import type { Config } from '../config/schema.js';
import { SEVERITY_NAMES } from '../events/events.js';
import type { EventSchema } from '../gen/heimdall/v1/events_pb.js';
import { QueryService, type LogRecordSchema, type SpanSchema, type TimelineItemSchema } from '../gen/heimdall/v1/query_pb.js';
import { TENANT_ATTRIBUTE } from '../ingest/processors/enrichment.js';
import { decodeCursor, encodeCursor, filterHash } from '../paging/cursor.js';
import { invalidFields } from '../errors/agent-error.js';
import type { GrpcServer } from '../server/grpc.js';
import type { Storage } from '../storage/storage.js';
import { EVENTS, LOGS, TRACE_ID_TS, TRACES, type TableWithRowId } from '../storage/tables.js';
import type { QueryParams } from '../storage/transport.js';
import { timestamp } from '../time/range.js';
import { createQueryBudget, type Query } from './budget.js';
import { summarize } from './summary.js';

/** Options for addQueryService. */
export interface QueryServiceOptions {
  grpc: GrpcServer;
  storage: Storage;
  /** The `query` section: budgets of every storage query, windows, fair slots between tenants. */
  config: Config['query'];
  metrics: Registry;
}

const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;
/** A timeline holds at most this many items of each kind. */
const MAX_TIMELINE = 10_000;

/**
 * A LIKE pattern for text containing `s`, compared with ClickHouse's `lower()` (which lowercases
 * ASCII only, so only A-Z are lowercased here); %, _ and \ are taken literally.
 */
function containsPattern(s: string): string {
  return `%${s.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function pageSize(n: number): number {
  if (n > MAX_PAGE) throw invalidFields([{ field: 'page_size', description: `at most ${MAX_PAGE}` }]);
  return n === 0 ? DEFAULT_PAGE : n;
}

/** The tenant whose rows a caller reads: a tenant-bound token's, else the one asked for (empty: every tenant). */
function tenantRead(principal: Principal | undefined, requested: string): string {
  return principal?.tenant ?? requested;
}

interface EventRow {
  ts: string;
  Id: string;
  TenantId: string;
  EventType: string;
  Source: string;
  Severity: number;
  Category: string;
  Message: string;
  CorrelationId: string;
  TraceId: string;
  SpanId: string;
  ActorId: string;
  Status: string;
  DurationMs: number;
  Payload: string;
  ResourceAttributes: Record<string, string>;
}

const EVENT_COLUMNS =
  'toString(toUnixTimestamp64Nano(Timestamp)) AS ts, Id, TenantId, EventType, Source, Severity, Category, Message, CorrelationId, TraceId, SpanId, ActorId, Status, DurationMs, Payload, ResourceAttributes';

function eventOf(r: EventRow): MessageInitShape<typeof EventSchema> {
  return {
    id: r.Id,
    timestamp: timestamp(r.ts),
    eventType: r.EventType,
    source: r.Source,
    severity: Number(r.Severity),
    category: r.Category,
    message: r.Message,
    correlationId: r.CorrelationId,
    traceId: r.TraceId,
    spanId: r.SpanId,
    tenantId: r.TenantId,
    actorId: r.ActorId,
    status: r.Status,
    durationMs: Number(r.DurationMs),
    ...(r.Payload ? { payload: JSON.parse(r.Payload) as Record<string, never> } : {}),
    resourceAttributes: r.ResourceAttributes,
  };
}

interface LogRow {
  ts: string;
  id: string;
  ServiceName: string;
  SeverityText: string;
  SeverityNumber: number;
  Body: string;
  TraceId: string;
  SpanId: string;
  LogAttributes: Record<string, string>;
  ResourceAttributes: Record<string, string>;
}

/** A log record's id is its row id in the catalogue (a hash of the record: the table has none). */
const LOG_COLUMNS = `toString(toUnixTimestamp64Nano(Timestamp)) AS ts, toString(${LOGS.rowId.expr}) AS id, ServiceName, SeverityText, SeverityNumber, Body, TraceId, SpanId, LogAttributes, ResourceAttributes`;

function logOf(r: LogRow): MessageInitShape<typeof LogRecordSchema> {
  return {
    id: r.id,
    timestamp: timestamp(r.ts),
    serviceName: r.ServiceName,
    severityText: r.SeverityText,
    severityNumber: Number(r.SeverityNumber),
    body: r.Body,
    traceId: r.TraceId,
    spanId: r.SpanId,
    attributes: r.LogAttributes,
    resourceAttributes: r.ResourceAttributes,
  };
}

interface SpanRow {
  ts: string;
  TraceId: string;
  SpanId: string;
  ParentSpanId: string;
  SpanName: string;
  ServiceName: string;
  SpanKind: string;
  Duration: string;
  StatusCode: string;
  StatusMessage: string;
  SpanAttributes: Record<string, string>;
}

const SPAN_COLUMNS = 'toString(toUnixTimestamp64Nano(Timestamp)) AS ts, TraceId, SpanId, ParentSpanId, SpanName, ServiceName, SpanKind, toString(Duration) AS Duration, StatusCode, StatusMessage, SpanAttributes';

/** Spans with their depth in the trace tree (0 for roots and for spans whose parent is not stored). */
function spansWithDepth(rows: SpanRow[]): Array<MessageInitShape<typeof SpanSchema>> {
  const byId = new Map(rows.map((r) => [`${r.TraceId}/${r.SpanId}`, r]));
  const depth = new Map<SpanRow, number>();
  const depthOf = (r: SpanRow, seen = new Set<SpanRow>()): number => {
    const known = depth.get(r);
    if (known !== undefined) return known;
    const parent = r.ParentSpanId ? byId.get(`${r.TraceId}/${r.ParentSpanId}`) : undefined;
    // A cycle in bad data counts as a root rather than recursing forever.
    const d = parent && !seen.has(parent) ? depthOf(parent, seen.add(r)) + 1 : 0;
    depth.set(r, d);
    return d;
  };
  return rows.map((r) => ({
    traceId: r.TraceId,
    spanId: r.SpanId,
    parentSpanId: r.ParentSpanId,
    name: r.SpanName,
    serviceName: r.ServiceName,
    kind: r.SpanKind,
    startTime: timestamp(r.ts),
    durationMs: Number(r.Duration) / 1e6,
    statusCode: r.StatusCode,
    statusMessage: r.StatusMessage,
    attributes: r.SpanAttributes,
    depth: depthOf(r),
  }));
}

/**
 * Adds `heimdall.v1.QueryService` (scope `query`). Every filter travels as a ClickHouse query
 * parameter; a tenant-bound token sees only its tenant's events (TenantId) and spans and logs
 * (resource attribute `tenant.id`).
 */
export function addQueryService(options: QueryServiceOptions): void {
  const limits = options.config;
  const budget = createQueryBudget({ config: limits, storage: options.storage, metrics: options.metrics });

  /**
   * One page of a newest-first listing: the filters that apply (SQL with its parameters), keyset
   * paging on (Timestamp, id) after the cursor's row, and the time range pinned by the first page.
   * The filters (not the time range) are hashed into the token, which is refused with others.
   */
  const page = async <T extends { ts: string }>(
    query: Query,
    table: { spec: TableWithRowId; columns: string; idOf: (row: T) => string },
    req: { startTime?: Timestamp | undefined; endTime?: Timestamp | undefined; pageSize: number; pageToken: string },
    filters: ReadonlyArray<[sql: string, params: QueryParams, applies: boolean]>,
  ): Promise<{ rows: T[]; next: string }> => {
    const applied = filters.filter(([, , applies]) => applies);
    const hash = filterHash(applied.map(([sql, params]) => [sql, params]));
    const cursor = req.pageToken ? decodeCursor(req.pageToken, hash) : undefined;
    const range = cursor ? budget.checked({ start: BigInt(cursor.start), end: BigInt(cursor.end) }, 'page_token') : budget.window(req, limits.default_window);
    const limit = pageSize(req.pageSize);
    const where = ['Timestamp >= fromUnixTimestamp64Nano({start:Int64})', 'Timestamp < fromUnixTimestamp64Nano({end:Int64})', ...applied.map(([sql]) => sql)];
    const params: QueryParams = { start: range.start.toString(), end: range.end.toString(), limit: limit + 1 };
    for (const [, p] of applied) Object.assign(params, p);
    if (cursor) {
      where.push(`(Timestamp, ${table.spec.rowId.expr}) < (fromUnixTimestamp64Nano({lastTime:Int64}), {lastId:${table.spec.rowId.type}})`);
      params.lastTime = cursor.lastTime;
      params.lastId = cursor.lastId;
    }
    const rows = await query<T>(`SELECT ${table.columns} FROM ${table.spec.name} WHERE ${where.join(' AND ')} ORDER BY Timestamp DESC, ${table.spec.rowId.expr} DESC LIMIT {limit:UInt32}`, params);
    const kept = rows.slice(0, limit);
    const last = kept[kept.length - 1];
    const next = rows.length > limit && last ? encodeCursor({ start: range.start.toString(), end: range.end.toString(), lastTime: last.ts, lastId: table.idOf(last), filters: hash }) : '';
    return { rows: kept, next };
  };

  options.grpc.addService(
    QueryService,
    {
      async listEvents(req, ctx) {
        const tenant = tenantRead(ctx.principal, req.tenantId);
        const minSeverity = req.minSeverity as number;
        if (minSeverity < 0 || minSeverity >= SEVERITY_NAMES.length) throw invalidFields([{ field: 'min_severity', description: `unknown severity ${minSeverity}` }]);
        const { rows, next } = await page<EventRow>(
          budget.queries(ctx, 'list'),
          { spec: EVENTS, columns: EVENT_COLUMNS, idOf: (r) => r.Id },
          req,
          [
            ['TenantId = {tenant:String}', { tenant }, tenant !== ''],
            ['EventType IN {types:Array(String)}', { types: req.eventTypes }, req.eventTypes.length > 0],
            ['Source IN {sources:Array(String)}', { sources: req.sources }, req.sources.length > 0],
            ['Category IN {categories:Array(String)}', { categories: req.categories }, req.categories.length > 0],
            ['Severity >= {minSeverity:UInt8}', { minSeverity }, minSeverity > 0],
            ['CorrelationId = {correlationId:String}', { correlationId: req.correlationId }, req.correlationId !== ''],
            ['ActorId = {actorId:String}', { actorId: req.actorId }, req.actorId !== ''],
            ['Status = {status:String}', { status: req.status }, req.status !== ''],
            ['lower(Message) LIKE {message:String}', { message: containsPattern(req.messageContains) }, req.messageContains !== ''],
          ],
        );
        return { events: rows.map(eventOf), nextPageToken: next };
      },

      async listLogs(req, ctx) {
        const tenant = tenantRead(ctx.principal, '');
        const { rows, next } = await page<LogRow>(
          budget.queries(ctx, 'list'),
          { spec: LOGS, columns: LOG_COLUMNS, idOf: (r) => r.id },
          req,
          [
            ['ResourceAttributes[{tenantKey:String}] = {tenant:String}', { tenant, tenantKey: TENANT_ATTRIBUTE }, tenant !== ''],
            ['ServiceName IN {services:Array(String)}', { services: req.services }, req.services.length > 0],
            ['SeverityNumber >= {minSeverity:UInt8}', { minSeverity: req.minSeverityNumber }, req.minSeverityNumber > 0],
            ['TraceId = {traceId:String}', { traceId: req.traceId.toLowerCase() }, req.traceId !== ''],
            ['lower(Body) LIKE {body:String}', { body: containsPattern(req.bodyContains) }, req.bodyContains !== ''],
          ],
        );
        return { records: rows.map(logOf), nextPageToken: next };
      },

      async getTrace(req, ctx) {
        const tenant = tenantRead(ctx.principal, '');
        const query = budget.queries(ctx, 'read');
        const spanTenant = tenant !== '' ? ' AND ResourceAttributes[{tenantKey:String}] = {tenant:String}' : '';
        const eventTenant = tenant !== '' ? ' AND TenantId = {tenant:String}' : '';
        const base: QueryParams = tenant !== '' ? { tenant, tenantKey: TENANT_ATTRIBUTE, max: MAX_TIMELINE } : { max: MAX_TIMELINE };
        let traceIds: string[];
        let events: EventRow[];
        if (req.id.case === 'traceId') {
          const id = req.id.value.toLowerCase();
          if (!/^[0-9a-f]{32}$/.test(id)) throw invalidFields([{ field: 'trace_id', description: 'must be 32 hex digits' }]);
          traceIds = [id];
          events = await query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM ${EVENTS.name} WHERE TraceId = {id:String}${eventTenant} ORDER BY Timestamp LIMIT {max:UInt32}`, { ...base, id });
        } else if (req.id.case === 'correlationId' && req.id.value !== '') {
          events = await query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM ${EVENTS.name} WHERE CorrelationId = {id:String}${eventTenant} ORDER BY Timestamp LIMIT {max:UInt32}`, { ...base, id: req.id.value });
          traceIds = [...new Set(events.map((e) => e.TraceId).filter((t) => t !== ''))];
        } else throw invalidFields([{ field: 'id', description: 'give a trace_id or a correlation_id' }]);
        let spans: SpanRow[] = [];
        let logs: LogRow[] = [];
        if (traceIds.length > 0) {
          // The lookup table bounds the scan of otel_traces to the traces' time range.
          const [bounds] = await query<{ start: number | string | null; end: number | string | null }>(
            `SELECT toUnixTimestamp(min(Start)) AS start, toUnixTimestamp(max(End)) AS end, count() AS n FROM ${TRACE_ID_TS.name} WHERE TraceId IN {ids:Array(String)} HAVING n > 0`,
            { ids: traceIds },
          );
          if (bounds?.start !== undefined && bounds.start !== null && bounds.end !== undefined && bounds.end !== null) {
            spans = await query<SpanRow>(
              `SELECT ${SPAN_COLUMNS} FROM ${TRACES.name} WHERE TraceId IN {ids:Array(String)} AND toDateTime(Timestamp) >= toDateTime({start:UInt32}) AND toDateTime(Timestamp) <= toDateTime({end:UInt32})${spanTenant} ORDER BY Timestamp LIMIT {max:UInt32}`,
              { ...base, ids: traceIds, start: Number(bounds.start), end: Number(bounds.end) },
            );
          }
          logs = await query<LogRow>(`SELECT ${LOG_COLUMNS} FROM ${LOGS.name} WHERE TraceId IN {ids:Array(String)}${spanTenant} ORDER BY Timestamp LIMIT {max:UInt32}`, { ...base, ids: traceIds });
        }
        const items: Array<MessageInitShape<typeof TimelineItemSchema> & { ns: bigint }> = [
          ...spansWithDepth(spans).map((s, i) => ({ ns: BigInt(spans[i]?.ts ?? '0'), time: s.startTime, item: { case: 'span' as const, value: s } })),
          ...logs.map((l) => ({ ns: BigInt(l.ts), time: timestamp(l.ts), item: { case: 'log' as const, value: logOf(l) } })),
          ...events.map((e) => ({ ns: BigInt(e.ts), time: timestamp(e.ts), item: { case: 'event' as const, value: eventOf(e) } })),
        ];
        items.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
        return { traceIds, items: items.map(({ ns: _ns, ...item }) => item), spanCount: spans.length, logCount: logs.length, eventCount: events.length };
      },

      async getSummary(req, ctx) {
        return summarize(budget.queries(ctx, 'read'), budget.window(req, limits.summary_window), tenantRead(ctx.principal, ''), req.top);
      },
    },
    'query',
  );
}
