import { SpanKind, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';

const tracer = trace.getTracer('heimdall');
/** Whether self-tracing runs; off, a call skips the span machinery entirely (even a no-op span costs ~10% of a small call). */
let enabled = false;

/** Turns server spans on (self-tracing started) or off. */
export function setServerSpans(on: boolean): void {
  enabled = on;
}

/**
 * Runs fn inside a server span named `name` with the attributes made by `attributes` (a no-op,
 * neither called, unless self-tracing is on). The span ends
 * when fn settles and is marked as an error when fn throws; fn's result or error passes through.
 */
export function inServerSpan<T>(name: string, attributes: () => Attributes, fn: () => Promise<T>): Promise<T> {
  if (!enabled) return fn();
  return tracer.startActiveSpan(name, { kind: SpanKind.SERVER, attributes: attributes() }, async (span) => {
    try {
      return await fn();
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}
