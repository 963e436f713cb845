import type * as OtelApi from '@opentelemetry/api';
import type { Attributes, Tracer } from '@opentelemetry/api';

/** The OpenTelemetry API's enum values used here (SpanKind.SERVER, SpanStatusCode.ERROR), so this module does not load the API. */
const SPAN_KIND_SERVER = 1 satisfies OtelApi.SpanKind.SERVER;
const SPAN_STATUS_ERROR = 2 satisfies OtelApi.SpanStatusCode.ERROR;

/**
 * The tracer while self-tracing runs, else undefined: off, a call skips the span machinery entirely
 * (even a no-op span costs ~10% of a small call), and the OpenTelemetry API is never loaded.
 */
let tracer: Tracer | undefined;

/** Turns server spans on with the loaded OpenTelemetry API (self-tracing started), or off with undefined. */
export function setServerSpans(api: typeof OtelApi | undefined): void {
  tracer = api?.trace.getTracer('heimdall');
}

/**
 * Runs fn inside a server span named `name` with the attributes made by `attributes` (a no-op,
 * neither called, unless self-tracing is on). The span ends
 * when fn settles and is marked as an error when fn throws; fn's result or error passes through.
 */
export function inServerSpan<T>(name: string, attributes: () => Attributes, fn: () => Promise<T>): Promise<T> {
  if (!tracer) return fn();
  return tracer.startActiveSpan(name, { kind: SPAN_KIND_SERVER, attributes: attributes() }, async (span) => {
    try {
      return await fn();
    } catch (err) {
      span.setStatus({ code: SPAN_STATUS_ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}
