import type { MessageInitShape } from '@bufbuild/protobuf';
import type { EventSchema } from '../gen/heimdall/v1/events_pb.js';
import type { LogRecordSchema, SpanSchema } from '../gen/heimdall/v1/query_pb.js';
import { LOGS } from '../storage/tables.js';
import { timestamp } from '../time/range.js';

/** An events row as the query reads it (time in ns as text). */
export interface EventRow {
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

/** The select list of EventRow. */
export const EVENT_COLUMNS =
  'toString(toUnixTimestamp64Nano(Timestamp)) AS ts, Id, TenantId, EventType, Source, Severity, Category, Message, CorrelationId, TraceId, SpanId, ActorId, Status, DurationMs, Payload, ResourceAttributes';

/** An events row as the API shows it. */
export function eventOf(r: EventRow): MessageInitShape<typeof EventSchema> {
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

/** A logs row as the query reads it (time in ns as text, the row id as text). */
export interface LogRow {
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
export const LOG_COLUMNS = `toString(toUnixTimestamp64Nano(Timestamp)) AS ts, toString(${LOGS.rowId.expr}) AS id, ServiceName, SeverityText, SeverityNumber, Body, TraceId, SpanId, LogAttributes, ResourceAttributes`;

/** A logs row as the API shows it. */
export function logOf(r: LogRow): MessageInitShape<typeof LogRecordSchema> {
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

/** A spans row as the query reads it (time in ns as text, duration in ns as text). */
export interface SpanRow {
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
  /** The span's events in the order recorded: nanoseconds since the epoch, name, attributes. */
  EventTimes: string[];
  EventNames: string[];
  EventAttributes: Array<Record<string, string>>;
}

/** The most events GetTrace shows of one span (the OpenTelemetry SDKs keep 128 by default). */
export const MAX_SPAN_EVENTS = 128;

/** The select list of SpanRow. */
export const SPAN_COLUMNS =
  'toString(toUnixTimestamp64Nano(Timestamp)) AS ts, TraceId, SpanId, ParentSpanId, SpanName, ServiceName, SpanKind, toString(Duration) AS Duration, StatusCode, StatusMessage, SpanAttributes, ' +
  `arrayMap(t -> toString(toUnixTimestamp64Nano(t)), arraySlice(\`Events.Timestamp\`, 1, ${MAX_SPAN_EVENTS})) AS EventTimes, arraySlice(\`Events.Name\`, 1, ${MAX_SPAN_EVENTS}) AS EventNames, arraySlice(\`Events.Attributes\`, 1, ${MAX_SPAN_EVENTS}) AS EventAttributes`;

/** A spans row as the API shows it, with its place in the trace tree (see treeOrder). */
export function spanOf(r: SpanRow, depth: number, orphan: boolean): MessageInitShape<typeof SpanSchema> {
  return {
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
    depth,
    orphan,
    events: r.EventTimes.map((t, i) => ({ time: timestamp(t), name: r.EventNames[i] ?? '', attributes: r.EventAttributes[i] ?? {} })),
  };
}
