import type { MessageInitShape } from '@bufbuild/protobuf';
import { invalidFields } from '../errors/agent-error.js';
import type { GetTraceRequest, GetTraceResponseSchema, TimelineItemSchema } from '../gen/heimdall/v1/query_pb.js';
import { TENANT_ATTRIBUTE } from '../ingest/processors/enrichment.js';
import { EVENTS, LOGS, TRACES } from '../storage/tables.js';
import type { QueryParams } from '../storage/transport.js';
import { timestamp } from '../time/range.js';
import type { Query } from './budget.js';
import { EVENT_COLUMNS, eventOf, LOG_COLUMNS, logOf, SPAN_COLUMNS, spanOf, type EventRow, type LogRow, type SpanRow } from './rows.js';
import { boundParams, IN_BOUNDS, traceBounds } from './trace-bounds.js';
import { treeOrder } from './trace-tree.js';

/** A timeline holds at most this many items of each kind. */
const MAX_TIMELINE = 10_000;

/** The events a GetTrace id names and the traces they belong to: a trace id's own events, or a correlation id's events and their traces. */
async function eventsOf(query: Query, id: GetTraceRequest['id'], base: QueryParams, eventTenant: string): Promise<{ traceIds: string[]; events: EventRow[] }> {
  if (id.case === 'traceId') {
    const traceId = id.value.toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(traceId)) throw invalidFields([{ field: 'trace_id', description: 'must be 32 hex digits' }]);
    const events = await query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM ${EVENTS.name} WHERE TraceId = {id:String}${eventTenant} ORDER BY Timestamp LIMIT {max:UInt32}`, { ...base, id: traceId });
    return { traceIds: [traceId], events };
  }
  if (id.case === 'correlationId' && id.value !== '') {
    const events = await query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM ${EVENTS.name} WHERE CorrelationId = {id:String}${eventTenant} ORDER BY Timestamp LIMIT {max:UInt32}`, { ...base, id: id.value });
    return { traceIds: [...new Set(events.map((e) => e.TraceId).filter((t) => t !== ''))], events };
  }
  throw invalidFields([{ field: 'id', description: 'give a trace_id or a correlation_id' }]);
}

/** The spans and logs of the traces (none for no traces). */
async function spansAndLogs(query: Query, traceIds: string[], base: QueryParams, spanTenant: string): Promise<{ spans: SpanRow[]; logs: LogRow[] }> {
  if (traceIds.length === 0) return { spans: [], logs: [] };
  const bounds = await traceBounds(query, traceIds);
  const spans = bounds
    ? await query<SpanRow>(`SELECT ${SPAN_COLUMNS} FROM ${TRACES.name} WHERE TraceId IN {ids:Array(String)} AND ${IN_BOUNDS}${spanTenant} ORDER BY Timestamp LIMIT {max:UInt32}`, { ...base, ids: traceIds, ...boundParams(bounds) })
    : [];
  const logs = await query<LogRow>(`SELECT ${LOG_COLUMNS} FROM ${LOGS.name} WHERE TraceId IN {ids:Array(String)}${spanTenant} ORDER BY Timestamp LIMIT {max:UInt32}`, { ...base, ids: traceIds });
  return { spans, logs };
}

/** The timeline's items in tree order (see treeOrder): spans with their depth, each followed by its own logs and events and its children, in time order. */
function timelineItems(spans: SpanRow[], logs: LogRow[], events: EventRow[]): Array<MessageInitShape<typeof TimelineItemSchema>> {
  type Note = { traceId: string; spanId: string; time: bigint; item: MessageInitShape<typeof TimelineItemSchema> };
  const notes: Note[] = [
    ...logs.map((l) => ({ traceId: l.TraceId, spanId: l.SpanId, time: BigInt(l.ts), item: { time: timestamp(l.ts), item: { case: 'log' as const, value: logOf(l) } } })),
    ...events.map((e) => ({ traceId: e.TraceId, spanId: e.SpanId, time: BigInt(e.ts), item: { time: timestamp(e.ts), item: { case: 'event' as const, value: eventOf(e) } } })),
  ];
  const tree = treeOrder(
    spans.map((row) => ({ row, traceId: row.TraceId, spanId: row.SpanId, parentSpanId: row.ParentSpanId, start: BigInt(row.ts) })),
    notes,
  );
  return tree.map((p) => ('note' in p ? p.note.item : { time: timestamp(p.span.row.ts), item: { case: 'span' as const, value: spanOf(p.span.row, p.depth, p.orphan) } }));
}

/**
 * GetTrace for `tenant` (empty: every tenant): the spans (with their depth), logs and events of the
 * traces `id` names, in tree order (see timelineItems), at most 10,000 of each kind.
 */
export async function traceTimeline(query: Query, tenant: string, id: GetTraceRequest['id']): Promise<MessageInitShape<typeof GetTraceResponseSchema>> {
  const spanTenant = tenant !== '' ? ' AND ResourceAttributes[{tenantKey:String}] = {tenant:String}' : '';
  const eventTenant = tenant !== '' ? ' AND TenantId = {tenant:String}' : '';
  const base: QueryParams = tenant !== '' ? { tenant, tenantKey: TENANT_ATTRIBUTE, max: MAX_TIMELINE } : { max: MAX_TIMELINE };
  const { traceIds, events } = await eventsOf(query, id, base, eventTenant);
  const { spans, logs } = await spansAndLogs(query, traceIds, base, spanTenant);
  return { traceIds, items: timelineItems(spans, logs, events), spanCount: spans.length, logCount: logs.length, eventCount: events.length };
}
