import type { ExportTraceServiceRequest } from '../../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.js';
import { Span_SpanKind, Status_StatusCode } from '../../gen/opentelemetry/proto/trace/v1/trace_pb.js';
import { TRACES } from '../../storage/tables.js';
import { nanosToDateTime64 } from '../../time/datetime64.js';
import { ConversionBuilder, type Conversion } from './result.js';
import { attributesToMap, isZero, serviceNameOf, toHex } from './values.js';

// The text the Collector's exporter stores for each enum value.
export const KIND: Record<number, string> = {
  [Span_SpanKind.UNSPECIFIED]: 'Unspecified',
  [Span_SpanKind.INTERNAL]: 'Internal',
  [Span_SpanKind.SERVER]: 'Server',
  [Span_SpanKind.CLIENT]: 'Client',
  [Span_SpanKind.PRODUCER]: 'Producer',
  [Span_SpanKind.CONSUMER]: 'Consumer',
};
export const STATUS: Record<number, string> = { [Status_StatusCode.UNSET]: 'Unset', [Status_StatusCode.OK]: 'Ok', [Status_StatusCode.ERROR]: 'Error' };

/** Why a span with these ids cannot be stored, or undefined when it is valid. */
export function invalidSpanIds(traceId: Uint8Array, spanId: Uint8Array, parentSpanId: Uint8Array): string | undefined {
  if (traceId.length !== 16) return `trace_id must be 16 bytes, got ${traceId.length}`;
  if (isZero(traceId)) return 'trace_id is all zeros';
  if (spanId.length !== 8) return `span_id must be 8 bytes, got ${spanId.length}`;
  if (isZero(spanId)) return 'span_id is all zeros';
  if (parentSpanId.length !== 0 && parentSpanId.length !== 8) return `parent_span_id must be empty or 8 bytes, got ${parentSpanId.length}`;
  return undefined;
}

/**
 * Converts an OTLP trace export into otel_traces rows (the Collector exporter's layout). Invalid
 * spans are counted and explained, the others converted; never throws on content.
 */
export function tracesToRows(request: ExportTraceServiceRequest): Conversion {
  const out = new ConversionBuilder();
  request.resourceSpans.forEach((rs, r) => {
    const resourceAttributes = attributesToMap(rs.resource?.attributes ?? []);
    const serviceName = serviceNameOf(rs.resource?.attributes ?? []);
    rs.scopeSpans.forEach((ss, s) => {
      const scopeName = ss.scope?.name ?? '';
      const scopeVersion = ss.scope?.version ?? '';
      ss.spans.forEach((span, i) => {
        const invalid = invalidSpanIds(span.traceId, span.spanId, span.parentSpanId);
        if (invalid) return out.reject(1, `resource_spans[${r}].scope_spans[${s}].spans[${i}]: ${invalid}`);
        const duration = span.endTimeUnixNano > span.startTimeUnixNano ? span.endTimeUnixNano - span.startTimeUnixNano : 0n;
        out.add(TRACES.name, {
          Timestamp: nanosToDateTime64(span.startTimeUnixNano),
          TraceId: toHex(span.traceId),
          SpanId: toHex(span.spanId),
          ParentSpanId: toHex(span.parentSpanId),
          TraceState: span.traceState,
          SpanName: span.name,
          SpanKind: KIND[span.kind] ?? 'Unspecified',
          ServiceName: serviceName,
          ResourceAttributes: resourceAttributes,
          ScopeName: scopeName,
          ScopeVersion: scopeVersion,
          SpanAttributes: attributesToMap(span.attributes),
          Duration: duration.toString(),
          StatusCode: STATUS[span.status?.code ?? 0] ?? 'Unset',
          StatusMessage: span.status?.message ?? '',
          'Events.Timestamp': span.events.map((e) => nanosToDateTime64(e.timeUnixNano)),
          'Events.Name': span.events.map((e) => e.name),
          'Events.Attributes': span.events.map((e) => attributesToMap(e.attributes)),
          'Links.TraceId': span.links.map((l) => toHex(l.traceId)),
          'Links.SpanId': span.links.map((l) => toHex(l.spanId)),
          'Links.TraceState': span.links.map((l) => l.traceState),
          'Links.Attributes': span.links.map((l) => attributesToMap(l.attributes)),
        });
      });
    });
  });
  return out.build();
}
