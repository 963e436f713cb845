import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../telemetry/logger.js';

const OVERFLOW = '__overflow__';

/** What the RED metrics need of one span (the texts as stored in otel_traces). */
export interface SpanSummary {
  service: string;
  name: string;
  kind: string;
  status: string;
  durationSeconds: number;
}

/** Span-derived RED metrics (rate, errors, duration) by service, span name, kind and status. */
export interface RedMetrics {
  /** Counts spans. */
  observe(spans: readonly SpanSummary[]): void;
}

/**
 * Creates the RED metrics: `heimdall_spans_total` and `heimdall_span_duration_seconds`. Past
 * `maxSeries` label sets, new ones are counted under service_name="__overflow__", the event is
 * logged once and `heimdall_span_metrics_overflow_total` counts the spans affected.
 */
export function createRedMetrics(options: { metrics: Registry; maxSeries: number; logger: Logger }): RedMetrics {
  const labelNames = ['service_name', 'span_name', 'span_kind', 'status_code'] as const;
  const calls = new Counter({ name: 'heimdall_spans_total', help: 'Spans received, by service, span name, kind and status code.', labelNames, registers: [options.metrics] });
  const duration = new Histogram({
    name: 'heimdall_span_duration_seconds',
    help: 'Span durations, by service, span name, kind and status code.',
    labelNames,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [options.metrics],
  });
  const overflow = new Counter({ name: 'heimdall_span_metrics_overflow_total', help: 'Spans counted under the overflow label set because the series cap was reached.', registers: [options.metrics] });
  // Bound children per label set: one hash lookup per span instead of two label-set hashes.
  type Bound = { calls: { inc(n?: number): void }; duration: { observe(v: number): void } };
  const series = new Map<string, Bound>();
  const bind = (labels: Record<(typeof labelNames)[number], string>): Bound => ({ calls: calls.labels(labels), duration: duration.labels(labels) });
  const overflowSeries = bind({ service_name: OVERFLOW, span_name: OVERFLOW, span_kind: OVERFLOW, status_code: OVERFLOW });
  let warned = false;
  return {
    observe(spans) {
      for (const span of spans) {
        const key = `${span.service}\u0000${span.name}\u0000${span.kind}\u0000${span.status}`;
        let bound = series.get(key);
        if (!bound) {
          if (series.size >= options.maxSeries) {
            bound = overflowSeries;
            overflow.inc();
            if (!warned) {
              warned = true;
              options.logger.warn({ maxSeries: options.maxSeries }, 'span RED metrics reached their series cap; further label sets are counted as __overflow__');
            }
          } else {
            bound = bind({ service_name: span.service, span_name: span.name, span_kind: span.kind, status_code: span.status });
            series.set(key, bound);
          }
        }
        bound.calls.inc();
        bound.duration.observe(span.durationSeconds);
      }
    },
  };
}
