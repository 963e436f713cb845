import type { Config } from '../config/schema.js';
import type { Registry } from 'prom-client';
import { createPlainHistogram } from '../telemetry/plain-histogram.js';
import { seriesShape, type SeriesLimits } from '../telemetry/series-limits.js';

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

const LABELS = ['service_name', 'span_name', 'span_kind', 'status_code'] as const;
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** The RED family (a counter and a histogram a label set), as the series limits size it. */
export const RED_FAMILY = { name: 'heimdall_spans_total', labels: LABELS.length, shape: seriesShape(LABELS, [{ name: 'heimdall_spans_total' }, { name: 'heimdall_span_duration_seconds', buckets: BUCKETS }]) };

/**
 * Creates the RED metrics: `heimdall_spans_total` and `heimdall_span_duration_seconds`. Their label
 * values come from clients, so they take the series limits: values cut to the length limit, and
 * past `ingest.red_metrics.max_series` label sets (or the family's size budget) spans count under the `__overflow__` set.
 */
export function createRedMetrics(options: { config: Pick<Config['ingest']['red_metrics'], 'max_series'>; metrics: Registry; limits: SeriesLimits }): RedMetrics {
  // Plain numbers per label set: a span costs one lookup and no label hashing (prom-client hashes twice).
  const red = createPlainHistogram({
    name: 'heimdall_span_duration_seconds',
    help: 'Span durations, by service, span name, kind and status code.',
    buckets: BUCKETS,
    counter: { name: 'heimdall_spans_total', help: 'Spans received, by service, span name, kind and status code.' },
    registers: [options.metrics],
  });
  const series = options.limits.family({ name: RED_FAMILY.name, labelNames: LABELS, maxSeries: options.config.max_series, shape: RED_FAMILY.shape, bind: (labels) => red.series(labels) });
  return {
    observe(spans) {
      for (const span of spans) {
        red.observe(series.get([span.service, span.name, span.kind, span.status]), span.durationSeconds);
      }
    },
  };
}
