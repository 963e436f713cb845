import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { Event } from '../gen/heimdall/v1/events_pb.js';
import { Severity } from '../gen/heimdall/v1/events_pb.js';
import { encodeRows } from '../ingest/pipeline/formats.js';
import { uuidv7 } from '../ids/uuidv7.js';
import type { Pipeline } from '../ingest/pipeline/pipeline.js';
import type { Processors } from '../ingest/pipeline/processing.js';
import type { Redaction } from '../ingest/processors/redaction.js';
import { EVENTS } from '../storage/tables.js';
import type { Logger } from '../telemetry/logger.js';
import { nanosToDateTime64 } from '../time/datetime64.js';

/** Severity names as stored and shown, by value (index 0 unused). */
export const SEVERITY_NAMES = ['', 'debug', 'info', 'notice', 'warning', 'error', 'critical'] as const;

/** Where an event came from, for the fields the request fills in. */
export interface EventDefaults {
  /** The request's correlation id, for events without one. */
  correlationId: string;
  /** From the request's W3C traceparent, for events without ids. */
  traceId: string | undefined;
  spanId: string | undefined;
  /** The token's tenant: replaces the event's tenant_id when set. */
  tenant: string | undefined;
}

/** Limits and processors applied to events. */
export interface EventRules {
  maxPayloadBytes: number;
  redaction: Redaction | undefined;
}

/** A field of an event that is not acceptable. */
export interface FieldError {
  field: string;
  message: string;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const MAX_TEXT = 1024;
const MAX_ID = 128;
/** Nanoseconds of DateTime64(9)'s range: 1900 is its floor, but events before 1970 are refused. */
const MAX_SECONDS = 9_223_372_036n;

/** Trace and span id of a W3C `traceparent` header value, or undefined when it is not a valid one. */
export function parseTraceparent(value: string | undefined): { traceId: string; spanId: string } | undefined {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec((value ?? '').trim());
  if (!m || m[1] === 'ff' || /^0+$/.test(m[2] ?? '') || /^0+$/.test(m[3] ?? '')) return undefined;
  return { traceId: m[2] ?? '', spanId: m[3] ?? '' };
}

/** A JSON value with secrets redacted: string values by their key (and text), other values under a secret key replaced. */
function redactJson(value: JsonValue, redaction: Redaction, key: string): JsonValue {
  if (typeof value === 'string') return redaction.redactAttribute(key, value);
  if (Array.isArray(value)) return value.map((v) => redactJson(v, redaction, key));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactJson(v, redaction, k)]));
  // A number or boolean under a secret key (e.g. "pin": 1234) is replaced too.
  const replaced = redaction.redactAttribute(key, String(value));
  return replaced === String(value) ? value : replaced;
}

/**
 * Validates one event and turns it into a heimdall_events row, or returns what is wrong with it
 * (fields named `events[index].field`). Fills the id, time, correlation and trace ids the event
 * lacks, applies the token's tenant and redacts the message and payload.
 */
export function eventToRow(e: Event, index: number, defaults: EventDefaults, rules: EventRules): { row: Record<string, unknown>; id: string } | { errors: FieldError[] } {
  const errors: FieldError[] = [];
  const field = (name: string) => `events[${index}].${name}`;
  const text = (name: string, value: string, required: boolean, max = MAX_TEXT) => {
    if (required && value.trim() === '') errors.push({ field: field(name), message: 'is required' });
    else if (value.length > max) errors.push({ field: field(name), message: `is ${value.length} characters, over the limit of ${max}` });
  };
  text('event_type', e.eventType, true, 256);
  text('source', e.source, true, 256);
  text('category', e.category, false, 256);
  text('status', e.status, false, 256);
  text('actor_id', e.actorId, false, MAX_ID);
  text('id', e.id, false, MAX_ID);
  text('correlation_id', e.correlationId, false, MAX_ID);
  text('tenant_id', e.tenantId, false, MAX_ID);
  text('message', e.message, false, 64 * 1024);
  if (e.severity === Severity.UNSPECIFIED) errors.push({ field: field('severity'), message: 'is required (debug, info, notice, warning, error or critical)' });
  else if (!Number.isInteger(e.severity) || (e.severity as number) < 1 || (e.severity as number) >= SEVERITY_NAMES.length) errors.push({ field: field('severity'), message: `unknown severity ${e.severity}: use debug, info, notice, warning, error or critical` });
  if (e.traceId !== '' && (!HEX32.test(e.traceId) || /^0+$/.test(e.traceId))) errors.push({ field: field('trace_id'), message: 'must be 32 lowercase hex digits, not all zero' });
  if (e.spanId !== '' && (!HEX16.test(e.spanId) || /^0+$/.test(e.spanId))) errors.push({ field: field('span_id'), message: 'must be 16 lowercase hex digits, not all zero' });
  if (!Number.isFinite(e.durationMs) || e.durationMs < 0) errors.push({ field: field('duration_ms'), message: 'must be a finite number, 0 or more' });
  let nanos: bigint;
  if (e.timestamp) {
    const { seconds, nanos: ns } = e.timestamp;
    if (seconds < 0n || seconds >= MAX_SECONDS || ns < 0 || ns > 999_999_999) errors.push({ field: field('timestamp'), message: 'must be between 1970 and 2262' });
    nanos = seconds * 1_000_000_000n + BigInt(ns);
  } else nanos = BigInt(Date.now()) * 1_000_000n;
  let payload = '';
  if (e.payload) {
    let json: JsonValue = e.payload;
    if (rules.redaction) json = redactJson(json, rules.redaction, '');
    payload = JSON.stringify(json);
    const bytes = Buffer.byteLength(payload);
    if (bytes > rules.maxPayloadBytes) errors.push({ field: field('payload'), message: `is ${bytes} bytes as JSON, over the limit of ${rules.maxPayloadBytes}` });
  }
  for (const [k, v] of Object.entries(e.resourceAttributes)) {
    if (k.length > 256 || v.length > MAX_TEXT) errors.push({ field: field(`resource_attributes[${JSON.stringify(k.slice(0, 40))}]`), message: 'key or value too long' });
  }
  if (errors.length > 0) return { errors };
  const id = e.id || uuidv7(Number(nanos / 1_000_000n));
  const traceparent = e.traceId === '' && e.spanId === '' ? { traceId: defaults.traceId ?? '', spanId: defaults.spanId ?? '' } : { traceId: e.traceId, spanId: e.spanId };
  const attributes = Object.create(null) as Record<string, string>;
  for (const k of Object.keys(e.resourceAttributes).sort()) attributes[k] = rules.redaction ? rules.redaction.redactAttribute(k, e.resourceAttributes[k] ?? '') : (e.resourceAttributes[k] ?? '');
  return {
    id,
    row: {
      Timestamp: nanosToDateTime64(nanos),
      Id: id,
      TenantId: defaults.tenant ?? e.tenantId,
      EventType: e.eventType,
      Source: e.source,
      Severity: e.severity,
      Category: e.category,
      Message: rules.redaction ? rules.redaction.redactFreeText(e.message) : e.message,
      CorrelationId: e.correlationId || defaults.correlationId,
      TraceId: traceparent.traceId,
      SpanId: traceparent.spanId,
      ActorId: e.actorId,
      Status: e.status,
      DurationMs: e.durationMs,
      Payload: payload,
      ResourceAttributes: attributes,
    },
  };
}

/** An event the agent itself emits (audits, aggregated refusals, job runs). */
export interface AgentEvent {
  /** "heimdall" when absent. */
  source?: string;
  /** A new id when absent. */
  correlationId?: string;
  eventType: string;
  severity: Severity;
  category: string;
  message: string;
  actorId: string;
  status?: string;
  payload: Record<string, unknown>;
  /** When it happened, ms since the epoch; now when absent (when it is submitted). */
  time?: number;
}

/** Where the agent's own events go: the pipeline's one entry. */
export type AgentEventSink = Pick<Pipeline, 'consume'>;

/**
 * The one sink of the events the agent emits: through the ingest pipeline's entry, as events
 * from clients are, with the same redaction (their messages and payloads quote what clients sent:
 * URLs, descriptor values) and the same memory limit (they are admitted by their encoded size, so
 * while the pipeline is full they are dropped). Best effort: a refusal is logged, never raised
 * (what the event records has already happened).
 */
export function submitAgentEvents(sink: AgentEventSink, events: readonly AgentEvent[], logger: Logger): void {
  let rows = 0;
  const encode = ({ redaction }: Processors) => {
    const encoded: Array<Record<string, unknown>> = [];
    for (const { time, ...e } of events) {
      const out = eventToRow(
        { $typeName: 'heimdall.v1.Event', id: '', source: 'heimdall', correlationId: '', traceId: '', spanId: '', tenantId: '', status: '', durationMs: 0, resourceAttributes: {}, ...e, timestamp: time === undefined ? undefined : timestampFromMs(Math.trunc(time)), payload: e.payload as JsonObject },
        0,
        { correlationId: uuidv7(), traceId: undefined, spanId: undefined, tenant: undefined },
        { maxPayloadBytes: 1 << 20, redaction },
      );
      if (!('errors' in out)) encoded.push(out.row);
    }
    rows = encoded.length;
    return rows === 0 ? undefined : [encodeRows(EVENTS.name, encoded)];
  };
  sink.consume({ encode }).catch((err: unknown) => logger.warn({ err, rows }, 'agent events not stored'));
}
